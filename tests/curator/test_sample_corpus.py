"""Tests for the sample corpus: real files written, then decoded back with Pillow and PyAV."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from curator.sample_corpus import write_sample_corpus
from curator.sample_plan import BROKEN_CLASS, CLASSES, MIN_ITEMS, plan_sample_corpus
from indexing.progress import Cancelled, CancelToken

ITEMS = 70  # 41 images, 18 sounds, 11 videos: every class at least twice, quick to write


def _rows(root: Path) -> list[dict]:
    with (root / "ground_truth.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _files_on_disk(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "ground_truth.csv"
    }


def _good(plan):
    return [f for f in plan if f.label != BROKEN_CLASS]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "sample"
    summary = write_sample_corpus(root, items=ITEMS, seed=0)
    return summary, plan_sample_corpus(ITEMS, 0)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """A second corpus with the same items and seed, written to another folder."""
    return write_sample_corpus(tmp_path_factory.mktemp("twin") / "sample", items=ITEMS, seed=0)


def _audio_duration(path: Path) -> tuple[float, int, int]:
    """Decoded duration in seconds, the decoder's sample rate and the channel count."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate, stream.rate, stream.codec_context.channels


# ---------------------------------------------------------------------------------------------
# Layout and ground truth


def test_counts_and_classes_match_summary_csv_and_disk(corpus):
    summary, plan = corpus
    root = summary.root
    assert summary.ground_truth == root / "ground_truth.csv"
    rows = _rows(root)
    assert list(rows[0]) == ["path", "modality", "class"]
    paths = [r["path"] for r in rows]
    assert paths == sorted(paths)
    assert set(paths) == _files_on_disk(root)  # nothing unlisted, no temporary files left over
    assert all("\\" not in p for p in paths)

    good = [r for r in rows if r["class"] != BROKEN_CLASS]
    assert len(good) == ITEMS
    assert summary.counts == dict(Counter(r["modality"] for r in good))
    assert summary.counts["image"] + summary.counts["audio"] + summary.counts["video"] == ITEMS
    assert summary.broken == len(rows) - len(good) == 6
    assert summary.classes == {m: list(c) for m, c in CLASSES.items()}
    assert len(summary.classes["image"]) >= 6
    assert len(summary.classes["audio"]) >= 4
    assert len(summary.classes["video"]) >= 3

    per_class = Counter((r["modality"], r["class"]) for r in good)
    for modality, names in summary.classes.items():
        for name in names:
            assert per_class[(modality, name)] >= 2, (modality, name)
    for r in good:
        folder = {"image": "images", "audio": "audio", "video": "video"}[r["modality"]]
        assert r["path"].startswith(f"{folder}/{r['class']}/")
    assert [(f.path, f.modality, f.label) for f in sorted(plan, key=lambda f: f.path)] == [
        (r["path"], r["modality"], r["class"]) for r in rows
    ]


def test_default_split_is_60_25_15():
    counts = Counter(f.modality for f in _good(plan_sample_corpus(300, 0)))
    assert counts == {"image": 180, "audio": 75, "video": 45}


def test_smallest_corpus_has_two_of_every_class():
    good = _good(plan_sample_corpus(MIN_ITEMS, 0))
    assert len(good) == MIN_ITEMS
    per_class = Counter((f.modality, f.label) for f in good)
    assert all(per_class[(m, c)] >= 2 for m, names in CLASSES.items() for c in names)


@pytest.mark.parametrize("items, seed", [(MIN_ITEMS - 1, 0), (0, 0), (100, -1)])
def test_rejects_bad_sizes_and_seeds(tmp_path, items, seed):
    with pytest.raises(ValueError, match="sample corpus"):
        write_sample_corpus(tmp_path / "out", items=items, seed=seed)
    assert not (tmp_path / "out").exists()


