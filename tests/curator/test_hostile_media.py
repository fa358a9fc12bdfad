"""Hostile media never stops a stage: one-frame videos, mutated files, failing models, fuzzing."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from curator.embed import embed_isolated
from curator.project import Project
from curator.scan import ScanOptions
from indexing.embedders.base import EmbedResult
from indexing.embedders.classic import ClassicEmbedder, video_features
from tests.helpers.media import encoded_tone


def _ok_ids_without_vectors(project: Project) -> list[str]:
    embedded = {r[0] for r in project.catalog.db.execute("SELECT item_id FROM embeddings")}
    return [i["path"] for i in project.items(status="ok") if i["id"] not in embedded]


# --- one-frame videos --------------------------------------------------------------------------


def test_video_descriptor_has_the_declared_length_for_any_frame_count():
    rng = np.random.default_rng(0)
    lengths = {
        n: video_features(rng.integers(0, 255, (n, 64, 64, 3), np.uint8)).shape[0]
        for n in (1, 2, 3, 8)
    }
    assert len(set(lengths.values())) == 1, lengths
    embedder = ClassicEmbedder()
    assert embedder._projections["video"].shape[0] == lengths[1]
    with pytest.raises(ValueError, match="at least one decoded frame"):
        video_features(np.zeros((0, 64, 64, 3), np.uint8))


def test_one_frame_video_among_others_is_embedded_with_everything_else(tmp_path, media):
    src = tmp_path / "media"
    media.video(src / "one.mp4", frames=1)
    for i in range(3):
        media.video(src / f"v{i}.mp4", frames=6 + i)
    for i in range(3):
        media.image(src / f"i{i}.png", seed=i)
    media.wav(src / "a.wav", seconds=0.5)
    with Project.create(tmp_path / "p", [src]) as project:
        project.scan(ScanOptions(workers=0))
        report = project.embed("classic", "classic", workers=0, batch_size=8)
        assert report.errors == 0
        assert report.embedded == 8
        assert _ok_ids_without_vectors(project) == []
        # A rerun has nothing left to do (the run is not stuck on the video).
        assert project.embed("classic", "classic", workers=0).embedded == 0


# --- a failing model costs only its item -------------------------------------------------------


class _Picky(ClassicEmbedder):
    """Classic, except that it raises for any batch holding one chosen item (a model bug)."""

    def __init__(self, bad_item: int, error: type[BaseException] = RuntimeError) -> None:
        super().__init__()
        self.bad_item, self.error, self.calls = bad_item, error, 0

    def embed_batch(self, batch):
        self.calls += 1
        if any(d.item_id == self.bad_item for d in batch):
            raise self.error("matmul: size mismatch 891 vs 893")
        return super().embed_batch(batch)


class _Nan(ClassicEmbedder):
    def embed_batch(self, batch):
        result = super().embed_batch(batch)
        vectors = result.vectors.copy()
        vectors[0] = np.nan
        return EmbedResult(vectors, result.frames)


def _decoded(tmp_path, media, n=4):
    decoder = ClassicEmbedder().decoder()
    pairs = []
    for i in range(n):
        path = media.image(tmp_path / f"{i}.png", seed=i)
        pairs.append((i, decoder(i, str(path), "image", False)))
    return pairs


@pytest.mark.parametrize("error", [RuntimeError, ValueError, MemoryError, KeyError, AssertionError])
def test_a_batch_that_raises_is_retried_item_by_item(tmp_path, media, error):
    good = _decoded(tmp_path, media)
    embedder = _Picky(bad_item=2, error=error)
    embedded, failed = embed_isolated(embedder, good)
    assert [task for task, *_ in embedded] == [0, 1, 3]
    assert [task for task, _ in failed] == [2]
    assert failed[0][1].startswith(f"embedding failed ({error.__name__}: ")
    assert embedder.calls == 1 + len(good)
    assert all(v.shape == (256,) and np.isfinite(v).all() for _, _, v, _ in embedded)


def test_a_nan_vector_fails_only_its_item(tmp_path, media):
    embedded, failed = embed_isolated(_Nan(), _decoded(tmp_path, media))
    assert [t for t, *_ in embedded] == [1, 2, 3]
    reason = "embedding failed (the model returned a vector with NaN or infinite values)"
    assert failed == [(0, reason)]


def test_embed_run_survives_a_model_that_fails_on_one_item(tmp_path, media, monkeypatch):
    src = tmp_path / "media"
    for i in range(6):
        media.image(src / f"{i}.png", seed=i)
    with Project.create(tmp_path / "p", [src]) as project:
        project.scan(ScanOptions(workers=0))
        bad = project.items(status="ok")[3]
        from indexing.embedders import classic

        monkeypatch.setattr(classic, "create", lambda **_: _Picky(bad["id"]))
        report = project.embed("classic", "classic", workers=0, batch_size=4)
        assert (report.embedded, report.errors) == (5, 1)
        item = project.item(bad["id"])
        assert item["status"] == "error" and "size mismatch" in item["error"]
        assert _ok_ids_without_vectors(project) == []
        # The reason names the model, so a rescan gives the item another chance.
        monkeypatch.undo()
        project.scan(ScanOptions(workers=0))
        assert project.item(bad["id"])["status"] == "ok"
        assert project.embed("classic", "classic", workers=0).embedded == 1


# --- a mutated corpus --------------------------------------------------------------------------


def _webm_with_duration(path: Path, seconds: float) -> bytes:
    """The WebM's bytes with its Segment Info Duration (ID 0x4489) set to `seconds`."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89")
    assert at > 0, "no Duration element"
    size = data[at + 2] & 0x7F
    value = seconds * 1000.0  # in TimecodeScale units (1 ms by default)
    data[at + 3 : at + 3 + size] = struct.pack(">d" if size == 8 else ">f", value)
    return bytes(data)


