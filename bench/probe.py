"""Probe cost per file, now that declared durations are checked against the stream.

Writes a few real files (FLAC, MP3, MP4 of given lengths) and times `probe_file` on each, warm
cache, best of N. Run: `PYTHONPATH=. python bench/probe.py [--seconds 60] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def _audio(path: Path, codec: str, fmt: str, seconds: float, rate: int) -> Path:
    import av

    t = np.arange(int(rate * seconds)) / rate
    signal = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None, :]
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        block = stream.codec_context.frame_size or 1024
        for start in range(0, signal.shape[1], block):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(signal[:, start : start + block]), format="fltp",
                layout="mono")
            frame.sample_rate, frame.time_base, frame.pts = rate, Fraction(1, rate), start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _video(path: Path, seconds: float, fps: int = 30, size=(320, 240)) -> Path:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        rgb = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
        for i in range(int(seconds * fps)):
            if i % fps == 0:  # a new scene every second, still frames between
                rgb = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from indexing.media import probe_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {
            "flac": _audio(folder / "a.flac", "flac", "flac", args.seconds, 44100),
            "mp3": _audio(folder / "a.mp3", "libmp3lame", "mp3", args.seconds, 44100),
            "mp4": _video(folder / "v.mp4", args.seconds),
        }
        for name, path in files.items():
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                info = probe_file(path)
                best = min(best, time.perf_counter() - started)
            size = path.stat().st_size / 2**20
            print(f"{name:5s} {args.seconds:.0f} s, {size:6.1f} MiB: probe {best * 1000:7.1f} ms "
                  f"(duration {info.duration:.2f} s, {info.error or 'ok'})")


if __name__ == "__main__":
    main()
