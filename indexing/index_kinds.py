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
from typing import Any

import numpy as np

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
    import faiss  # heavy: imported on first use, never at module import

    return faiss


def gpu_wanted(gpu: str | bool) -> bool:
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
    # 8 dimensions per sub-quantizer (64 bytes for 512-d) keeps ranking usable; m must divide dim.
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


def as_ids(ids: Any, what: str = "ids") -> np.ndarray:
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
