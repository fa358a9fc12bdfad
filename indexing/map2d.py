"""The 2-D map of a collection: UMAP on a sample, every other item placed among its nearest sample
points.

Why this shape: UMAP on a million 512-d rows takes far longer than the five minutes a map may cost
on two cores, but a 50k sample already shows every group. The rest are placed in the sample's
layout at the similarity-weighted mean of their nearest sample neighbours in the original space,
found with a FAISS inverted-file index (the same search the app uses), so the whole map costs one
UMAP fit plus one approximate k-NN pass.

Determinism: with `deterministic=True` (the default) UMAP gets `random_state=seed`, which makes it
single-threaded in its layout step; measured on 2 cores the layout is a minority of the total,
so the map stays reproducible (same seed, same input → same coordinates) at little cost. The
k-NN graph UMAP starts from is computed here with FAISS (multi-threaded and deterministic) rather
than by pynndescent, which is both slower here and random.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

log = logging.getLogger(__name__)

MIN_UMAP_POINTS = 20
"""Below this many points UMAP's graph is meaningless; the map falls back to PCA."""

EXACT_GRAPH_MAX = 20_000
"""Samples up to this size get an exact k-NN graph and exact placement; larger ones IVF search."""

PLACE_CHUNK = 32_768
"""Rows placed per FAISS search call: bounds memory and is the cancel granularity."""

_TEMPERATURE = 0.02
"""Softmax temperature over cosine similarity for placement weights: in 512-d the nearest sample
neighbours' similarities differ by a few hundredths, so a plain similarity weighting is nearly a
flat mean; this keeps the nearest neighbour dominant without ignoring the rest."""

_JITTER = 1e-4
"""Placement jitter, as a share of the layout's extent: keeps duplicates from stacking exactly."""

_GRAPH_NPROBE = 16
"""Lists probed (of ~4*sqrt(sample)) to build UMAP's k-NN graph over the sample."""

_PLACE_NPROBE = 3
"""Lists probed per placed row (of ~4*sqrt(sample) lists). Placement is most of a 1M map's time
and grows with probes, while the share of placed rows whose nearest 2-D sample point has their
class barely moves (measured ~0.99 from 2 to 8 probes on the synthetic set): a slightly wrong
neighbour among 5 lands in nearly the same 2-D spot."""


@dataclass(frozen=True)
class MapResult:
    """A 2-D map.

    Attributes:
        coords: (n, 2) float32 in the [-1, 1] box (aspect ratio kept), by input row.
        sample_idx: (s,) int64 sorted rows UMAP (or PCA) was fitted on; the rest were placed.
        params: how it was made (method, seed, sample size, neighbours, placement settings).
    """

    coords: np.ndarray
    sample_idx: np.ndarray
    params: dict = field(default_factory=dict)


def _unit_rows(block: np.ndarray) -> np.ndarray:
    x = np.array(block, dtype=np.float32, copy=True)
    if x.size and not np.isfinite(x).all():
        raise ValueError("map input contains NaN or infinity; re-embed the affected items")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _normalise_box(coords: np.ndarray) -> np.ndarray:
    lo = coords.min(axis=0)
    hi = coords.max(axis=0)
    centre = (lo + hi) / 2
    half = float(np.max(hi - lo)) / 2
    out = coords - centre
    if half > 0:
        out /= half
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _pca2(x: np.ndarray) -> np.ndarray:
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2), np.float32)
    centred = x - x.mean(axis=0)
    # Economy SVD of a tiny matrix; sign fixed so the result does not flip between runs.
    u, s, _ = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    proj = u[:, :2] * s[:2]
    for j in range(proj.shape[1]):
        if proj[np.argmax(np.abs(proj[:, j])), j] < 0:
            proj[:, j] = -proj[:, j]
    out = np.zeros((x.shape[0], 2))
    out[:, :proj.shape[1]] = proj
    return out.astype(np.float32)


