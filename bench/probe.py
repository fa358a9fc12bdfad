"""Probe cost per file, now that declared durations are checked against the stream.

Writes a few real files (FLAC, MP3, MP4 of given lengths, with the tests' own builders in
tests/helpers/media.py) and times `probe_file` on each, warm cache, best of N.
Run: `PYTHONPATH=. python bench/probe.py [--seconds 60] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.helpers.media import MediaFactory, encoded_tone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from indexing.media import probe_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {
            "flac": encoded_tone(folder / "a.flac", "flac", "flac", args.seconds, 44100),
            "mp3": encoded_tone(folder / "a.mp3", "libmp3lame", "mp3", args.seconds, 44100),
            "mp4": MediaFactory().video(folder / "v.mp4", frames=int(args.seconds * 30),
                                        size=(320, 240), fps=30, scenes=True,
                                        options={"preset": "ultrafast"}),
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
