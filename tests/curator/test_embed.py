"""The embedding stage on real files: every good item gets a vector and a thumbnail, runs resume."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from curator.embed import frame_vectors
from curator.project import Project
from curator.scan import ScanOptions


@pytest.fixture
def corpus(tmp_path, media):
    src = tmp_path / "media"
    for i in range(12):
        media.image(src / "img" / f"{i:02d}.jpg", size=(40 + 7 * i, 30 + 5 * i),
                    color=(20 * i, 100, 200 - 10 * i), fmt="JPEG", seed=i)
    media.image(src / "img" / "big.png", size=(900, 700), color=(0, 0, 0))
    Image.new("CMYK", (50, 40), (0, 100, 100, 0)).save(src / "img" / "cmyk.jpg")
    for i in range(4):
        media.wav(src / "snd" / f"{i}.wav", seconds=0.3 + 0.2 * i, freq=200 + 300 * i)
    media.wav(src / "snd" / "short.wav", seconds=0.06)
    media.video(src / "vid" / "a.mp4", frames=12)
    media.video(src / "vid" / "b.webm", frames=8, codec="libvpx", audio=False)
    return src


def _project(tmp_path, corpus, name="proj"):
    project = Project.create(tmp_path / name, [corpus])
    project.scan(ScanOptions(workers=0))
    return project


def test_classic_embeds_every_good_item_with_vector_and_thumbnail(tmp_path, corpus):
    with _project(tmp_path, corpus) as project:
        report = project.embed("classic", "classic", workers=1, batch_size=5)
        ok = project.items(status="ok")
        assert report.embedded == len(ok) == 21 and report.errors == 0
        (space,) = report.spaces
        assert space == "classic:v1"
        ids, vectors = project.vectors(space)
        assert sorted(ids.tolist()) == sorted(item["id"] for item in ok)
        assert vectors.dtype == np.float16 and vectors.shape == (21, 256)
        norms = np.linalg.norm(np.asarray(vectors, np.float32), axis=1)
        assert np.allclose(norms, 1.0, atol=2e-3)
        for item in ok:
            thumb = project.thumbnail(item["id"])
            assert thumb is not None, item["path"]
            image = Image.open(io.BytesIO(thumb))
            assert image.format == "JPEG" and max(image.size) <= 256
        # The run says which model made the vectors, where, and how fast.
        run = project.runs("embed")[0]
        assert run.status == "ok"
        counts = run.counts["spaces"][space]
        assert counts["embedder"] == "classic" and counts["device"] == "cpu"
        assert counts["items_per_second"] > 0
        (row,) = project.spaces()
        assert row["dim"] == 256 and row["count"] == 21 and "squash" in row["preprocess"]
        # Video items keep their per-frame vectors beside the item vector.
        video = next(i for i in ok if i["path"] == "vid/a.mp4")
        frames = frame_vectors(project.catalog, space, video["id"])
        # classic gives each of a video's frames an image vector (8 frames are decoded).
        assert frames is not None and frames.shape[1] == 256 and 1 <= frames.shape[0] <= 8
        # Nothing left to do: a second run embeds nothing.
        assert project.embed("classic", "classic", workers=0).embedded == 0


def test_rescan_makes_changed_items_stale_and_only_they_are_re_embedded(tmp_path, corpus, media):
    with _project(tmp_path, corpus) as project:
        project.embed("classic", "classic", workers=0)
        ids_before, vec_before = project.vectors("classic:v1")
        before = dict(zip(ids_before.tolist(), np.asarray(vec_before)))
        time.sleep(0.01)
        media.image(corpus / "img" / "03.jpg", size=(60, 60), color=(250, 250, 0), fmt="JPEG")
        project.scan(ScanOptions(workers=0))
        report = project.embed("classic", "classic", workers=0)
        assert report.embedded == 1
        ids_after, vec_after = project.vectors("classic:v1")
        after = dict(zip(ids_after.tolist(), np.asarray(vec_after)))
        changed = next(i["id"] for i in project.items() if i["path"] == "img/03.jpg")
        assert not np.array_equal(before[changed], after[changed])
        same = [i for i in before if i != changed]
        assert all(np.array_equal(before[i], after[i]) for i in same)


def test_file_that_fails_to_decode_becomes_an_error_item_and_the_run_goes_on(tmp_path, corpus):
    with _project(tmp_path, corpus) as project:
        # Damaged after the scan: the probe saw a good file, the decoder does not.
        victim = corpus / "img" / "05.jpg"
        data = victim.read_bytes()
        victim.write_bytes(data[:40])
        os.utime(victim, ns=(0, victim.stat().st_mtime_ns))
        report = project.embed("classic", "classic", workers=1)
        assert report.errors == 1 and report.embedded == 20
        item = next(i for i in project.items() if i["path"] == "img/05.jpg")
        assert item["status"] == "error" and "decode" in item["error"]
        assert "\n" not in item["error"]


def test_missing_weights_fail_fast_with_a_clear_message(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with _project(tmp_path, corpus) as project:
        started = time.monotonic()
        report = project.embed("ViT-B-32/laion2b_s34b_b79k", "classic", workers=0)
        assert time.monotonic() - started < 60
        assert len(report.unavailable) == 1
        assert "classic" in report.unavailable[0] and str(tmp_path / "hf") in report.unavailable[0]
        # Audio still ran with the model that is here.
        assert list(report.spaces) == ["classic:v1"] and report.embedded == 5


def _count(db_path) -> int:
    try:
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_vectors(tmp_path, media):
    src = tmp_path / "media"
    for i in range(160):
        media.image(src / f"{i:03d}.png", size=(64, 64), color=(i, 255 - i, (7 * i) % 255), seed=i)
    with Project.create(tmp_path / "killed", [src]) as project:
        project.scan(ScanOptions(workers=0))
    cmd = [sys.executable, "-m", "curator.cli", "embed", str(tmp_path / "killed"), "--model",
           "classic", "--audio-model", "classic", "--batch-size", "4", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    done = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = _count(tmp_path / "killed" / "catalog.db")
        if done >= 8:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < done < 160, f"kill landed at {done} of 160"

    with Project.open(tmp_path / "killed") as project:
        report = project.embed("classic", "classic", workers=1, batch_size=16)
        assert report.embedded <= 160 - done
        ids, vectors = project.vectors("classic:v1")
        killed = dict(zip(ids.tolist(), np.asarray(vectors)))
        statuses = [r.status for r in project.runs("embed")]
        assert statuses == ["ok", "interrupted"]
        paths = {i["id"]: i["path"] for i in project.items()}
    with Project.create(tmp_path / "clean", [src]) as project:
        project.scan(ScanOptions(workers=0))
        project.embed("classic", "classic", workers=1, batch_size=7)
        ids, vectors = project.vectors("classic:v1")
        clean = {project.item(i)["path"]: v for i, v in zip(ids.tolist(), np.asarray(vectors))}
    assert len(killed) == len(clean) == 160
    for item_id, vector in killed.items():
        np.testing.assert_array_equal(vector, clean[paths[item_id]])
