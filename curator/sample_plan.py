"""What the sample corpus holds: its classes, formats and rates, and the seeded plan of its files.

`plan_sample_corpus(items, seed)` lists every file (path, class, format, size, rate, the broken
cases) before any is written, so the writers and the ground truth agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported inside functions so importing this module stays cheap
    import numpy as np

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
# Numbers mixed into every per-file seed so that modalities draw independent streams.
_SEED_CODES = {"image": 1, "audio": 2, "video": 3, "broken": 4}

_IMAGE_FORMATS = ("jpg", "png", "webp", "gif", "bmp", "tiff")
PIL_FORMATS = {
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


# --------------------------------------------------------------------------------------------
# Planning: pure, cheap, and the single source of every random parameter except pixel/sample
# content, so tests can check files against what was meant.


def rng_of(seed: int, modality: str, index: int, stream: int) -> np.random.Generator:
    """The random stream of one file of the corpus (seed, modality, index, stream)."""
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
    rng = rng_of(seed, "image", i, 0)
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
    rng = rng_of(seed, "audio", i, 0)
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
    rng = rng_of(seed, "video", i, 0)
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
