"""Embedding benchmark: pipeline efficiency, speed-up over a naive loop, classic speed, peak memory.

    python bench/embed.py [--images 2000] [--batch 32] [--memory-items 100000] [--skip-memory]

Works on generated photo-like JPEGs of 0.3-3 megapixels. ViT-B-32 runs with random weights
(saved to a file and loaded through `--weights`, the real loading path): its speed is the same
as with trained weights. Figures, measured side by side in one run:

- pipeline efficiency = end-to-end items/s (curator embed: decode workers + prefetch + model)
  / model-only items/s (the same model and batch size on tensors already in memory);
- end-to-end items/s / a naive loop (open, preprocess, embed, batch by batch, one process);
- classic embedder end-to-end images/s;
- peak RSS of a classic embed over --memory-items small images (memory must stay flat).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photo_like(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth gradients, blobs and texture: compresses and decodes like a photograph."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 60 * np.sin(a * xx / w * 6 + b * yy / h * 6 + rng.uniform(0, 6))
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * min(w, h)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[mask] = img[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(folder: Path, n: int, seed: int = 0, small: bool = False) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    # A few base pictures, each saved at many sizes and crops, keeps generation fast.
    bases = [photo_like(rng, 1000, 750) for _ in range(8)]
    for i in range(n):
        base = Image.fromarray(bases[i % len(bases)])
        if small:
            w, h = 96, 72
        else:
            mp = rng.uniform(0.3, 3.0) * 1e6
            aspect = rng.choice([4 / 3, 3 / 2, 1.0, 3 / 4, 16 / 9])
            w, h = int((mp * aspect) ** 0.5), int((mp / aspect) ** 0.5)
        img = base.resize((w, h), Image.BILINEAR)
        sub = folder / f"d{i % 50:02d}"
        sub.mkdir(exist_ok=True)
        img.save(sub / f"{i:06d}.jpg", quality=int(rng.integers(75, 95)))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_random_vit(path: Path) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def model_only(embedder, decoded, batch: int, repeats: int = 1) -> float:
    """items/s of embed_batch on inputs already decoded and in memory."""
    n = len(decoded)
    embedder.embed_batch(decoded[:batch])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        for start in range(0, n, batch):
            embedder.embed_batch(decoded[start:start + batch])
    return n * repeats / (time.perf_counter() - t0)


def naive_loop(embedder, paths: list[str], batch: int) -> float:
    """What a typical script does: PIL open, open_clip's own preprocess, encode, batch by batch,
    in one process."""
    import open_clip
    import torch
    from PIL import Image

    size = embedder.model.visual.image_size
    preprocess = open_clip.image_transform(size if isinstance(size, int) else size[0],
                                           is_train=False)
    t0 = time.perf_counter()
    for start in range(0, len(paths), batch):
        x = torch.stack([preprocess(Image.open(p).convert("RGB"))
                         for p in paths[start:start + batch]])
        with torch.inference_mode():
            out = embedder.model.encode_image(x)
            out = out / out.norm(dim=-1, keepdim=True)
    return len(paths) / (time.perf_counter() - t0)


def end_to_end(tree: Path, base: Path, model: str, weights, batch: int, workers,
               thumbnails: bool = True) -> tuple:
    from curator.project import Project
    from curator.scan import ScanOptions

    proj = base / f"project-{model.replace('/', '_')}"
    shutil.rmtree(proj, ignore_errors=True)
    with Project.create(proj, [tree]) as project:
        project.scan(ScanOptions())
        t0 = time.perf_counter()
        report = project.embed(model, "classic", weights=weights, batch_size=batch,
                               workers=workers, thumbnails=thumbnails)
        seconds = time.perf_counter() - t0
        (space,) = [s for s in report.spaces]
        return report.spaces[space]["embedded"] / seconds, report.spaces[space]


def memory_run(base: Path, n: int) -> None:
    """Runs in a child process so its peak RSS is its own."""
    from curator.project import Project
    from curator.scan import ScanOptions

    tree = base / "small"
    if not tree.exists():
        make_images(tree, n, seed=1, small=True)
    proj = base / "project-memory"
    shutil.rmtree(proj, ignore_errors=True)
    from bench.memory import PeakTreeRSS

    with Project.create(proj, [tree]) as project:
        project.scan(ScanOptions())
        t0 = time.perf_counter()
        with PeakTreeRSS() as peak:
            report = project.embed("classic", "classic", batch_size=256)
        print(f"memory run: {report.embedded} items embedded in {time.perf_counter() - t0:.0f} s;"
              f" peak RSS {peak_rss_mb():.0f} MB main process, {peak.peak_mb:.0f} MB with its "
              f"decode workers (target <= 2048 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--memory-items", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--classic-only", action="store_true",
                        help="only the classic end-to-end figure")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--memory-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_run(args.memory_child, args.memory_items)
        return

    import torch

    from indexing.embedders import create_embedder

    base = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-embed-"))
    tree = base / "photos"
    try:
        if not tree.exists():
            t0 = time.perf_counter()
            make_images(tree, args.images)
            print(f"generated {args.images} JPEGs (0.3-3 MP) in {time.perf_counter() - t0:.0f} s")
        paths = sorted(str(p) for p in tree.rglob("*.jpg"))
        if args.classic_only:
            for thumbs in (True, False):
                rate, _ = end_to_end(tree, base, "classic", None, 256, args.workers, thumbs)
                print(f"classic curator embed end to end, thumbnails {'on' if thumbs else 'off'}:"
                      f" {rate:.1f} images/s")
            return
        weights = base / "vit-b-32-random.safetensors"
        if not weights.exists():
            save_random_vit(weights)
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"cores {os.cpu_count()}")

        clip = create_embedder("open_clip", model="ViT-B-32", weights=str(weights), device="cpu",
                               batch_size=args.batch)
        decode = clip.decoder()
        sample = paths[: min(len(paths), 256)]
        decoded = [decode(i, p, "image", False) for i, p in enumerate(sample)]
        rate_model = model_only(clip, decoded, args.batch)
        rate_naive = naive_loop(clip, paths[: min(len(paths), 512)], args.batch)
        rate_e2e, counts = end_to_end(tree, base, "ViT-B-32", str(weights), args.batch,
                                      args.workers)
        del clip
        classic_rate, _ = end_to_end(tree, base, "classic", None, 256, args.workers)

        print()
        print(f"{'measure':<44}{'items/s':>10}")
        print(f"{'ViT-B-32 model only (in-memory batches)':<44}{rate_model:>10.1f}")
        print(f"{'ViT-B-32 naive loop (one process)':<44}{rate_naive:>10.1f}")
        print(f"{'ViT-B-32 curator embed end to end':<44}{rate_e2e:>10.1f}")
        print(f"{'classic curator embed end to end':<44}{classic_rate:>10.1f}")
        print()
        print(f"pipeline efficiency (e2e / model only): {rate_e2e / rate_model:.2f} (target >= "
              "0.85)")
        print(f"speed-up over the naive loop: {rate_e2e / rate_naive:.2f}x (target >= 1.3x)")
        print(f"classic: {classic_rate:.0f} images/s (target >= 500)")
        print(f"device {counts['device']}, precision {counts['precision']}, batch {args.batch}")
        if not args.skip_memory:
            subprocess.run([sys.executable, __file__, "--memory-child", str(base),
                            "--memory-items", str(args.memory_items)], check=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