def test_formats_are_spread(corpus):
    _, plan = corpus
    by_modality = {m: {f.fmt for f in _good(plan) if f.modality == m} for m in CLASSES}
    assert by_modality["image"] == {"jpg", "png", "webp", "gif", "bmp", "tiff"}
    assert by_modality["audio"] == {"wav", "flac", "ogg"}
    assert by_modality["video"] == {"mp4", "webm"}


# ---------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_files(corpus, twin):
    summary, plan = corpus
    a, b = summary.root, twin.root
    assert (a / "ground_truth.csv").read_bytes() == (b / "ground_truth.csv").read_bytes()
    for f in plan:
        if f.modality == "image" or f.fmt in ("wav", "flac") or f.label == BROKEN_CLASS:
            assert (a / f.path).read_bytes() == (b / f.path).read_bytes(), f.path
    for f in _good(plan):
        if f.modality == "video":
            assert np.array_equal(_frames(a / f.path), _frames(b / f.path)), f.path


def test_different_seed_gives_different_files(corpus, tmp_path):
    summary, plan = corpus
    other = write_sample_corpus(tmp_path / "other", items=ITEMS, seed=1)
    images = [f for f in _good(plan) if f.modality in ("image", "audio")]
    same = [
        f.path
        for f in images
        if (summary.root / f.path).read_bytes() == (other.root / f.path).read_bytes()
    ]
    assert same == []


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# ---------------------------------------------------------------------------------------------
# Images


def test_every_good_image_loads_at_the_planned_size(corpus):
    summary, plan = corpus
    for f in _good(plan):
        if f.modality != "image":
            continue
        with Image.open(summary.root / f.path) as img:
            img.load()
            assert img.format == {"jpg": "JPEG", "tiff": "TIFF"}.get(f.fmt, f.fmt.upper())
            upright = ImageOps.exif_transpose(img)
            assert upright.size == (f.width, f.height), f.path
        assert 96 <= f.width <= 400 and 96 <= f.height <= 400


def test_images_vary_in_size_and_shape(corpus):
    _, plan = corpus
    sizes = {(f.width, f.height) for f in _good(plan) if f.modality == "image"}
    assert len(sizes) > 30
    assert any(w != h for w, h in sizes)
    assert min(w for w, _ in sizes) < 150 and max(w for w, _ in sizes) > 300


def _special(plan, variant):
    [f] = [f for f in plan if f.variant == variant]
    return f


def test_special_images_have_their_modes(corpus):
    summary, plan = corpus
    root = summary.root
    labels = set(CLASSES["image"])

    f = _special(plan, "i16")
    with Image.open(root / f.path) as img:
        assert img.format == "PNG" and img.mode == "I;16"
        values = np.asarray(img)
        assert values.max() > 255  # really uses the 16-bit range
    f = _special(plan, "cmyk")
    with Image.open(root / f.path) as img:
        assert img.format == "JPEG" and img.mode == "CMYK"
        img.load()
    f = _special(plan, "palette_alpha")
    with Image.open(root / f.path) as img:
        assert img.format == "PNG"
        assert img.mode in ("P", "PA")
        assert img.mode == "PA" or "transparency" in img.info
        assert img.convert("RGBA").getextrema()[3][0] == 0  # some pixels really are transparent
    f = _special(plan, "animated")
    with Image.open(root / f.path) as img:
        assert img.format == "GIF" and img.is_animated and img.n_frames > 1
        img.seek(img.n_frames - 1)
        img.load()
    f = _special(plan, "exif_rotated")
    with Image.open(root / f.path) as img:
        assert img.format == "JPEG"
        assert img.getexif().get(0x0112) == 6
        assert img.size == (f.height, f.width)  # stored sideways
        assert ImageOps.exif_transpose(img).size == (f.width, f.height)

    rows = {r["path"]: r for r in _rows(root)}
    for variant in ("i16", "cmyk", "palette_alpha", "animated", "exif_rotated"):
        f = _special(plan, variant)
        assert rows[f.path]["modality"] == "image" and rows[f.path]["class"] in labels


