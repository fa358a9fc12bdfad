"""The one big search of label suggestions: every sampled member against every labelled item.

Building a vote state (`curator/suggest_votes.py`) looks up the nearest labelled items of each
group's sampled members. At 1M items and 3,000 groups that is ~24,000 members against ~50,000
labelled items in 512 dimensions: an exact search costs ~6e11 multiply-adds, about 22 s of CPU on
this project's 2-core reference machine. Above `EXACT_PAIRS` member-item pairs the search goes
through cells instead (an inverted file, computed with BLAS):

* the labelled items are cut into ~sqrt(n) cells by a spherical k-means on a sample of them
  (faiss, a few iterations: it only has to make compact cells);
* each member probes the `PROBE_SHARE` of cells whose centres are nearest to it (at least
  `MIN_PROBES`), and is compared exactly, in float32, with every item of those cells;
* the work is done cell by cell: the members probing a cell are multiplied by the cell's items as
  one matrix product, so the cost is that of a dense BLAS product over ~1/10 of the pairs;
* on one thread: each cell's product is small (~1,400 x 512 by 512 x ~220 at 1M), and BLAS and
  faiss threads woken for it spend more CPU time waiting on each other than they save (at 1M:
  ~4.5 s of CPU instead of ~7.2 s, and less wall time too on the loaded 2-core machine; the same
  neighbours up to float rounding, see docs/benchmarks.md).

Members whose nearest labelled items lie in a probed cell get the same neighbour lists as the exact
search; the vote weighs neighbours by their gap to the nearest one (a narrow kernel), so a far
neighbour missed moves the vote little. `bench/suggest.py --first-call` prints, beside the times,
how many suggestions agree with the exact search's and their accuracy against an oracle.
"""

from __future__ import annotations

import numpy as np

EXACT_PAIRS = 100_000_000
"""Up to this many (member, labelled item) pairs the search is exact (~2 s of CPU at 512-d)."""

PROBE_SHARE = 0.06
"""Share of cells each member probes."""

MIN_PROBES = 8
"""Fewest cells a member probes."""

TRAIN_POINTS_PER_CELL = 32
"""Labelled items per cell the k-means is trained on (a fixed sample)."""


