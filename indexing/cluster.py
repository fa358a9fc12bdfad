"""The grouping engine: embeddings in, coherent groups out, with the statistics that rank them.

A million vectors become a few thousand groups that a person decides one by one. The default
method, "graph" (indexing/graph_merge.py), cuts the rows into many k-means micro-clusters and
merges them along the graph of where they touch, with low-density rows in one noise group; it
chooses the group count from the data when none is given. "kmeans" is spherical k-means
(FAISS) in a PCA-reduced space: AFK-MC2 seeding (k-means++ quality,
which gives small classes a centroid of their own) and Lloyd iterations on a sample, then
assignment of every row in chunks, so memory stays flat. Groups are then summarised in the
ORIGINAL space: centroid, cohesion, representatives, boundary members and an impurity score
(how much a 2-way split of the group helps), so the doubtful groups can be shown first.
"hdbscan" (UMAP then HDBSCAN, up to 200,000 rows) is the density-based alternative that marks
noise as -1.

Everything here is a pure function of its arrays and arguments: no globals, no I/O.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexing.progress import Progress, ProgressEvent, check_cancel

log = logging.getLogger(__name__)

CHUNK_ROWS = 65536
"""Rows handled per chunk: 65536 x 512 float32 is 128 MB, so memory stays flat at any n."""

HDBSCAN_MAX_ROWS = 200_000
"""UMAP's neighbour graph and HDBSCAN's tree grow past a laptop's time budget above this."""

PCA_AUTO_DIM = 128
PCA_AUTO_MIN_ROWS = 20_000
PCA_SAMPLE_ROWS = 30_000
TRAIN_POINTS_PER_GROUP = 64  # k-means trains on a sample of this many rows per group
KMEANS_ITERATIONS = 10
KMEANS_INIT = "AFK_MC2"  # k-means++ quality at a fraction of its O(nkd) cost
REFINE_PASSES = 0  # full-set Lloyd passes after training (+0.0003 each at 1M)
IMPURITY_SAMPLE = 64  # members per group used for the 2-way split test
IMPURITY_ITERATIONS = 8
FAR_MEMBER_SIGMAS = 6.0  # hdbscan: members this many robust sigmas out become noise
FAR_MEMBER_MIN_SIGMA = 0.02


