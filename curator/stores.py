"""Big arrays beside the catalog: append-only vector shards per embedding space, and the thumbnail
store.

Vectors are written batch by batch to an append-only float16 shard per run; the catalog's
`embeddings` table says which shard row holds each item's current vector, and is committed after
the bytes are on disk, so a kill loses at most the batch in flight. Readers see one memory-mapped
store per space (`vectors.npy` + `ids.npy`, sorted by item id), rebuilt by `compact`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np

from curator.procs import pid_alive

log = logging.getLogger(__name__)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a text file durably under a temporary name, then rename it into place: a reader
    sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def space_slug(space: str) -> str:
    """A folder name for an embedding space: readable, and unique through a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", space).strip("_")[:60]
    return f"{readable}-{hashlib.sha1(space.encode()).hexdigest()[:8]}"


class ShardWriter:
    """Appends float16 rows to one shard file; each `append` is durable before it returns."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO = open(self.path, "ab")  # noqa: SIM115 - kept open; see close()
        self.rows = self._fh.tell() // (2 * dim)
        if self._fh.tell() % (2 * dim):
            # A torn tail from a killed writer: start cleanly after the last whole row.
            self._fh.truncate(self.rows * 2 * dim)
            self._fh.seek(0, os.SEEK_END)

    def append(self, vectors: np.ndarray) -> int:
        """Write rows; returns the first row index. Flushed and fsynced before returning."""
        data = np.ascontiguousarray(vectors, dtype=np.float16)
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got {data.shape}")
        first = self.rows
        self._fh.write(data.tobytes())
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.rows += len(data)
        return first

    def close(self) -> None:
        self._fh.close()


def read_shard_rows(path: Path, dim: int, rows: np.ndarray) -> np.ndarray:
    """Rows of a shard file as float16 (n, dim), by row index, through a memory map."""
    size = os.path.getsize(path)
    n = size // (2 * dim)
    mm = np.memmap(path, dtype=np.float16, mode="r", shape=(n, dim))
    return np.asarray(mm[rows])


def _remove_dead_temps(folder: Path) -> None:
    """Temporary files left by a writer process that was killed (its pid is gone)."""
    for tmp in folder.glob(".*.npy.*.tmp"):
        pid = tmp.name.split(".")[-2].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)




class VectorStore:
    """The consolidated, memory-mapped vectors of one embedding space, keyed by item id."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def vectors_path(self) -> Path:
        return self.folder / "vectors.npy"

    @property
    def ids_path(self) -> Path:
        return self.folder / "ids.npy"

    def exists(self) -> bool:
        return self.vectors_path.exists() and self.ids_path.exists()

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 sorted, vectors float16 (n, dim) memory-mapped)."""
        ids = np.load(self.ids_path, mmap_mode="r")
        vectors = np.load(self.vectors_path, mmap_mode="r")
        return ids, vectors

    def lookup(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors for the given ids that are present: (found ids, float32 vectors)."""
        ids, vectors = self.load()
        item_ids = np.asarray(item_ids, dtype=np.int64)
        pos = np.searchsorted(ids, item_ids)
        pos = np.clip(pos, 0, max(len(ids) - 1, 0))
        ok = (len(ids) > 0) & (ids[pos] == item_ids) if len(ids) else np.zeros(len(item_ids), bool)
        return item_ids[ok], np.asarray(vectors[pos[ok]], dtype=np.float32)

    def write(self, rows: Iterator[tuple[np.ndarray, np.ndarray]], count: int, dim: int) -> None:
        """Replace the store from (ids, vectors) chunks in ascending id order, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # Temporary names unique to this process and thread: two writers (two processes
        # syncing one space) sharing one name truncated each other's file under a reader's map.
        tag = f"{os.getpid()}-{threading.get_ident()}"
        _remove_dead_temps(self.folder)
        tmp_vec = self.folder / f".vectors.npy.{tag}.tmp"
        tmp_ids = self.folder / f".ids.npy.{tag}.tmp"
        out = np.lib.format.open_memmap(tmp_vec, mode="w+", dtype=np.float16, shape=(count, dim))
        out_ids = np.lib.format.open_memmap(tmp_ids, mode="w+", dtype=np.int64, shape=(count,))
        at = 0
        for ids, vectors in rows:
            out[at : at + len(ids)] = vectors
            out_ids[at : at + len(ids)] = ids
            at += len(ids)
        if at != count:
            raise RuntimeError(f"vector store: expected {count} rows, got {at}")
        out.flush()
        out_ids.flush()
        del out, out_ids
        # ids last: a reader that sees the new ids also sees the new vectors.
        os.replace(tmp_vec, self.vectors_path)
        os.replace(tmp_ids, self.ids_path)


# --- thumbnails -------------------------------------------------------------------------------

_RECORD = struct.Struct("<HHIQ")  # pack number, item version (mod 2**16), length, offset
PACK_LIMIT = 1 << 30


class ThumbnailStore:
    """JPEG thumbnails in append-only pack files with a fixed-size index record per item id.

    Lookup by item id is one seek into `index.bin` and one read from a pack: constant time,
    whatever the number of items. One writer at a time (the embed run); any number of readers.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._pack_fh: Optional[BinaryIO] = None
        self._pack_no = 0

    @property
    def index_path(self) -> Path:
        return self.folder / "index.bin"

    def _pack_path(self, number: int) -> Path:
        return self.folder / f"pack-{number:04d}.bin"

    def _open_pack(self) -> BinaryIO:
        if self._pack_fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            number = 1
            while self._pack_path(number + 1).exists():
                number += 1
            self._pack_no = number
            self._pack_fh = open(self._pack_path(number), "ab")  # noqa: SIM115 - see close()
        if self._pack_fh.tell() > PACK_LIMIT:
            self._pack_fh.close()
            self._pack_no += 1
            self._pack_fh = open(self._pack_path(self._pack_no), "ab")  # noqa: SIM115
        return self._pack_fh

    def put(self, item_id: int, jpeg: bytes, version: int = 1) -> None:
        """Store the thumbnail of an item (replacing an older one)."""
        with self._lock:
            pack = self._open_pack()
            offset = pack.tell()
            pack.write(jpeg)
            pack.flush()
            record = _RECORD.pack(self._pack_no, version & 0xFFFF, len(jpeg), offset)
            with open(self.index_path, "r+b" if self.index_path.exists() else "w+b") as idx:
                idx.seek(item_id * _RECORD.size)
                idx.write(record)

    def version(self, item_id: int) -> Optional[int]:
        record = self._record(item_id)
        return None if record is None else record[1]

    def _record(self, item_id: int) -> Optional[tuple[int, int, int, int]]:
        try:
            with open(self.index_path, "rb") as idx:
                idx.seek(item_id * _RECORD.size)
                raw = idx.read(_RECORD.size)
        except FileNotFoundError:
            return None
        if len(raw) < _RECORD.size:
            return None
        record = _RECORD.unpack(raw)
        return None if record[2] == 0 else record

    def get(self, item_id: int) -> Optional[bytes]:
        """The JPEG bytes of an item's thumbnail, or None when it has none."""
        record = self._record(item_id)
        if record is None:
            return None
        pack, _, length, offset = record
        try:
            with open(self._pack_path(pack), "rb") as fh:
                fh.seek(offset)
                data = fh.read(length)
        except FileNotFoundError:
            return None
        return data if len(data) == length else None

    def get_many(self, item_ids: Iterable[int]) -> dict[int, Optional[bytes]]:
        """The thumbnails of several items (None where an item has none), with the index and
        each pack opened once: a screenful of a group is one read pass, not two opens per item.
        """
        out: dict[int, Optional[bytes]] = {int(i): None for i in item_ids}
        try:
            idx = open(self.index_path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return out
        packs: dict[int, Optional[BinaryIO]] = {}
        try:
            for item_id in sorted(out):
                idx.seek(item_id * _RECORD.size)
                raw = idx.read(_RECORD.size)
                if len(raw) < _RECORD.size:
                    continue
                pack, _, length, offset = _RECORD.unpack(raw)
                if length == 0:
                    continue
                if pack not in packs:
                    try:
                        packs[pack] = open(self._pack_path(pack), "rb", buffering=0)  # noqa: SIM115
                    except FileNotFoundError:
                        packs[pack] = None
                fh = packs[pack]
                if fh is None:
                    continue
                fh.seek(offset)
                data = fh.read(length)
                out[item_id] = data if len(data) == length else None
        finally:
            idx.close()
            for fh in packs.values():
                if fh is not None:
                    fh.close()
        return out

    def close(self) -> None:
        with self._lock:
            if self._pack_fh is not None:
                self._pack_fh.close()
                self._pack_fh = None


class ShardOutputs:
    """The files one embedding process writes: its vector shard, the frame shard of its videos
    (made on the first), and the thumbnail store. The local sink and the Ray driver share it."""

    writer: ShardWriter
    frames_writer: ShardWriter | None
    thumbs: ThumbnailStore | None

    def close(self) -> None:
        """Close the shards and the thumbnail store."""
        self.writer.close()
        if self.frames_writer is not None:
            self.frames_writer.close()
        if self.thumbs is not None:
            self.thumbs.close()