def _image_feature(path: Path) -> np.ndarray:
    """A deliberately simple feature: a 4x4x4 colour histogram plus an 8x8 grey thumbnail."""
    with Image.open(path) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    a = np.asarray(rgb).reshape(-1, 3) // 64
    hist = np.bincount(a[:, 0] * 16 + a[:, 1] * 4 + a[:, 2], minlength=64) / len(a)
    thumb = np.asarray(rgb.convert("L").resize((8, 8), Image.BILINEAR), np.float64) / 255
    return np.concatenate([np.sqrt(hist), 0.5 * thumb.ravel()])


def _nearest_neighbour_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())


def test_image_classes_are_separable_by_simple_features(corpus):
    summary, plan = corpus
    images = [f for f in _good(plan) if f.modality == "image"]
    x = np.stack([_image_feature(summary.root / f.path) for f in images])
    y = np.array([f.label for f in images])
    assert _nearest_neighbour_accuracy(x, y) >= 0.9


# ---------------------------------------------------------------------------------------------
# Audio and video


def test_every_audio_file_decodes_with_the_planned_duration(corpus):
    summary, plan = corpus
    codecs = {"wav": "pcm_s16le", "flac": "flac", "ogg": "opus"}
    rates, channels = set(), set()
    for f in _good(plan):
        if f.modality != "audio":
            continue
        assert 0.5 <= f.duration <= 3.0 and 16000 <= f.sample_rate <= 48000
        with av.open(str(summary.root / f.path)) as container:
            assert len(container.streams.video) == 0
            assert container.streams.audio[0].codec_context.name == codecs[f.fmt]
        seconds, rate, n_channels = _audio_duration(summary.root / f.path)
        assert seconds == pytest.approx(f.duration, rel=0.1), f.path
        assert n_channels == f.channels
        if f.fmt != "ogg":  # Opus always decodes at 48 kHz
            assert rate == f.sample_rate
        rates.add(f.sample_rate)
        channels.add(f.channels)
    assert len(rates) > 2 and channels == {1, 2}


def test_every_video_decodes_with_planned_frames_and_tracks(corpus):
    summary, plan = corpus
    codecs = {"mp4": ("h264", "aac"), "webm": ("vp8", "opus")}
    with_audio = Counter()
    for f in _good(plan):
        if f.modality != "video":
            continue
        assert 1.0 <= f.duration <= 2.0 and 10 <= f.fps <= 25
        assert f.width % 2 == 0 and f.height % 2 == 0 and min(f.width, f.height) >= 64
        assert max(f.width, f.height) <= 160
        path = summary.root / f.path
        with av.open(str(path)) as container:
            [video] = container.streams.video
            assert video.codec_context.name == codecs[f.fmt][0]
            assert video.codec_context.pix_fmt == "yuv420p"
            assert (video.codec_context.width, video.codec_context.height) == (f.width, f.height)
            assert len(container.streams.audio) == int(f.has_audio)
            if f.has_audio:
                assert container.streams.audio[0].codec_context.name == codecs[f.fmt][1]
                with_audio[f.fmt] += 1
        frames = _frames(path)
        assert frames.shape == (f.frames, f.height, f.width, 3)
        assert len(frames) / f.fps == pytest.approx(f.duration, rel=0.1)
        assert frames.std(axis=0).mean() > 1  # something moves or pulses
        if f.has_audio:
            seconds, _, _ = _audio_duration(path)
            assert seconds == pytest.approx(f.duration, rel=0.1)
    assert with_audio["mp4"] >= 1 and with_audio["webm"] >= 1
    videos = [f for f in _good(plan) if f.modality == "video"]
    assert 0 < sum(f.has_audio for f in videos) < len(videos)


# ---------------------------------------------------------------------------------------------
# Broken files