def _mutations(seed_files: list[Path], out: Path, rng: np.random.Generator) -> list[Path]:
    made = []
    for path in seed_files:
        data = path.read_bytes()
        stem, ext = path.stem, path.suffix
        variants = {
            "trunc50": data[: len(data) // 2],
            "trunc90": data[: int(len(data) * 0.9)],
            "head": data[:64],
        }
        for k in range(3):
            flipped = bytearray(data)
            for at in rng.integers(0, len(data), size=1 + k * 4):
                flipped[int(at)] ^= 0xFF
            variants[f"flip{k}"] = bytes(flipped)
        for name, payload in variants.items():
            target = out / f"{stem}-{name}{ext}"
            target.write_bytes(payload)
            made.append(target)
    return made


def _huge_headers(seeds: dict[str, Path], out: Path) -> list[Path]:
    made = []
    png = bytearray(seeds["png"].read_bytes())
    png[16:24] = struct.pack(">II", 0x7FFFFFF0, 0x7FFFFFF0)  # IHDR width, height
    (out / "huge.png").write_bytes(bytes(png))
    wav = bytearray(seeds["wav"].read_bytes())
    wav[4:8] = struct.pack("<I", 0xFFFFFFF0)  # RIFF size
    wav[40:44] = struct.pack("<I", 0xFFFFFFF0)  # data chunk size
    (out / "huge.wav").write_bytes(bytes(wav))
    (out / "huge-duration.webm").write_bytes(_webm_with_duration(seeds["webm"], 5.8e14))
    (out / "huge-duration2.webm").write_bytes(_webm_with_duration(seeds["webm"], 65536.0))
    made += [out / "huge.png", out / "huge.wav", out / "huge-duration.webm",
             out / "huge-duration2.webm"]
    return made


@pytest.fixture
def hostile_corpus(tmp_path, media):
    good = tmp_path / "media" / "good"
    bad = tmp_path / "media" / "bad"
    bad.mkdir(parents=True)
    seeds = {
        "png": media.image(good / "a.png", seed=1),
        "jpg": media.image(good / "b.jpg", seed=2, fmt="JPEG"),
        "wav": media.wav(good / "c.wav", seconds=0.6),
        "flac": encoded_tone(good / "d.flac", "flac", "flac", seconds=0.8),
        "ogg": encoded_tone(good / "e.ogg", "libopus", "ogg", rate=48000),
        "mp3": encoded_tone(good / "e2.mp3", "libmp3lame", "mp3", rate=44100),
        "mp4": media.video(good / "f.mp4", frames=8),
        "one": media.video(good / "g-one-frame.mp4", frames=1),
        "webm": media.video(good / "h.webm", frames=6, codec="libvpx"),
    }
    rng = np.random.default_rng(12)
    mutated = _mutations([seeds[k] for k in ("png", "jpg", "wav", "flac", "mp4", "webm")], bad,
                         rng)
    mutated += _huge_headers(seeds, bad)
    return tmp_path / "media", seeds, mutated


def test_scan_and_embed_finish_on_a_mutated_corpus_with_every_good_item_embedded(
    tmp_path, hostile_corpus
):
    root, seeds, mutated = hostile_corpus
    with Project.create(tmp_path / "p", [root]) as project:
        scan = project.scan(ScanOptions(workers=2, timeout=60))
        assert scan.listed == len(seeds) + len(mutated)
        project.embed("classic", "classic", workers=2, batch_size=6)
        items = {i["path"]: i for i in project.items()}
        for path in seeds.values():
            item = items[f"good/{path.name}"]
            assert item["status"] == "ok", (path.name, item["error"])
        assert _ok_ids_without_vectors(project) == []
        for item in items.values():
            assert item["status"] in ("ok", "error")
            if item["status"] == "error":
                assert item["error"] and "\n" not in item["error"], item
        # Huge declared durations are not believed.
        for name in ("huge-duration.webm", "huge-duration2.webm"):
            item = items[f"bad/{name}"]
            assert item["status"] == "error" or item["duration"] < 10, item
        # Nothing is left for a rerun: it does not stop at the same place.
        assert project.embed("classic", "classic", workers=0).embedded == 0


# --- fuzzing -----------------------------------------------------------------------------------


def test_fuzz_scanner_and_classic_embedder(tmp_path, media):
    """Random mutations of real files (fixed seed): probing, decoding and embedding never raise.

    Bounded by an iteration count and a time budget, whichever ends first; the budget only
    stops the loop, nothing is asserted about speed.
    """
    from indexing.media import MediaInfo, probe_file

    seeds = [
        media.image(tmp_path / "s.png", seed=3),
        media.image(tmp_path / "s.jpg", seed=4, fmt="JPEG"),
        media.wav(tmp_path / "s.wav", seconds=0.4),
        media.video(tmp_path / "s.mp4", frames=4),
        media.video(tmp_path / "s.webm", frames=3, codec="libvpx"),
    ]
    rng = np.random.default_rng(20261128)
    embedder = ClassicEmbedder()
    decoder = embedder.decoder()
    deadline = time.monotonic() + 45.0
    done = 0
    for i in range(150):
        if time.monotonic() > deadline:
            break
        seed = seeds[i % len(seeds)]
        data = bytearray(seed.read_bytes())
        for _ in range(int(rng.integers(1, 6))):
            op = rng.integers(0, 3)
            if op == 0 and data:
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
            elif op == 1 and len(data) > 16:
                del data[int(rng.integers(len(data) // 4, len(data))):]
            else:
                at = int(rng.integers(0, max(1, len(data))))
                data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes()
        path = tmp_path / f"fuzz{i}{seed.suffix}"
        path.write_bytes(bytes(data))
        info = probe_file(path)
        assert isinstance(info, MediaInfo)
        assert info.ok or (info.error and "\n" not in info.error)
        if info.ok:
            decoded = decoder(i, str(path), info.modality, False)
            assert decoded.error is None or "\n" not in decoded.error
            if decoded.error is None:
                embedded, failed = embed_isolated(embedder, [(i, decoded)])
                assert len(embedded) + len(failed) == 1
                for _, _, vector, _ in embedded:
                    assert vector.shape == (256,) and np.isfinite(vector).all()
        path.unlink()
        done += 1
    assert done >= 20


def test_classic_vectors_do_not_depend_on_the_batch(tmp_path, media):
    """A resumed run batches items differently from a clean one: the vectors must agree."""
    embedder = ClassicEmbedder()
    decoded = [d for _, d in _decoded(tmp_path, media, n=7)]
    together = embedder.embed_batch(decoded).vectors
    for i, item in enumerate(decoded):
        np.testing.assert_array_equal(embedder.embed_batch([item]).vectors[0], together[i])
