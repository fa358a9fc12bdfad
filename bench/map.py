"""Map, duplicate and outlier benchmark: the 2-D map of 1M points, near-duplicates and outliers.

    python bench/map.py [--n 1000000] [--what map,dedup,outliers] [--sample 50000]
                        [--threshold 0.95] [--groups 1000] [--parallel-umap] [--global-dedup]

Data: bench/synth.py's clustered 512-d set (cached memory-mapped under bench/.data), which plants
near-duplicate pairs (a row copied with tiny noise, `info["duplicate_pairs"]`) and outliers (junk
rows with no class, and atypical members far from their class).

* map: wall time of `compute_map` by stage, peak RSS, and a quality check: the share of placed
  rows whose nearest 2-D sample point has their class, next to the same share for sample rows.
* dedup: group labels and centroids come from spherical k-means (`--groups`, timed apart: the app
  has them from its clustering run). Recall: planted pairs that end up in one group. Precision:
  of all row pairs inside found groups, those joined by planted copies.
* outliers: precision of the top-|junk| scores at finding junk rows, and of the top-|outliers|
  at finding junk + atypical rows.

Peak memory is the high-water RSS of this process, including touched pages of the memory-mapped
data set (2 GB at 1M x 512). Run one section per process for a per-section peak.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synth import DEFAULT_CACHE, make_synthetic
from indexing.dedup import near_duplicate_groups, outlier_scores, rank_outliers
from indexing.map2d import compute_map


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_map(X, y, sample: int, deterministic: bool) -> list[tuple[str, str]]:
    import faiss

    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(event):
        if event.total is not None and event.done >= event.total:
            marks[event.stage] = time.perf_counter() - t0

    result = compute_map(X, sample_size=sample, seed=0, deterministic=deterministic,
                         progress=progress)
    wall = time.perf_counter() - t0
    coords, s = result.coords, result.sample_idx
    placed = np.setdiff1d(np.arange(X.shape[0]), s)
    rng = np.random.default_rng(1)
    check = rng.choice(placed, min(20_000, placed.size), replace=False) if placed.size else placed
    tree = faiss.IndexFlatL2(2)
    tree.add(np.ascontiguousarray(coords[s]))
    agree_placed = float("nan")
    if check.size:
        _, nn = tree.search(np.ascontiguousarray(coords[check]), 1)
        ok = y[check] >= 0
        agree_placed = float(np.mean(y[s][nn[ok, 0]] == y[check][ok]))
    probe = rng.choice(s.size, min(20_000, s.size), replace=False)
    _, nn = tree.search(np.ascontiguousarray(coords[s[probe]]), 2)
    ok = y[s[probe]] >= 0
    agree_sample = float(np.mean(y[s][nn[ok, 1]] == y[s[probe]][ok]))
    stages = ", ".join(f"{k} done at {v:.0f} s" for k, v in marks.items())
    return [
        ("map wall time", f"{wall:.0f} s ({stages})"),
        ("map peak RSS", f"{peak_mb():.0f} MB"),
        ("UMAP layout", "deterministic (random_state, 1 thread)" if deterministic
         else "parallel (no random_state)"),
        ("placed rows: nearest 2-D sample point same class", f"{agree_placed:.3f}"),
        ("sample rows: nearest other sample point same class", f"{agree_sample:.3f}"),
    ]


def kmeans_groups(X, k: int):
    import faiss

    n, d = X.shape
    rng = np.random.default_rng(0)
    train = np.asarray(X[np.sort(rng.choice(n, min(n, 64 * k), replace=False))], np.float32)
    km = faiss.Kmeans(d, k, niter=10, spherical=True, seed=0, verbose=False)
    km.train(train)
    labels = np.empty(n, np.int64)
    for a in range(0, n, 65_536):
        _, lab = km.index.search(np.ascontiguousarray(X[a:a + 65_536], dtype=np.float32), 1)
        labels[a:a + 65_536] = lab[:, 0]
    return labels, km.centroids


def pair_scores(groups, planted: np.ndarray, n: int) -> tuple[float, float, int]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    found = np.full(n, -1, np.int64)
    for g, rows in enumerate(groups):
        found[rows] = g
    a, b = planted[:, 0], planted[:, 1]
    rec = float(np.mean((found[a] >= 0) & (found[a] == found[b])))
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, truth = connected_components(graph, directed=False)
    true_pairs = all_pairs = 0
    for rows in groups:
        all_pairs += rows.size * (rows.size - 1) // 2
        _, counts = np.unique(truth[rows], return_counts=True)
        true_pairs += int(np.sum(counts * (counts - 1) // 2))
    prec = true_pairs / all_pairs if all_pairs else float("nan")
    return prec, rec, all_pairs


def bench_dedup(X, info, threshold: float, k: int, also_global: bool) -> list[tuple[str, str]]:
    n = X.shape[0]
    t = time.perf_counter()
    labels, centroids = kmeans_groups(X, k)
    t_km = time.perf_counter() - t
    out = [("k-means for group labels (not dedup time)", f"{k} groups, {t_km:.0f} s")]
    planted = np.asarray(info["duplicate_pairs"], np.int64)
    runs = [("grouped (own + 3 nearest groups)", {"group_labels": labels, "centroids": centroids})]
    if also_global:
        runs.append(("global (every pair)", {}))
    for name, kw in runs:
        t = time.perf_counter()
        groups = near_duplicate_groups(X, threshold=threshold, **kw)
        dt = time.perf_counter() - t
        prec, rec, pairs = pair_scores(groups, planted, n)
        result = (f"{dt:.0f} s; {len(groups)} groups; planted pairs {len(planted)}; "
                  f"precision {prec:.3f}, recall {rec:.3f} (of {pairs} found pairs)")
        out.append((f"dedup {name} @ cos>={threshold}", result))
    out.append(("dedup peak RSS", f"{peak_mb():.0f} MB"))
    return out


def bench_outliers(X, info, k: int) -> list[tuple[str, str]]:
    _, centroids = kmeans_groups(X, k)
    junk = np.asarray(info["junk"])
    every = np.asarray(info["outliers"])
    out = []
    # k-means labels are each row's nearest centroid, so scoring "with labels" would equal this.
    for name, lab in (("1 - max cosine to a k-means centroid", None),):
        t = time.perf_counter()
        scores = outlier_scores(X, centroids, lab)
        dt = time.perf_counter() - t
        top_j = rank_outliers(scores, top=junk.size)
        top_a = rank_outliers(scores, top=every.size)
        result = (f"{dt:.1f} s; precision@{junk.size} for junk {np.isin(top_j, junk).mean():.3f}; "
                  f"precision@{every.size} for junk+atypical {np.isin(top_a, every).mean():.3f}")
        out.append((f"outliers ({name})", result))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--what", default="map,dedup,outliers")
    ap.add_argument("--sample", type=int, default=50_000)
    # The synthetic set's tightest sub-modes hold genuine (non-copied) neighbours up to cosine
    # ~0.973 while planted copies sit above 0.9997, so 0.98 is its near-duplicate threshold.
    ap.add_argument("--threshold", type=float, default=0.98)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--parallel-umap", action="store_true")
    ap.add_argument("--global-dedup", action="store_true", help="also run the all-pairs search")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    t = time.perf_counter()
    X, y, info = make_synthetic(args.n, cache_dir=DEFAULT_CACHE)
    print(f"data: {args.n} x {X.shape[1]} synthetic ({time.perf_counter() - t:.1f} s to load/make)")
    rows: list[tuple[str, str]] = []
    what = set(args.what.split(","))
    if "map" in what:
        rows += bench_map(X, y, args.sample, not args.parallel_umap)
    if "dedup" in what:
        rows += bench_dedup(X, info, args.threshold, args.groups, args.global_dedup)
    if "outliers" in what:
        rows += bench_outliers(X, info, args.groups)
    print()
    print(f"| {args.n:,} rows | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
