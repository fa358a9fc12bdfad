"""The sample corpus's videos: one animation per video class, encoded with and without sound.

A moving square, a pulsing field and a rotating bar over seeded noise; `write_video_file`
encodes them (H.264, VP9, ...) with an optional audio track from `sample_sounds`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from curator.sample_images import colour_of, draw_on, fill, smooth_noise
from curator.sample_plan import SampleFile, rng_of
from curator.sample_sounds import BITEXACT, add_audio_stream, encode_audio

if TYPE_CHECKING:  # numpy is imported inside functions so importing this module stays cheap
    import numpy as np

# --------------------------------------------------------------------------------------------
# Video: one renderer per class, registered by name. Each returns uint8 (frames, h, w, 3).


def _frame_noise(rng, shape: tuple) -> np.ndarray:
    """Faint uniform per-frame noise (about 3 levels rms), cheap to draw."""
    import numpy as np

    return rng.integers(0, 11, shape, dtype=np.uint8).astype(np.float32) - 5


def _moving_square(rng, w: int, h: int, frames: int) -> np.ndarray:
    import numpy as np

    bg = np.asarray(colour_of(rng, (5, 10, 40), (30, 40, 80)), np.float32)
    base = bg * (0.8 + 0.4 * smooth_noise(rng, h, w, 6)[..., None])
    side = int(h * rng.uniform(0.2, 0.4))
    y0 = rng.uniform(0, h - side)
    drift = rng.uniform(-0.2, 0.2) * h
    colour = np.asarray(colour_of(rng, (220, 200, 120), (255, 255, 200)), np.float32)
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

    colour = np.asarray(colour_of(rng, (180, 20, 20), (255, 110, 150)), np.float32)
    tex = 0.85 + 0.3 * smooth_noise(rng, h, w, 4)[..., None]
    freq, phase = rng.uniform(0.8, 3.0), rng.uniform(0, 2 * np.pi)
    out = np.empty((frames, h, w, 3), np.uint8)
    for k in range(frames):
        level = 0.55 + 0.4 * np.sin(2 * np.pi * freq * k / fps + phase)
        out[k] = np.clip(colour * tex * level + _frame_noise(rng, (h, w, 3)), 0, 255)
    return out


def _rotating_bar(rng, w: int, h: int, frames: int, fps: int) -> np.ndarray:
    import numpy as np

    grey = rng.uniform(90, 140)
    base = fill(h, w, (grey, grey, grey))
    colour = colour_of(rng, (20, 180, 60), (80, 255, 160))
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
        img = draw_on(base, lambda d, pts=pts: d.polygon(pts, fill=colour))
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
    rng = rng_of(seed, "video", f.index, 1)
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


def write_video_file(path: Path, f: SampleFile, frames: np.ndarray, track) -> None:
    """Encode a planned video file, with its audio track when it has one, bit-exactly."""
    import av
    from av.video.reformatter import VideoReformatter

    container_format, vcodec, options, acodec = _VIDEO_CODECS[f.fmt]
    to_yuv = VideoReformatter()  # one per video: a fresh converter per frame costs 5x more
    with av.open(str(path), "w", format=container_format, options=BITEXACT) as out:
        stream = out.add_stream(vcodec, rate=f.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = f.width, f.height, "yuv420p"
        astream = add_audio_stream(out, acodec, f.sample_rate, f.channels) if f.has_audio else None
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
            encode_audio(out, astream, track, f.sample_rate)
