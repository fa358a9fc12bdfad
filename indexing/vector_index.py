"""A FAISS vector index keyed by catalog item ids, with a JSON sidecar saying how it was built."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

log = logging.getLogger(__name__)

FLAT_MAX = 100_000
"""Up to this many vectors, "auto" builds an exact index. An exact query reads every vector, so it
is memory-bound: ~24 ms for 100k x 512 on the 2-core benchmark machine (~2x that under load);
200k would miss the 50 ms target, while IVF answers in ~1 ms at recall@50 ~0.98."""

DEFAULT_MEMORY_BUDGET = 4 << 30
"""Bytes of vector storage "auto" may use before it picks a coarser code (SQ8, then PQ)."""

ADD_CHUNK = 65_536
"""Rows converted, normalised and added at a time, so memory stays flat for a memory-mapped X."""

TRAIN_PER_LIST = 32
"""Training rows per inverted list; faiss asks for 39, but 32 loses no measurable recall at 1M
rows and k-means time grows with it (see docs/benchmarks.md, "Search, map and duplicates")."""

TRAIN_ITERATIONS = 10
"""k-means iterations for the coarse quantizer; recall stops improving well before faiss's 25."""


@dataclass(frozen=True)
class _Kind:
    """How one index kind is made: a faiss factory string and its storage cost."""

    factory: str              # formatted with nlist, m, nbits
    trained: bool
    bytes_per_vector: Callable[[int, int], int]  # (dim, m) -> bytes
    by_residual: bool | None = None  # None: faiss's default for the kind


_KINDS: dict[str, _Kind] = {
    "flat": _Kind("IDMap2,Flat", False, lambda d, m: 4 * d + 8),
    "ivf_flat": _Kind("IVF{nlist},Flat", True, lambda d, m: 4 * d + 8),
    # fp16 loses nothing that matters for cosine ranking, so residuals buy nothing but time.
    "ivf_fp16": _Kind("IVF{nlist},SQfp16", True, lambda d, m: 2 * d + 8, by_residual=False),
    "ivf_sq8": _Kind("IVF{nlist},SQ8", True, lambda d, m: d + 8),
    "ivf_pq": _Kind("IVF{nlist},PQ{m}x{nbits}", True, lambda d, m: m + 8),
}
"""Index kinds by name. "auto" picks flat, then the first IVF kind whose storage fits the budget."""

_AUTO_IVF_ORDER = ("ivf_fp16", "ivf_sq8", "ivf_pq")


class IndexFileError(RuntimeError):
    """A saved vector index is missing, unreadable or not one Curator wrote; the message says to
    rebuild."""


@dataclass(frozen=True)
class IndexInfo:
    """How a vector index was built; written beside it as a JSON sidecar.

    Attributes:
        kind: "flat", "ivf_flat", "ivf_fp16", "ivf_sq8" or "ivf_pq".
        dim: vector dimension.
        count: vectors in the index.
        metric: always "ip" (inner product of unit vectors = cosine).
        nlist: inverted lists (0 for flat).
        nprobe: lists scanned per query by default (0 for flat).
        m: PQ sub-quantizers (0 unless ivf_pq).
        trained_on: rows the coarse quantizer was trained on (0 for flat).
        gpu: whether the index was built / searches on a GPU.
        faiss_version: faiss that built it.
        built_at: ISO-8601 UTC time of the build.
        space: embedding space id the vectors live in (e.g. "clip:ViT-B-32/...").
        factory: the faiss index_factory string.
    """

    kind: str
    dim: int
    count: int = 0
    metric: str = "ip"
    nlist: int = 0
    nprobe: int = 0
    m: int = 0
    trained_on: int = 0
    gpu: bool = False
    faiss_version: str = ""
    built_at: str = ""
    space: str = ""
    factory: str = ""

    def to_json(self) -> str:
        """The info as a JSON object (text)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IndexInfo:
        """Parse `to_json` output; unknown keys are ignored, missing optional keys take defaults.

        Raises:
            ValueError: the text is not JSON or lacks "kind" / "dim".
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"index sidecar is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or "kind" not in data or "dim" not in data:
            raise ValueError("index sidecar lacks 'kind' or 'dim'")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _faiss():
    import faiss  # heavy: imported on first use, never at module import

    return faiss


