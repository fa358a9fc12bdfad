"""The deterministic sample corpus: classed images, sounds, videos, broken files, ground truth."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import os
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexing.progress import Progress, ProgressEvent, check_cancel

if TYPE_CHECKING:  # numpy is imported inside functions so importing this module stays cheap
    import numpy as np

log = logging.getLogger(__name__)

STAGE = "sample-corpus"
GROUND_TRUTH = "ground_truth.csv"
BROKEN_CLASS = "_broken"
MIN_ITEMS = 30
"""Smallest corpus that still has at least two files of every class in every modality."""

IMAGE_CLASSES = (
    "red_discs",
    "blue_squares",
    "green_triangles",
    "yellow_stripes",
    "checkerboards",
    "sky_horizons",
    "purple_rings",
)
AUDIO_CLASSES = ("tones", "chirps", "noise_bursts", "rhythms")
VIDEO_CLASSES = ("moving_square", "pulsing_field", "rotating_bar")
CLASSES = {"image": IMAGE_CLASSES, "audio": AUDIO_CLASSES, "video": VIDEO_CLASSES}

# Share of the good files per modality; video and audio get at least two files per class.
_SHARES = {"audio": 0.25, "video": 0.15}
_FOLDERS = {"image": "images", "audio": "audio", "video": "video"}
_OUR_FOLDERS = ("images", "audio", "video", "broken")
# Numbers mixed into every per-file seed so that modalities draw independent streams.
_SEED_CODES = {"image": 1, "audio": 2, "video": 3, "broken": 4}

_IMAGE_FORMATS = ("jpg", "png", "webp", "gif", "bmp", "tiff")
_PIL_FORMATS = {
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}
# The first image of each named class is written in one awkward but valid encoding.
_SPECIAL_IMAGES = {
    "red_discs": ("cmyk", "jpg"),  # CMYK JPEG
    "blue_squares": ("animated", "gif"),  # several frames
    "green_triangles": ("exif_rotated", "jpg"),  # pixels stored rotated, EXIF orientation 6
    "checkerboards": ("i16", "png"),  # 16-bit greyscale; achromatic class, so nothing is lost
    "purple_rings": ("palette_alpha", "png"),  # mode P with a tRNS chunk
}
_AUDIO_FORMATS = ("wav", "flac", "ogg")
_AUDIO_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
_OPUS_RATES = (16000, 24000, 48000)  # the rates libopus accepts within our 16-48 kHz range
_VIDEO_FORMATS = ("mp4", "webm")
_TRACK_RATE = 24000  # audio tracks in videos: a rate both aac and opus take, and cheap


@dataclass(frozen=True)
class SampleFile:
    """One planned file of the corpus: where it goes, what it is, and how it is encoded.

    Attributes:
        path: path relative to the corpus root, forward slashes.
        modality: "image", "audio" or "video" (for broken files, what the extension claims).
        label: the class name, or "_broken".
        index: position among the files of its modality (broken files count on their own).
        fmt: file extension without the dot.
        variant: "" for an ordinary file; for special images "cmyk", "animated",
            "exif_rotated", "i16" or "palette_alpha"; for broken files the kind of damage.
        width: pixels (images, videos), 0 otherwise.
        height: pixels (images, videos), 0 otherwise.
        duration: seconds (audio, videos), 0.0 otherwise.
        sample_rate: Hz of the written audio (audio files, audio tracks of videos), 0 otherwise.
        channels: audio channels (1 or 2), 0 when there is no audio.
        fps: frames per second (videos), 0 otherwise.
        has_audio: whether a video carries an audio track.
    """

    path: str
    modality: str
    label: str
    index: int
    fmt: str
    variant: str = ""
    width: int = 0
    height: int = 0
    duration: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    fps: int = 0
    has_audio: bool = False

    @property
    def frames(self) -> int:
        """Number of video frames (videos only)."""
        return round(self.duration * self.fps)


@dataclass(frozen=True)
class CorpusSummary:
    """What `write_sample_corpus` wrote.

    Attributes:
        root: the corpus folder.
        counts: good files per modality.
        classes: modality -> class names.
        broken: number of deliberately broken files (under `broken/`).
        ground_truth: root / "ground_truth.csv".
    """

    root: Path
    counts: dict[str, int]
    classes: dict[str, list[str]]
    broken: int
    ground_truth: Path


# --------------------------------------------------------------------------------------------
# Planning: pure, cheap, and the single source of every random parameter except pixel/sample
# content, so tests can check files against what was meant.


def _rng(seed: int, modality: str, index: int, stream: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([seed, _SEED_CODES[modality], index, stream])


def _split(items: int) -> dict[str, int]:
    n_audio = max(int(items * _SHARES["audio"] + 0.5), 2 * len(AUDIO_CLASSES))
    n_video = max(int(items * _SHARES["video"] + 0.5), 2 * len(VIDEO_CLASSES))
    return {"image": items - n_audio - n_video, "audio": n_audio, "video": n_video}


def _image_plan(seed: int, i: int) -> SampleFile:
    label = IMAGE_CLASSES[i % len(IMAGE_CLASSES)]
    fmt, variant = _IMAGE_FORMATS[i % len(_IMAGE_FORMATS)], ""
    if i < len(IMAGE_CLASSES) and label in _SPECIAL_IMAGES:
        variant, fmt = _SPECIAL_IMAGES[label]
    rng = _rng(seed, "image", i, 0)
    # 96-400 px, log-uniform: mostly small pictures keep the corpus quick to write.
    width = int(min(400, round(96 * 2 ** rng.uniform(0, 2.06))))
    aspect = float(2 ** rng.uniform(-0.75, 0.75))
    height = int(min(400, max(96, round(width * aspect))))
    return SampleFile(
        path=f"images/{label}/{i:04d}.{fmt}",
        modality="image",
        label=label,
        index=i,
        fmt=fmt,
        variant=variant,
        width=width,
        height=height,
    )


def _audio_plan(seed: int, i: int) -> SampleFile:
    label = AUDIO_CLASSES[i % len(AUDIO_CLASSES)]
    fmt = _AUDIO_FORMATS[i % len(_AUDIO_FORMATS)]
    rng = _rng(seed, "audio", i, 0)
    rates = _OPUS_RATES if fmt == "ogg" else _AUDIO_RATES
    return SampleFile(
        path=f"audio/{label}/{i:04d}.{fmt}",
        modality="audio",
        label=label,
        index=i,
        fmt=fmt,
        duration=round(float(rng.uniform(0.5, 3.0)), 3),
        sample_rate=int(rates[int(rng.integers(len(rates)))]),
        channels=int(rng.integers(1, 3)),
    )


def _video_has_audio(i: int) -> bool:
    # One video in three, spread so that every class and container gets some with a track.
    return i % 3 == (i // 3) % 3


def _video_plan(seed: int, i: int) -> SampleFile:
    label = VIDEO_CLASSES[i % len(VIDEO_CLASSES)]
    fmt = _VIDEO_FORMATS[(i // len(VIDEO_CLASSES)) % len(_VIDEO_FORMATS)]
    rng = _rng(seed, "video", i, 0)
    fps = int(rng.integers(10, 26))
    frames = int(rng.integers(fps, 2 * fps + 1))  # 1-2 s
    has_audio = _video_has_audio(i)
    return SampleFile(
        path=f"video/{label}/{i:04d}.{fmt}",
        modality="video",
        label=label,
        index=i,
        fmt=fmt,
        width=2 * int(rng.integers(32, 81)),
        height=2 * int(rng.integers(32, 81)),
        duration=frames / fps,
        sample_rate=_TRACK_RATE if has_audio else 0,
        channels=int(rng.integers(1, 3)) if has_audio else 0,
        fps=fps,
        has_audio=has_audio,
    )


_BROKEN = (
    SampleFile("broken/empty.jpg", "image", BROKEN_CLASS, 0, "jpg", "empty"),
    SampleFile("broken/truncated.jpg", "image", BROKEN_CLASS, 1, "jpg", "truncated", 160, 120),
    SampleFile("broken/truncated.png", "image", BROKEN_CLASS, 2, "png", "truncated", 160, 120),
    SampleFile("broken/notes.jpg", "image", BROKEN_CLASS, 3, "jpg", "text"),
    SampleFile(
        "broken/too_short.wav",
        "audio",
        BROKEN_CLASS,
        4,
        "wav",
        "too_short",
        duration=0.02,
        sample_rate=16000,
        channels=1,
    ),
    SampleFile(
        "broken/no_video.mp4",
        "video",
        BROKEN_CLASS,
        5,
        "mp4",
        "audio_only",
        duration=1.0,
        sample_rate=_TRACK_RATE,
        channels=1,
        has_audio=True,
    ),
)


def plan_sample_corpus(items: int = 300, seed: int = 0) -> tuple[SampleFile, ...]:
    """Every file `write_sample_corpus` would write, without writing anything.

    Args:
        items: number of good files (at least MIN_ITEMS), split about 60% images, 25% audio
            and 15% video.
        seed: non-negative seed; the same items and seed always give the same plan.

    Returns:
        The good files (images, then audio, then video), then the broken files.

    Raises:
        ValueError: items below MIN_ITEMS or a negative seed.
    """
    if int(items) < MIN_ITEMS:
        raise ValueError(
            f"The sample corpus needs at least {MIN_ITEMS} items (two per class); got {items}."
        )
    if int(seed) < 0:
        raise ValueError(f"The sample corpus seed must be zero or positive; got {seed}.")
    items, seed = int(items), int(seed)
    split = _split(items)
    planners = {"image": _image_plan, "audio": _audio_plan, "video": _video_plan}
    files = [planners[modality](seed, i) for modality, n in split.items() for i in range(n)]
    return tuple(files) + _BROKEN


# --------------------------------------------------------------------------------------------
# Images: one renderer per class, registered by name. Each returns uint8 (h, w, 3).


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Blotchy texture in [0, 1]: a coarse random grid upsampled bilinearly."""
    import numpy as np
    from PIL import Image

    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BILINEAR))


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _rotated(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle about a random point."""
    import numpy as np

    yy, xx = _grid(h, w)
    a = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
    v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
    return u, v


def _colour(rng: np.random.Generator, lo: tuple, hi: tuple) -> tuple[int, int, int]:
    return tuple(int(rng.integers(a, b + 1)) for a, b in zip(lo, hi))


def _fill(h: int, w: int, colour: tuple) -> np.ndarray:
    import numpy as np

    return np.broadcast_to(np.asarray(colour, np.float32), (h, w, 3)).copy()


def _polygon(cx: float, cy: float, radius: float, sides: int, angle: float, jitter, rng) -> list:
    import numpy as np

    a = angle + np.arange(sides) * 2 * np.pi / sides
    r = radius * (1 + jitter * rng.uniform(-1, 1, sides))
    return [(float(cx + rr * np.cos(t)), float(cy + rr * np.sin(t))) for rr, t in zip(r, a)]


def _draw_on(arr: np.ndarray, paint: Callable) -> np.ndarray:
    """Run `paint(ImageDraw)` over a float RGB array and return the result as float."""
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    paint(ImageDraw.Draw(img))
    return np.asarray(img).astype(np.float32)


def _red_discs(rng, w: int, h: int) -> np.ndarray:
    yy, _ = _grid(h, w)
    bg = _fill(h, w, _colour(rng, (235, 200, 150), (255, 235, 190)))  # warm cream
    shade = (
        1
        - 0.12 * (yy / h)[..., None] * rng.uniform(0, 1)
        - 0.08 * _smooth_noise(rng, h, w, 6)[..., None]
    )
    s = min(w, h)

    def paint(d) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.15, 0.35)
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            red = _colour(rng, (170, 0, 0), (250, 45, 40))
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=red)
            # A lighter off-centre highlight gives the discs a shaded, glossy texture.
            hr, off = r * rng.uniform(0.25, 0.45), r * rng.uniform(0.2, 0.35)
            light = tuple(min(255, c + 45) for c in red)
            d.ellipse([cx - off - hr, cy - off - hr, cx - off + hr, cy - off + hr], fill=light)

    return _draw_on(bg * shade, paint)


def _blue_squares(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    yy, xx = _grid(h, w)
    grey = rng.uniform(140, 180)  # a cool mid grey, well away from the red discs' cream
    bg = _fill(h, w, (grey, grey + rng.uniform(0, 6), grey + rng.uniform(4, 14)))
    pitch = rng.integers(8, 17)
    lines = ((yy % pitch) < 1) | ((xx % pitch) < 1)  # faint graph-paper texture
    bg[lines] -= rng.uniform(10, 30)
    s = min(w, h)

    def paint(d) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.14, 0.3)
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            angle = rng.uniform(0, np.pi / 2)
            blue = _colour(rng, (0, 25, 160), (40, 100, 250))
            edge = tuple(int(c * 0.55) for c in blue)
            d.polygon(
                _polygon(cx, cy, r * 1.41, 4, angle, 0, rng),
                fill=blue,
                outline=edge,
                width=max(1, int(r * 0.12)),
            )

    return _draw_on(bg, paint)


def _green_triangles(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    base = np.asarray(_colour(rng, (45, 35, 15), (80, 60, 35)), np.float32)
    tex = _smooth_noise(rng, h, w, int(rng.integers(8, 24)))[..., None]
    bg = base * (0.7 + 0.6 * tex)
    s = min(w, h)

    def paint(d) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.18, 0.38)
            cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
            green = _colour(rng, (15, 140, 15), (70, 230, 70))
            pts = _polygon(cx, cy, r, 3, rng.uniform(0, 2 * np.pi), 0.15, rng)
            d.polygon(pts, fill=green, outline=(150, 255, 120), width=max(1, int(r * 0.06)))

    return _draw_on(bg, paint)


def _yellow_stripes(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    u, v = _rotated(rng, h, w)
    period = rng.uniform(10, 40)
    wobble = rng.uniform(0, 0.3) * period * np.sin(v / rng.uniform(20, 80))  # wavy sometimes
    on = ((u + wobble) / period) % 1.0 < rng.uniform(0.4, 0.6)
    yellow = np.asarray(_colour(rng, (215, 180, 0), (255, 230, 45)), np.float32)
    black = np.asarray(_colour(rng, (0, 0, 0), (35, 30, 20)), np.float32)
    return np.where(on[..., None], yellow, black)


def _checkerboards(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    u, v = _rotated(rng, h, w)
    tile = rng.uniform(8, 40)
    stretch = rng.uniform(1.0, 1.5)  # a little anisotropy, as if seen at an angle
    on = (np.floor(u / tile) + np.floor(v / (tile * stretch))) % 2 == 0
    light, dark = rng.uniform(205, 255), rng.uniform(0, 30)
    grey = np.where(on, light, dark).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=2)


def _sky_horizons(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    yy, xx = _grid(h, w)
    horizon = h * rng.uniform(0.45, 0.75) + (xx - w / 2) * np.tan(np.radians(rng.uniform(-8, 8)))
    top = np.asarray(_colour(rng, (15, 55, 160), (60, 110, 230)), np.float32)
    low = np.asarray(_colour(rng, (140, 185, 230), (195, 230, 255)), np.float32)
    t = np.clip(yy / np.maximum(horizon, 1), 0, 1)[..., None]
    sky = top * (1 - t) + low * t
    ground_colour = np.asarray(_colour(rng, (45, 75, 15), (100, 130, 50)), np.float32)
    tex = _smooth_noise(rng, h, w, int(rng.integers(10, 30)))[..., None]
    depth = np.clip((yy - horizon) / h, 0, 1)[..., None]
    ground = ground_colour * (0.75 + 0.5 * tex) * (1 - 0.5 * depth)
    out = np.where((yy > horizon)[..., None], ground, sky)
    if rng.random() < 0.5:  # a sun, sometimes
        r = min(w, h) * rng.uniform(0.05, 0.1)
        cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(r, 0.35 * h)
        sun = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
        out = np.where(sun & (yy < horizon)[..., None], np.float32([255, 245, 200]), out)
    return out


def _purple_rings(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    yy, xx = _grid(h, w)
    base = np.asarray(_colour(rng, (5, 0, 15), (30, 18, 45)), np.float32)
    d = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)[..., None]
    bg = base * (1.2 - 0.8 * d)  # vignette
    s = min(w, h)

    def paint(dr) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.15, 0.4)
            cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
            purple = _colour(rng, (120, 0, 150), (200, 50, 240))
            dr.ellipse(
                [cx - r, cy - r, cx + r, cy + r],
                outline=purple,
                width=max(2, int(r * rng.uniform(0.2, 0.45))),
            )

    return _draw_on(bg, paint)


IMAGE_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "red_discs": _red_discs,
    "blue_squares": _blue_squares,
    "green_triangles": _green_triangles,
    "yellow_stripes": _yellow_stripes,
    "checkerboards": _checkerboards,
    "sky_horizons": _sky_horizons,
    "purple_rings": _purple_rings,
}
"""Class name -> renderer `(rng, width, height) -> float RGB (h, w, 3)` in 0..255."""


def render_image(f: SampleFile, seed: int) -> np.ndarray:
    """The pixels of a planned image before encoding: uint8 (height, width, 3).

    Adds the within-class nuisance every class shares: colour jitter and additive noise.

    Args:
        f: a planned image file.
        seed: the corpus seed.

    Returns:
        The RGB pixels, upright (before any EXIF rotation of the stored file).
    """
    import numpy as np

    rng = _rng(seed, "image", f.index, 1)
    arr = IMAGE_RENDERERS[f.label](rng, f.width, f.height)
    gain = 1 + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    arr = arr * gain + rng.uniform(-10, 10)
    # Uniform noise from random bytes: much cheaper than Gaussian and looks the same here.
    noise = rng.integers(0, 256, arr.shape, dtype=np.uint8).astype(np.float32) - 127.5
    arr += noise * np.float32(rng.uniform(0, 10) / 74)
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def _image_bytes(f: SampleFile, rgb: np.ndarray) -> bytes:
    """Encode pixels the way the plan says; returns the file bytes."""
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(rgb)
    fmt = _PIL_FORMATS[f.fmt]
    if f.variant == "cmyk":
        img.convert("CMYK").save(buf, fmt, quality=90)
    elif f.variant == "animated":
        shift = max(1, f.width // 12)
        frames = [
            Image.fromarray(np.roll(rgb, k * shift, axis=1)).quantize(
                256, method=Image.Quantize.FASTOCTREE
            )
            for k in range(5)
        ]
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=120, loop=0)
    elif f.variant == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        img.transpose(Image.Transpose.ROTATE_90).save(buf, fmt, quality=90, exif=exif.tobytes())
    elif f.variant == "i16":
        grey = np.asarray(img.convert("L")).astype(np.uint16)
        # Dark tiles stay near zero and light tiles use the 16-bit range, so the picture reads
        # the same whether a decoder scales 16->8 bits or (like Pillow's convert) clips.
        wide = np.where(grey >= 128, grey * 257, grey // 8).astype(np.uint16)
        Image.fromarray(wide).save(buf, fmt)
    elif f.variant == "palette_alpha":
        pal = img.quantize(colors=64)
        background = int(np.bincount(np.asarray(pal).ravel()).argmax())
        pal.save(buf, fmt, transparency=background)
    elif fmt == "JPEG":
        img.save(buf, fmt, quality=int(70 + f.index % 4 * 8))
    elif fmt == "GIF":
        # Pillow's default adaptive palette is ten times slower on noisy pictures.
        img.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, fmt)
    elif fmt == "PNG":
        img.save(buf, fmt, compress_level=1)
    elif fmt == "WEBP":
        img.save(buf, fmt, quality=80, method=0)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Audio: one renderer per class, registered by name. Each returns mono float64 in [-1, 1].


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    import numpy as np

    env = np.ones(n)
    a, r = max(1, int(attack * sr)), max(1, int(release * sr))
    env[:a] = np.linspace(0, 1, a)[:n]
    env[-r:] *= np.linspace(1, 0, r)[-n:]
    return env


def _tones(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    t = np.arange(n) / sr
    f0 = 110 * 2 ** rng.uniform(0, 3)  # 110-880 Hz
    vibrato = 1 + rng.uniform(0, 0.005) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * f0 * np.cumsum(vibrato) / sr
    x = np.zeros(n)
    for k in range(1, int(rng.integers(1, 7)) + 1):
        if k * f0 < sr / 2.2:
            x += rng.uniform(0.3, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return x * _envelope(n, sr, rng.uniform(0.01, 0.05), rng.uniform(0.02, 0.1))


def _chirps(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    sweeps = int(rng.integers(1, 4))
    edges = np.linspace(0, n, sweeps + 1).astype(int)
    x = np.zeros(n)
    nyquist = sr / 2.2
    for a, b in itertools.pairwise(edges):
        lo, hi = 150 * 2 ** rng.uniform(0, 1.5), min(nyquist, 1500 * 2 ** rng.uniform(0, 1.5))
        f = np.geomspace(lo, hi, b - a)
        if rng.random() < 0.5:
            f = f[::-1]  # falling
        seg = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.3 * np.sin(4 * np.pi * np.cumsum(f) / sr)
        x[a:b] = seg * _envelope(b - a, sr, 0.01, 0.02)
    return x


def _noise_bursts(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    centre = 500 * 2 ** rng.uniform(0, 3)  # 500-4000 Hz
    width = rng.uniform(1.5, 4.0)  # octaves: always broadband enough not to sound like a tone
    octaves = np.log2(np.maximum(freqs, 1) / centre)
    noise = np.fft.irfft(spec * np.exp(-0.5 * (octaves / (width / 2)) ** 2), n)
    env = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        length = int(n * rng.uniform(0.25, 0.7))
        start = int(rng.integers(0, n - length + 1))
        shape = np.linspace(0, 1, length) ** rng.uniform(0.3, 3)
        if rng.random() < 0.5:
            shape = shape[::-1]
        env[start : start + length] = np.maximum(env[start : start + length], shape)
    return noise * np.maximum(env, 0.02)


def _rhythms(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    step = 60 / rng.uniform(80, 200) / 2  # eighth notes
    pattern = rng.random(8) < 0.6
    pattern[0] = pattern[4] = True
    kick_f, kick_decay = rng.uniform(50, 120), rng.uniform(0.03, 0.08)
    hat_decay = rng.uniform(0.01, 0.03)
    x = np.zeros(n)
    for k in range(int(n / sr / step) + 1):
        if not pattern[k % 8]:
            continue
        start = int((k * step + rng.uniform(-0.005, 0.005)) * sr)
        if not 0 <= start < n:
            continue
        m = min(n - start, int(0.25 * sr))
        t = np.arange(m) / sr
        if k % 4 == 0:  # kick: a sine whose pitch drops
            f = kick_f * (1 + 2 * np.exp(-t / 0.02))
            hit = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / kick_decay)
        else:  # click / hat: differentiated noise
            hit = np.diff(rng.standard_normal(m + 1)) * 0.5 * np.exp(-t / hat_decay)
        x[start : start + m] += hit * rng.uniform(0.6, 1.0)
    return x


AUDIO_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "tones": _tones,
    "chirps": _chirps,
    "noise_bursts": _noise_bursts,
    "rhythms": _rhythms,
}
"""Class name -> renderer `(rng, sample_rate, n_samples) -> mono float (n,)`."""


def _to_channels(rng, x: np.ndarray, channels: int, peak: float) -> np.ndarray:
    """Scale to `peak` and make (channels, n) float32, the second channel panned and delayed."""
    import numpy as np

    x = x / max(float(np.max(np.abs(x))), 1e-9) * peak
    if channels == 1:
        return x[None].astype(np.float32)
    delay = int(rng.integers(0, 30))
    right = np.roll(x, delay) * rng.uniform(0.6, 1.0)
    return np.stack([x * rng.uniform(0.6, 1.0), right]).astype(np.float32)


def render_audio(f: SampleFile, seed: int) -> np.ndarray:
    """The samples of a planned audio file: float32 (channels, n) in [-1, 1].

    Args:
        f: a planned audio file.
        seed: the corpus seed.

    Returns:
        The samples at `f.sample_rate`.
    """
    rng = _rng(seed, "audio", f.index, 1)
    n = round(f.duration * f.sample_rate)
    x = AUDIO_RENDERERS[f.label](rng, f.sample_rate, n)
    return _to_channels(rng, x, f.channels, rng.uniform(0.4, 0.9))


def _track(rng, duration: float, sr: int, channels: int) -> np.ndarray:
    """A quiet tone for the audio track of a video."""
    import numpy as np

    n = round(duration * sr)
    t = np.arange(n) / sr
    x = np.sin(2 * np.pi * rng.uniform(220, 660) * t) * _envelope(n, sr, 0.02, 0.05)
    return _to_channels(rng, x, channels, 0.3)


def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    import numpy as np

    pcm = np.clip(np.round(samples.T * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def _encode_audio(container, stream, samples: np.ndarray, sr: int) -> None:
    """Encode float32 (channels, n) into `stream` and mux it; PyAV re-chunks to frame_size."""
    import av

    frame = av.AudioFrame.from_ndarray(
        samples, format="fltp", layout="mono" if samples.shape[0] == 1 else "stereo"
    )
    frame.sample_rate = sr
    frame.pts = 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


# Faster settings than the defaults; quality hardly matters for synthetic test sounds.
_AUDIO_OPTIONS = {
    "aac": {"aac_coder": "fast", "b": "64k"},
    "libopus": {"compression_level": "3"},
}


def _add_audio_stream(container, codec: str, sr: int, channels: int):
    stream = container.add_stream(codec, rate=sr, options=_AUDIO_OPTIONS.get(codec, {}))
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


# Container flags that keep library versions and random stream serials out of the bytes.
_BITEXACT = {"fflags": "+bitexact"}


def _write_audio_file(path: Path, f: SampleFile, samples: np.ndarray) -> None:
    import av

    if f.fmt == "wav":
        _write_wav(path, samples, f.sample_rate)
        return
    codec, container_format = {"flac": ("flac", "flac"), "ogg": ("libopus", "ogg")}[f.fmt]
    with av.open(str(path), "w", format=container_format, options=_BITEXACT) as out:
        stream = _add_audio_stream(out, codec, f.sample_rate, f.channels)
        _encode_audio(out, stream, samples, f.sample_rate)


# --------------------------------------------------------------------------------------------
# Video: one renderer per class, registered by name. Each returns uint8 (frames, h, w, 3).


def _frame_noise(rng, shape: tuple) -> np.ndarray:
    """Faint uniform per-frame noise (about 3 levels rms), cheap to draw."""
    import numpy as np

    return rng.integers(0, 11, shape, dtype=np.uint8).astype(np.float32) - 5


def _moving_square(rng, w: int, h: int, frames: int) -> np.ndarray:
    import numpy as np

    bg = np.asarray(_colour(rng, (5, 10, 40), (30, 40, 80)), np.float32)
    base = bg * (0.8 + 0.4 * _smooth_noise(rng, h, w, 6)[..., None])
    side = int(h * rng.uniform(0.2, 0.4))
    y0 = rng.uniform(0, h - side)
    drift = rng.uniform(-0.2, 0.2) * h
    colour = np.asarray(_colour(rng, (220, 200, 120), (255, 255, 200)), np.float32)
    out = np.empty((frames, h, w, 3), np.uint8)
    for k in range(frames):
        p = k / max(1, frames - 1)
        x = int(-side + p * (w + side))  # enters at the left, leaves at the right
        y = int(np.clip(y0 + drift * p, 0, h - side))
        img = base.copy()
        img[y : y + side, max(0, x) : max(0, x + side)] = colour
        out[k] = np.clip(img + _frame_noise(rng, img.shape), 0, 255)
    return out


def _pulsing_field(rng, w: int, h: int, frames: int, fps: int) -> np.ndarray:
    import numpy as np

    colour = np.asarray(_colour(rng, (180, 20, 20), (255, 110, 150)), np.float32)
    tex = 0.85 + 0.3 * _smooth_noise(rng, h, w, 4)[..., None]
    freq, phase = rng.uniform(0.8, 3.0), rng.uniform(0, 2 * np.pi)
    out = np.empty((frames, h, w, 3), np.uint8)
    for k in range(frames):
        level = 0.55 + 0.4 * np.sin(2 * np.pi * freq * k / fps + phase)
        out[k] = np.clip(colour * tex * level + _frame_noise(rng, (h, w, 3)), 0, 255)
    return out


def _rotating_bar(rng, w: int, h: int, frames: int, fps: int) -> np.ndarray:
    import numpy as np

    grey = rng.uniform(90, 140)
    base = _fill(h, w, (grey, grey, grey))
    colour = _colour(rng, (20, 180, 60), (80, 255, 160))
    length = min(w, h) * rng.uniform(0.35, 0.6)
    thick = min(w, h) * rng.uniform(0.05, 0.1)
    speed = rng.uniform(np.pi / 2, 2 * np.pi) * rng.choice([-1, 1])  # rad/s
    angle0 = rng.uniform(0, np.pi)
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    out = np.empty((frames, h, w, 3), np.uint8)
    for k in range(frames):
        a = angle0 + speed * k / fps
        dx, dy = np.cos(a), np.sin(a)
        nx, ny = -dy * thick, dx * thick
        pts = [
            (cx - dx * length + nx, cy - dy * length + ny),
            (cx + dx * length + nx, cy + dy * length + ny),
            (cx + dx * length - nx, cy + dy * length - ny),
            (cx - dx * length - nx, cy - dy * length - ny),
        ]
        img = _draw_on(base, lambda d, pts=pts: d.polygon(pts, fill=colour))
        out[k] = np.clip(img + _frame_noise(rng, img.shape), 0, 255)
    return out


VIDEO_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "moving_square": lambda rng, w, h, frames, fps: _moving_square(rng, w, h, frames),
    "pulsing_field": _pulsing_field,
    "rotating_bar": _rotating_bar,
}
"""Class name -> renderer `(rng, width, height, frames, fps) -> uint8 (frames, h, w, 3)`."""


def render_video(f: SampleFile, seed: int) -> np.ndarray:
    """The frames of a planned video: uint8 (frames, height, width, 3).

    Args:
        f: a planned video file.
        seed: the corpus seed.

    Returns:
        The RGB frames before encoding.
    """
    rng = _rng(seed, "video", f.index, 1)
    return VIDEO_RENDERERS[f.label](rng, f.width, f.height, f.frames, f.fps)


_VIDEO_CODECS = {
    # extension: (container, video codec, its options, audio codec)
    "mp4": ("mp4", "libx264", {"preset": "ultrafast", "threads": "1"}, "aac"),
    "webm": (
        "webm",
        "libvpx",
        {"deadline": "realtime", "cpu-used": "8", "threads": "1"},
        "libopus",
    ),
}


def _write_video_file(path: Path, f: SampleFile, frames: np.ndarray, track) -> None:
    import av
    from av.video.reformatter import VideoReformatter

    container_format, vcodec, options, acodec = _VIDEO_CODECS[f.fmt]
    to_yuv = VideoReformatter()  # one per video: a fresh converter per frame costs 5x more
    with av.open(str(path), "w", format=container_format, options=_BITEXACT) as out:
        stream = out.add_stream(vcodec, rate=f.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = f.width, f.height, "yuv420p"
        astream = _add_audio_stream(out, acodec, f.sample_rate, f.channels) if f.has_audio else None
        for k, rgb in enumerate(frames):
            frame = to_yuv.reformat(
                av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p"
            )
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            _encode_audio(out, astream, track, f.sample_rate)


# --------------------------------------------------------------------------------------------
# Broken files.


def _write_broken(path: Path, f: SampleFile, seed: int) -> None:
    import av
    import numpy as np

    rng = _rng(seed, "broken", f.index, 1)
    if f.variant == "empty":
        path.write_bytes(b"")
    elif f.variant == "truncated":
        good = SampleFile(f.path, "image", "red_discs", f.index, f.fmt, "", f.width, f.height)
        data = _image_bytes(
            good, IMAGE_RENDERERS["red_discs"](rng, f.width, f.height).astype(np.uint8)
        )
        path.write_bytes(data[: len(data) // 2])
    elif f.variant == "text":
        path.write_bytes(
            b"These are notes, not a JPEG.\nCurator should report this file as unreadable.\n"
        )
    elif f.variant == "too_short":
        _write_wav(path, _track(rng, f.duration, f.sample_rate, 1), f.sample_rate)
    elif f.variant == "audio_only":
        with av.open(str(path), "w", format="mp4", options=_BITEXACT) as out:
            stream = _add_audio_stream(out, "aac", f.sample_rate, f.channels)
            _encode_audio(out, stream, _track(rng, f.duration, f.sample_rate, 1), f.sample_rate)
    else:
        raise ValueError(f"Unknown kind of broken file {f.variant!r} for {f.path}.")


# --------------------------------------------------------------------------------------------
# Writing the corpus.


def write_sample_file(root: Path, f: SampleFile, seed: int) -> Path:
    """Write one planned file under `root` (to a temporary name, then renamed into place).

    Args:
        root: the corpus folder.
        f: the planned file.
        seed: the corpus seed.

    Returns:
        The path written.
    """
    path = root / f.path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic(path) as tmp:
        if f.label == BROKEN_CLASS:
            _write_broken(tmp, f, seed)
        elif f.modality == "image":
            tmp.write_bytes(_image_bytes(f, render_image(f, seed)))
        elif f.modality == "audio":
            _write_audio_file(tmp, f, render_audio(f, seed))
        else:
            track = None
            if f.has_audio:
                track = _track(
                    _rng(seed, "video", f.index, 2), f.duration, f.sample_rate, f.channels
                )
            _write_video_file(tmp, f, render_video(f, seed), track)
    return path


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    # A hidden temporary name: a scan running meanwhile never sees a half-written file.
    tmp = path.with_name(f".{path.name}.part")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_ground_truth(root: Path, files: list[SampleFile]) -> Path:
    gt = root / GROUND_TRUTH
    with _atomic(gt) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "modality", "class"])
        for f in sorted(files, key=lambda f: f.path):
            writer.writerow([f.path, f.modality, f.label])
    return gt


def _clear_previous(root: Path) -> None:
    """Remove the files an earlier corpus listed in its ground truth, then empty folders."""
    gt = root / GROUND_TRUTH
    base = root.resolve()
    with gt.open(newline="", encoding="utf-8") as fh:
        listed = [row.get("path", "") for row in csv.DictReader(fh)]
    for rel in listed:
        target = (root / rel).resolve()
        # Only ever delete inside the corpus, whatever an edited CSV says.
        if rel and target.is_relative_to(base) and target.is_file():
            target.unlink()
    for folder in _OUR_FOLDERS:
        top = root / folder
        if not top.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames:
                if name.startswith(".") and name.endswith(".part"):
                    (Path(dirpath) / name).unlink()
            with contextlib.suppress(OSError):  # not empty: the user's file, leave it
                os.rmdir(dirpath)
    gt.unlink()


def _prepare_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ValueError(
            f"{root} exists and is not a folder; choose a new folder for the sample corpus."
        )
    if root.is_dir() and any(root.iterdir()):
        if not (root / GROUND_TRUTH).is_file():
            raise ValueError(
                f"Refusing to write the sample corpus into {root}: the folder is not empty and "
                f"has no {GROUND_TRUTH}, so it is not an earlier sample corpus. "
                "Choose a new or empty folder."
            )
        log.info("Replacing the sample corpus in %s", root)
        _clear_previous(root)
    root.mkdir(parents=True, exist_ok=True)


def write_sample_corpus(
    out: Path | str,
    items: int = 300,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> CorpusSummary:
    """Write the deterministic sample corpus: classed images, sounds and videos, plus broken files.

    The same `items` and `seed` give byte-identical images and audio and identical ground truth.
    A folder that already holds a sample corpus (it has ground_truth.csv) is replaced.

    Args:
        out: the corpus folder; created when missing. It must be new, empty, or an earlier corpus.
        items: number of good files (at least MIN_ITEMS): about 60% images, 25% audio, 15% video.
        seed: non-negative seed.
        progress: receives one ProgressEvent per file written (stage "sample-corpus").
        cancel: zero-argument callable; when it returns True the job stops before the next file
            (raising Cancelled) and the ground truth lists the files written so far.

    Returns:
        A CorpusSummary of what was written.

    Raises:
        ValueError: `out` is a foreign non-empty folder or a file, or items/seed are out of range.
        Cancelled: `cancel` asked to stop.
    """
    plan = plan_sample_corpus(items, seed)
    root = Path(out)
    _prepare_root(root)
    written: list[SampleFile] = []
    total = len(plan)
    try:
        for f in plan:
            check_cancel(cancel)
            write_sample_file(root, f, seed)
            written.append(f)
            if progress is not None:
                progress(ProgressEvent(STAGE, len(written), total, "files", f.path))
    finally:
        # Written even when stopped part-way, so the folder stays recognisably ours.
        gt = _write_ground_truth(root, written)
    good = [f for f in plan if f.label != BROKEN_CLASS]
    counts = {m: sum(f.modality == m for f in good) for m in CLASSES}
    log.info("Wrote a sample corpus of %d files to %s", total, root)
    return CorpusSummary(
        root=root,
        counts=counts,
        classes={m: list(names) for m, names in CLASSES.items()},
        broken=total - len(good),
        ground_truth=gt,
    )