class InvalidEmbeddings(ValueError):
    """Rows that cannot be clustered (NaN, infinite or all-zero); `rows` are their indices."""

    def __init__(self, reason: str, rows: np.ndarray, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.rows = rows


@dataclass(frozen=True)
class GroupStats:
    """Per-group statistics; every array is indexed by group id 0..G-1.

    Attributes:
        size: int64 members per group.
        cohesion: float32 mean cosine of the members to the group centroid.
        impurity: float32 in [0, 1]; the relative drop in within-group cosine error that a
            2-way split of the group achieves. Higher = more likely to mix several kinds.
        representatives: per group, row indices nearest the centroid, best first.
        boundary: per group, row indices farthest from the centroid, worst first.
    """

    size: np.ndarray
    cohesion: np.ndarray
    impurity: np.ndarray
    representatives: list
    boundary: list


@dataclass(frozen=True)
class ClusterResult:
    """The grouping of n rows into G groups and T coarse topics.

    Attributes:
        labels: int32 (n,) group id per row; -1 = noise (hdbscan only).
        centroids: float32 (G, d) unit vectors in the original space (mean of members).
        topics: int32 (G,) coarse topic id per group.
        topic_centroids: float32 (T, d) unit vectors in the original space.
        stats: per-group statistics.
        method: the method that ran ("kmeans" or "hdbscan").
        n_groups: G.
        params: what was done: method, PCA dimension, iterations, seed, timings (seconds).
        low_density: bool (G,): True for a group of low-density rows (outliers, junk), which
            one "noise" decision can settle ("graph" method; all False otherwise).
    """

    labels: np.ndarray
    centroids: np.ndarray
    topics: np.ndarray
    topic_centroids: np.ndarray
    stats: GroupStats
    method: str
    n_groups: int
    params: dict = field(default_factory=dict)
    low_density: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


# --------------------------------------------------------------------------------------------
# Public functions


def default_n_groups(n: int) -> int:
    """A group count a person can get through: about one group per 300 items.

    Args:
        n: number of items.

    Returns:
        round(n / 300) clipped to [10, 5000], and never more than n (0 for n <= 0).
    """
    if n <= 0:
        return 0
    return int(min(n, max(10, min(5000, round(n / 300)))))


def cluster_embeddings(
    X: np.ndarray,
    n_groups: int | None = None,
    method: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    *,
    pca_dim: Any = "auto",
    n_topics: int | None = None,
    n_repr: int = 16,
    granularity: float = 1.0,
) -> ClusterResult:
    """Group embeddings into coherent groups, with topics and per-group statistics.

    Args:
        X: (n, d) float32 or float16 embeddings, possibly a read-only memmap; rows need not be
            normalised (cosine geometry is used throughout). X is read in chunks, never copied
            whole.
        n_groups: wanted number of groups, the noise group included (clipped to n). None: the
            "graph" method chooses it from the data (see `granularity`); "kmeans" and
            "hdbscan" use `default_n_groups(n)`. For "hdbscan" it sets the minimum group size
            to about n / (3 * n_groups).
        method: "auto" ("graph" from 20 rows a group up to 1,000,000 rows, else "kmeans": see
            `auto_method`), "graph",
            "kmeans" or "hdbscan"; see `available_methods()`.
            "hdbscan" runs UMAP single-threaded (a fixed seed requires it): minutes at 100k.
        seed: the same X and seed give identical labels.
        progress: called with ProgressEvent at stage boundaries and per chunk.
        cancel: zero-argument callable; when it returns True the job raises Cancelled at the
            next chunk.
        pca_dim: "auto" (128 when d > 128 and n >= 20,000), None (no reduction) or an int.
        n_topics: number of coarse topics (default about sqrt(G)).
        n_repr: representatives and boundary rows kept per group.
        granularity: with n_groups None and the "graph" method, > 1 asks for more and finer
            groups, < 1 for fewer and coarser ones (the resolution of the modularity cut).

    Returns:
        ClusterResult.

    Raises:
        InvalidEmbeddings (a ValueError): NaN, infinite or all-zero rows; `rows` names them.
        ValueError: empty input, wrong shape, unknown method, or too many rows for hdbscan.
        Cancelled: `cancel` said stop.
    """
    # Rows are validated chunk by chunk in the first full pass over X (no extra pass).
    X = _check_matrix(X, validate=False)
    name = auto_method(X.shape[0], n_groups) if method == "auto" else method
    if name not in _METHODS:
        raise ValueError(
            f"unknown clustering method {method!r}; known: auto, " + ", ".join(available_methods())
        )
    n = X.shape[0]
    if n_groups is not None and int(n_groups) < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    if not granularity > 0:
        raise ValueError(f"granularity must be positive, got {granularity}")
    k = None if n_groups is None else min(int(n_groups), n)
    if k is None and name not in _AUTO_COUNT:
        k = min(default_n_groups(n), n)
    t0 = time.perf_counter()
    timings: dict[str, float] = {"granularity": granularity} if k is None else {}
    labels, params = _METHODS[name](X, k, seed, progress, cancel, pca_dim, timings)
    timings.pop("granularity", None)
    return _finish(X, labels, name, params, timings, seed, n_topics, n_repr, progress, cancel, t0)


def available_methods() -> list[str]:
    """The registered clustering methods ("auto" picks one by size, see `auto_method`)."""
    return sorted(_METHODS)


def auto_method(n: int, n_groups: int | None = None) -> str:
    """The method "auto" means for n rows and the wanted group count.

    "graph" (more accurate, docs/benchmarks.md) when every group can hold enough rows for its
    micro-clusters to mean something (AUTO_GRAPH_MIN_ROWS_PER_GROUP) and up to
    AUTO_GRAPH_MAX_ROWS; plain spherical k-means otherwise: on a few rows per group the graph's
    micro-clusters are single rows that look like noise, and above the size limit (the largest
    measured) it is untested.
    """
    groups = n_groups if n_groups is not None else default_n_groups(n)
    if n > AUTO_GRAPH_MAX_ROWS or n < AUTO_GRAPH_MIN_ROWS_PER_GROUP * max(1, groups):
        return "kmeans"
    return AUTO_METHOD


def split_group(X_subset: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Split the rows of one group into k sub-groups (spherical k-means, AFK-MC2 seeding).

    Args:
        X_subset: (m, d) embeddings of the group's members.
        k: wanted sub-groups; clipped to m.
        seed: same input and seed give the same labels.

    Returns:
        int32 (m,) labels 0..k'-1, numbered by first appearance, k' <= k (fewer only when rows
        coincide).
    """
    X_subset = _check_matrix(X_subset)
    m = X_subset.shape[0]
    k = max(1, min(int(k), m))
    if k == 1:
        return np.zeros(m, dtype=np.int32)
    Z = _normalised_copy(X_subset)
    centroids = _train_kmeans(Z, k, seed=seed, niter=KMEANS_ITERATIONS)
    labels, _, _ = _assign(Z, centroids)
    return _renumber(labels)


def group_statistics(
    X: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    n_repr: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> GroupStats:
    """Size, cohesion, impurity, representatives and boundary members of every group.

    Args:
        X: (n, d) embeddings (any scale; rows are normalised on the fly, in chunks).
        labels: (n,) group id per row; -1 rows (noise) are ignored.
        centroids: (G, d) group centroids in the space of X.
        n_repr: rows kept per group for representatives and boundary.
        seed: picks the member sample used for impurity.
        progress, cancel: as for `cluster_embeddings`.

    Returns:
        GroupStats.
    """
    X = _check_matrix(X, validate=False)
    labels = np.asarray(labels)
    centroids = np.asarray(centroids, dtype=np.float32)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"labels has shape {labels.shape}; expected ({X.shape[0]},)")
    G = centroids.shape[0]
    if labels.size and labels.max() >= G:
        raise ValueError(f"labels go up to {labels.max()} but there are only {G} centroids")
    cn = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    n = X.shape[0]
    cos = np.zeros(n, dtype=np.float32)
    for a, b in _chunks(n):
        check_cancel(cancel)
        lab = labels[a:b]
        keep = lab >= 0
        rows = _normalised_rows(X, a, b)
        cos[a:b][keep] = np.einsum("ij,ij->i", rows[keep], cn[lab[keep]])
        _emit(progress, "statistics", b, n)
    member = labels >= 0
    size = np.bincount(labels[member], minlength=G).astype(np.int64)
    cohesion = (
        np.bincount(labels[member], weights=cos[member], minlength=G) / np.maximum(size, 1)
    ).astype(np.float32)

    # One sort by (group, -cosine) gives every group's nearest and farthest members.
    idx = np.flatnonzero(member)
    order = idx[np.lexsort((-cos[idx], labels[idx]))]
    ends = np.cumsum(size)
    starts = ends - size
    r = max(0, int(n_repr))
    representatives = [order[s : s + min(r, z)].copy() for s, z in zip(starts, size)]
    boundary = [order[e - min(r, z) : e][::-1].copy() for e, z in zip(ends, size)]

    check_cancel(cancel)
    impurity = _impurity(X, labels, size, seed, cancel)
    _emit(progress, "statistics", n, n)
    return GroupStats(
        size=size,
        cohesion=cohesion,
        impurity=impurity,
        representatives=representatives,
        boundary=boundary,
    )


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
    Z, dim = _reduce(X, pca_dim, seed, progress, cancel)
    params["pca_dim"] = dim
    timings["reduce"] = time.perf_counter() - t

    t = time.perf_counter()
    sample_rows = min(n, k * TRAIN_POINTS_PER_GROUP)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, sample_rows, replace=False)) if sample_rows < n else None
    train = Z if sample is None else Z[sample]
    params["train_rows"] = int(train.shape[0])
    centroids = _train_kmeans(
        train, k, seed=seed, niter=KMEANS_ITERATIONS, progress=progress, cancel=cancel
    )
    del train
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    labels, sums, _ = _assign(Z, centroids, progress=progress, cancel=cancel, stage="assign")
    for _ in range(REFINE_PASSES):
        # Lloyd on the full set: the sample-trained centroids move to their members' mean.
        # Empty groups keep their centroid rather than vanish.
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = np.where(norms > 1e-12, sums / np.maximum(norms, 1e-12), centroids)
        centroids = centroids.astype(np.float32)
        labels, sums, _ = _assign(Z, centroids, progress=progress, cancel=cancel, stage="refine")
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
    Z = _normalised_copy(X, progress, cancel)
    n_components = 10
    if n > 4 * n_components + 2:
        import umap

        _emit(progress, "umap", 0, 1, "steps")
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
        _emit(progress, "umap", 1, 1, "steps")
    else:
        emb = Z.astype(np.float64)
        params["umap"] = None
    timings["umap"] = time.perf_counter() - t
    check_cancel(cancel)

    import hdbscan

    t = time.perf_counter()
    _emit(progress, "hdbscan", 0, 1, "steps")
    labels = hdbscan.HDBSCAN(min_cluster_size=min_size, core_dist_n_jobs=1).fit_predict(emb)
    labels = _compact(labels)
    _emit(progress, "hdbscan", 1, 1, "steps")
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
    cent = _unit(_scatter_sum(labels[keep], Z[keep], G))
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
    _emit(progress, "keys", 0, n)
    keys = row_keys(X)
    sample = keyed_sample(keys, min(n, PCA_SAMPLE_ROWS), seed)
    order = np.argsort(keys, kind="stable")
    Z, dim = _reduce(X, pca_dim, seed, progress, cancel, sample=sample, order=order)
    del order
    params["pca_dim"] = dim
    timings["reduce"] = time.perf_counter() - t
    _emit(progress, "group", 0, 1, "steps")
    labels, more = graph_merge(
        Z, keys, k, seed, _train_kmeans, granularity=granularity, cancel=cancel, timings=timings
    )
    _emit(progress, "group", 1, 1, "steps")
    params.update(more)
    return labels, params


AUTO_METHOD = "graph"
AUTO_GRAPH_MAX_ROWS = 1_000_000
AUTO_GRAPH_MIN_ROWS_PER_GROUP = 20
"""Above this many rows "auto" falls back to k-means (the graph method was measured up to 1M,
where it took less CPU than k-means: docs/benchmarks.md); pass method="graph" to use it."""
_AUTO_COUNT = {"graph"}  # methods that choose the group count themselves when none is given

_METHODS: dict[str, Callable] = {
    "graph": _method_graph,
    "kmeans": _method_kmeans,
    "hdbscan": _method_hdbscan,
}


# --------------------------------------------------------------------------------------------
# Shared steps


def _finish(X, labels, name, params, timings, seed, n_topics, n_repr, progress, cancel, t0):
    labels = _compact(labels)
    G = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    t = time.perf_counter()
    sums = _group_sums(X, labels, G, progress, cancel)
    centroids = _unit(sums)
    timings["centroids"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = group_statistics(
        X, labels, centroids, n_repr=n_repr, seed=seed, progress=progress, cancel=cancel
    )
    timings["statistics"] = time.perf_counter() - t

    t = time.perf_counter()
    check_cancel(cancel)
    topics, topic_centroids, T = _topics(sums, stats.size, n_topics, seed)
    _emit(progress, "topics", 1, 1, "steps")
    timings["topics"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    params = {"method": name, **params, "n_topics": T, "timings": timings}
    log.info(
        "clustered %d rows into %d groups (%s) in %.1f s", X.shape[0], G, name, timings["total"]
    )
    low_density = np.zeros(G, dtype=bool)
    low_density[[g for g in params.get("low_density_groups", []) if 0 <= g < G]] = True
    return ClusterResult(
        labels=labels,
        centroids=centroids,
        topics=topics,
        topic_centroids=topic_centroids,
        stats=stats,
        method=name,
        n_groups=G,
        params=params,
        low_density=low_density,
    )


def _topics(sums, size, n_topics, seed):
    """Coarse topics: spherical k-means over the group centroids, weighted by group size."""
    G, d = sums.shape
    if G == 0:
        return np.zeros(0, np.int32), np.zeros((0, d), np.float32), 0
    T = max(1, round(math.sqrt(G))) if n_topics is None else int(n_topics)
    T = max(1, min(T, G))
    cents = _unit(sums)
    if T == 1:
        topics = np.zeros(G, dtype=np.int32)
    else:
        tc = _train_kmeans(
            cents, T, seed=seed, niter=KMEANS_ITERATIONS, weights=size.astype(np.float32)
        )
        topics, _, _ = _assign(cents, tc)
        topics = _compact(topics)
    T = int(topics.max()) + 1
    topic_sums = np.zeros((T, d), dtype=np.float64)
    np.add.at(topic_sums, topics, sums)
    return topics, _unit(topic_sums), T


def _check_matrix(X, validate: bool = True):
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n, d); got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("no embeddings to cluster (0 rows); embed some items first")
    if X.shape[1] == 0:
        raise ValueError("embeddings have dimension 0")
    if X.dtype.kind != "f":
        X = np.asarray(X, dtype=np.float32)
    if validate:
        _validate(X)
    return X


def _validate(X):
    """Raise InvalidEmbeddings naming the first bad rows (NaN/inf first, then zero rows)."""
    n = X.shape[0]
    bad_finite: list[np.ndarray] = []
    bad_zero: list[np.ndarray] = []
    for a, b in _chunks(n):
        rows = np.asarray(X[a:b], dtype=np.float32)
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            bad_finite.append(a + np.flatnonzero(~finite))
        zero = finite & ~np.any(rows != 0, axis=1)
        if zero.any():
            bad_zero.append(a + np.flatnonzero(zero))
    for reason, found in (("not finite", bad_finite), ("zero", bad_zero)):
        if found:
            rows = np.concatenate(found)
            what = "NaN or infinite values" if reason == "not finite" else "all-zero vectors"
            shown = ", ".join(str(int(i)) for i in rows[:10])
            more = f" and {rows.size - 10} more" if rows.size > 10 else ""
            raise InvalidEmbeddings(
                reason,
                rows,
                f"{rows.size} embedding row(s) hold {what}: rows {shown}{more}. Re-embed or "
                "exclude those items before clustering.",
            )


def _chunks(n: int, size: int | None = None):
    size = size or CHUNK_ROWS
    for a in range(0, n, size):
        yield a, min(n, a + size)


def _emit(progress, stage, done, total, unit="rows"):
    if progress is not None:
        progress(ProgressEvent(stage, int(done), int(total), unit))


def _normalised_rows(X, a, b, check=True):
    """Rows a:b of X as fresh unit float32 rows; with `check`, bad rows raise InvalidEmbeddings."""
    rows = np.array(X[a:b], dtype=np.float32)  # a fresh float32 chunk (X may be a memmap)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if check and not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
        _validate(X)  # scans from the start so the message names the first bad rows
        huge = a + np.flatnonzero(~np.isfinite(norms[:, 0]))  # finite values, infinite norm
        raise InvalidEmbeddings(
            "overflow",
            huge,
            f"embedding rows {', '.join(map(str, huge[:10]))} have values "
            "too large to normalise; re-embed those items",
        )
    rows /= np.maximum(norms, 1e-12)
    return rows


def _normalised_copy(X, progress=None, cancel=None):
    n, d = X.shape
    out = np.empty((n, d), dtype=np.float32)
    for a, b in _chunks(n):
        check_cancel(cancel)
        out[a:b] = _normalised_rows(X, a, b)
        _emit(progress, "normalise", b, n)
    return out


def _unit(A):
    A = np.asarray(A, dtype=np.float64)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return (A / np.maximum(norms, 1e-12)).astype(np.float32)


def _reduce(X, pca_dim, seed, progress, cancel, sample=None, order=None):
    """Unit rows of X projected on the top principal axes (uncentred, so cosines survive).

    The projection is uncentred: the axes are those of the second-moment matrix, so the
    direction all embeddings share is kept and the cosine between two projected rows stays
    close to their original cosine, which is what spherical k-means needs.

    With `sample` (row indices, in the order to use) and `order` (a permutation of the rows)
    the sample is read in the given order and the rows are projected in chunks of `order`, so
    every floating-point sum sees the same operands in the same order whatever the row order
    of X: the result is then independent of it.
    """
    n, d = X.shape
    if pca_dim == "auto":
        dim = PCA_AUTO_DIM if (d > PCA_AUTO_DIM and n >= PCA_AUTO_MIN_ROWS) else None
    elif pca_dim is None:
        dim = None
    else:
        dim = int(pca_dim)
        if dim < 1:
            raise ValueError(f"pca_dim must be positive, 'auto' or None; got {pca_dim}")
        dim = None if dim >= d else dim
    if dim is None:
        return _normalised_copy(X, progress, cancel), None
    if sample is None:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, min(n, PCA_SAMPLE_ROWS), replace=False))
    S = _gather(X, sample)
    norms = np.linalg.norm(S, axis=1, keepdims=True)
    if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
        _validate(X)
    S /= np.maximum(norms, 1e-12)
    moment = (S.T @ S).astype(np.float64) / S.shape[0]  # float32 product: 3x faster, ample
    from scipy.linalg import eigh

    # Only the top `dim` axes, on one BLAS thread: threaded LAPACK took 3.5 s instead of 0.1 s
    # for this 512 x 512 matrix on a busy 2-core machine.
    with _one_blas_thread():
        _, vecs = eigh(moment, subset_by_index=[d - dim, d - 1])
    W = np.ascontiguousarray(vecs[:, ::-1], dtype=np.float32)
    del S, moment
    Z = np.empty((n, dim), dtype=np.float32)
    for a, b in _chunks(n):
        check_cancel(cancel)
        if order is None:
            rows = _normalised_rows(X, a, b)
        else:
            rows = _gather(X, order[a:b])
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
                _normalised_copy(X)  # raises InvalidEmbeddings naming the first bad rows
            rows /= norms
        z = rows @ W
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        # A row orthogonal to every kept axis would have no direction; keep it at zero
        # (it joins whichever group wins the tie) rather than divide by zero.
        z /= np.maximum(norms, 1e-12)
        if order is None:
            Z[a:b] = z
        else:
            Z[order[a:b]] = z
        _emit(progress, "reduce", b, n)
    return Z, dim


def _gather(X, idx):
    """float32 rows X[idx] in the order of idx, read in row order (kind to a memmap)."""
    p = np.argsort(idx, kind="stable")
    out = np.empty((idx.size, X.shape[1]), dtype=np.float32)
    out[p] = np.asarray(X[idx[p]], dtype=np.float32)
    return out


def _one_blas_thread():
    """A context that runs BLAS/LAPACK on one thread (threadpoolctl ships with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it, run as configured
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _train_kmeans(Z, k, *, seed, niter, progress=None, cancel=None, weights=None):
    """Spherical k-means centroids of the rows of Z (all of them: sample before calling).

    FAISS seeds with AFK-MC2, an MCMC approximation of k-means++ (far better than random
    seeding on unbalanced classes, where small classes would lose their centroid to big ones;
    exact k-means++ seeding costs 8x more CPU at 1M rows; at 100k both reach the same
    accuracy), then runs Lloyd
    iterations in steps of a few, so that progress is reported and `cancel` is honoured
    between steps.
    """
    import faiss

    m, d = Z.shape
    k = min(k, m)
    gpu = faiss.get_num_gpus() > 0
    opts: dict[str, Any] = {
        "spherical": True,
        "seed": int(seed) % (2**31),
        "min_points_per_centroid": 1,
        "max_points_per_centroid": m // k + 1,
    }  # never let FAISS re-sample
    if gpu:
        opts["gpu"] = True
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    centroids = None
    done = 0
    step = 5
    _emit(progress, "train", 0, niter, "iterations")
    while done < niter:
        check_cancel(cancel)
        it = min(step, niter - done)
        if centroids is None:
            km = faiss.Kmeans(
                d,
                k,
                niter=it,
                init_method=getattr(faiss, "ClusteringInitMethod_" + KMEANS_INIT),
                **opts,
            )
            km.train(Z, weights=weights)
        else:
            km = faiss.Kmeans(d, k, niter=it, **opts)
            km.train(Z, weights=weights, init_centroids=centroids)
        centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        done += it
        _emit(progress, "train", done, niter, "iterations")
    return centroids


def _assign(Z, centroids, progress=None, cancel=None, stage="assign"):
    """Nearest centroid (by cosine) of every row, in chunks; also the per-group row sums."""
    import faiss

    n, d = Z.shape
    k = centroids.shape[0]
    index = faiss.IndexFlatIP(d)
    if faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    labels = np.empty(n, dtype=np.int32)
    sims = np.empty(n, dtype=np.float32)
    sums = np.zeros((k, d), dtype=np.float64)
    for a, b in _chunks(n):
        check_cancel(cancel)
        rows = np.ascontiguousarray(Z[a:b], dtype=np.float32)
        D, I = index.search(rows, 1)
        labels[a:b] = I[:, 0]
        sims[a:b] = D[:, 0]
        sums += _scatter_sum(I[:, 0], rows, k)
        _emit(progress, stage, b, n)
    return labels, sums, sims


def _scatter_sum(labels, rows, k):
    """Per-label sums of rows as a (k, d) float64 array (a sparse product: no Python loop)."""
    from scipy import sparse

    m = rows.shape[0]
    onehot = sparse.csr_matrix((np.ones(m, dtype=np.float32), (labels, np.arange(m))), shape=(k, m))
    return np.asarray(onehot @ rows, dtype=np.float64)


def _group_sums(X, labels, G, progress, cancel):
    """Sum of the unit rows of every group in the original space, read in chunks."""
    n, d = X.shape
    sums = np.zeros((G, d), dtype=np.float64)
    if G == 0:
        return sums
    for a, b in _chunks(n):
        check_cancel(cancel)
        lab = labels[a:b]
        keep = lab >= 0
        rows = _normalised_rows(X, a, b)
        sums += _scatter_sum(lab[keep], rows[keep], G)
        _emit(progress, "centroids", b, n)
    return sums


def _compact(labels):
    """Renumber labels to 0..G-1 in order of group id, dropping empty groups; -1 stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    used = np.unique(labels[labels >= 0])
    out = np.full(labels.shape, -1, dtype=np.int32)
    if used.size:
        lookup = np.full(int(used.max()) + 1, -1, dtype=np.int32)
        lookup[used] = np.arange(used.size, dtype=np.int32)
        keep = labels >= 0
        out[keep] = lookup[labels[keep]]
    return out


def _renumber(labels):
    """Renumber labels by first appearance (so the output does not depend on centroid order)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse].astype(np.int32)


def _impurity(X, labels, size, seed, cancel):
    """Relative gain in within-group cosine error of a 2-way split, for every group at once.

    Each group contributes a sample of up to IMPURITY_SAMPLE members. Groups are processed in
    batches as padded (B, m, d) arrays; the split is a spherical 2-means seeded by the member
    farthest from the centroid and the member farthest from that one (deterministic), run
    for a few iterations. impurity = (E1 - E2) / E1, where E1 = sum(1 - cos to the centroid)
    and E2 = the same to the nearer of the two halves. Two distinct kinds merged give a large
    drop; a single blob of any spread gives a small one.
    """
    G = size.shape[0]
    impurity = np.zeros(G, dtype=np.float32)
    if G == 0:
        return impurity
    m = IMPURITY_SAMPLE
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(labels >= 0)
    # A random key per row, sorted within each group: the first m rows are a uniform sample.
    key = rng.random(idx.size)
    order = idx[np.lexsort((key, labels[idx]))]
    ends = np.cumsum(size)
    starts = ends - size
    take = np.minimum(size, m)
    batch = max(1, (8 * 1024 * 1024) // (m * X.shape[1]))  # ~32 MB of float32 per batch
    for g0 in range(0, G, batch):
        check_cancel(cancel)
        g1 = min(G, g0 + batch)
        counts = take[g0:g1]
        pos = np.arange(m)[None, :]
        mask = pos < counts[:, None]
        flat = order[(starts[g0:g1, None] + pos)[mask]]
        sort = np.argsort(flat)  # read X in row order: friendlier to a memmap
        vals = np.asarray(X[flat[sort]], dtype=np.float32)
        block = np.zeros((g1 - g0, m, X.shape[1]), dtype=np.float32)
        tmp = np.empty_like(vals)
        tmp[sort] = vals
        tmp /= np.maximum(np.linalg.norm(tmp, axis=1, keepdims=True), 1e-12)
        block[mask] = tmp
        impurity[g0:g1] = _split_gain(block, mask)
    impurity[size < 4] = 0.0
    return impurity


def _split_gain(block, mask):
    """(E1 - E2) / E1 of a spherical 2-means per group; block (B, m, d), mask (B, m)."""
    w = mask.astype(np.float32)
    c = _unit_batch(np.einsum("bm,bmd->bd", w, block))
    cos_c = np.einsum("bmd,bd->bm", block, c)
    e1 = np.sum(w * (1.0 - cos_c), axis=1)
    # Seeds: the member farthest from the centroid, then the member farthest from it.
    far = np.argmin(np.where(mask, cos_c, np.inf), axis=1)
    b_idx = np.arange(block.shape[0])
    a = block[b_idx, far]
    cos_a = np.einsum("bmd,bd->bm", block, a)
    b = block[b_idx, np.argmin(np.where(mask, cos_a, np.inf), axis=1)]
    for _ in range(IMPURITY_ITERATIONS):
        cos_a = np.einsum("bmd,bd->bm", block, a)
        cos_b = np.einsum("bmd,bd->bm", block, b)
        to_a = (cos_a >= cos_b) & mask
        to_b = (cos_a < cos_b) & mask
        sa = np.einsum("bm,bmd->bd", to_a.astype(np.float32), block)
        sb = np.einsum("bm,bmd->bd", to_b.astype(np.float32), block)
        a = np.where(to_a.any(axis=1, keepdims=True), _unit_batch(sa), a)
        b = np.where(to_b.any(axis=1, keepdims=True), _unit_batch(sb), b)
    cos_a = np.einsum("bmd,bd->bm", block, a)
    cos_b = np.einsum("bmd,bd->bm", block, b)
    e2 = np.sum(w * (1.0 - np.maximum(cos_a, cos_b)), axis=1)
    gain = np.where(e1 > 1e-9, (e1 - e2) / np.maximum(e1, 1e-9), 0.0)
    return np.clip(gain, 0.0, 1.0).astype(np.float32)


def _unit_batch(A):
    return A / np.maximum(np.linalg.norm(A, axis=-1, keepdims=True), 1e-12)
