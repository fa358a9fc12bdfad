"""Scan benchmark: files/s for a first scan and an unchanged rescan of a generated tree, and peak
memory.

    python bench/scan.py [--files 20000] [--workers N] [--keep DIR]

The tree holds small real media: JPEG and PNG images (mixed sizes) and short WAV clips, in nested
folders. Peak memory is the high-water RSS of this process and of its worker processes.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import PeakTreeRSS  # noqa: E402
from curator.project import Project  # noqa: E402
from curator.scan import ScanOptions  # noqa: E402


def make_tree(root: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    # A few distinct payloads per kind, varied per file so every file has its own hash.
    for i in range(n):
        folder = root / f"set{i % 20:02d}" / f"part{(i // 20) % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 10
        if kind < 6:
            w, h = int(rng.integers(32, 96)), int(rng.integers(32, 96))
            arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG" if kind < 4 else "PNG", quality=80)
            (folder / f"{i:06d}.{'jpg' if kind < 4 else 'png'}").write_bytes(buf.getvalue())
        else:
            rate = 8000
            t = np.arange(int(rate * 0.25)) / rate
            samples = (0.3 * np.sin(2 * np.pi * (200 + i % 500) * t) * 32767).astype("<i2")
            with wave.open(str(folder / f"{i:06d}.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(samples.tobytes())


def peak_rss_mb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the tree here")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-scan-"))
    tree = base / "tree"
    try:
        if not tree.exists():
            t0 = time.perf_counter()
            make_tree(tree, args.files)
            print(f"generated {args.files} files in {time.perf_counter() - t0:.1f} s")
        proj = base / "project"
        shutil.rmtree(proj, ignore_errors=True)
        options = ScanOptions(workers=args.workers)
        with Project.create(proj, [tree]) as project, PeakTreeRSS() as peak:
            first = project.scan(options)
            second = project.scan(options)
        me, _ = peak_rss_mb()
        ratio = second.files_per_second / first.files_per_second
        print(f"{'':<16}{'files':>8}{'seconds':>10}{'files/s':>10}")
        print(f"{'first scan':<16}{first.listed:>8}{first.seconds:>10.2f}"
              f"{first.files_per_second:>10.0f}")
        print(f"{'rescan':<16}{second.listed:>8}{second.seconds:>10.2f}"
              f"{second.files_per_second:>10.0f}")
        print(f"rescan speed-up: {ratio:.1f}x (target >= 20x)")
        print(f"peak RSS: main process {me:.0f} MB; main process and workers together "
              f"{peak.peak_mb:.0f} MB")
        print(f"workers: {args.workers if args.workers is not None else os.cpu_count()}, "
              f"cores: {os.cpu_count()}")
        assert first.new == args.files and second.unchanged == args.files, "scan lost files"
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
