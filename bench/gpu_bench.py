"""The measurements of bench/gpu_check.sh: images/s of ViT-B-32 (random weights) model-only and
through `curator embed` end to end in fp16 and bf16, CLAP on the device, faiss GPU k-means and
search at 1M x 512. Writes every figure to one Markdown file (and the same as JSON beside it).

    python bench/gpu_bench.py --out gpu_check_results.md            # on a GPU machine
    python bench/gpu_bench.py --device cpu --smoke --out /tmp/r.md  # tiny sizes, proves the script

Nothing is downloaded: the models are built with random weights (the speed of a network does not
depend on its weights); the JPEGs are generated.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.tiny_models import roberta_tokenizer  # noqa: E402 - after the path


class Figures:
    """Collects (section, name, value, unit, note) rows and writes them to one file."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: list[dict[str, Any]] = []

    def add(self, section: str, name: str, value: Any, unit: str = "", note: str = "") -> None:
        row = {"section": section, "name": name, "value": value, "unit": unit, "note": note}
        self.rows.append(row)
        print(f"[{section}] {name}: {value} {unit} {note}".rstrip(), flush=True)
        self.write()

    def write(self) -> None:
        lines = ["# bench/gpu_check.sh figures", "", "| section | measure | value | unit | note |",
                 "|---|---|---|---|---|"]
        for r in self.rows:
            value = r["value"]
            if isinstance(value, float):
                value = f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
            lines.append(f"| {r['section']} | {r['name']} | {value} | {r['unit']} | {r['note']} |")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(lines) + "\n")
        self.out.with_suffix(".json").write_text(json.dumps(self.rows, indent=1))


