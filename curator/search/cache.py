"""Warm search state of one open project: its opened indexes and its query models.

The desktop app keeps one `SearchCache` for as long as a project is open, so a query costs a
search and not a load; the CLI makes one per process, so it maps each index once. An index is
reopened only when its file was replaced (its stat stamp changed), which costs one `stat` per query.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from curator.catalog import Catalog
from curator.search.index_files import (
    FRAMES_FILE,
    INDEX_FILE,
    index_stamp,
    open_index,
    space_folder,
)

log = logging.getLogger(__name__)


class SearchCache:
    """Opened indexes (keyed by file, reopened when the file changes) and embedders by space."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._lock = threading.Lock()
        self._indexes: dict[Path, tuple[tuple[int, int, int], Any]] = {}
        self._embedders: dict[tuple[str, bool | None], Any] = {}
        self._folders: dict[str, Path] = {}
        self._stores: dict[str, tuple[Any, tuple[Any, Any]]] = {}
        self._embedder_locks: dict[tuple[str, bool | None], threading.Lock] = {}
        # Warm k-NN state of label suggestions by (run, space): see curator/suggest_votes.py.
        self.suggest_states: dict[tuple[int, str], Any] = {}

    def folder(self, space: str) -> Path:
        """The space's folder (looked up once: a space never moves)."""
        found = self._folders.get(space)
        if found is None:
            found = self._folders.setdefault(space, space_folder(self._catalog, space))
        return found

    def vectors(self, space: str) -> tuple[Any, Any]:
        """(ids, vectors) of the space's store, memory-mapped once per compaction."""
        import numpy as np

        folder = self.folder(space)
        stamp = index_stamp(folder / "vectors.npy")
        with self._lock:
            cached = self._stores.get(space)
            if cached is not None and cached[0] == stamp and stamp is not None:
                return cached[1]
        if stamp is None:
            return np.empty(0, np.int64), np.empty((0, 0), np.float16)
        pair = (np.load(folder / "ids.npy", mmap_mode="r"),
                np.load(folder / "vectors.npy", mmap_mode="r"))
        with self._lock:
            self._stores[space] = (stamp, pair)
        return pair

    def index(self, space: str, frames: bool = False) -> Any | None:
        """The space's item index (or frame index), or None when it has none on disk."""
        path = self.folder(space) / (FRAMES_FILE if frames else INDEX_FILE)
        stamp = index_stamp(path)
        if stamp is None:
            return None
        with self._lock:
            cached = self._indexes.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        index = open_index(path)
        # The stamp read before opening: were the file replaced meanwhile, the next query sees a
        # newer stamp and opens it again, so a reader is never left on a stale index.
        with self._lock:
            self._indexes[path] = (stamp, index)
        log.debug("opened %s (%d vectors)", path, len(index))
        return index

    def embed_text(self, space: str, texts: list[str], offline: bool | None) -> Any:
        """Text vectors through the space's text tower, the model loaded once."""
        from curator.search.queries import single_torch_thread

        embedder, lock = self.embedder(space, offline)
        with lock, single_torch_thread():
            return embedder.embed_text(texts)

    def embedder(self, space: str, offline: bool | None) -> tuple[Any, threading.Lock]:
        """The embedder that made `space` (loaded once) and the lock to hold while using it."""
        from curator.search.queries import make_embedder

        key = (space, offline)
        with self._lock:
            found = self._embedders.get(key)
            if found is not None:
                return found, self._embedder_locks[key]
        embedder = make_embedder(self._catalog, space, offline)
        with self._lock:
            found = self._embedders.setdefault(key, embedder)
            lock = self._embedder_locks.setdefault(key, threading.Lock())
        return found, lock

    def clear(self) -> None:
        """Forget every opened index and model (the project closes)."""
        with self._lock:
            self._indexes.clear()
            self._stores.clear()
            self._embedders.clear()
            self._embedder_locks.clear()
            self.suggest_states.clear()
