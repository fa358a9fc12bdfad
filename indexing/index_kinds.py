"""Which FAISS index to build and how: kinds, their storage, list counts, training, the sidecar.

"auto" is exact (flat) up to `FLAT_MAX` vectors, then the first IVF kind whose storage fits the
memory budget. `train_index` makes an empty, trained faiss index of a kind; `IndexInfo` is the
JSON sidecar that says how an index was built.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
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


KINDS: dict[str, _Kind] = {
    "flat": _Kind("IDMap2,Flat", False, lambda d, m: 4 * d + 8),
    "ivf_flat": _Kind("IVF{nlist},Flat", True, lambda d, m: 4 * d + 8),
    # fp16 loses nothing that matters for cosine ranking, so residuals buy nothing but time.
    "ivf_fp16": _Kind("IVF{nlist},SQfp16", True, lambda d, m: 2 * d + 8, by_residual=False),
    "ivf_sq8": _Kind("IVF{nlist},SQ8", True, lambda d, m: d + 8),
    "ivf_pq": _Kind("IVF{nlist},PQ{m}x{nbits}", True, lambda d, m: m + 8),
}
"""Index kinds by name. "auto" picks flat, then the first IVF kind whose storage fits the budget."""

AUTO_IVF_ORDER = ("ivf_fp16", "ivf_sq8", "ivf_pq")


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


def import_faiss():
    """The faiss module, imported on first use."""
    import faiss  # heavy: imported on first use, never at module import

    return faiss


def gpu_wanted(gpu: str | bool) -> bool:
    """Whether to use a GPU: "auto" when faiss has GPU support and sees one; True asks."""
    faiss = import_faiss()
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


def pq_m(dim: int) -> int:
    """PQ sub-quantizers for a dimension: about one per 8 dimensions, dividing it."""
    # 8 dimensions per sub-quantizer (64 bytes for 512-d) keeps ranking usable; m must divide dim.
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


def as_ids(ids: Any, what: str = "ids") -> np.ndarray:
    """Catalog ids as a 1-D int64 array (ValueError for other shapes or types)."""
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


def normalised_rows(block: np.ndarray, what: str) -> np.ndarray:
    """A float32 copy of a block with unit rows (ValueError on NaN or infinity)."""
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


def choose_kind(kind: str, n: int, d: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> str:
    """The index kind to build: "auto" is exact up to FLAT_MAX vectors, then the first IVF kind
    whose storage of n vectors of dimension d fits the memory budget (PQ when none does).

    Raises:
        ValueError: an unknown kind.
    """
    if kind == "auto":
        kind = "flat"
        if n > FLAT_MAX:
            fits = [k for k in AUTO_IVF_ORDER
                    if n * KINDS[k].bytes_per_vector(d, pq_m(d)) <= memory_budget]
            kind = fits[0] if fits else "ivf_pq"
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose 'auto' or one of "
                         f"{sorted(KINDS)}")
    return kind


def trained_index(X: np.ndarray, kind: str, *, nlist: int | None = None,
                  nprobe: int | None = None, seed: int = 0, use_gpu: bool = False,
                  space: str = "", progress: Progress = no_progress,
                  cancel: Callable[[], bool] | None = None) -> tuple[Any, IndexInfo]:
    """An empty faiss index of `kind` for the vectors of X (trained on a sample of them for IVF
    kinds), and the info that describes it (count 0).

    Raises:
        ValueError: an IVF kind with no rows to train on.
    """
    faiss = import_faiss()
    n, d = X.shape
    spec = KINDS[kind]
    n_train = 0
    m = pq_m(d) if kind == "ivf_pq" else 0
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
        xt = normalised_rows(X[rows], "vectors")
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
    return index, info
