"""The scanner on real files: bad input, incremental rescans, kills, globs."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.project import Project
from curator.scan import ScanOptions, _glob_regex
from indexing.progress import ProgressEvent


def _items(project: Project) -> dict[str, dict]:
    return {row["path"]: row for row in project.items()}


def _scan(project: Project, **kwargs):
    return project.scan(ScanOptions(workers=kwargs.pop("workers", 0), **kwargs))


@pytest.fixture
def tree(tmp_path, media):
    src = tmp_path / "media"
    media.image(src / "cats" / "a.jpg", fmt="JPEG")
    media.image(src / "cats" / "b.png", size=(30, 40), color=(10, 200, 10))
    media.wav(src / "sounds" / "tone.wav", seconds=0.4)
    media.video(src / "clips" / "c.mp4", frames=8)
    (src / "README.txt").write_text("not media, ignored")
    return src


@pytest.fixture
def project(tmp_path, tree):
    with Project.create(tmp_path / "proj", [tree]) as proj:
        yield proj


def test_first_scan_catalogs_every_modality_from_content(project, tree):
    report = _scan(project)
    items = _items(project)
    assert set(items) == {"cats/a.jpg", "cats/b.png", "sounds/tone.wav", "clips/c.mp4"}
    assert report.new == 4 and report.errors == 0
    a = items["cats/a.jpg"]
    assert (a["modality"], a["width"], a["height"], a["status"]) == ("image", 64, 48, "ok")
    assert len(a["content_hash"]) == 64
    tone = items["sounds/tone.wav"]
    assert tone["modality"] == "audio" and tone["sample_rate"] == 16000
    assert tone["duration"] == pytest.approx(0.4, rel=0.1)
    clip = items["clips/c.mp4"]
    assert clip["modality"] == "video" and (clip["width"], clip["height"]) == (64, 48)
    assert clip["fps"] == pytest.approx(10, rel=0.1)
    run = project.runs("scan")[0]
    assert run.status == "ok" and run.counts["new"] == 4


def test_modality_comes_from_content_not_extension(project, tree, media):
    media.image(tree / "really_png.jpg", fmt="PNG")
    media.wav(tree / "sound_named.mp4", seconds=0.3)
    _scan(project)
    items = _items(project)
    assert items["really_png.jpg"]["modality"] == "image"
    assert items["really_png.jpg"]["format"] == "png"
    assert items["sound_named.mp4"]["modality"] == "audio"


# --- bad input: each becomes one error item with a one-line reason, and the scan goes on -------


def _bad_zero_byte(d: Path, media) -> str:
    (d / "empty.jpg").write_bytes(b"")
    return "empty.jpg"


def _bad_truncated_jpeg(d: Path, media) -> str:
    good = media.image(d / "tmp.jpg", size=(200, 150), fmt="JPEG")
    data = good.read_bytes()
    good.unlink()
    (d / "trunc.jpg").write_bytes(data[: len(data) // 2])
    return "trunc.jpg"


def _bad_truncated_png(d: Path, media) -> str:
    good = media.image(d / "tmp.png", size=(200, 150), fmt="PNG")
    data = good.read_bytes()
    good.unlink()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    return "trunc.png"


def _bad_text_named_jpg(d: Path, media) -> str:
    (d / "notes.jpg").write_text("these are my notes, not a picture\n" * 10)
    return "notes.jpg"


def _bad_decompression_bomb(d: Path, media) -> str:
    # A 1-bit PNG of 30000 x 30000 pixels compresses to a few hundred KB but would need
    # gigabytes to decode as RGB.
    Image.new("1", (30000, 30000)).save(d / "bomb.png")
    return "bomb.png"


def _bad_short_audio(d: Path, media) -> str:
    media.wav(d / "blip.wav", seconds=0.02)
    return "blip.wav"


def _bad_video_without_video_stream(d: Path, media) -> str:
    import av

    path = d / "novideo.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 16000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = 16000
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return "novideo.mp4"


def _bad_broken_symlink(d: Path, media) -> str:
    os.symlink(d / "gone.jpg", d / "link.jpg")
    return "link.jpg"


def _bad_symlink_loop(d: Path, media) -> str:
    os.symlink("loop.jpg", d / "loop.jpg")
    return "loop.jpg"


def _bad_folder_symlink_loop(d: Path, media) -> str:
    (d / "sub").mkdir()
    os.symlink("..", d / "sub" / "up")
    return "sub/up"


def _bad_non_utf8_name(d: Path, media) -> str:
    media.image(Path(os.fsdecode(os.fsencode(str(d)) + b"/caf\xe9.jpg")), fmt="JPEG")
    return "caf\\xe9.jpg"


BAD_INPUTS = {
    "zero-byte": (_bad_zero_byte, "empty"),
    "truncated-jpeg": (_bad_truncated_jpeg, "truncat"),
    "truncated-png": (_bad_truncated_png, "truncat"),
    "text-named-jpg": (_bad_text_named_jpg, "not an image"),
    "decompression-bomb": (_bad_decompression_bomb, "bomb"),
    "short-audio": (_bad_short_audio, "too short"),
    "video-without-video-stream": (_bad_video_without_video_stream, "no video stream"),
    "broken-symlink": (_bad_broken_symlink, "broken symlink"),
    "symlink-loop": (_bad_symlink_loop, "symlink loop"),
    "folder-symlink-loop": (_bad_folder_symlink_loop, "symlink loop"),
    "non-utf8-name": (_bad_non_utf8_name, "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_file_becomes_one_error_item_and_the_scan_goes_on(tmp_path, media, case):
    make, reason_part = BAD_INPUTS[case]
    src = tmp_path / "media"
    src.mkdir()
    media.image(src / "good1.jpg", fmt="JPEG")
    media.wav(src / "good2.wav", seconds=0.3)
    bad_path = make(src, media)
    with Project.create(tmp_path / "proj", [src]) as project:
        report = _scan(project)
        items = _items(project)
        assert items["good1.jpg"]["status"] == "ok"
        assert items["good2.wav"]["status"] == "ok"
        errors = [row for row in items.values() if row["status"] == "error"]
        assert [row["path"] for row in errors] == [bad_path], errors
        reason = errors[0]["error"]
        assert reason_part.lower() in reason.lower()
        assert "\n" not in reason and len(reason) < 300
        assert report.errors == 1
        # The next scan neither duplicates nor loses it.
        _scan(project)
        assert len(_items(project)) == len(items)


def test_unreadable_file_is_an_error_item(tmp_path, media):
    base = Path(tempfile.mkdtemp(prefix="curator-perm-"))
    try:
        os.chmod(base, 0o755)
        src = base / "media"
        media.image(src / "ok.jpg", fmt="JPEG")
        secret = media.image(src / "secret.jpg", fmt="JPEG")
        os.chmod(secret, 0o000)
        proj = base / "proj"
        Project.create(proj, [src]).close()
        os.chmod(src, 0o755)
        os.chmod(src / "ok.jpg", 0o644)
        for path in [proj, *proj.iterdir()]:
            os.chmod(path, 0o777)
        if os.geteuid() == 0:
            # root reads everything: scan as an unprivileged user, as a real curator would.
            # Everything is imported (and one file probed) before dropping privileges,
            # since nobody cannot read root's Python installation.
            code = (
                "import os, indexing.workers\n"
                "from curator.project import Project, ScanOptions\n"
                "from indexing.media import probe_file\n"
                f"probe_file({str(src / 'ok.jpg')!r})\n"
                f"project = Project.open({str(proj)!r})\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "project.scan(ScanOptions(workers=0))"
            )
            env = {**os.environ, "HOME": str(base)}
            result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    env=env)
            assert result.returncode == 0, result.stderr
        else:
            with Project.open(proj) as project:
                _scan(project)
        with Project.open(proj) as project:
            items = _items(project)
        assert items["ok.jpg"]["status"] == "ok"
        assert items["secret.jpg"]["status"] == "error"
        assert "permission denied" in items["secret.jpg"]["error"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_file_deleted_during_the_scan_is_an_error_item(project, tree):
    victim = tree / "cats" / "b.png"

    def progress(event: ProgressEvent) -> None:
        # The walk has listed the file; it disappears before its probe.
        if event.stage == "probing" and event.done == 0 and victim.exists():
            victim.unlink()

    report = project.scan(ScanOptions(workers=0), progress=progress)
    items = _items(project)
    assert items["cats/b.png"]["status"] == "error"
    assert "vanished" in items["cats/b.png"]["error"]
    assert items["cats/a.jpg"]["status"] == "ok"
    assert report.errors == 1
    # Now gone for good: the next scan marks it missing, keeping the row.
    _scan(project)
    assert _items(project)["cats/b.png"]["status"] == "missing"


def test_special_images_are_valid_items(tmp_path, media):
    src = tmp_path / "media"
    src.mkdir()
    Image.fromarray(np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 30).save(
        src / "deep.png")
    Image.new("CMYK", (40, 30), (10, 200, 30, 5)).save(src / "print.jpg")
    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(src / "pal.png", transparency=0)
    frames = [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(4)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)
    with Project.create(tmp_path / "proj", [src]) as project:
        _scan(project)
        items = _items(project)
    assert {p: r["status"] for p, r in items.items()} == {
        "deep.png": "ok", "print.jpg": "ok", "pal.png": "ok", "anim.gif": "ok"}
    assert items["anim.gif"]["frames"] == 4
    assert items["deep.png"]["mode"].startswith("I")
    assert items["print.jpg"]["mode"] == "CMYK"


# --- incremental ------------------------------------------------------------------------------


def test_rescan_updates_exactly_what_changed(project, tree, media):
    _scan(project)
    before = _items(project)
    time.sleep(0.01)
    media.image(tree / "cats" / "new.jpg", color=(0, 0, 250), fmt="JPEG")  # add
    media.image(tree / "cats" / "a.jpg", size=(80, 60), color=(1, 2, 3), fmt="JPEG")  # modify
    (tree / "sounds" / "tone.wav").unlink()  # delete
    os.rename(tree / "clips" / "c.mp4", tree / "clips" / "renamed.mp4")  # rename
    report = _scan(project)
    after = _items(project)
    assert (report.new, report.changed, report.missing, report.renamed) == (1, 1, 1, 1)
    assert report.unchanged == 1  # b.png
    assert after["cats/new.jpg"]["status"] == "ok"
    assert after["cats/a.jpg"]["id"] == before["cats/a.jpg"]["id"]
    assert after["cats/a.jpg"]["content_hash"] != before["cats/a.jpg"]["content_hash"]
    assert after["cats/a.jpg"]["version"] == before["cats/a.jpg"]["version"] + 1
    assert after["cats/a.jpg"]["width"] == 80
    assert after["sounds/tone.wav"]["status"] == "missing"
    assert after["sounds/tone.wav"]["content_hash"] == before["sounds/tone.wav"]["content_hash"]
    # A moved file keeps its item (and so everything attached to it).
    assert "clips/c.mp4" not in after
    assert after["clips/renamed.mp4"]["id"] == before["clips/c.mp4"]["id"]
    assert after["cats/b.png"] == {**before["cats/b.png"], "last_seen": after["cats/b.png"][
        "last_seen"]}
    # A file that comes back is ok again, with its old id.
    media.wav(tree / "sounds" / "tone.wav", seconds=0.4)
    report = _scan(project)
    assert report.reappeared == 1
    assert _items(project)["sounds/tone.wav"]["id"] == before["sounds/tone.wav"]["id"]
    assert _items(project)["sounds/tone.wav"]["status"] == "ok"


def test_unchanged_files_are_not_read_again(project, tree, monkeypatch):
    _scan(project)
    import curator.scan as scan_module

    def refuse(task):
        raise AssertionError(f"probed again: {task}")

    monkeypatch.setattr(scan_module, "probe_task", refuse)
    report = _scan(project)
    assert report.unchanged == 4 and report.probed == 0


def test_touched_file_with_same_content_keeps_its_version(project, tree):
    _scan(project)
    path = tree / "cats" / "a.jpg"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = _scan(project)
    assert report.touched == 1 and report.changed == 0
    assert _items(project)["cats/a.jpg"]["version"] == 1


def test_include_exclude_and_hidden(tmp_path, media):
    src = tmp_path / "media"
    media.image(src / "keep" / "a.jpg", fmt="JPEG")
    media.image(src / "keep" / "deep" / "b.png")
    media.image(src / "skip" / "c.jpg", fmt="JPEG")
    media.image(src / ".cache" / "d.jpg", fmt="JPEG")
    media.wav(src / "keep" / "e.wav")
    with Project.create(tmp_path / "proj", [src]) as project:
        _scan(project, exclude=("skip",), include=("**/*.jpg", "**/*.png"))
        assert set(_items(project)) == {"keep/a.jpg", "keep/deep/b.png"}
    with Project.create(tmp_path / "proj2", [src]) as project:
        _scan(project, hidden=True)
        assert ".cache/d.jpg" in _items(project)


def test_glob_translation():
    assert _glob_regex("*.jpg").match("a/b/c.jpg")
    assert not _glob_regex("raw/*.jpg").match("x/raw/c.jpg")
    assert _glob_regex("**/raw/*.jpg").match("x/raw/c.jpg")
    assert _glob_regex("raw").match("raw/sub/x.png")
    assert not _glob_regex("raw").match("rawer/x.png")


def test_missing_source_folder_keeps_items(project, tree):
    _scan(project)
    shutil.rmtree(tree)
    report = _scan(project)
    # An unmounted disk is not a deletion: nothing is marked missing or lost.
    assert {r["status"] for r in _items(project).values()} == {"ok"}
    assert report.missing == 0 and report.unreachable == [str(tree)]


# --- kills ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_scan_killed_halfway_then_rerun_has_every_file_exactly_once(tmp_path):
    src = tmp_path / "media"
    n = 2500
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = src / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(sub / f"{i}.png")
    proj = tmp_path / "proj"
    Project.create(proj, [src]).close()
    cmd = [sys.executable, "-m", "curator.cli", "scan", str(proj), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    count = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = sqlite3.connect(proj / "catalog.db", timeout=5)
            count = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            count = 0
        if count > 0:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < count < n, f"kill landed at {count} of {n}"

    with Project.open(proj) as project:
        report = _scan(project, workers=2)
        rows = project.catalog.db.execute(
            "SELECT path, COUNT(*) FROM items GROUP BY path HAVING COUNT(*) > 1").fetchall()
        assert rows == []
        assert project.catalog.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == n
        assert report.unchanged >= count and report.new == n - report.unchanged
        statuses = [r.status for r in project.runs("scan")]
        assert statuses == ["ok", "interrupted"]
