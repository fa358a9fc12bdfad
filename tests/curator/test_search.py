"""Search through the real path: no write on read, warm reloads, concurrent writers, moments."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest

from curator.project import Project
from curator.scan import ScanOptions
from curator.search import SearchHit, sync_index

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220)}


def _two_colour_video(path: Path, first, second, frames=20, fps=10, size=(64, 48)) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            colour = first if i < frames // 2 else second
            arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(colour, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def project_dir(tmp_path, media):
    src = tmp_path / "media"
    for name, colour in COLOURS.items():
        for i in range(8):
            media.image(src / name / f"{i:02d}.png", size=(40 + i, 40), color=colour, seed=i)
    _two_colour_video(src / "clips" / "red_then_blue.mp4", COLOURS["red"], COLOURS["blue"])
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.embed("classic", "classic", workers=0)
    return tmp_path / "proj"


def _files(root: Path) -> dict[str, tuple[int, int]]:
    # SQLite may touch its WAL and shared-memory files on a read; every other file must stay put.
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*") if p.is_file() and not p.name.startswith("catalog.db")}


def _ids(project: Project, prefix: str) -> list[int]:
    return [i["id"] for i in project.items() if i["path"].startswith(prefix)]


def test_search_never_writes_and_returns_typed_hits(project_dir):
    before = _files(project_dir)
    with Project.open(project_dir) as proj:
        red = _ids(proj, "red/")
        hits = proj.search(like=red[0], k=5)
        again = proj.search(like=red[0], k=5)
    with Project.open(project_dir) as cold:  # a second process-like open: cold, still no write
        cold_hits = cold.search(like=red[0], k=5)
    assert all(isinstance(h, SearchHit) for h in hits)
    assert [h.item_id for h in hits] == [h.item_id for h in again] == [h.item_id for h in cold_hits]
    assert all("/red/" in h.path for h in hits) and red[0] not in [h.item_id for h in hits]
    assert _files(project_dir) == before


def test_an_open_project_sees_a_newer_index_without_reopening(project_dir, media, tmp_path):
    with Project.open(project_dir) as reader:
        blue = _ids(reader, "blue/")
        assert len(reader.search(like=blue[0], k=50)) == 7 + 1 + 16  # all but itself (+ video)
        cache = reader.search_cache()
        first = cache.index("classic:v1")
        media.image(tmp_path / "media" / "blue" / "new.png", size=(41, 40),
                    color=COLOURS["blue"], seed=3)
        with Project.open(project_dir) as writer:
            writer.scan(ScanOptions(workers=0))
            writer.embed("classic", "classic", workers=0)
            new_id = next(i["id"] for i in writer.items() if i["path"] == "blue/new.png")
        hits = reader.search(like=blue[0], k=10)
        assert new_id in [h.item_id for h in hits]
        assert cache.index("classic:v1") is not first
        # Unchanged file: the same opened index is reused, not reopened.
        assert cache.index("classic:v1") is cache.index("classic:v1")


def test_a_video_hit_carries_the_moment_that_matched(project_dir, media, tmp_path):
    probe = media.image(tmp_path / "blue.png", size=(64, 48), color=COLOURS["blue"])
    with Project.open(project_dir) as proj:
        video = next(i for i in proj.items() if i["path"].endswith(".mp4"))
        hits = proj.search(file=str(probe), k=50)
        hit = next(h for h in hits if h.item_id == video["id"])
        assert hit.modality == "video" and hit.frame_time is not None
        assert 1.0 < hit.frame_time <= 2.0  # blue is the second half of a 2 s clip
        red_probe = media.image(tmp_path / "red.png", size=(64, 48), color=COLOURS["red"])
        red_hit = next(h for h in proj.search(file=str(red_probe), k=50)
                       if h.item_id == video["id"])
        assert 0.0 <= red_hit.frame_time < 1.0
        frames = proj.search_cache().index("classic:v1", frames=True)
        assert len(frames) >= 2


def _read_loop(project_dir: str, item_id: int, stop: threading.Event, errors: list) -> None:
    try:
        with Project.open(project_dir) as proj:
            while not stop.is_set():
                hits = proj.search(like=item_id, k=5)
                assert len(hits) == 5, hits
    except Exception as exc:  # noqa: BLE001 - reported to the test
        errors.append(repr(exc))


def _flip_loop(project_dir: str, item_id: int, rounds: int) -> None:
    # Make each sync a real write: the item leaves the index, then comes back.
    with Project.open(project_dir) as proj:
        for r in range(rounds):
            status = "missing" if r % 2 == 0 else "ok"
            with proj.catalog.write() as db:
                db.execute("UPDATE items SET status = ? WHERE id = ?", [status, item_id])
            sync_index(proj.catalog, "classic:v1")


def _check_consistent(project_dir: Path) -> None:
    from curator.search.index_files import current_versions
    from indexing.vector_index import VectorIndex

    with Project.open(project_dir) as proj:
        with proj.catalog.write() as db:
            db.execute("UPDATE items SET status = 'ok' WHERE status = 'missing'")
        sync_index(proj.catalog, "classic:v1")
        ids, _ = current_versions(proj.catalog, "classic:v1")
        folder = next(project_dir.rglob("index.faiss")).parent
        index = VectorIndex.load(folder / "index.faiss", gpu=False)
        assert np.array_equal(index.ids(), ids)
        assert not list(folder.glob(".*.tmp")), "a temporary file was left behind"


def test_readers_and_writers_in_threads(project_dir):
    with Project.open(project_dir) as proj:
        red, green = _ids(proj, "red/"), _ids(proj, "green/")
    stop, errors = threading.Event(), []
    readers = [threading.Thread(target=_read_loop, args=(str(project_dir), red[0], stop, errors))
               for _ in range(2)]
    def write(item_id: int) -> None:
        try:
            _flip_loop(str(project_dir), item_id, 6)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(repr(exc))

    writers = [threading.Thread(target=write, args=(g,)) for g in green[:2]]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors
    _check_consistent(project_dir)


def _reader_process(project_dir: str, item_id: int, seconds: float) -> None:
    stop, errors = threading.Event(), []
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    _read_loop(project_dir, item_id, stop, errors)
    if errors:
        raise SystemExit(f"reader failed: {errors[0]}")


def test_readers_and_writers_in_processes(project_dir):
    with Project.open(project_dir) as proj:
        red, green = _ids(proj, "red/"), _ids(proj, "green/")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_flip_loop, args=(str(project_dir), g, 6)) for g in green[:2]]
    procs.append(ctx.Process(target=_reader_process, args=(str(project_dir), red[0], 8.0)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    _check_consistent(project_dir)
