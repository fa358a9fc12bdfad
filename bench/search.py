"""Search through the real path at a million items: `Project.search` warm and the CLI cold.

    python bench/search.py [--n 1000000] [--queries 100] [--k 50] [--cli-runs 5]
                           [--model tiny|ViT-B-32] [--compare-text]

The project (kept under bench/.data/search-<n>) holds n synthetic 512-d vectors from
bench/synth.py, written the way `curator embed` writes them (a float16 shard, one `embeddings`
row per item) into a space made by a tiny randomly initialised open_clip model (512-d output,
one-layer towers), and its index is built by the real write path (`Project.sync_indexes`).
Then `--queries` more items are embedded but *not* indexed: the held-out queries. Each is asked
as `search --like ID` (its stored vector is the query; the index does not contain it), and
recall@k is measured against an exact search over the n indexed vectors.

Measured:
  * app --like, warm: one `Project` kept open, as the desktop app keeps it (index mapped once);
    the first query after opening is reported apart (pages of the mapped index come in);
  * app --text, warm: the text goes through the space's text tower (kept loaded) then the index;
    with the tiny model this is the cost of the path; with `--model ViT-B-32` the space is made by
    that architecture with random weights (saved as safetensors, loaded through `--weights`), so
    the text tower costs what the trained one does; `--compare-text` runs every text query also
    through the plain (unpacked) tower, alternating, for a before/after in one process;
    wall and CPU time of each query are printed;
  * CLI --like, cold: `python -m curator.cli search PROJECT --like ID --json` as a new process,
    wall clock from launch to exit (start-up, imports, opening the catalog, mapping the index).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import DEFAULT_CACHE, make_synthetic  # noqa: E402 - after the path set-up

TINY_ARCH = "CuratorBenchTiny"
TARGETS = {"app_like_ms": 100.0, "cli_cold_s": 2.0, "app_text_ms": 150.0, "recall": 0.95}


def tiny_model(folder: Path, dim: int) -> Path:
    """Register a tiny open_clip architecture with `dim`-d output and save random weights."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = {"embed_dim": dim,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32,
                          "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                        "layers": 1}}
    configs = folder / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    (configs / f"{TINY_ARCH}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(configs)
    weights = folder / "tiny.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        model = open_clip.create_model(TINY_ARCH, pretrained=None)
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  str(weights))
    return weights


