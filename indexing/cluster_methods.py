"""The grouping methods, as a registry: graph merge, spherical k-means, UMAP + HDBSCAN.

Each method takes the validated matrix (and k, seed, progress, cancel, a PCA size and a timings
dict) and returns per-row labels and the parameters it used; `cluster_embeddings` picks one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from indexing.cluster_steps import (
    KMEANS_INIT,
    KMEANS_ITERATIONS,
    PCA_SAMPLE_ROWS,
    TRAIN_POINTS_PER_GROUP,
    assign,
    compact,
    emit,
    normalised_copy,
    reduce,
    scatter_sum,
    train_kmeans,
    unit_rows,
)
from indexing.progress import check_cancel

HDBSCAN_MAX_ROWS = 200_000
"""UMAP's neighbour graph and HDBSCAN's tree grow past a laptop's time budget above this."""
REFINE_PASSES = 0  # full-set Lloyd passes after training (+0.0003 each at 1M)
FAR_MEMBER_SIGMAS = 6.0  # hdbscan: members this many robust sigmas out become noise
FAR_MEMBER_MIN_SIGMA = 0.02


# --------------------------------------------------------------------------------------------
# Methods (a registry: each takes the validated matrix and returns labels and params)


def _method_kmeans(X, k, seed, progress, cancel, pca_dim, timings):
    import faiss

    n = X.shape[0]
    params: dict[str, Any] = {
        "n_groups_requested": k,
        "seed": seed,
        "niter": KMEANS_ITERATIONS,
        "refine_passes": REFINE_PASSES,
        "init": KMEANS_INIT,
        "gpu": faiss.get_num_gpus() > 0,
    }
    if k == 1:
        params["pca_dim"] = None
        return np.zeros(n, dtype=np.int32), params
    t = time.perf_counter()
    Z, dim = reduce(X, pca_dim, seed, progress, cancel)
    params["pca_dim"] = dim
    timings["reduce"] = time.perf_counter() - t

    t = time.perf_counter()
    sample_rows = min(n, k * TRAIN_POINTS_PER_GROUP)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, sample_rows, replace=False)) if sample_rows < n else None
    train = Z if sample is None else Z[sample]
    params["train_rows"] = int(train.shape[0])
    centroids = train_kmeans(
        train, k, seed=seed, niter=KMEANS_ITERATIONS, progress=progress, cancel=cancel
    )
    del train
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    labels, sums, _ = assign(Z, centroids, progress=progress, cancel=cancel, stage="assign")
    for _ in range(REFINE_PASSES):
        # Lloyd on the full set: the sample-trained centroids move to their members' mean.
        # Empty groups keep their centroid rather than vanish.
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = np.where(norms > 1e-12, sums / np.maximum(norms, 1e-12), centroids)
        centroids = centroids.astype(np.float32)
        labels, sums, _ = assign(Z, centroids, progress=progress, cancel=cancel, stage="refine")
    timings["assign"] = time.perf_counter() - t
    return labels, params


