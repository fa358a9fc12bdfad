"""What SQLite failures mean to a user, and opening a catalog that cannot be written.

Every SQLite error becomes one line naming the file and what to do (`explain`); a catalog file
is checked for an SQLite header before it is opened (`check_header`); a catalog on a read-only
file, folder or mount is opened read-only (`writable`, `connect_readonly`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from curator.errors import CatalogDamagedError, CatalogError, ReadOnlyCatalogError

log = logging.getLogger("curator.catalog")

BUSY_TIMEOUT_MS = 60_000
CATALOG_NAME = "catalog.db"


def writable(path: Path) -> bool:
    """Whether the catalog file and its folder (for the -wal and -shm files) can be written."""
    path = Path(path)
    folder = path.parent
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def connect_readonly(path: Path) -> sqlite3.Connection:
    from urllib.parse import quote

    uri = "file:" + quote(str(path.resolve()))
    conn = sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None,
                           timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        # A WAL catalog in a folder where the -shm file cannot be made: only an immutable open
        # works, and it cannot see changes still in a -wal file (there is none when it was
        # closed cleanly).
        log.debug("read-only open of %s failed (%s); opening it immutable", path, exc)
        conn.close()
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        log.warning("%s: reading without the changes still in %s (it cannot be read here)",
                    path, wal.name)
    return sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)


SQLITE_HEADER = b"SQLite format 3\0"


def _db_file(db: Any) -> str:
    try:
        row = db.conn.execute("PRAGMA database_list").fetchone()
        return row[2] or "the catalog"
    except sqlite3.Error:
        return "the catalog"


def _readonly_message(path: Any) -> str:
    return (
        f"{path} is read-only here, so this command cannot change the project; make the project "
        "folder and its catalog.db writable (e.g. `chmod -R u+w` or remount read-write). "
        "Reading still works: status, history, search and export to another folder"
    )


def _damaged_message(path: Any, detail: str) -> str:
    root = Path(str(path)).parent
    return (
        f"{path} is damaged ({detail}); nothing was written to it. Run `curator check {root}` "
        f"for details and `curator repair {root}` to rebuild it or restore the newest backup"
    )


_DAMAGE_HINTS = ("malformed", "not a database", "corrupt", "could not decode",
                 "unsupported file format", "no such table", "no such column")


def explain(exc: BaseException, path: Any = None) -> CatalogError:
    """One clear line for an SQLite failure: what happened, to which file, and what to do.

    Args:
        exc: an sqlite3.Error, or the UnicodeDecodeError a damaged schema gives.
        path: the catalog file (default: the catalog this process opened last).

    Returns:
        A CatalogError (CatalogDamagedError, ReadOnlyCatalogError) to raise or print.
    """
    if isinstance(exc, CatalogError):
        return exc
    path = path or _LAST_OPENED.get("path") or CATALOG_NAME
    text = " ".join(str(exc).split()) or type(exc).__name__
    lower = text.lower()
    if isinstance(exc, UnicodeDecodeError) or any(h in lower for h in _DAMAGE_HINTS):
        return CatalogDamagedError(_damaged_message(path, text))
    if "readonly" in lower or "read-only" in lower:
        return ReadOnlyCatalogError(_readonly_message(path))
    if "disk is full" in lower or "no space" in lower or (
        "disk i/o error" in lower and _nearly_full(path)
    ):
        return CatalogError(
            f"the disk holding {path} is full ({text}); the step that failed was not written. "
            "Free space on that disk and run the command again"
        )
    if "disk i/o error" in lower:
        return CatalogError(
            f"read/write error on {path} ({text}): the disk may be failing or was removed; copy "
            f"the project to a healthy disk and run `curator check`"
        )
    if "locked" in lower or "busy" in lower:
        return CatalogError(
            f"{path} stayed locked by another process for over {BUSY_TIMEOUT_MS // 1000} s "
            f"({text}); wait for the other command to finish and try again"
        )
    if "unable to open" in lower:
        return CatalogError(
            f"cannot open {path} ({text}); check that the project folder exists and that you "
            "may read it"
        )
    return CatalogError(f"catalog error on {path}: {text}")


_LAST_OPENED: dict[str, str] = {}


def remember_opened(path: Path) -> None:
    """The catalog this process opened last, named by `explain` when no path is given."""
    _LAST_OPENED["path"] = str(path)


def _nearly_full(path: Any) -> bool:
    """Whether the disk holding `path` has under 4 MiB free (SQLite then reports I/O errors)."""
    import shutil

    try:
        return shutil.disk_usage(Path(str(path)).parent).free < (4 << 20)
    except OSError:
        return False


def check_header(path: Path) -> None:
    """Refuse a catalog file whose first bytes are not an SQLite header (a cheap first check).

    Raises:
        CatalogDamagedError: the file is too short or its header is wrong.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(head) < 100:
        raise CatalogDamagedError(_damaged_message(path, f"the file is {len(head)} bytes long, "
                                                         "shorter than an SQLite header"))
    if head[:16] != SQLITE_HEADER:
        raise CatalogDamagedError(_damaged_message(path, "its SQLite header is wrong"))
    page_size = int.from_bytes(head[16:18], "big")
    if page_size not in (1,) and (page_size < 512 or page_size & (page_size - 1)):
        raise CatalogDamagedError(_damaged_message(path, f"bad page size {page_size} in header"))


def _check_marker(path: Path) -> Path:
    return path.with_name(path.name + "-checked.json")


def _file_identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


_MARKED: dict[str, list[int]] = {}
"""The identity this process last wrote into each catalog's mark."""


def record_sound(path: Path) -> None:
    """Mark the catalog file as it is now as checked: the next process skips the integrity check
    until something else changes the file. Called by a process that passed its check (or
    trusted the mark) after its own writes change the file (a commit, a checkpoint, its close),
    so another Curator process writing at the same time does not pay a full check."""
    try:
        identity = _file_identity(path)
        if _MARKED.get(str(path)) == identity:
            return  # most commits only append to the WAL: the file (and its mark) is unchanged
        marker = _check_marker(path)
        tmp = marker.with_name(f"{marker.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(identity))
        os.replace(tmp, marker)
        _MARKED[str(path)] = identity
    except OSError as exc:
        log.debug("integrity mark of %s not written: %s", path, exc)
