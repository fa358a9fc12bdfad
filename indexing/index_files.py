"""A vector index on disk: the faiss file, its JSON sidecar, and recognising an index Curator wrote.

Both files are written under temporary names and renamed into place, the index first; a load
that finds them disagreeing trusts the index file and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from indexing.index_kinds import KINDS, IndexFileError, IndexInfo, default_nprobe, import_faiss

log = logging.getLogger(__name__)


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar that goes with an index file."""
    path = Path(path)
    side = path.with_suffix(".json")
    if side == path:
        raise ValueError(f"index file {path} must not end in .json (that name is its sidecar)")
    return side


def save_index(index: Any, info: Callable[[], IndexInfo], path: str | Path,
               lock: contextlib.AbstractContextManager) -> None:
    """Write a faiss index and its sidecar, each under a temporary name then renamed.

    Args:
        index: the faiss index (CPU form).
        info: called under `lock`: the sidecar's content (its kind says whether to drop the
            direct map).
        path: index file, e.g. project/vectors.faiss; the sidecar is vectors.json beside it.
        lock: held while the index is written (its direct map is switched off meanwhile).
    """
    faiss = import_faiss()
    path = Path(path)
    side = sidecar_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread: two writers never share a temporary file.
    unique = f"{os.getpid()}-{threading.get_ident()}"
    tmp_index = path.with_name(f".{path.name}.{unique}.tmp")
    tmp_side = side.with_name(f".{side.name}.{unique}.tmp")
    try:
        with lock:
            current = info()
            ivf = (faiss.extract_index_ivf(index) if KINDS[current.kind].trained
                   else None)
            # The id -> list map is left out of the file: a search never uses it, and
            # reading 1M entries back is most of opening the index. A writer rebuilds it.
            if ivf is not None:
                ivf.set_direct_map_type(faiss.DirectMap.NoMap)
            try:
                faiss.write_index(index, str(tmp_index))
            finally:
                if ivf is not None:
                    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            text = current.to_json()
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


def load_index(path: str | Path, mmap: bool = False) -> tuple[Any, IndexInfo, Any]:
    """Read an index written by `save_index`: the faiss index, its info and its ids.

    Args:
        path: the index file.
        mmap: map the file read-only instead of reading it (IVF kinds: the inverted lists
            stay on disk and pages come in as queries touch them).

    Returns:
        (faiss index, info, ids): ids is an array, or for a mapped IVF file a function that
        gathers them on first use.

    Raises:
        IndexFileError: the file is missing, corrupt or not a Curator index.
    """
    faiss = import_faiss()
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
    kind, ids, nlist = _inspect(index, path, read_only=mmap)
    info = _read_sidecar(path, index, kind, nlist)
    info = replace(info, kind=kind, dim=int(index.d), count=int(index.ntotal), nlist=nlist)
    return index, info, ids


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


def _inspect(index: Any, path: Path, read_only: bool = False) -> tuple[str, Any, int]:
    faiss = import_faiss()
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


def _read_sidecar(path: Path, index: Any, kind: str, nlist: int) -> IndexInfo:
    side = sidecar_path(path)
    fallback = IndexInfo(kind=kind, dim=int(index.d), count=int(index.ntotal), nlist=nlist,
                         nprobe=default_nprobe(nlist) if nlist else 0,
                         faiss_version=import_faiss().__version__)
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