def _method_hdbscan(X, k, seed, progress, cancel, pca_dim, timings):
    n = X.shape[0]
    if n > HDBSCAN_MAX_ROWS:
        raise ValueError(
            f"method 'hdbscan' handles at most {HDBSCAN_MAX_ROWS:,} items (UMAP and HDBSCAN "
            f"time and memory grow too fast); got {n:,}. Use method 'auto' (the default) or "
            "'kmeans'."
        )
    min_size = max(5, n // (3 * k))
    params: dict[str, Any] = {"n_groups_requested": k, "seed": seed, "min_cluster_size": min_size}
    if n <= min_size:
        # Too few rows for a group of the minimum size: one group, as k-means would give.
        params["note"] = "fewer rows than the minimum group size: one group"
        return np.zeros(n, dtype=np.int32), params
    t = time.perf_counter()
    Z = normalised_copy(X, progress, cancel)
    n_components = 10
    if n > 4 * n_components + 2:
        import umap

        emit(progress, "umap", 0, 1, "steps")
        check_cancel(cancel)
        # n_jobs=1: a fixed random_state makes UMAP single-threaded anyway; saying so
        # avoids its warning.
        reducer = umap.UMAP(
            n_components=n_components,
            n_neighbors=min(15, n - 1),
            min_dist=0.0,
            metric="cosine",
            random_state=seed,
            n_jobs=1,
        )
        emb = reducer.fit_transform(Z).astype(np.float64)
        params["umap"] = {
            "n_components": n_components,
            "n_neighbors": min(15, n - 1),
            "min_dist": 0.0,
            "metric": "cosine",
        }
        emit(progress, "umap", 1, 1, "steps")
    else:
        emb = Z.astype(np.float64)
        params["umap"] = None
    timings["umap"] = time.perf_counter() - t
    check_cancel(cancel)

    import hdbscan

    t = time.perf_counter()
    emit(progress, "hdbscan", 0, 1, "steps")
    labels = hdbscan.HDBSCAN(min_cluster_size=min_size, core_dist_n_jobs=1).fit_predict(emb)
    labels = compact(labels)
    emit(progress, "hdbscan", 1, 1, "steps")
    if params["umap"] is not None:
        # UMAP joins every row to its nearest neighbours, so an isolated row ends up inside
        # some group in the reduced space. Rows far from their group in the ORIGINAL space
        # are returned to noise, as HDBSCAN would have marked them without UMAP.
        far = _far_members(Z, labels)
        labels[far] = -1
        params["noise_from_original_space"] = int(far.size)
    timings["hdbscan"] = time.perf_counter() - t
    params["noise_rows"] = int(np.sum(labels < 0))
    return labels, params


def _far_members(Z, labels):
    """Rows whose cosine to their group centroid is an outlier within the group (robust z).

    A row is far when its cosine is below median - 6 sigma, sigma = 1.4826 MAD of the group's
    cosines (at least 0.02, so a very tight group does not shed members that are merely less
    tight).
    """
    keep = labels >= 0
    if not keep.any():
        return np.zeros(0, dtype=np.int64)
    G = int(labels.max()) + 1
    cent = unit_rows(scatter_sum(labels[keep], Z[keep], G))
    idx = np.flatnonzero(keep)
    cos = np.einsum("ij,ij->i", Z[idx], cent[labels[idx]])
    order = np.lexsort((cos, labels[idx]))
    cos_sorted = cos[order]
    bounds = np.r_[0, np.cumsum(np.bincount(labels[idx], minlength=G))]
    far = []
    for g in range(G):
        c = cos_sorted[bounds[g] : bounds[g + 1]]
        if c.size < 4:
            continue
        med = np.median(c)
        sigma = max(1.4826 * np.median(np.abs(c - med)), FAR_MEMBER_MIN_SIGMA)
        n_far = int(np.searchsorted(c, med - FAR_MEMBER_SIGMAS * sigma))
        far.append(idx[order[bounds[g] : bounds[g] + n_far]])
    return np.sort(np.concatenate(far)) if far else np.zeros(0, dtype=np.int64)


def _method_graph(X, k, seed, progress, cancel, pca_dim, timings):
    from indexing.graph_merge import graph_merge, keyed_sample, row_keys

    granularity = timings.pop("granularity", 1.0)
    n = X.shape[0]
    params: dict[str, Any] = {"n_groups_requested": k, "seed": seed}
    if k == 1 or n < 3:
        params["pca_dim"] = None
        return np.zeros(n, dtype=np.int32), params
    t = time.perf_counter()
    emit(progress, "keys", 0, n)
    keys = row_keys(X)
    sample = keyed_sample(keys, min(n, PCA_SAMPLE_ROWS), seed)
    order = np.argsort(keys, kind="stable")
    Z, dim = reduce(X, pca_dim, seed, progress, cancel, sample=sample, order=order)
    del order
    params["pca_dim"] = dim
    timings["reduce"] = time.perf_counter() - t
    emit(progress, "group", 0, 1, "steps")
    labels, more = graph_merge(
        Z, keys, k, seed, train_kmeans, granularity=granularity, cancel=cancel, timings=timings
    )
    emit(progress, "group", 1, 1, "steps")
    params.update(more)
    return labels, params


AUTO_METHOD = "graph"
AUTO_GRAPH_MAX_ROWS = 1_000_000
AUTO_GRAPH_MIN_ROWS_PER_GROUP = 20
"""Above this many rows "auto" falls back to k-means (the graph method was measured up to 1M,
where it took less CPU than k-means: docs/benchmarks.md); pass method="graph" to use it."""
AUTO_COUNT = {"graph"}  # methods that choose the group count themselves when none is given

METHODS: dict[str, Callable] = {
    "graph": _method_graph,
    "kmeans": _method_kmeans,
    "hdbscan": _method_hdbscan,
}
