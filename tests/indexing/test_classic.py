"""The weight-free classic embedder: shapes, determinism, pickling, separation of classes."""

from __future__ import annotations

import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from indexing.embedders.base import Decoded, EmbedderUnavailable, create_embedder
from indexing.embedders.classic import DIM, SPACE, ClassicEmbedder, create, rademacher_projection


@pytest.fixture(scope="module")
def classic() -> ClassicEmbedder:
    return create()


# -------------------------------------------------------------------------------- media makers


def _light_background(rng, h, w):
    tint = rng.integers(200, 256, 3)
    return np.clip(tint + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _red_disc(rng, w, h):
    img = Image.fromarray(_light_background(rng, h, w))
    r = rng.uniform(0.2, 0.4) * min(w, h)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    ImageDraw.Draw(img).ellipse(
        [cx - r, cy - r, cx + r, cy + r],
        fill=tuple(int(v) for v in rng.integers([190, 0, 0], [256, 50, 50])),
    )
    return np.asarray(img)


def _blue_square(rng, w, h):
    img = Image.fromarray(_light_background(rng, h, w))
    s = rng.uniform(0.3, 0.6) * min(w, h)
    x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
    ImageDraw.Draw(img).rectangle(
        [x, y, x + s, y + s], fill=tuple(int(v) for v in rng.integers([0, 0, 160], [50, 60, 256]))
    )
    return np.asarray(img)


def _green_stripes(rng, w, h):
    arr = _light_background(rng, h, w)
    period = int(rng.integers(6, 16))
    rows = (np.arange(h) + int(rng.integers(period))) % period < period // 2
    arr[rows] = rng.integers([0, 120, 0], [60, 220, 60])
    return arr


def _checkerboard(rng, w, h):
    cell = int(rng.integers(5, 14))
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


IMAGE_CLASSES = {
    "red_disc": _red_disc,
    "blue_square": _blue_square,
    "green_stripes": _green_stripes,
    "checkerboard": _checkerboard,
}


def _write_audio(path: Path, samples: np.ndarray, rate: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(
            "pcm_s16le" if path.suffix == ".wav" else "flac", rate=rate, layout="mono"
        )
        stream.format = "s16"
        frame = av.AudioFrame.from_ndarray(
            (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None], format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _tone(rng, t, rate):
    f = rng.uniform(200, 2000)
    return sum(
        rng.uniform(0.1, 0.5) / k * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6))
        for k in (1, 2, 3)
    )


def _sweep(rng, t, rate):
    f0, f1 = rng.uniform(150, 600), rng.uniform(2500, 7000)
    if rng.random() < 0.5:
        f0, f1 = f1, f0
    freq = np.geomspace(f0, f1, len(t))
    return rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * np.cumsum(freq) / rate)


def _noise(rng, t, rate):
    return rng.uniform(0.05, 0.4) * rng.standard_normal(len(t))


AUDIO_CLASSES = {"tone": _tone, "sweep": _sweep, "noise": _noise}


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _square_clip(rng, motion: str, n: int = 16, w: int = 96, h: int = 64) -> list[np.ndarray]:
    """A coloured square on a plain background that stays put, or slides across or down."""
    bg = rng.integers(0, 256, 3)
    fg = (bg + rng.integers(80, 176, 3)) % 256
    s = int(rng.integers(14, 22))
    x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
    sign = 1 if rng.random() < 0.5 else -1
    frames = []
    for i in range(n):
        u = i / (n - 1)
        x = (u * (w - s) if sign > 0 else (1 - u) * (w - s)) if motion == "across" else x0
        y = (u * (h - s) if sign > 0 else (1 - u) * (h - s)) if motion == "down" else y0
        arr = np.empty((h, w, 3), np.uint8)
        arr[:] = bg
        arr[int(y) : int(y) + s, int(x) : int(x) + s] = fg
        frames.append(np.clip(arr + rng.normal(0, 3, arr.shape), 0, 255).astype(np.uint8))
    return frames


VIDEO_MOTIONS = ("still", "across", "down")


# ------------------------------------------------------------------------------------- helpers


def _embed_files(classic, paths, modality):
    decode = classic.decoder()
    items = [decode(i, str(p), modality) for i, p in enumerate(paths)]
    assert all(item.error is None for item in items), [item.error for item in items]
    return classic.embed_batch(items).vectors


def _loo_accuracy(vectors: np.ndarray, labels: list[str]) -> float:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    return float(np.mean([labels[j] == labels[i] for i, j in enumerate(nearest)]))


# --------------------------------------------------------------------------------------- basics


def test_registry_and_options_are_ignored():
    embedder = create_embedder(
        "classic", device="cuda", precision="fp16", batch_size=512, model="x"
    )
    assert isinstance(embedder, ClassicEmbedder)
    assert embedder.space == SPACE == "classic:v1" and embedder.dim == DIM == 256
    assert embedder.modalities == {"image", "audio", "video"}
    assert embedder.has_text is False
    with pytest.raises(EmbedderUnavailable):
        embedder.embed_text(["a red disc"])
    described = embedder.describe()
    assert described["space"] == "classic:v1" and "64 px" in described["preprocess"]


def test_decoder_uses_the_small_spec_and_pickles(classic, tmp_path):
    decoder = classic.decoder()
    spec = decoder.spec
    assert (spec.image_size, spec.video_frames, spec.audio_rate) == (64, 8, 16000)
    assert (spec.audio_window_s, spec.audio_max_windows) == (5.0, 6)
    path = tmp_path / "a.png"
    Image.fromarray(_red_disc(np.random.default_rng(0), 90, 70)).save(path)
    clone = pickle.loads(pickle.dumps(decoder))
    a, b = decoder(1, str(path), "image"), clone(1, str(path), "image")
    assert a.data.shape == (64, 64, 3) and np.array_equal(a.data, b.data)


