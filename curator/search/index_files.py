"""The search index files of a space, kept in step with the catalog by writers only.

Each space folder holds `index.faiss` (one vector per item) and, when the space has videos,
`frames.faiss` (one vector per sampled video frame, keyed `item_id * FRAME_SLOTS + frame`), each
with a JSON sidecar and a record of the (item id, content version) pairs it holds, so bringing
it up to date after a rescan or a re-embed adds, replaces and removes items instead of
rebuilding.

Only the write path (`sync_index`, called after embedding) changes these files. It holds an
exclusive lock on `index.lock` across processes, writes every file under a name unique to the
process and thread, and renames it into place, so a reader sees the old file or the new one. A
reader (`open_index`) never creates or writes anything: it maps the file read-only and notices a
newer one by its stat stamp (`index_stamp`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from curator.catalog import Catalog
from curator.errors import UsageError
from indexing.progress import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
ITEMS_FILE = "index-items.npy"
FRAMES_FILE = "frames.faiss"
FRAME_ITEMS_FILE = "frames-items.npy"
LOCK_FILE = "index.lock"

FRAME_SLOTS = 1024
"""Frame keys are item_id * FRAME_SLOTS + frame number; a video keeps at most this many frames."""


def space_folder(catalog: Catalog, space: str) -> Path:
    """The folder of a space's vectors and index files."""
    row = catalog.db.execute("SELECT folder FROM spaces WHERE space = ?", [space]).fetchone()
    if row is None:
        raise UsageError(f"no embedding space {space!r}", hint="run `curator embed` first")
    return catalog.root / row[0]


def tmp_name(path: Path) -> Path:
    """A temporary name beside `path` unique to this process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """Hold the space's index lock exclusively (across processes and threads) while inside."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+b") as fh:
        _lock(fh, exclusive=True)
        try:
            yield
        finally:
            _unlock(fh)


def _lock(fh: Any, exclusive: bool, block: bool = True) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt locks a byte range, always exclusive
        import msvcrt

        mode = msvcrt.LK_LOCK if block else msvcrt.LK_NBLCK
        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), mode, 1)
            return True
        except OSError:
            return False
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if block else fcntl.LOCK_NB)
    try:
        fcntl.flock(fh.fileno(), flags)
        return True
    except BlockingIOError:
        return False


def _unlock(fh: Any) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- what the catalog holds now --------------------------------------------------------------


@contextlib.contextmanager
def _read_snapshot(catalog: Catalog) -> Iterator[None]:
    """Reads inside see one state of the catalog (a deferred transaction; WAL keeps writers
    going)."""
    conn = catalog.db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def current_versions(catalog: Catalog, space: str) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, content versions) of the space's current vectors, by item id."""
    rows = np.array(catalog.db.execute(
        "SELECT e.item_id, e.item_version FROM embeddings e JOIN items i ON i.id = e.item_id "
        "WHERE e.space = ? AND i.status = 'ok' AND e.item_version = i.version ORDER BY e.item_id",
        [space]).fetchall(), dtype=np.int64).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy()


def _current_frames(catalog: Catalog, space: str) -> tuple[np.ndarray, np.ndarray, list]:
    rows = catalog.db.execute(
        "SELECT e.item_id, e.item_version, e.frames_shard, e.frames_row, e.frames_count "
        "FROM embeddings e JOIN items i ON i.id = e.item_id WHERE e.space = ? AND i.status = 'ok' "
        "AND e.item_version = i.version AND e.frames_shard IS NOT NULL AND e.frames_count > 0 "
        "ORDER BY e.item_id", [space]).fetchall()
    ids = np.array([r[0] for r in rows], np.int64)
    versions = np.array([r[1] for r in rows], np.int64)
    return ids, versions, rows


