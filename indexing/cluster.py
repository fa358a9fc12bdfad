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

This module is the entry point and the result; the methods live in `cluster_methods`, the
row-chunked numeric steps in `cluster_steps`, and the per-group statistics in `group_stats`.
Everything here is a pure function of its arrays and arguments: no globals, no I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexing.cluster_methods import (
    AUTO_COUNT,
    AUTO_GRAPH_MAX_ROWS,
    AUTO_GRAPH_MIN_ROWS_PER_GROUP,
    AUTO_METHOD,
    METHODS,
)
from indexing.cluster_steps import (
    KMEANS_ITERATIONS,
    InvalidEmbeddings,
    assign,
    check_matrix,
    compact,
    emit,
    normalised_copy,
    renumber,
    train_kmeans,
    unit_rows,
)
from indexing.group_stats import GroupStats, group_statistics, group_sums, group_topics
from indexing.progress import Progress, check_cancel

log = logging.getLogger(__name__)

__all__ = [  # the engine's public face; InvalidEmbeddings is what cluster_embeddings raises
    "ClusterResult", "GroupStats", "InvalidEmbeddings", "auto_method", "available_methods",
    "cluster_embeddings", "default_n_groups", "group_statistics", "split_group",
]


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
    X = check_matrix(X, validate=False)
    name = auto_method(X.shape[0], n_groups) if method == "auto" else method
    if name not in METHODS:
        raise ValueError(
            f"unknown clustering method {method!r}; known: auto, " + ", ".join(available_methods())
        )
    n = X.shape[0]
    if n_groups is not None and int(n_groups) < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    if not granularity > 0:
        raise ValueError(f"granularity must be positive, got {granularity}")
    k = None if n_groups is None else min(int(n_groups), n)
    if k is None and name not in AUTO_COUNT:
        k = min(default_n_groups(n), n)
    t0 = time.perf_counter()
    timings: dict[str, float] = {"granularity": granularity} if k is None else {}
    labels, params = METHODS[name](X, k, seed, progress, cancel, pca_dim, timings)
    timings.pop("granularity", None)
    return _finish(X, labels, name, params, timings, seed, n_topics, n_repr, progress, cancel, t0)


def available_methods() -> list[str]:
    """The registered clustering methods ("auto" picks one by size, see `auto_method`)."""
    return sorted(METHODS)


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
    X_subset = check_matrix(X_subset)
    m = X_subset.shape[0]
    k = max(1, min(int(k), m))
    if k == 1:
        return np.zeros(m, dtype=np.int32)
    Z = normalised_copy(X_subset)
    centroids = train_kmeans(Z, k, seed=seed, niter=KMEANS_ITERATIONS)
    labels, _, _ = assign(Z, centroids)
    return renumber(labels)


# --------------------------------------------------------------------------------------------
# Shared steps


def _finish(X, labels, name, params, timings, seed, n_topics, n_repr, progress, cancel, t0):
    labels = compact(labels)
    G = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    t = time.perf_counter()
    sums = group_sums(X, labels, G, progress, cancel)
    centroids = unit_rows(sums)
    timings["centroids"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = group_statistics(
        X, labels, centroids, n_repr=n_repr, seed=seed, progress=progress, cancel=cancel
    )
    timings["statistics"] = time.perf_counter() - t

    t = time.perf_counter()
    check_cancel(cancel)
    topics, topic_centroids, T = group_topics(sums, stats.size, n_topics, seed)
    emit(progress, "topics", 1, 1, "steps")
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