def test_vectors_have_the_right_shape_and_unit_norm(classic):
    rng = np.random.default_rng(0)
    batch = [
        Decoded(10, "image", data=rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        Decoded(11, "audio", data=(0.1 * rng.standard_normal((3, 80000))).astype(np.float32)),
        Decoded(12, "video", data=rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)),
        Decoded(13, "image", data=rng.integers(0, 256, (100, 37, 3), dtype=np.uint8)),  # other size
        Decoded(14, "video", data=rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)),
        Decoded(15, "audio", data=np.zeros((1, 80000), np.float32)),  # digital silence
        Decoded(16, "image", data=np.zeros((64, 64, 3), np.uint8)),  # flat black
    ]
    result = classic.embed_batch(batch)
    assert result.vectors.shape == (7, DIM) and result.vectors.dtype == np.float32
    assert np.all(np.isfinite(result.vectors))
    assert np.linalg.norm(result.vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert sorted(result.frames) == [2, 4]
    assert result.frames[2].shape == (8, DIM) and result.frames[4].shape == (3, DIM)
    assert np.linalg.norm(result.frames[2], axis=1) == pytest.approx(1.0, abs=1e-5)
    # A video's frame vectors are the image vectors of its frames: images and frames compare.
    first_frame = classic.embed_batch([Decoded(0, "image", data=batch[2].data[0])]).vectors[0]
    assert result.frames[2][0] == pytest.approx(first_frame, abs=1e-5)


def test_vectors_are_deterministic_across_instances(classic):
    rng = np.random.default_rng(1)
    batch = [
        Decoded(0, "image", data=rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        Decoded(1, "audio", data=(0.2 * rng.standard_normal((2, 80000))).astype(np.float32)),
        Decoded(2, "video", data=rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)),
    ]
    a = classic.embed_batch(batch)
    b = create().embed_batch(batch)
    assert np.array_equal(a.vectors, b.vectors)
    assert np.array_equal(a.frames[2], b.frames[2])
    # Batch composition does not change an item's vector.
    alone = create().embed_batch(batch[:1]).vectors[0]
    assert alone == pytest.approx(a.vectors[0], abs=1e-6)


def test_projection_is_pinned():
    # Drawn from PCG64's raw stream, which NumPy keeps stable: changing it is a new space.
    p = rademacher_projection(8, 4, 7)
    assert p.shape == (8, 4) and set(np.unique(p * 2)) == {-1.0, 1.0}
    assert np.array_equal(p, rademacher_projection(8, 4, 7))
    signs = "".join("+" if v > 0 else "-" for v in p.ravel())
    assert signs == "+---+-++-+--+-+-+++--+-+++++---+"


def test_failed_items_are_refused(classic):
    with pytest.raises(ValueError, match="without data"):
        classic.embed_batch([Decoded(4, "image", error="cannot decode image: broken")])


def test_near_duplicate_is_the_nearest_neighbour(classic, tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for k, make in enumerate(list(IMAGE_CLASSES.values()) * 3):
        path = tmp_path / f"d{k}.jpg"
        Image.fromarray(make(rng, 160, 120)).save(path, quality=92)
        paths.append(path)
    # Re-encoded smaller and at lower quality: the classic use case.
    dup = tmp_path / "dup.jpg"
    with Image.open(paths[5]) as original:
        original.resize((120, 90)).save(dup, quality=60)
    vectors = _embed_files(classic, paths + [dup], "image")
    sims = vectors[:-1] @ vectors[-1]
    assert int(np.argmax(sims)) == 5
    assert sims[5] > 0.95


# ------------------------------------------------------------------------------------ separation


def test_images_separate_by_colour_and_shape(classic, tmp_path):
    rng = np.random.default_rng(10)
    paths, labels = [], []
    for name, make in IMAGE_CLASSES.items():
        for k in range(10):
            w, h = int(rng.integers(60, 220)), int(rng.integers(60, 220))
            path = tmp_path / f"{name}_{k}.{'jpg' if k % 2 else 'png'}"
            Image.fromarray(make(rng, w, h)).save(path)
            paths.append(path)
            labels.append(name)
    assert _loo_accuracy(_embed_files(classic, paths, "image"), labels) >= 0.9


def test_audio_separates_tones_sweeps_and_noise(classic, tmp_path):
    rng = np.random.default_rng(11)
    paths, labels = [], []
    for name, make in AUDIO_CLASSES.items():
        for k in range(8):
            rate = int(rng.choice([16000, 22050, 44100]))
            t = np.arange(int(rng.uniform(0.5, 3.0) * rate)) / rate
            path = _write_audio(
                tmp_path / f"{name}_{k}.{'wav' if k % 2 else 'flac'}", make(rng, t, rate), rate
            )
            paths.append(path)
            labels.append(name)
    assert _loo_accuracy(_embed_files(classic, paths, "audio"), labels) >= 0.9


def test_video_separates_by_motion(classic, tmp_path):
    rng = np.random.default_rng(12)
    paths, labels = [], []
    for motion in VIDEO_MOTIONS:
        for k in range(6):
            paths.append(_write_video(tmp_path / f"{motion}_{k}.mp4", _square_clip(rng, motion)))
            labels.append(motion)
    assert _loo_accuracy(_embed_files(classic, paths, "video"), labels) >= 0.9