def _diff(synced: np.ndarray, ids: np.ndarray, versions: np.ndarray) -> tuple[np.ndarray, ...]:
    """(gone, new, changed) item ids between what an index holds and what the catalog holds."""
    old_ids = synced[:, 0] if len(synced) else np.empty(0, np.int64)
    gone = np.setdiff1d(old_ids, ids)
    new = np.setdiff1d(ids, old_ids)
    both, i_old, i_now = np.intersect1d(old_ids, ids, return_indices=True)
    changed = both[synced[i_old, 1] != versions[i_now]] if len(both) else np.empty(0, np.int64)
    return gone, new, changed


# --- the write path --------------------------------------------------------------------------


def sync_index(catalog: Catalog, space: str, progress: Progress | None = None) -> dict[str, int]:
    """Bring the space's index files in line with the catalog: add new, replace re-embedded,
    drop missing; the only function that writes them.

    Returns:
        Counts: added, updated, removed, total, frames (frame vectors indexed).
    """
    from curator.embed import compact_space, space_store

    progress = progress or no_progress
    folder = space_folder(catalog, space)
    with write_lock(folder):
        # One read snapshot for what the catalog holds: a scan changing items meanwhile can
        # neither make the store disagree with its own count nor with the ids indexed here.
        with _read_snapshot(catalog):
            ids, versions = current_versions(catalog, space)
            store = space_store(catalog, space)
            store_ids = np.load(store.ids_path, mmap_mode="r") if store.exists() else np.empty(0)
            if len(store_ids) != len(ids) or not np.array_equal(np.asarray(store_ids), ids):
                compact_space(catalog, space)
            frame_rows = _current_frames(catalog, space)
        store_ids, vectors = store.load()

        def item_vectors(chosen: np.ndarray) -> np.ndarray:
            return np.asarray(vectors[np.searchsorted(store_ids, chosen)], np.float32)

        counts = _sync_one(folder / INDEX_FILE, folder / ITEMS_FILE, ids, versions,
                           item_vectors, space, progress, whole=(store_ids, vectors))
        counts["frames"] = _sync_frames(catalog, space, folder, frame_rows, progress)
    counts["total"] = len(ids)
    return counts


def _sync_one(index_path: Path, synced_path: Path, ids: np.ndarray, versions: np.ndarray,
              fetch: Callable[[np.ndarray], np.ndarray], space: str, progress: Progress,
              whole: tuple[np.ndarray, Any] | None = None) -> dict[str, int]:
    """Update one index file (and its record of ids) in place; caller holds the lock."""
    from indexing.vector_index import IndexFileError, VectorIndex

    index, synced = None, np.empty((0, 2), np.int64)
    if index_path.exists() and synced_path.exists():
        try:
            index, synced = VectorIndex.load(index_path, gpu=False), np.load(synced_path)
        except (IndexFileError, OSError, ValueError) as exc:
            log.warning("index %s unreadable (%s); rebuilding it", index_path, exc)
            index = None
    counts = {"added": 0, "updated": 0, "removed": 0}
    rebuild = index is None or len(ids) > 2 * max(len(synced), 1) or (
        index.info.kind == "flat" and len(ids) > 100_000)
    if rebuild:
        progress(ProgressEvent(f"index {space}", 0, len(ids), "items"))
        if len(ids):
            keys, X = whole if whole is not None else (ids, fetch(ids))
            index = VectorIndex.build(np.asarray(keys), X, space=space, gpu=False,
                                      progress=progress)
        counts["added"] = len(ids)
    else:
        gone, new, changed = _diff(synced, ids, versions)
        if len(gone):
            counts["removed"] = index.remove(gone)
        for kind, chosen in (("added", new), ("updated", changed)):
            if len(chosen):
                index.upsert(chosen, fetch(chosen))
                counts[kind] = len(chosen)
        if not (len(gone) or len(new) or len(changed)):
            return counts  # nothing changed: leave the files (and their stamps) alone
    if index is None:
        for path in (index_path, synced_path, index_path.with_suffix(".json")):
            path.unlink(missing_ok=True)
        return counts
    # The id record first, then the index: a reader's stamp is the index file, and a crash in
    # between leaves a record newer than the index, which the next sync repairs by diffing.
    _save_npy(synced_path, np.stack([ids, versions], axis=1) if len(ids)
              else np.empty((0, 2), np.int64))
    index.save(index_path)
    return counts