def arch_model(folder: Path, arch: str) -> Path:
    """A real open_clip architecture (e.g. ViT-B-32) with random weights, saved as safetensors:
    the text tower costs what the trained model's does; its vectors mean nothing."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    weights = folder / f"{arch}-random.safetensors"
    if not weights.exists():
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = open_clip.create_model(arch, pretrained=None)
        tmp = weights.with_suffix(".tmp")
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  str(tmp))
        tmp.rename(weights)
    return weights


def _insert(catalog, space: str, shard, X: np.ndarray, first_id: int, run_id: int) -> None:
    """Items and their embeddings rows, as scan and embed would leave them."""
    from curator.catalog import utcnow

    now = utcnow()
    chunk = 50_000
    for a in range(0, len(X), chunk):
        block = np.asarray(X[a:a + chunk], np.float32)
        row0 = shard.append(block)
        ids = range(first_id + a, first_id + a + len(block))
        with catalog.write() as db:
            db.conn.executemany(
                "INSERT INTO items (id, source_id, path, modality, format, size, mtime, mtime_ns,"
                " content_hash, width, height, status, first_seen, last_seen, version) VALUES "
                "(?, 1, ?, 'image', 'jpeg', 1000, 0, 0, ?, 64, 48, 'ok', ?, ?, 1)",
                ((i, f"synthetic/{i // 1000:04d}/{i:08d}.jpg", f"{i:032x}", now, now)
                 for i in ids))
            db.conn.executemany(
                "INSERT INTO embeddings (item_id, space, shard, row, item_version, run_id, "
                "created_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                ((i, space, shard.path.name, row0 + j, run_id, now) for j, i in enumerate(ids)))


def build_project(root: Path, X: np.ndarray, n: int, weights: Path, arch: str = TINY_ARCH) -> str:
    """The benchmark project: n indexed items, then len(X) - n held-out items (not indexed)."""
    from curator.embed import compact_space, register_space
    from curator.project import Project
    from curator.stores import ShardWriter
    from indexing.embedders import create_embedder

    media = root.parent / f"{root.name}-media"
    media.mkdir(parents=True, exist_ok=True)
    options = {"name": "open_clip", "model": arch, "weights": str(weights)}
    embedder = create_embedder("open_clip", model=arch, weights=str(weights), device="cpu")
    with Project.create(root, [media]) as proj:
        catalog = proj.catalog
        folder = register_space(catalog, embedder, options)
        run_id = catalog.start_run("embed", {"bench": "search"})
        shard = ShardWriter(folder / "shards" / "bench-000", embedder.dim)
        t = time.perf_counter()
        _insert(catalog, embedder.space, shard, X[:n], 1, run_id)
        print(f"catalog: {n} items written in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        counts = proj.sync_indexes()
        print(f"index (real write path): {counts} in {time.perf_counter() - t:.0f} s")
        _insert(catalog, embedder.space, shard, X[n:], n + 1, run_id)
        shard.close()
        compact_space(catalog, embedder.space)  # stored, so --like finds them; not indexed
        catalog.end_run(run_id, "ok", {"embedded": len(X)})
    (root / "bench-ready").write_text(embedder.space)
    return embedder.space


def exact_top(store_X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k item ids (row + 1) of each query over the indexed rows."""
    import faiss

    flat = faiss.IndexFlatIP(store_X.shape[1])
    for a in range(0, len(store_X), 65_536):
        block = np.asarray(store_X[a:a + 65_536], np.float32)
        flat.add(block / np.linalg.norm(block, axis=1, keepdims=True))
    Qn = np.ascontiguousarray(Q / np.linalg.norm(Q, axis=1, keepdims=True), np.float32)
    return flat.search(Qn, k)[1] + 1


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t.tolist())) / k for f, t in zip(found, truth)]))


def _timed(fn, *args, **kwargs):
    """(wall ms, CPU ms of this process, result)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000, out


def _plain_text_tower(embedder, plain: bool) -> None:
    """Make the embedder's text path the plain trimmed tower (True) or the packed one (False):
    the before/after of `indexing/embedders/clip_text.py`, side by side in one process."""
    if not hasattr(embedder, "_packed_tried"):
        return
    embedder._text_encoder()  # build the packed tower once
    packed = getattr(embedder, "_packed_text_kept", None) or embedder._packed_text
    embedder._packed_text_kept = packed
    embedder._packed_text = None if plain else packed


def app_runs(root: Path, space: str, held: list[int], k: int, compare_text: bool) -> dict:
    """Warm `Project.search` runs; with compare_text, each text query also runs through the
    plain text tower right after the packed one (same project, same load)."""
    from curator.project import Project

    out: dict = {"load": [os.getloadavg()[0]]}
    with Project.open(root) as proj:
        out["first_like_ms"], _, _ = _timed(proj.search, like=held[0], k=k)
        times, cpu, found = [], [], []
        for item in held:
            ms, c, hits = _timed(proj.search, like=item, k=k)
            times.append(ms)
            cpu.append(c)
            found.append([h.item_id for h in hits])
        out["like_ms"], out["like_cpu"], out["like_found"] = times, cpu, found
        words = ["a dog", "a red car", "two people on a beach", "a bowl of soup", "a cat asleep"]
        out["first_text_ms"], _, _ = _timed(proj.search, text="a photo", k=k)
        cache = proj.search_cache()
        embedder, _ = cache.embedder(space, None)
        runs = {"text": ([], [], [], []), "text_plain": ([], [], [], [])}
        worst = 0.0
        out["load"].append(os.getloadavg()[0])
        for i in range(len(held)):
            text = f"{words[i % len(words)]} number {i}"
            for name in ("text", "text_plain") if compare_text else ("text",):
                _plain_text_tower(embedder, name == "text_plain")
                ms, c, hits = _timed(proj.search, text=text, k=k)
                runs[name][0].append(ms)
                runs[name][1].append(c)
                runs[name][2].append([h.item_id for h in hits])
                runs[name][3].append(cache.embed_text(space, [text], None)[0])
            _plain_text_tower(embedder, False)
            if compare_text:
                worst = max(worst, float(np.abs(runs["text"][3][-1]
                                                - runs["text_plain"][3][-1]).max()))
        out["load"].append(os.getloadavg()[0])
        for name, (ms, c, hits, vecs) in runs.items():
            if ms:
                out[f"{name}_ms"], out[f"{name}_cpu"] = ms, c
                out[f"{name}_found"], out[f"{name}_q"] = hits, np.stack(vecs)
        out["text_vector_diff"] = worst if compare_text else None
    return out


def cli_runs(root: Path, held: list[int], k: int, runs: int,
             checkout: Path = ROOT) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system) of each cold CLI search process."""
    import resource

    # An installed Curator has compiled bytecode (pip compiles on install): let the first,
    # untimed run write it even where the environment turns bytecode off.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(checkout)
    times, cpu = [], []
    for item in [held[-1], *held[:runs]]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        # cwd too: `python -m` puts the working folder ahead of PYTHONPATH.
        done = subprocess.run([sys.executable, "-m", "curator.cli", "search", str(root),
                               "--like", str(item), "--k", str(k), "--json"],
                              check=False, capture_output=True, text=True, env=env, cwd=checkout)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"CLI failed: {done.stderr.strip()}")
        assert len(json.loads(done.stdout)) == k
    return times[1:], cpu[1:]


