"""What ranks a group for review: centroid, cohesion, representatives, boundary, impurity, topics.

Statistics are computed in the ORIGINAL embedding space whatever space the groups were found in,
so a group's numbers mean the same for every grouping method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexing.cluster_steps import (
    KMEANS_ITERATIONS,
    assign,
    check_matrix,
    chunks,
    compact,
    emit,
    normalised_rows,
    scatter_sum,
    train_kmeans,
    unit_batch,
    unit_rows,
)
from indexing.progress import Progress, check_cancel

IMPURITY_SAMPLE = 64  # members per group used for the 2-way split test
IMPURITY_ITERATIONS = 8


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
    X = check_matrix(X, validate=False)
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
    for a, b in chunks(n):
        check_cancel(cancel)
        lab = labels[a:b]
        keep = lab >= 0
        rows = normalised_rows(X, a, b)
        cos[a:b][keep] = np.einsum("ij,ij->i", rows[keep], cn[lab[keep]])
        emit(progress, "statistics", b, n)
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
    emit(progress, "statistics", n, n)
    return GroupStats(
        size=size,
        cohesion=cohesion,
        impurity=impurity,
        representatives=representatives,
        boundary=boundary,
    )


def group_topics(sums, size, n_topics, seed):
    """Coarse topics: spherical k-means over the group centroids, weighted by group size."""
    G, d = sums.shape
    if G == 0:
        return np.zeros(0, np.int32), np.zeros((0, d), np.float32), 0
    T = max(1, round(math.sqrt(G))) if n_topics is None else int(n_topics)
    T = max(1, min(T, G))
    cents = unit_rows(sums)
    if T == 1:
        topics = np.zeros(G, dtype=np.int32)
    else:
        tc = train_kmeans(
            cents, T, seed=seed, niter=KMEANS_ITERATIONS, weights=size.astype(np.float32)
        )
        topics, _, _ = assign(cents, tc)
        topics = compact(topics)
    T = int(topics.max()) + 1
    topic_sums = np.zeros((T, d), dtype=np.float64)
    np.add.at(topic_sums, topics, sums)
    return topics, unit_rows(topic_sums), T


def group_sums(X, labels, G, progress, cancel):
    """Sum of the unit rows of every group in the original space, read in chunks."""
    n, d = X.shape
    sums = np.zeros((G, d), dtype=np.float64)
    if G == 0:
        return sums
    for a, b in chunks(n):
        check_cancel(cancel)
        lab = labels[a:b]
        keep = lab >= 0
        rows = normalised_rows(X, a, b)
        sums += scatter_sum(lab[keep], rows[keep], G)
        emit(progress, "centroids", b, n)
    return sums


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
    c = unit_batch(np.einsum("bm,bmd->bd", w, block))
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
        a = np.where(to_a.any(axis=1, keepdims=True), unit_batch(sa), a)
        b = np.where(to_b.any(axis=1, keepdims=True), unit_batch(sb), b)
    cos_a = np.einsum("bmd,bd->bm", block, a)
    cos_b = np.einsum("bmd,bd->bm", block, b)
    e2 = np.sum(w * (1.0 - np.maximum(cos_a, cos_b)), axis=1)
    gain = np.where(e1 > 1e-9, (e1 - e2) / np.maximum(e1, 1e-9), 0.0)
    return np.clip(gain, 0.0, 1.0).astype(np.float32)