#: The most neighbours a faiss GPU index returns per query (GPU k-selection limit).
GPU_MAX_K = 2048


def _read_index(faiss: Any, path: Path, mmap: bool) -> Any:
    if not mmap:
        return faiss.read_index(str(path))
    # An IVF file maps as read-only on-disk inverted lists; a flat one maps its vectors
    # (IO_FLAG_MMAP_IFC, faiss >= 1.11): reading 100k x 512 took 0.9 s, mapping it 10 ms, which
    # a cold `curator search` pays on every call. Older faiss builds read the flat file.
    with path.open("rb") as fh:
        flat = fh.read(4) == b"IxM2"  # IndexIDMap2 around IndexFlat
    flags = (getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if flat else faiss.IO_FLAG_MMAP)
    return faiss.read_index(str(path), flags | faiss.IO_FLAG_READ_ONLY if flags else 0)


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


def _gpu_wanted(gpu: str | bool) -> bool:
    faiss = _faiss()
    has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if gpu == "auto":
        return has_gpu
    if gpu and not has_gpu:
        log.warning("GPU asked for but this faiss has no GPU support or sees no GPU; using CPU")
    return bool(gpu) and has_gpu


def default_nlist(n: int) -> int:
    """Inverted lists for `n` vectors: ~4*sqrt(n), at most n/39 so every list can be trained."""
    return int(max(1, min(round(4 * math.sqrt(max(n, 1))), n // 39)))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query: nlist/64 (64 at 1M rows), which meets recall@50 >= 0.95 there."""
    return int(max(1, min(nlist, round(nlist / 64))))


def _pq_m(dim: int) -> int:
    # 8 dimensions per sub-quantizer (64 bytes for 512-d) keeps ranking usable; m must divide dim.
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


def _as_ids(ids: Any, what: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(
            f"{what} must be a 1-D array of integer catalog ids, got shape {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integers (catalog item ids), got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _normalised(block: np.ndarray, what: str) -> np.ndarray:
    x = np.ascontiguousarray(block, dtype=np.float32)
    if x.size and not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"{what} row {bad} contains NaN or infinity; re-embed that item")
    if np.may_share_memory(x, block):
        x = x.copy()
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A zero vector cannot be normalised; it stays zero and scores 0 against everything.
    np.divide(x, norms, out=x, where=norms > 0)
    return x


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
                / PQ when n * bytes per vector exceeds `memory_budget`) or a name in `_KINDS`.
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
        faiss = _faiss()
        progress = progress or no_progress
        ids = _as_ids(ids)
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
        if kind == "auto":
            kind = "flat"
            if n > FLAT_MAX:
                fits = [k for k in _AUTO_IVF_ORDER
                        if n * _KINDS[k].bytes_per_vector(d, _pq_m(d)) <= memory_budget]
                kind = fits[0] if fits else "ivf_pq"
        if kind not in _KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose 'auto' or one of "
                             f"{sorted(_KINDS)}")
        spec = _KINDS[kind]
        use_gpu = _gpu_wanted(gpu)

        n_train = 0
        m = _pq_m(d) if kind == "ivf_pq" else 0
        if spec.trained:
            if n == 0:
                raise ValueError(f"index kind {kind!r} needs vectors to train on; got none")
            nlist = int(nlist or default_nlist(n))
            nlist = max(1, min(nlist, n))
            nprobe = int(nprobe or default_nprobe(nlist))
            n_train = min(n, max(TRAIN_PER_LIST * nlist, 256 if kind == "ivf_pq" else 0))
            nbits = 8
            if kind == "ivf_pq":
                # Fewer than 39 rows per PQ centroid trains badly; shrink the codebooks instead.
                nbits = int(max(1, min(8, math.floor(math.log2(max(2, n_train // 39))))))
            factory = spec.factory.format(nlist=nlist, m=m, nbits=nbits)
        else:
            nlist, nprobe, factory = 0, 0, spec.factory
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)

        if spec.trained:
            ivf = faiss.extract_index_ivf(index)
            ivf = faiss.downcast_index(ivf)
            if spec.by_residual is not None:
                ivf.by_residual = spec.by_residual
            if kind == "ivf_pq":
                # Polysemous training (a code re-ordering for Hamming filtering we never use) is
                # on by default and takes minutes; plain PQ codebooks train in seconds.
                ivf.do_polysemous_training = False
            ivf.cp.spherical = True  # unit vectors: centroids on the sphere rank by cosine
            ivf.cp.niter = TRAIN_ITERATIONS
            ivf.cp.seed = seed
            # Fewer than faiss's 39 rows per list is deliberate (TRAIN_PER_LIST); no warning.
            ivf.cp.min_points_per_centroid = int(max(1, min(39, n_train // max(1, nlist))))
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(n, size=n_train, replace=False))
            progress(ProgressEvent("train", 0, 1, "steps", f"{kind}: {nlist} lists on {n_train} "
                                                           "rows"))
            check_cancel(cancel)
            xt = _normalised(X[rows], "vectors")
            gpu_quantizer = None
            if use_gpu:
                try:
                    gpu_quantizer = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(d))
                    ivf.clustering_index = gpu_quantizer
                except (RuntimeError, AttributeError) as exc:
                    log.warning("GPU k-means unavailable (%s); training on CPU", exc)
            index.train(xt)
            ivf.clustering_index = None
            del xt, gpu_quantizer
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            progress(ProgressEvent("train", 1, 1, "steps"))

        info = IndexInfo(
            kind=kind, dim=d, count=0, nlist=nlist, nprobe=nprobe, m=m, trained_on=n_train,
            gpu=use_gpu, faiss_version=faiss.__version__,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            space=space, factory=factory,
        )
        self = cls(index, info, np.empty(0, np.int64), gpu=use_gpu)
        self._add_unchecked(ids, X, progress, cancel)
        log.info("built %s index of %d vectors (dim %d)", kind, len(self), d)
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
                block = _normalised(X[a:a + ADD_CHUNK], "vectors")
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
        ids = _as_ids(ids)
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
        ids = _as_ids(ids)
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
        faiss = _faiss()
        ids = np.unique(_as_ids(ids))
        with self._lock:
            present = ids[self._contains(ids)]
            if present.size == 0:
                return 0
            # IDMap2 tests every stored id for membership (a hashed batch is O(1) per test); the
            # IVF hash-table direct map only accepts an explicit array, which it looks up itself.
            selector = (faiss.IDSelectorArray(present) if _KINDS[self._info.kind].trained
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
        return _normalised(Q, "query")

    def _params(self, nprobe: int | None) -> Any:
        if not _KINDS[self._info.kind].trained:
            return None
        faiss = _faiss()
        p = faiss.SearchParametersIVF()
        p.nprobe = int(max(1, min(self._info.nlist, nprobe or self._info.nprobe or 1)))
        return p

    def _searcher(self, params: Any) -> tuple[Any, Any]:
        """The index to search (a GPU copy when enabled) and the params to pass it."""
        if not self._gpu:
            return self._index, params
        faiss = _faiss()
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
            with _few_threads(_faiss(), Q.shape[0]):
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
        ids = _as_ids(ids)
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
        path = Path(path)
        side = path.with_suffix(".json")
        if side == path:
            raise ValueError(f"index file {path} must not end in .json (that name is its sidecar)")
        return side

    def save(self, path: str | Path) -> None:
        """Write the index (CPU form) and its sidecar, each under a temporary name then renamed.

        Args:
            path: index file, e.g. project/vectors.faiss; the sidecar is vectors.json beside it.
        """
        faiss = _faiss()
        path = Path(path)
        side = self.sidecar_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per process and thread: two writers never share a temporary file.
        unique = f"{os.getpid()}-{threading.get_ident()}"
        tmp_index = path.with_name(f".{path.name}.{unique}.tmp")
        tmp_side = side.with_name(f".{side.name}.{unique}.tmp")
        try:
            with self._lock:
                ivf = (faiss.extract_index_ivf(self._index) if _KINDS[self._info.kind].trained
                       else None)
                # The id -> list map is left out of the file: a search never uses it, and
                # reading 1M entries back is most of opening the index. A writer rebuilds it.
                if ivf is not None:
                    ivf.set_direct_map_type(faiss.DirectMap.NoMap)
                try:
                    faiss.write_index(self._index, str(tmp_index))
                finally:
                    if ivf is not None:
                        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
                text = self.info.to_json()
            with open(tmp_side, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            # Index first: a crash between the two renames leaves a sidecar whose count
            # disagrees, which `load` notices and repairs from the index itself.
            os.replace(tmp_index, path)
            os.replace(tmp_side, side)
        finally:
            tmp_index.unlink(missing_ok=True)
            tmp_side.unlink(missing_ok=True)

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
        faiss = _faiss()
        path = Path(path)
        if not path.is_file():
            raise IndexFileError(f"vector index file {path} is missing; rebuild the index")
        try:
            index = _read_index(faiss, path, mmap)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "unreadable"
            raise IndexFileError(
                f"vector index file {path} is corrupt or unreadable ({reason}); "
                "delete it and rebuild the index") from exc
        kind, ids, nlist = cls._inspect(index, path, read_only=mmap)
        info = cls._read_sidecar(path, index, kind, nlist)
        info = replace(info, kind=kind, dim=int(index.d), count=int(index.ntotal), nlist=nlist)
        use_gpu = _gpu_wanted(gpu)
        self = cls(index, replace(info, gpu=use_gpu), ids, gpu=use_gpu)
        self._read_only = mmap
        return self

    @staticmethod
    def _inspect(index: Any, path: Path, read_only: bool = False) -> tuple[str, Any, int]:
        faiss = _faiss()
        not_ours = IndexFileError(
            f"vector index file {path} was not written by Curator ({type(index).__name__}); "
            "rebuild the index")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise not_ours
        if isinstance(index, faiss.IndexIDMap2):
            if not isinstance(faiss.downcast_index(index.index), faiss.IndexFlat):
                raise not_ours
            return "flat", faiss.vector_to_array(index.id_map).astype(np.int64), 0
        if not isinstance(index, faiss.IndexIVF):
            raise not_ours
        if isinstance(index, faiss.IndexIVFFlat):
            kind = "ivf_flat"
        elif isinstance(index, faiss.IndexIVFScalarQuantizer):
            qtype = index.sq.qtype
            if qtype == faiss.ScalarQuantizer.QT_fp16:
                kind = "ivf_fp16"
            elif qtype == faiss.ScalarQuantizer.QT_8bit:
                kind = "ivf_sq8"
            else:
                raise not_ours
        elif isinstance(index, faiss.IndexIVFPQ):
            kind = "ivf_pq"
        else:
            raise not_ours
        if not read_only and index.direct_map.type != faiss.DirectMap.Hashtable:
            # Files are written without the map (see `save`); a writer needs it for remove.
            index.set_direct_map_type(faiss.DirectMap.Hashtable)

        def ids() -> np.ndarray:
            inv = index.invlists
            parts = [faiss.rev_swig_ptr(inv.get_ids(lst), inv.list_size(lst)).copy()
                     for lst in range(index.nlist) if inv.list_size(lst)]
            return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

        return kind, (ids if read_only else ids()), int(index.nlist)

    @staticmethod
    def _read_sidecar(path: Path, index: Any, kind: str, nlist: int) -> IndexInfo:
        side = VectorIndex.sidecar_path(path)
        fallback = IndexInfo(kind=kind, dim=int(index.d), count=int(index.ntotal), nlist=nlist,
                             nprobe=default_nprobe(nlist) if nlist else 0,
                             faiss_version=_faiss().__version__)
        try:
            info = IndexInfo.from_json(side.read_text(encoding="utf-8"))
        except FileNotFoundError:
            log.warning(
                "index sidecar %s is missing; describing the index from the file itself", side
            )
            return fallback
        except (OSError, ValueError, TypeError) as exc:
            log.warning("index sidecar %s is unreadable (%s); describing the index from the file",
                        side, exc)
            return fallback
        if info.count != index.ntotal or info.kind != kind:
            log.warning("index sidecar %s says %d %s vectors, the index holds %d %s; "
                        "trusting the index", side, info.count, info.kind, index.ntotal, kind)
        return info