def guarded(figures: Figures, section: str) -> Callable:
    """Run one measurement; a failure is recorded as a row, the others still run."""

    def wrap(fn: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the check reports it and goes on
                figures.add(section, "FAILED", f"{type(exc).__name__}: {str(exc)[:300]}")
                return None
        return run
    return wrap


def write_jpegs(folder: Path, n: int, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """n distinct photo-like JPEGs (smooth gradients plus noise), quality 90."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(n):
        base = rng.uniform(0, 255, 3).astype(np.float32)
        slope = rng.uniform(-0.3, 0.3, (2, 3)).astype(np.float32)
        img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        img += rng.normal(0, 12, img.shape).astype(np.float32)
        path = folder / f"img{i:06d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def random_clip_weights(folder: Path, arch: str = "ViT-B-32") -> Path:
    """A random-initialised open_clip checkpoint saved as .safetensors."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None)
    path = folder / f"{arch}-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_only(figures: Figures, weights: Path, device: str, precision: str, batch: int,
               seconds: float) -> None:
    """Images/s of the embedder on ready 224x224 uint8 inputs (host→device copy included)."""
    from indexing.embedders.base import Decoded
    from indexing.embedders.clip import create

    emb = create(model="ViT-B-32", weights=weights, device=device, precision=precision,
                 batch_size=batch)
    rng = np.random.default_rng(1)
    items = [Decoded(i, "image", rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
             for i in range(batch)]
    emb.embed_batch(items[:2])  # warm-up: kernels, allocator
    _sync(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        emb.embed_batch(items)
        done += len(items)
    _sync(device)
    rate = done / (time.perf_counter() - start)
    weights_dtype = str(next(emb.model.parameters()).dtype).replace("torch.", "")
    figures.add("ViT-B-32 model only", f"{precision} batch {batch}", rate, "images/s",
                f"weights {weights_dtype} on {device}")


def end_to_end(figures: Figures, jpegs: Path, weights: Path, work: Path, device: str,
               precision: str, batch: int) -> None:
    """`curator embed` on the generated JPEGs: scan, then embed (GPU JPEG decode where CUDA)."""
    from curator.project import Project

    note = ""
    try:
        import faiss  # noqa: F401 - only whether it imports
    except Exception as exc:  # noqa: BLE001 - faiss-gpu may raise PackageNotFoundError
        # No usable faiss here (e.g. faiss-gpu-cu12 beside a CUDA 13 torch): the embedding
        # figure does not involve the index, so skip its sync rather than lose the figure.
        import curator.search

        curator.search.sync_index = lambda *a, **k: None
        note = f"; search index not synced ({exc})"
    project = work / f"project-{precision}"
    with Project.create(project, [jpegs]) as proj:
        t0 = time.perf_counter()
        scan = proj.scan()
        scan_s = time.perf_counter() - t0
        report = proj.embed("ViT-B-32", "classic", weights=str(weights), device=device,
                            precision=precision, batch_size=batch)
    space = next(iter(report.spaces.values()))
    figures.add("curator embed end to end", f"{precision} batch {batch}",
                space["items_per_second"], "images/s",
                f"{space['embedded']} JPEGs on {space['device']}; scan {scan.probed} files in "
                f"{scan_s:.1f} s{note}")


def clap_on_device(figures: Figures, work: Path, device: str, precision: str, n: int,
                   tiny: bool = False) -> None:
    """Clips/s of a random CLAP (transformers' default HTSAT config, 48 kHz, 10 s windows; a
    tiny one of the same shape with `tiny`, to prove the script on CPU)."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from indexing.embedders.base import Decoded
    from indexing.embedders.clap import create

    folder = work / "clap-random"
    vocab = roberta_tokenizer(folder, max_length=32)
    torch.manual_seed(0)
    config = ClapConfig(**_TINY_CLAP, text_config={**_TINY_CLAP_TEXT, "vocab_size": vocab}) \
        if tiny else ClapConfig()
    ClapModel(config).eval().save_pretrained(str(folder))
    # As laion/clap-htsat-unfused: one 10 s window per input, repeat-padded, no fusion.
    extractor = {"feature_size": 16, "sampling_rate": 16000, "hop_length": 160,
                 "max_length_s": 1, "fft_window_size": 512, "frequency_max": 8000} if tiny else {}
    ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad",
                         **extractor).save_pretrained(str(folder))
    emb = create(model=str(folder), device=device, precision=precision, batch_size=16)
    rng = np.random.default_rng(2)
    clips = [Decoded(i, "audio", (0.1 * rng.standard_normal((1, emb.window_samples)))
                     .astype(np.float32)) for i in range(n)]
    emb.embed_batch(clips[:1])
    _sync(device)
    start = time.perf_counter()
    emb.embed_batch(clips)
    _sync(device)
    rate = n / (time.perf_counter() - start)
    figures.add("CLAP", f"{precision}, {emb.window_s:g} s windows", rate, "clips/s",
                f"random weights, {emb.extractor.padding} padding, on {emb.device}")


_TINY_CLAP_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "intermediate_size": 64, "max_position_embeddings": 40}
_TINY_CLAP = {"audio_config": {"window_size": 4, "num_mel_bins": 16, "spec_size": 64,
                               "patch_size": 4, "patch_stride": (4, 4), "hidden_size": 32,
                               "depths": [1, 1], "num_attention_heads": [2, 2],
                               "patch_embeds_hidden_size": 16, "num_classes": 10},
              "projection_dim": 16}


def faiss_gpu(figures: Figures, n: int, dim: int, k: int, force_cpu: bool) -> None:
    """k-means and exact search on the GPU at n x dim, or a row saying why it could not."""
    try:
        import faiss
    except Exception as exc:  # noqa: BLE001 - faiss-gpu raises PackageNotFoundError too
        figures.add("faiss GPU", "k-means and search", "not measured", "",
                    f"could not: faiss does not import here ({exc}); a faiss-gpu-cu12 wheel "
                    "needs a CUDA 12 torch's nvidia libraries and numpy >= 2")
        return

    from curator.doctor import faiss_report

    info = faiss_report(cuda=True)
    gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if not gpu and not force_cpu:
        figures.add("faiss GPU", "k-means and search", "not measured", "",
                    f"could not: {info['build']} ({info['installed']}); {info['advice']}")
        return
    where = "GPU" if gpu else "CPU (smoke)"
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    faiss.normalize_L2(x)
    start = time.perf_counter()
    km = faiss.Kmeans(dim, k, niter=10, seed=1, gpu=gpu, verbose=False,
                      max_points_per_centroid=max(39, n // k))
    km.train(x)
    figures.add("faiss " + where, f"k-means {n} x {dim}, k={k}, 10 iterations",
                time.perf_counter() - start, "s")
    index = faiss.IndexFlatIP(dim)
    if gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(x)
    queries = x[:10_000] if n >= 10_000 else x
    for kk in (10, 2048):
        kk = min(kk, n)
        start = time.perf_counter()
        index.search(queries, kk)
        took = time.perf_counter() - start
        figures.add("faiss " + where, f"flat search {len(queries)} queries, k={kk}",
                    len(queries) / took, "queries/s", f"{n} x {dim} vectors")


def environment(figures: Figures, device: str) -> None:
    import torch

    figures.add("machine", "python", platform.python_version())
    figures.add("machine", "torch", torch.__version__, "", f"CUDA {torch.version.cuda}")
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        figures.add("machine", "GPU", props.name, "",
                    f"{props.total_memory / 2**30:.0f} GiB, bf16 "
                    f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_check_results.md")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CPU proof of the script)")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="per model-only figure")
    parser.add_argument("--batch", type=int, default=None, help="inference batch size")
    args = parser.parse_args(argv)
    smoke = args.smoke
    n_images = args.images or (24 if smoke else 4000)
    seconds = args.seconds or (2.0 if smoke else 15.0)
    batch = args.batch or (4 if smoke else 256)
    figures = Figures(args.out)
    guarded(figures, "machine")(environment)(figures, args.device)
    with tempfile.TemporaryDirectory(prefix="curator-gpu-check-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        write_jpegs(work / "jpegs", n_images, (160, 120) if smoke else (640, 480))
        figures.add("input", "generated JPEGs", n_images, "files",
                    f"{'160x120' if smoke else '640x480'}, {time.perf_counter() - t0:.0f} s")
        weights = random_clip_weights(work)
        for precision in ("fp16", "bf16"):
            guarded(figures, "ViT-B-32 model only")(model_only)(
                figures, weights, args.device, precision, batch, seconds)
            guarded(figures, "curator embed end to end")(end_to_end)(
                figures, work / "jpegs", weights, work, args.device, precision, batch)
        guarded(figures, "CLAP")(clap_on_device)(figures, work, args.device, "fp16",
                                                 4 if smoke else 256, tiny=smoke)
    n, k = (20_000, 64) if smoke else (1_000_000, 1024)
    guarded(figures, "faiss GPU")(faiss_gpu)(figures, n, 64 if smoke else 512, k, smoke)
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