def test_broken_files_are_broken_the_intended_way(corpus):
    summary, _ = corpus
    broken = summary.root / "broken"
    rows = {r["path"]: r for r in _rows(summary.root)}
    assert {p for p, r in rows.items() if r["class"] == BROKEN_CLASS} == {
        "broken/empty.jpg",
        "broken/truncated.jpg",
        "broken/truncated.png",
        "broken/notes.jpg",
        "broken/too_short.wav",
        "broken/no_video.mp4",
    }
    assert rows["broken/notes.jpg"]["modality"] == "image"
    assert rows["broken/too_short.wav"]["modality"] == "audio"
    assert rows["broken/no_video.mp4"]["modality"] == "video"

    assert (broken / "empty.jpg").stat().st_size == 0
    with pytest.raises(UnidentifiedImageError):
        Image.open(broken / "empty.jpg")
    with pytest.raises(UnidentifiedImageError):
        Image.open(broken / "notes.jpg")
    for name, fmt in (("truncated.jpg", "JPEG"), ("truncated.png", "PNG")):
        with Image.open(broken / name) as img:
            assert img.format == fmt  # the header is fine ...
            with pytest.raises(OSError, match="truncated"):
                img.load()  # ... the pixels are not
    seconds, _, _ = _audio_duration(broken / "too_short.wav")
    assert seconds == pytest.approx(0.02, abs=0.002)
    with av.open(str(broken / "no_video.mp4")) as container:
        assert len(container.streams.video) == 0
        assert len(container.streams.audio) == 1


# ---------------------------------------------------------------------------------------------
# The folder: refusal, replacement, progress and cancel


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ValueError, match="photos"):
        write_sample_corpus(target, items=MIN_ITEMS)
    assert [p.name for p in target.iterdir()] == ["holiday.jpg"]
    assert (target / "holiday.jpg").read_bytes() == b"precious"


def test_refuses_a_file(tmp_path):
    target = tmp_path / "corpus"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="not a folder"):
        write_sample_corpus(target, items=MIN_ITEMS)


def test_writes_into_an_empty_folder_and_replaces_an_earlier_corpus(tmp_path):
    target = tmp_path / "corpus"
    target.mkdir()
    first = write_sample_corpus(target, items=40, seed=3)
    assert first.counts["image"] == 40 - 10 - 6
    second = write_sample_corpus(target, items=MIN_ITEMS, seed=3)
    rows = _rows(target)
    assert len(rows) == MIN_ITEMS + second.broken
    assert {r["path"] for r in rows} == _files_on_disk(target)  # the earlier extras are gone


def test_reports_progress_per_file_and_stops_on_cancel(tmp_path):
    events = []
    summary = write_sample_corpus(tmp_path / "a", items=MIN_ITEMS, progress=events.append)
    total = MIN_ITEMS + summary.broken
    assert [e.done for e in events] == list(range(1, total + 1))
    assert {e.stage for e in events} == {"sample-corpus"}
    assert {e.total for e in events} == {total}
    assert {e.message for e in events} == {r["path"] for r in _rows(summary.root)}

    token = CancelToken()

    def stop_after_five(event):
        if event.done == 5:
            token.cancel()

    target = tmp_path / "b"
    with pytest.raises(Cancelled):
        write_sample_corpus(target, items=MIN_ITEMS, progress=stop_after_five, cancel=token)
    rows = _rows(target)
    assert len(rows) == 5
    assert {r["path"] for r in rows} == _files_on_disk(target)
    # The stopped corpus is still recognised as ours, so writing again simply replaces it.
    again = write_sample_corpus(target, items=MIN_ITEMS)
    assert len(_rows(target)) == MIN_ITEMS + again.broken


def test_importing_the_module_stays_light():
    code = (
        "import sys, curator.sample_corpus; "
        "print(sorted(m for m in ('numpy', 'PIL', 'av') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