def _sync_frames(catalog: Catalog, space: str, folder: Path,
                 frames: tuple[np.ndarray, np.ndarray, list], progress: Progress) -> int:
    """Index every frame vector of the space's videos; returns the frames indexed."""
    from curator.stores import read_shard_rows

    vids, versions, rows = frames
    if not len(vids) and not (folder / FRAMES_FILE).exists():
        return 0
    dim = catalog.db.execute("SELECT dim FROM spaces WHERE space = ?", [space]).fetchone()[0]
    by_id = {r[0]: r for r in rows}

    def keys_of(chosen: np.ndarray) -> np.ndarray:
        return np.concatenate([np.int64(i) * FRAME_SLOTS + np.arange(
            min(by_id[int(i)][4], FRAME_SLOTS), dtype=np.int64) for i in chosen]) if len(
            chosen) else np.empty(0, np.int64)

    def fetch(chosen: np.ndarray) -> np.ndarray:
        parts = []
        for i in chosen:
            _, _, shard, first, n = by_id[int(i)]
            n = min(n, FRAME_SLOTS)
            parts.append(read_shard_rows(folder / "shards" / shard, dim,
                                         np.arange(first, first + n)).astype(np.float32))
        return np.concatenate(parts) if parts else np.empty((0, dim), np.float32)

    path, synced_path = folder / FRAMES_FILE, folder / FRAME_ITEMS_FILE
    from indexing.vector_index import IndexFileError, VectorIndex

    index, synced = None, np.empty((0, 2), np.int64)
    if path.exists() and synced_path.exists():
        try:
            index, synced = VectorIndex.load(path, gpu=False), np.load(synced_path)
        except (IndexFileError, OSError, ValueError) as exc:
            log.warning("frame index %s unreadable (%s); rebuilding it", path, exc)
    gone, new, changed = _diff(synced, vids, versions)
    if index is not None and not (len(gone) or len(new) or len(changed)):
        return len(index)
    if index is None or len(vids) > 2 * max(len(synced), 1):
        progress(ProgressEvent(f"frames {space}", 0, len(vids), "videos"))
        index = VectorIndex.build(keys_of(vids), fetch(vids), space=space, gpu=False) if len(
            vids) else None
    else:
        old_frames = synced[:, 2] if synced.shape[1] > 2 else None
        drop = np.concatenate([gone, changed])
        if len(drop):
            counts = dict(zip(synced[:, 0].tolist(), (old_frames if old_frames is not None
                                                      else [FRAME_SLOTS] * len(synced))))
            index.remove(np.concatenate([np.int64(i) * FRAME_SLOTS + np.arange(
                min(int(counts[int(i)]), FRAME_SLOTS), dtype=np.int64) for i in drop]))
        add = np.concatenate([new, changed])
        if len(add):
            index.add(keys_of(add), fetch(add))
    record = np.stack([vids, versions, np.array([min(by_id[int(i)][4], FRAME_SLOTS)
                                                 for i in vids], np.int64)], axis=1) if len(
        vids) else np.empty((0, 3), np.int64)
    if index is None:
        for p in (path, synced_path, path.with_suffix(".json")):
            p.unlink(missing_ok=True)
        return 0
    _save_npy(synced_path, record)
    index.save(path)
    return len(index)


# --- the read path ---------------------------------------------------------------------------


def index_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime ns) of an index file, or None when absent: a rename changes it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def open_index(path: Path) -> Any:
    """Open an index file for searching only: memory-mapped where the kind allows, never written.

    Waits (shared lock) while a writer is mid-way, when the lock file exists; never creates it.
    """
    from indexing.vector_index import VectorIndex

    lock = path.parent / LOCK_FILE
    if not lock.exists():
        return VectorIndex.load(path, mmap=True)
    with open(lock, "rb") as fh:
        _lock(fh, exclusive=False)
        try:
            return VectorIndex.load(path, mmap=True)
        finally:
            _unlock(fh)
