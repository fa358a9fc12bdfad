"""VectorIndex alone (no project): build time, memory, single-query top-k latency and recall@k vs
exact.

    python bench/search_index.py [--n 1000000] [--queries 200] [--k 50] [--nprobe 16,32,64,96]
                           [--kind auto] [--nlist N] [--save]

Data: bench/synth.py's clustered 512-d set (cached memory-mapped under bench/.data). Ids are
catalog-like (1,000,000 + row) so a position leaking out as an id would be caught by recall.
Queries are 200 random rows of the set (item-to-item search, the app's "more like this"), asked
one at a time. Ground truth: faiss IndexFlatIP over the same vectors (exact cosine).
Peak memory is the high-water RSS of this process, which includes the touched pages of the
memory-mapped data set (2 GB at 1M x 512) as well as the index.
"""

from __future__ import annotations

import argparse
import gc
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synth import DEFAULT_CACHE, make_synthetic
from indexing.vector_index import VectorIndex

ID_OFFSET = 1_000_000
TARGET_MS = 50.0
TARGET_RECALL = 0.95


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exact_truth(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(X.shape[1])
    for a in range(0, X.shape[0], 65_536):
        flat.add(np.ascontiguousarray(X[a:a + 65_536], dtype=np.float32))
    _, rows = flat.search(np.ascontiguousarray(Q, dtype=np.float32), k)
    return rows + ID_OFFSET


def single_query_runs(index: VectorIndex, Q: np.ndarray, k: int, nprobe) -> tuple[list, np.ndarray]:
    times, found = [], []
    index.search(Q[:1], k=k, nprobe=nprobe)  # warm-up (first call allocates)
    for q in Q:
        t = time.perf_counter()
        _, ids = index.search(q[None], k=k, nprobe=nprobe)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    return times, np.stack(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--nprobe", default="16,32,64,96", help="comma-separated values to sweep")
    ap.add_argument("--kind", default="auto")
    ap.add_argument("--nlist", type=int, default=None)
    ap.add_argument("--save", action="store_true", help="also time save + load of the index")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    t = time.perf_counter()
    X, _, _ = make_synthetic(args.n, cache_dir=DEFAULT_CACHE)
    print(f"data: {args.n} x {X.shape[1]} synthetic ({time.perf_counter() - t:.1f} s to load/make)")
    rng = np.random.default_rng(7)
    Q = np.asarray(X[np.sort(rng.choice(args.n, args.queries, replace=False))], dtype=np.float32)

    t = time.perf_counter()
    truth = exact_truth(X, Q, args.k)
    t_truth = time.perf_counter() - t
    gc.collect()

    ids = np.arange(args.n, dtype=np.int64) + ID_OFFSET
    rss0 = rss_mb()
    t = time.perf_counter()
    index = VectorIndex.build(ids, X, kind=args.kind, nlist=args.nlist, space="synthetic")
    t_build = time.perf_counter() - t
    rss1 = rss_mb()
    info = index.info
    print(f"index: kind={info.kind} nlist={info.nlist} trained_on={info.trained_on} "
          f"factory={info.factory}")
    print(f"build: {t_build:.1f} s; RSS +{rss1 - rss0:.0f} MB after build; "
          f"exact ground truth for {args.queries} queries took {t_truth:.1f} s")

    rows = []
    sweeps = [None] if info.nlist == 0 else [int(v) for v in args.nprobe.split(",")]
    for nprobe in sweeps:
        times, found = single_query_runs(index, Q, args.k, nprobe)
        leaked = int(np.sum((found >= 0) & (found < ID_OFFSET)))
        rows.append((nprobe or "-", statistics.median(times), float(np.percentile(times, 95)),
                     recall(found, truth), leaked))

    if args.save:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vectors.faiss"
            t = time.perf_counter()
            index.save(path)
            t_save = time.perf_counter() - t
            size = path.stat().st_size / 2**20
            t = time.perf_counter()
            VectorIndex.load(path, gpu=False)
            t_load = time.perf_counter() - t
        print(f"save: {t_save:.1f} s ({size:.0f} MB file); load: {t_load:.1f} s")

    print()
    print(f"| nprobe | median ms | p95 ms | recall@{args.k} | ids < offset |")
    print("|---:|---:|---:|---:|---:|")
    for nprobe, med, p95, rec, leaked in rows:
        ok = "ok" if med <= TARGET_MS and rec >= TARGET_RECALL else "miss"
        print(f"| {nprobe} | {med:.1f} | {p95:.1f} | {rec:.3f} ({ok}) | {leaked} |")
    print(f"\npeak RSS {peak_mb():.0f} MB (includes the memory-mapped data set); "
          f"default nprobe {info.nprobe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
