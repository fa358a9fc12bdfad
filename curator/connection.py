"""One SQLite connection with the catalog's discipline, short write transactions, the time format.

WAL, a busy timeout and explicit `BEGIN IMMEDIATE` transactions, so writers queue instead of
failing; a catalog that cannot be written here opens read-only and refuses every write.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from curator.catalog_faults import (
    BUSY_TIMEOUT_MS,
    _db_file,
    _readonly_message,
    connect_readonly,
    writable,
)
from curator.errors import ReadOnlyCatalogError

if "pandas" in sys.modules:
    import sqlite_utils
else:
    # sqlite_utils imports pandas when it is installed, only to map pandas.Timestamp columns,
    # which the catalog never writes; that import is a third of every CLI start. Hide it.
    sys.modules["pandas"] = None  # type: ignore[assignment]  (import then raises ImportError)
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]


def utcnow() -> str:
    """Now as an ISO-8601 UTC timestamp with milliseconds, the catalog's one time format."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- connections ------------------------------------------------------------------------------


def connect(path: Path, readonly: Optional[bool] = None) -> sqlite_utils.Database:
    """Open one connection with the catalog's discipline: WAL, busy timeout, explicit transactions.

    A catalog that cannot be written here (a read-only file, folder or mount) opens read-only:
    `?mode=ro`, or `?immutable=1` where SQLite cannot create its WAL index beside the file. The
    returned Database then has `curator_readonly = True` and every write transaction refuses.

    Args:
        path: the catalog file.
        readonly: force read-only (True) or read-write (False); None decides from the file system.
    """
    path = Path(path)
    if readonly is None:
        readonly = path.exists() and not writable(path)
    if readonly:
        conn = connect_readonly(path)
    else:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    db.curator_readonly = bool(readonly)  # type: ignore[attr-defined]
    return db


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A short write transaction taken with BEGIN IMMEDIATE, so writers queue instead of failing."""
    conn = db.conn
    if getattr(db, "curator_readonly", False):
        raise ReadOnlyCatalogError(_readonly_message(_db_file(db)))
    if conn.in_transaction:
        # Nested use joins the outer transaction; only the outermost commits.
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
