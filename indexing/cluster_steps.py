"""Row-chunked numeric steps of the grouping engine: checks, normalising, PCA, k-means, assignment.

Every step works on blocks of `CHUNK_ROWS` rows so memory stays flat at any n, checks `cancel`
between blocks and reports progress per block. Pure functions of their arrays; no I/O.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from indexing.progress import ProgressEvent, check_cancel

CHUNK_ROWS = 65536
"""Rows handled per chunk: 65536 x 512 float32 is 128 MB, so memory stays flat at any n."""

PCA_AUTO_DIM = 128
PCA_AUTO_MIN_ROWS = 20_000
PCA_SAMPLE_ROWS = 30_000
TRAIN_POINTS_PER_GROUP = 64  # k-means trains on a sample of this many rows per group
KMEANS_ITERATIONS = 10
KMEANS_INIT = "AFK_MC2"  # k-means++ quality at a fraction of its O(nkd) cost
SMALL_KMEANS_WORK = 10_000_000  # rows x centroids up to which k-means runs on one thread


class InvalidEmbeddings(ValueError):
    """Rows that cannot be clustered (NaN, infinite or all-zero); `rows` are their indices."""

    def __init__(self, reason: str, rows: np.ndarray, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.rows = rows


def check_matrix(X, validate: bool = True):
    """The embeddings as a 2-D array, refused (InvalidEmbeddings, ValueError) when unusable."""
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
    for a, b in chunks(n):
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


def chunks(n: int, size: int | None = None):
    """(start, stop) row ranges of at most `size` (default CHUNK_ROWS) rows."""
    size = size or CHUNK_ROWS
    for a in range(0, n, size):
        yield a, min(n, a + size)


def emit(progress, stage, done, total, unit="rows"):
    """Report progress of one stage, when there is a listener."""
    if progress is not None:
        progress(ProgressEvent(stage, int(done), int(total), unit))


def normalised_rows(X, a, b, check=True):
    """Rows a:b of X as fresh unit float32 rows; with `check`, bad rows raise InvalidEmbeddings."""
    rows = np.array(X[a:b], dtype=np.float32)  # a fresh float32 chunk (X may be a memmap)
    norms = row_norms(rows)
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


def normalised_copy(X, progress=None, cancel=None):
    """A float32 copy of X with unit rows, built chunk by chunk."""
    n, d = X.shape
    out = np.empty((n, d), dtype=np.float32)
    for a, b in chunks(n):
        check_cancel(cancel)
        out[a:b] = normalised_rows(X, a, b)
        emit(progress, "normalise", b, n)
    return out


def row_norms(A):
    """(n, 1) float32 lengths of the rows of a float32 chunk (an einsum: no squared copy)."""
    return np.sqrt(np.einsum("ij,ij->i", A, A))[:, None]


def unit_rows(A):
    """Rows of A scaled to unit length (zero rows stay zero), as float32."""
    A = np.asarray(A, dtype=np.float64)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return (A / np.maximum(norms, 1e-12)).astype(np.float32)


def reduce(X, pca_dim, seed, progress, cancel, sample=None, order=None):
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
        return normalised_copy(X, progress, cancel), None
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
    for a, b in chunks(n):
        check_cancel(cancel)
        if order is None:
            rows = normalised_rows(X, a, b)
        else:
            rows = _gather(X, order[a:b])
            norms = row_norms(rows)
            if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
                normalised_copy(X)  # raises InvalidEmbeddings naming the first bad rows
            rows /= norms
        z = rows @ W
        norms = row_norms(z)
        # A row orthogonal to every kept axis would have no direction; keep it at zero
        # (it joins whichever group wins the tie) rather than divide by zero.
        z /= np.maximum(norms, 1e-12)
        if order is None:
            Z[a:b] = z
        else:
            Z[order[a:b]] = z
        emit(progress, "reduce", b, n)
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


def train_kmeans(Z, k, *, seed, niter, progress=None, cancel=None, weights=None):
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
    emit(progress, "train", 0, niter, "iterations")
    with _faiss_threads(1 if m * k <= SMALL_KMEANS_WORK and not gpu else None):
        while done < niter:
            check_cancel(cancel)
            centroids = _lloyd(Z, k, min(step, niter - done), centroids, opts, weights)
            done += min(step, niter - done)
            emit(progress, "train", done, niter, "iterations")
    return centroids


def _lloyd(Z, k, it, centroids, opts, weights):
    """`it` FAISS k-means iterations from `centroids` (None: seeded by KMEANS_INIT)."""
    import faiss

    d = Z.shape[1]
    if centroids is None:
        km = faiss.Kmeans(d, k, niter=it,
                          init_method=getattr(faiss, "ClusteringInitMethod_" + KMEANS_INIT), **opts)
        km.train(Z, weights=weights)
    else:
        km = faiss.Kmeans(d, k, niter=it, **opts)
        km.train(Z, weights=weights, init_centroids=centroids)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


@contextlib.contextmanager
def _faiss_threads(count):
    """Run FAISS on `count` OpenMP threads inside the block (None: leave it as it is).

    A small k-means (the micro-clusters of one coarse cell: 3,000 rows x 127 centroids) is
    over in milliseconds; on two threads of a busy machine each of its OpenMP barriers spins
    waiting for the other thread, which cost 8x the CPU of one thread (0.22 s against 0.026 s
    per cell, and 31 of the 107 CPU s of grouping 1M rows: docs/benchmarks.md).
    """
    if count is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def assign(Z, centroids, progress=None, cancel=None, stage="assign"):
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
    for a, b in chunks(n):
        check_cancel(cancel)
        rows = np.ascontiguousarray(Z[a:b], dtype=np.float32)
        D, I = index.search(rows, 1)
        labels[a:b] = I[:, 0]
        sims[a:b] = D[:, 0]
        sums += scatter_sum(I[:, 0], rows, k)
        emit(progress, stage, b, n)
    return labels, sums, sims


def scatter_sum(labels, rows, k):
    """Per-label sums of rows as a (k, d) float64 array (a sparse product: no Python loop)."""
    from scipy import sparse

    m = rows.shape[0]
    onehot = sparse.csr_matrix((np.ones(m, dtype=np.float32), (labels, np.arange(m))), shape=(k, m))
    return np.asarray(onehot @ rows, dtype=np.float64)


def compact(labels):
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


def renumber(labels):
    """Renumber labels by first appearance (so the output does not depend on centroid order)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse].astype(np.int32)


def unit_batch(A):
    """A scaled to unit length along its last axis (zero vectors stay zero)."""
    return A / np.maximum(np.linalg.norm(A, axis=-1, keepdims=True), 1e-12)