def search(Q: np.ndarray, X: np.ndarray, kk: int, exact_pairs: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Top-kk inner products of each row of Q among the rows of X, best first.

    Exact up to `exact_pairs` pairs of rows, through cells beyond (see the module doc).

    Args:
        Q: (m, d) float32 unit query rows.
        X: (n, d) float32 unit rows searched.
        kk: neighbours per query.
        exact_pairs: the most m * n pairs searched exactly (default `EXACT_PAIRS`).

    Returns:
        (sims float32 (m, kk), positions in X int64 (m, kk)); -inf and -1 pad missing ones.
    """
    if exact_pairs is None:
        exact_pairs = EXACT_PAIRS
    if len(Q) * len(X) <= exact_pairs or len(X) < 64 * MIN_PROBES:
        return exact(Q, X, kk)
    with _one_thread():
        return by_cells(Q, X, kk)


def _one_thread():
    """A context that keeps BLAS and OpenMP (faiss) to the calling thread (no-op without
    threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency, but a missing one costs speed only
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def exact(Q: np.ndarray, X: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-kk of each query row among X's rows, padded to kk columns."""
    import faiss

    sims = np.full((len(Q), kk), -np.inf, np.float32)
    pos = np.full((len(Q), kk), -1, np.int64)
    if not len(X) or not len(Q):
        return sims, pos
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(np.ascontiguousarray(X, np.float32))
    k = min(kk, len(X))
    s, p = index.search(np.ascontiguousarray(Q, np.float32), k)
    sims[:, :k], pos[:, :k] = np.where(p >= 0, s, -np.inf), p
    return sims, pos


def by_cells(Q: np.ndarray, X: np.ndarray, kk: int, n_cells: int | None = None,
             n_probes: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-kk through an inverted file over X (see the module doc).

    Args:
        Q, X, kk: as `search`.
        n_cells: cells X is cut into (default ~sqrt(len(X))).
        n_probes: cells each query probes (default `PROBE_SHARE` of them, >= `MIN_PROBES`).
        seed: of the k-means (the result is deterministic for a seed).
    """
    Q = np.ascontiguousarray(Q, np.float32)
    X = np.ascontiguousarray(X, np.float32)
    n_cells = int(n_cells or np.clip(round(np.sqrt(len(X))), 16, 4096))
    n_cells = min(n_cells, len(X))
    n_probes = int(n_probes or max(MIN_PROBES, round(PROBE_SHARE * n_cells)))
    n_probes = min(n_probes, n_cells)
    centres = _centres(X, n_cells, seed)
    cell_of = _nearest(X, centres, 1)[:, 0]
    probes = _nearest(Q, centres, n_probes)
    order = np.argsort(cell_of, kind="stable")
    Xs = X[order]
    bounds = np.searchsorted(cell_of[order], np.arange(n_cells + 1))
    # Each (query, probe slot) pair, grouped by the cell probed.
    flat = probes.ravel()
    by = np.argsort(flat, kind="stable")
    q_bounds = np.searchsorted(flat[by], np.arange(n_cells + 1))
    q_rows, q_slots = np.divmod(by, n_probes)
    k_cell = int(min(kk, np.diff(bounds).max()))
    cand_s = np.full((len(Q), n_probes, k_cell), -np.inf, np.float32)
    cand_p = np.full((len(Q), n_probes, k_cell), -1, np.int64)
    for c in range(n_cells):
        a, b = bounds[c], bounds[c + 1]
        lo, hi = q_bounds[c], q_bounds[c + 1]
        if a == b or lo == hi:
            continue
        rows, slots = q_rows[lo:hi], q_slots[lo:hi]
        S = Q[rows] @ Xs[a:b].T  # one BLAS product per cell
        k = min(k_cell, b - a)
        top = _top(S, k)
        cand_s[rows, slots, :k] = np.take_along_axis(S, top, axis=1)
        cand_p[rows, slots, :k] = order[a + top]
    cand_s = cand_s.reshape(len(Q), -1)
    cand_p = cand_p.reshape(len(Q), -1)
    k = min(kk, cand_s.shape[1])
    best = _top(cand_s, k)
    s = np.take_along_axis(cand_s, best, axis=1)
    p = np.take_along_axis(cand_p, best, axis=1)
    # Best first, ties by the smaller position (as the exact search orders them).
    by_pos = np.argsort(np.where(p < 0, np.iinfo(np.int64).max, p), axis=1, kind="stable")
    by_sim = np.take_along_axis(by_pos, np.argsort(
        -np.take_along_axis(s, by_pos, axis=1), axis=1, kind="stable"), axis=1)
    sims = np.full((len(Q), kk), -np.inf, np.float32)
    pos = np.full((len(Q), kk), -1, np.int64)
    sims[:, :k] = np.take_along_axis(s, by_sim, axis=1)
    pos[:, :k] = np.take_along_axis(p, by_sim, axis=1)
    pos[~np.isfinite(sims)] = -1
    return sims, pos


def _top(S: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values (in no particular order)."""
    n = S.shape[1]
    if n <= k:
        return np.broadcast_to(np.arange(n), S.shape)
    return np.argpartition(S, n - k, axis=1)[:, n - k:]


def _centres(X: np.ndarray, n_cells: int, seed: int) -> np.ndarray:
    """Unit cell centres: spherical k-means (faiss) on a fixed sample of X."""
    import faiss

    n_train = min(len(X), TRAIN_POINTS_PER_CELL * n_cells)
    sample = X if n_train == len(X) else X[np.sort(
        np.random.default_rng(seed).choice(len(X), n_train, replace=False))]
    km = faiss.Kmeans(X.shape[1], n_cells, niter=6, seed=seed, spherical=True,
                      max_points_per_centroid=TRAIN_POINTS_PER_CELL, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(sample))
    return np.ascontiguousarray(km.centroids, np.float32)


def _nearest(A: np.ndarray, centres: np.ndarray, k: int) -> np.ndarray:
    """The k centres of largest inner product with each row of A."""
    import faiss

    index = faiss.IndexFlatIP(centres.shape[1])
    index.add(centres)
    return index.search(A, k)[1]