def _neighbour_index(sample: np.ndarray, seed: int) -> tuple[Any, int]:
    """A FAISS inner-product index over the sample: exact when small, IVF otherwise."""
    import faiss

    m, d = sample.shape
    if m <= EXACT_GRAPH_MAX:
        index = faiss.IndexFlatIP(d)
        index.add(sample)
        return index, 0
    nlist = round(4 * math.sqrt(m))
    index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = 10
    ivf.cp.seed = seed
    ivf.cp.spherical = True
    index.train(sample)
    index.add(sample)
    return index, nlist


def _search(index: Any, nlist: int, queries: np.ndarray, k: int, nprobe: int):
    if nlist:
        import faiss

        params = faiss.SearchParametersIVF()
        params.nprobe = min(nprobe, nlist)
        return index.search(queries, k, params=params)
    return index.search(queries, k)


def _fill_missing(index_exact: Callable[[np.ndarray, int], tuple], queries: np.ndarray,
                  D: np.ndarray, I: np.ndarray, k: int) -> None:
    # An IVF probe can see fewer than k rows; redo those few rows exactly.
    bad = np.flatnonzero((I < 0).any(axis=1))
    if bad.size:
        D[bad], I[bad] = index_exact(queries[bad], k)


def compute_map(
    X: np.ndarray,
    sample_size: int = 50_000,
    seed: int = 0,
    n_neighbors: int = 15,
    *,
    min_dist: float = 0.1,
    place_k: int = 5,
    deterministic: bool = True,
    n_epochs: int | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> MapResult:
    """Lay out `X` in 2-D.

    Args:
        X: (n, d) float32/float16 embeddings (a memory-mapped array is read in chunks).
        sample_size: rows UMAP is fitted on (a random sample when n is larger).
        seed: seed of the sample, of UMAP and of the jitter.
        n_neighbors: UMAP's neighbourhood size.
        min_dist: UMAP's min_dist.
        place_k: sample neighbours each placed row is averaged over.
        deterministic: pass `random_state=seed` to UMAP (reproducible, single-threaded layout).
        n_epochs: UMAP layout epochs (None: UMAP's default, 200 for large samples).
        progress: receives "sample", "umap" and "place" events.
        cancel: checked between steps and placement chunks; raises Cancelled.

    Returns:
        MapResult with coords (n, 2) float32 in [-1, 1].

    Raises:
        ValueError: X is not 2-D or holds NaN / infinity.
    """
    progress = progress or no_progress
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"map input must be a 2-D array (n, dim), got shape {X.shape}")
    n = X.shape[0]
    params: dict = {"seed": seed, "n": n, "n_neighbors": n_neighbors, "min_dist": min_dist,
                    "place_k": place_k, "deterministic": deterministic}
    if n == 0:
        return MapResult(np.zeros((0, 2), np.float32), np.zeros(0, np.int64),
                         {**params, "method": "empty"})

    m = min(n, max(int(sample_size), MIN_UMAP_POINTS))
    rng = np.random.default_rng(seed)
    sample_idx = (np.arange(n, dtype=np.int64) if m == n
                  else np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64))
    progress(ProgressEvent("sample", 0, m, "rows"))
    sample = _unit_rows(X[sample_idx])
    progress(ProgressEvent("sample", m, m, "rows"))
    check_cancel(cancel)

    if m < MIN_UMAP_POINTS:
        layout = _pca2(sample)
        params["method"] = "pca"
        index = nlist = None
    else:
        index, nlist = _neighbour_index(sample, seed)
        check_cancel(cancel)
        layout = _umap_layout(sample, index, nlist, n_neighbors, min_dist, seed, deterministic,
                              n_epochs, progress, cancel)
        params["method"] = "umap"
    params.update(sample_size=m, sample_index_nlist=nlist or 0)

    coords = np.empty((n, 2), np.float32)
    coords[sample_idx] = layout
    if m < n:
        _place_rest(X, sample_idx, sample, layout, coords, index, nlist, place_k, seed,
                    progress, cancel)
        params.update(place_nprobe=_PLACE_NPROBE, temperature=_TEMPERATURE, jitter=_JITTER)
    return MapResult(_normalise_box(coords), sample_idx, params)


