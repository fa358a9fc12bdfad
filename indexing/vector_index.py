"""A FAISS vector index keyed by catalog item ids, with a JSON sidecar saying how it was built.

Which kind to build and how to train it is `index_kinds`; the files on disk are `index_files`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from indexing.index_files import load_index, save_index, sidecar_path
from indexing.index_kinds import (
    DEFAULT_MEMORY_BUDGET,
    KINDS,
    IndexFileError,
    IndexInfo,
    as_ids,
    choose_kind,
    gpu_wanted,
    import_faiss,
    normalised_rows,
    trained_index,
)
from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

log = logging.getLogger(__name__)

# VectorIndex's public face: IndexFileError is what `load` raises, IndexInfo what `info` returns.
__all__ = ["GPU_MAX_K", "IndexFileError", "IndexInfo", "VectorIndex"]

ADD_CHUNK = 65_536
"""Rows converted, normalised and added at a time, so memory stays flat for a memory-mapped X."""


#: The most neighbours a faiss GPU index returns per query (GPU k-selection limit).
GPU_MAX_K = 2048


SMALL_BATCH = 4
"""Up to this many queries run on the calling thread alone: faiss splits a search by query, so
one query cannot use more threads, and waking an OpenMP team for it costs more than the search
(10x on a loaded machine: 120 ms instead of 19 ms for 20k x 512 flat)."""


@contextlib.contextmanager
def _few_threads(faiss: Any, n_queries: int) -> Iterator[None]:
    if n_queries > SMALL_BATCH:
        yield
        return
    # OpenMP's thread count is per calling thread: other threads' searches are unaffected.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex:
    """Cosine nearest-neighbour search over unit vectors, keyed by catalog item ids.

    Results are always catalog ids, never row positions. The exact kind wraps IndexFlatIP in
    IndexIDMap2; IVF kinds store the catalog ids in their inverted lists and keep a hash-table
    direct map for `reconstruct` and `remove` (faiss's IndexIDMap2 around an IVF index returns
    wrong ids after `remove_ids`, since the IVF keeps stale positions: checked on faiss 1.15).

    Searches and changes take a lock, so one instance can be shared between threads.
    """

    def __init__(self, index: Any, info: IndexInfo, ids: np.ndarray, gpu: bool = False) -> None:
        """Wrap a faiss index; use `build` or `load` rather than calling this directly."""
        self._index = index
        self._info = info
        # The sorted id mirror; a read-only (mapped) index gathers it from the file on first
        # use, since a search never needs it and gathering it is a third of opening 1M vectors.
        self._id_array: np.ndarray | None = None
        self._id_source: Callable[[], np.ndarray] | None = None
        if callable(ids):
            self._id_source = ids
        else:
            self._id_array = np.sort(np.asarray(ids, dtype=np.int64))
        self._gpu = gpu
        self._gpu_index: Any = None
        self._lock = threading.RLock()
        self._read_only = False

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        X: np.ndarray,
        *,
        space: str = "",
        kind: str = "auto",
        gpu: str | bool = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        seed: int = 0,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> VectorIndex:
        """Build an index over `X` keyed by `ids`.

        Args:
            ids: (n,) int64 catalog item ids, unique.
            X: (n, d) float32 or float16 vectors (a memory-mapped array is read in chunks).
                Rows are L2-normalised on the way in.
            space: embedding space id, recorded in the sidecar.
            kind: "auto" (exact up to FLAT_MAX vectors; beyond, IVF with fp16 storage, or SQ8
                / PQ when n * bytes per vector exceeds `memory_budget`) or a name in `KINDS`.
            gpu: "auto" (a GPU when faiss has GPU support and sees one), True or False.
            nlist: inverted lists for IVF kinds (default `default_nlist(n)`).
            nprobe: default lists scanned per query (default `default_nprobe(nlist)`).
            memory_budget: bytes of vector storage "auto" may use.
            seed: seed of the training sample.
            progress: receives "train" and "add" events.
            cancel: checked between chunks; raises Cancelled.

        Returns:
            The built index.

        Raises:
            ValueError: mismatched shapes, duplicate ids, NaN rows, an unknown kind, or an IVF
                kind with no rows to train on.
        """
        progress = progress or no_progress
        ids = as_ids(ids)
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if X.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {X.shape}")
        n, d = X.shape
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} vectors; pass one id per row")
        if d == 0:
            raise ValueError("vectors have dimension 0")
        if np.unique(ids).size != n:
            raise ValueError("ids contain duplicates; each catalog item may appear once")
        use_gpu = gpu_wanted(gpu)
        index, info = trained_index(X, choose_kind(kind, n, d, memory_budget), nlist=nlist,
                                    nprobe=nprobe, seed=seed, use_gpu=use_gpu, space=space,
                                    progress=progress, cancel=cancel)
        self = cls(index, info, np.empty(0, np.int64), gpu=use_gpu)
        self._add_unchecked(ids, X, progress, cancel)
        log.info("built %s index of %d vectors (dim %d)", info.kind, len(self), d)
        return self

    # ------------------------------------------------------------------ changes

    def _check_vectors(self, ids: np.ndarray, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != self._info.dim:
            raise ValueError(
                f"vectors must have shape (n, {self._info.dim}) for this index, got {X.shape}")
        if len(ids) != X.shape[0]:
            raise ValueError(f"{len(ids)} ids for {X.shape[0]} vectors; pass one id per row")
        if np.unique(ids).size != len(ids):
            raise ValueError("ids contain duplicates; each catalog item may appear once")
        for a in range(0, X.shape[0], ADD_CHUNK):
            block = np.asarray(X[a:a + ADD_CHUNK])
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                bad = a + int(np.flatnonzero(~finite)[0])
                raise ValueError(f"vector for id {int(ids[bad])} contains NaN or infinity; "
                                 "re-embed that item")

    def _add_unchecked(self, ids: np.ndarray, X: np.ndarray,
                       progress: Progress | None, cancel: Callable[[], bool] | None) -> None:
        progress = progress or no_progress
        n = len(ids)
        done = 0
        try:
            for a in range(0, n, ADD_CHUNK):
                check_cancel(cancel)
                block = normalised_rows(X[a:a + ADD_CHUNK], "vectors")
                self._index.add_with_ids(block, np.ascontiguousarray(ids[a:a + ADD_CHUNK]))
                done = min(n, a + ADD_CHUNK)
                progress(ProgressEvent("add", done, n, "vectors"))
        finally:
            # Keep the id mirror true to the index even when cancelled half-way.
            if done:
                self._ids = np.sort(np.concatenate([self._ids, ids[:done]]))
            self._gpu_index = None

    def add(self, ids: np.ndarray, X: np.ndarray, *, progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> None:
        """Add new items.

        Args:
            ids: (m,) catalog ids not yet in the index.
            X: (m, dim) vectors (normalised on the way in).
            progress: receives "add" events.
            cancel: checked between chunks; items added before a cancel stay added.

        Raises:
            ValueError: an id is already present (use `upsert`), bad shapes or NaN rows.
        """
        self._check_writable()
        ids = as_ids(ids)
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        with self._lock:
            self._check_vectors(ids, X)
            present = ids[self._contains(ids)]
            if present.size:
                raise ValueError(
                    f"{present.size} id(s) already in the index (e.g. {int(present[0])}); "
                    "use upsert() to replace re-embedded items")
            self._add_unchecked(ids, X, progress, cancel)

    def upsert(self, ids: np.ndarray, X: np.ndarray) -> None:
        """Add items, replacing the vectors of ids already present (re-embedded items).

        Args:
            ids: (m,) catalog ids.
            X: (m, dim) vectors.
        """
        self._check_writable()
        ids = as_ids(ids)
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        with self._lock:
            self._check_vectors(ids, X)  # before removing anything, so a bad call changes nothing
            self.remove(ids)
            self._add_unchecked(ids, X, None, None)

    def remove(self, ids: np.ndarray) -> int:
        """Remove items; ids not in the index are ignored.

        Args:
            ids: catalog ids.

        Returns:
            How many items were removed.
        """
        self._check_writable()
        faiss = import_faiss()
        ids = np.unique(as_ids(ids))
        with self._lock:
            present = ids[self._contains(ids)]
            if present.size == 0:
                return 0
            # IDMap2 tests every stored id for membership (a hashed batch is O(1) per test); the
            # IVF hash-table direct map only accepts an explicit array, which it looks up itself.
            selector = (faiss.IDSelectorArray(present) if KINDS[self._info.kind].trained
                        else faiss.IDSelectorBatch(present))
            removed = int(self._index.remove_ids(selector))
            if removed != present.size:
                log.error("faiss removed %d of %d present ids", removed, present.size)
            self._ids = np.setdiff1d(self._ids, present, assume_unique=True)
            self._gpu_index = None
            return removed

    @property
    def _ids(self) -> np.ndarray:
        if self._id_array is None:
            source, self._id_source = self._id_source, None
            self._id_array = np.sort(np.asarray(source(), dtype=np.int64))  # type: ignore[misc]
        return self._id_array

    @_ids.setter
    def _ids(self, value: np.ndarray) -> None:
        self._id_array = value

    def _check_writable(self) -> None:
        if self._read_only:
            raise ValueError("this index was opened memory-mapped for searching; load it "
                             "without mmap to change it")

    # ------------------------------------------------------------------ queries

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        if self._ids.size == 0 or ids.size == 0:
            return np.zeros(ids.shape, dtype=bool)
        pos = np.searchsorted(self._ids, ids)
        pos = np.minimum(pos, self._ids.size - 1)
        return self._ids[pos] == ids

    def __contains__(self, item_id: object) -> bool:
        try:
            key = np.asarray([item_id], dtype=np.int64)
        except (TypeError, ValueError):
            return False
        with self._lock:
            return bool(self._contains(key)[0])

    def _queries(self, Q: np.ndarray) -> np.ndarray:
        Q = np.asarray(Q)
        if Q.ndim == 1:
            Q = Q.reshape(1, -1)
        if Q.ndim != 2 or Q.shape[1] != self._info.dim:
            raise ValueError(f"queries must have shape (m, {self._info.dim}), got {Q.shape}")
        if Q.size and not np.isfinite(Q).all():
            raise ValueError("query vector contains NaN or infinity")
        return normalised_rows(Q, "query")

    def _params(self, nprobe: int | None) -> Any:
        if not KINDS[self._info.kind].trained:
            return None
        faiss = import_faiss()
        p = faiss.SearchParametersIVF()
        p.nprobe = int(max(1, min(self._info.nlist, nprobe or self._info.nprobe or 1)))
        return p

    def _searcher(self, params: Any) -> tuple[Any, Any]:
        """The index to search (a GPU copy when enabled) and the params to pass it."""
        if not self._gpu:
            return self._index, params
        faiss = import_faiss()
        if self._gpu_index is None:
            try:
                self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
            except (RuntimeError, AttributeError) as exc:
                log.warning("cannot copy the index to the GPU (%s); searching on CPU", exc)
                self._gpu = False
                return self._index, params
        if params is not None:
            # GPU indexes take nprobe as a parameter setting, not per-call params.
            faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, "nprobe", params.nprobe)
        return self._gpu_index, None

    def search(self, Q: np.ndarray, k: int = 50,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest items of each query by cosine.

        Args:
            Q: (m, dim) or (dim,) query vectors (normalised here).
            k: neighbours per query.
            nprobe: lists to scan (IVF kinds); default `info.nprobe`.

        Returns:
            (scores float32 (m, k), ids int64 (m, k)), best first; when fewer than k items
            qualify, the tail is padded with id -1 and score -inf.

        Raises:
            ValueError: wrong shape, NaN in a query, or k < 1.
        """
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = int(k)
        Q = self._queries(Q)
        with self._lock:
            if self._index.ntotal == 0 or Q.shape[0] == 0:
                return (np.full((Q.shape[0], k), -np.inf, np.float32),
                        np.full((Q.shape[0], k), -1, np.int64))
            if k > GPU_MAX_K:
                # faiss GPU indexes answer at most 2,048 neighbours: the CPU copy answers more.
                index, params = self._index, self._params(nprobe)
            else:
                index, params = self._searcher(self._params(nprobe))
            with _few_threads(import_faiss(), Q.shape[0]):
                D, I = (index.search(Q, k, params=params) if params is not None
                        else index.search(Q, k))
        D = np.asarray(D, dtype=np.float32)
        I = np.asarray(I, dtype=np.int64)
        D[I < 0] = -np.inf
        return D, I

    def range_search(self, Q: np.ndarray, threshold: float,
                     nprobe: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every item with cosine >= `threshold` to each query.

        Args:
            Q: (m, dim) or (dim,) query vectors.
            threshold: cosine similarity floor.
            nprobe: lists to scan (IVF kinds; items in unscanned lists are missed).

        Returns:
            One (ids int64, scores float32) pair per query, best first (ties by id).
        """
        Q = self._queries(Q)
        with self._lock:
            if self._index.ntotal == 0:
                empty = (np.empty(0, np.int64), np.empty(0, np.float32))
                return [empty for _ in range(Q.shape[0])]
            params = self._params(nprobe)
            # faiss keeps inner products strictly above the radius; step just below the threshold.
            radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
            lims, D, I = (self._index.range_search(Q, radius, params=params) if params is not None
                          else self._index.range_search(Q, radius))
        out = []
        for q in range(Q.shape[0]):
            d = np.asarray(D[lims[q]:lims[q + 1]], dtype=np.float32)
            i = np.asarray(I[lims[q]:lims[q + 1]], dtype=np.int64)
            keep = d >= np.float32(threshold)
            d, i = d[keep], i[keep]
            order = np.lexsort((i, -d))
            out.append((i[order], d[order]))
        return out

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored (normalised; approximate for SQ8 / PQ kinds) vectors of `ids`.

        Args:
            ids: catalog ids, all present.

        Returns:
            (len(ids), dim) float32.

        Raises:
            KeyError: an id is not in the index.
        """
        ids = as_ids(ids)
        with self._lock:
            missing = ids[~self._contains(ids)]
            if missing.size:
                raise KeyError(f"{missing.size} id(s) not in the vector index, e.g. "
                               f"{int(missing[0])}")
            if ids.size == 0:
                return np.empty((0, self._info.dim), np.float32)
            return np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)

    def ids(self) -> np.ndarray:
        """The catalog ids in the index, sorted ascending (a copy)."""
        with self._lock:
            return self._ids.copy()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def info(self) -> IndexInfo:
        """How the index was built, with the current count."""
        return replace(self._info, count=len(self))

    # ------------------------------------------------------------------ persistence

    @staticmethod
    def sidecar_path(path: str | Path) -> Path:
        """The JSON sidecar that goes with an index file."""
        return sidecar_path(path)

    def save(self, path: str | Path) -> None:
        """Write the index (CPU form) and its sidecar, each under a temporary name then renamed.

        Args:
            path: index file, e.g. project/vectors.faiss; the sidecar is vectors.json beside it.
        """
        save_index(self._index, lambda: self.info, path, self._lock)

    @classmethod
    def load(cls, path: str | Path, gpu: str | bool = "auto", mmap: bool = False) -> VectorIndex:
        """Read an index written by `save`.

        Args:
            path: the index file.
            gpu: "auto", True or False: search on a GPU copy.
            mmap: map the file read-only instead of reading it (IVF kinds: the inverted lists
                stay on disk and pages come in as queries touch them, so opening a 1 GB index
                costs milliseconds). The index then searches but refuses changes.

        Returns:
            The index.

        Raises:
            IndexFileError: the file is missing, corrupt or not a Curator index.
        """
        index, info, ids = load_index(path, mmap)
        use_gpu = gpu_wanted(gpu)
        self = cls(index, replace(info, gpu=use_gpu), ids, gpu=use_gpu)
        self._read_only = mmap
        return self