def compare_cli(root: Path, held: list[int], k: int, runs: int, other: Path) -> None:
    """This checkout's and another's cold CLI runs alternating, so both see the same load."""
    out: dict[Path, tuple[list[float], list[float]]] = {ROOT: ([], []), other: ([], [])}
    for i in range(runs):
        for checkout in (other, ROOT) if i % 2 else (ROOT, other):
            wall, cpu = cli_runs(root, held[i:], k, 1, checkout)
            out[checkout][0].extend(wall)
            out[checkout][1].extend(cpu)
    print(f"| cold `search --like`, {runs} runs each, alternating | median wall | fastest wall "
          "| median CPU (user + sys) |")
    print("|---|---:|---:|---:|")
    for checkout, (wall, cpu) in out.items():
        print(f"| {checkout} | {statistics.median(wall):.2f} s | {min(wall):.2f} s | "
              f"{statistics.median(cpu):.2f} s |")


def _row(name: str, times: list[float], unit: str, target: float, rec: float | None,
         cpu: list[float] | None = None) -> str:
    med, p95 = statistics.median(times), float(np.percentile(times, 95))
    ok = "yes" if med <= target and (rec is None or rec >= TARGETS["recall"]) else "no"
    r = f"{rec:.3f}" if rec is not None else "-"
    c = f"{statistics.median(cpu):.1f} {unit}" if cpu else "-"
    return (f"| {name} | {med:.1f} {unit} | {p95:.1f} {unit} | {c} | {r} | ≤ {target:g} {unit} "
            f"| {ok} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--cli-runs", type=int, default=5)
    ap.add_argument("--data", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--model", default="tiny",
                    help="the space's model: 'tiny' (one-layer towers: the cost of the path) or "
                         "an open_clip architecture with 512-d output such as ViT-B-32, built "
                         "with random weights (the cost of its text tower)")
    ap.add_argument("--compare-text", action="store_true",
                    help="run each text query also through the plain (unpacked) text tower, "
                         "alternating, to compare before and after in one run")
    ap.add_argument("--cli-only", action="store_true", help="only the cold CLI runs (a built "
                    "project)")
    ap.add_argument("--compare", type=Path, default=None,
                    help="with --cli-only: another checkout, its cold CLI runs alternating "
                         "with this one's, one at a time")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    if args.model == "tiny":
        root, arch = args.data / f"search-{args.n}", TINY_ARCH
        weights = tiny_model(args.data / "tiny-clip", 512)
    else:
        root, arch = args.data / f"search-{args.n}-{args.model}", args.model
        weights = arch_model(args.data / "arch-clip", args.model)
    t = time.perf_counter()
    X, _, _ = make_synthetic(args.n + args.queries, cache_dir=args.data)
    print(f"data: {len(X)} x {X.shape[1]} ({time.perf_counter() - t:.0f} s to load or make)")
    if (root / "bench-ready").exists():
        space = (root / "bench-ready").read_text()
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        space = build_project(root, X, args.n, weights, arch)
    held = list(range(args.n + 1, args.n + args.queries + 1))
    if args.cli_only and args.compare:
        compare_cli(root, held, args.k, args.cli_runs, args.compare)
        return 0
    if args.cli_only:
        wall, cpu = cli_runs(root, held, args.k, args.cli_runs)
        print(_row("CLI `search --like` (cold process), wall", wall, "s", TARGETS["cli_cold_s"],
                   None))
        print(_row("CLI `search --like` (cold process), CPU", cpu, "s", TARGETS["cli_cold_s"],
                   None))
        return 0

    from curator.project import Project

    with Project.open(root) as proj:
        ids, stored = proj.vectors(space)
        assert len(ids) == args.n + args.queries
        index = proj.search_cache().index(space)
        assert len(index) == args.n and held[0] not in index
        print(f"index: {index.info.kind}, {len(index)} vectors, nlist {index.info.nlist}, "
              f"nprobe {index.info.nprobe}")
        Q = np.asarray(stored[args.n:], np.float32)
    t = time.perf_counter()
    truth = exact_top(stored[:args.n], Q, args.k)
    print(f"exact ground truth: {time.perf_counter() - t:.0f} s")
    app = app_runs(root, space, held, args.k, args.compare_text)
    text_truth = exact_top(stored[:args.n], app["text_q"], args.k)
    cli, cli_cpu = cli_runs(root, held, args.k, args.cli_runs) if args.cli_runs else ([], [])

    tower = "tiny text tower" if args.model == "tiny" else f"{args.model} text tower"
    print(f"\n{args.n:,} items, {args.queries} held-out queries, k={args.k}; first --like after "
          f"opening {app['first_like_ms']:.0f} ms, first --text (loads the model) "
          f"{app['first_text_ms']:.0f} ms; 1-minute load average "
          + " / ".join(f"{x:.1f}" for x in app["load"]) + " (start, text start, end)\n")
    print(f"| path | median wall | p95 wall | median CPU | recall@{args.k} | target | met |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print(_row("app `--like` (warm)", app["like_ms"], "ms", TARGETS["app_like_ms"],
               recall(app["like_found"], truth), app["like_cpu"]))
    print(_row(f"app `--text` (warm, {tower})", app["text_ms"], "ms",
               TARGETS["app_text_ms"], recall(app["text_found"], text_truth), app["text_cpu"]))
    if args.compare_text:
        plain_truth = exact_top(stored[:args.n], app["text_plain_q"], args.k)
        print(_row(f"app `--text` (warm, {tower}, plain weights: before)",
                   app["text_plain_ms"], "ms", TARGETS["app_text_ms"],
                   recall(app["text_plain_found"], plain_truth), app["text_plain_cpu"]))
    if cli:
        print(_row("CLI `search --like` (cold process), wall", cli, "s",
                   TARGETS["cli_cold_s"], None))
        print(_row("CLI `search --like` (cold process), CPU", cli_cpu, "s",
                   TARGETS["cli_cold_s"], None))
    if app["text_vector_diff"] is not None:
        print(f"\nlargest difference between the packed and the plain tower's query vectors: "
              f"{app['text_vector_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