def _umap_layout(sample: np.ndarray, index: Any, nlist: int, n_neighbors: int, min_dist: float,
                 seed: int, deterministic: bool, n_epochs: int | None,
                 progress: Progress, cancel: Callable[[], bool] | None) -> np.ndarray:
    import umap  # heavy (numba): imported only when a map is made

    m = sample.shape[0]
    k = int(max(2, min(n_neighbors, m - 1)))
    progress(ProgressEvent("umap", 0, 3, "steps", "neighbour graph"))
    exact = None
    if nlist:
        import faiss

        exact = faiss.IndexFlatIP(sample.shape[1])
        exact.add(sample)
    D_parts, I_parts = [], []
    for a in range(0, m, PLACE_CHUNK):
        check_cancel(cancel)
        q = sample[a:a + PLACE_CHUNK]
        D, I = _search(index, nlist, q, k, _GRAPH_NPROBE)
        if exact is not None:
            _fill_missing(exact.search, q, D, I, k)
        D_parts.append(D)
        I_parts.append(I)
    sims = np.vstack(D_parts)
    knn_idx = np.vstack(I_parts).astype(np.int64)
    knn_dist = np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)  # cosine distance
    progress(ProgressEvent("umap", 1, 3, "steps", "layout"))
    check_cancel(cancel)

    reducer = umap.UMAP(
        n_neighbors=k, min_dist=min_dist, metric="cosine", init="pca",
        random_state=seed if deterministic else None, n_jobs=1 if deterministic else -1,
        low_memory=True, n_epochs=n_epochs, precomputed_knn=(knn_idx, knn_dist, None),
        verbose=False,
    )
    with warnings.catch_warnings():
        # umap warns that random_state forces one thread and that a precomputed k-NN graph
        # disables transform(); both are chosen on purpose here.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"umap\..*")
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
        layout = reducer.fit_transform(sample)
    progress(ProgressEvent("umap", 3, 3, "steps"))
    layout = np.asarray(layout, dtype=np.float32)
    if not np.isfinite(layout).all():
        log.warning("UMAP produced non-finite coordinates; using PCA for those rows")
        bad = ~np.isfinite(layout).all(axis=1)
        layout[bad] = _pca2(sample)[bad]
    return layout


def _place_rest(X: np.ndarray, sample_idx: np.ndarray, sample: np.ndarray, layout: np.ndarray,
                coords: np.ndarray, index: Any, nlist: int | None, place_k: int, seed: int,
                progress: Progress, cancel: Callable[[], bool] | None) -> None:
    import faiss

    n = X.shape[0]
    m = sample.shape[0]
    if index is None:  # the PCA fallback has no index; the sample is tiny
        index, nlist = faiss.IndexFlatIP(sample.shape[1]), 0
        index.add(sample)
    exact = None
    if nlist:
        exact = faiss.IndexFlatIP(sample.shape[1])
        exact.add(sample)
    k = int(max(1, min(place_k, m)))
    extent = float(np.max(layout.max(axis=0) - layout.min(axis=0))) if m > 1 else 1.0
    jitter_scale = _JITTER * (extent if extent > 0 else 1.0)
    rng = np.random.default_rng([seed, 1])
    in_sample = np.zeros(n, dtype=bool)
    in_sample[sample_idx] = True
    rest = np.flatnonzero(~in_sample)
    total = rest.size
    for a in range(0, total, PLACE_CHUNK):
        check_cancel(cancel)
        rows = rest[a:a + PLACE_CHUNK]
        q = _unit_rows(X[rows])
        D, I = _search(index, nlist or 0, q, k, _PLACE_NPROBE)
        if exact is not None:
            _fill_missing(exact.search, q, D, I, k)
        w = np.exp((D - D[:, :1]) / _TEMPERATURE)
        w /= w.sum(axis=1, keepdims=True)
        placed = np.einsum("rk,rkc->rc", w, layout[I])
        # The jitter is drawn per chunk in order, so it depends only on the seed and n.
        placed += rng.normal(0.0, jitter_scale, placed.shape)
        coords[rows] = placed
        progress(ProgressEvent("place", min(total, a + PLACE_CHUNK), total, "rows"))
