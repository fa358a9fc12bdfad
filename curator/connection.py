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
from typing import TYPE_CHECKING, Any, Optional

from curator.catalog_faults import (
    BUSY_TIMEOUT_MS,
    _db_file,
    _readonly_message,
    connect_readonly,
    writable,
)
from curator.errors import ReadOnlyCatalogError

if TYPE_CHECKING:
    import sqlite_utils


def utcnow() -> str:
    """Now as an ISO-8601 UTC timestamp with milliseconds, the catalog's one time format."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- connections ------------------------------------------------------------------------------


def _sqlite_utils() -> Any:
    """sqlite_utils, imported on first need (migrations, tests): it costs ~0.2 s of every start."""
    if "pandas" in sys.modules:
        import sqlite_utils

        return sqlite_utils
    # sqlite_utils imports pandas when it is installed, only to map pandas.Timestamp columns,
    # which the catalog never writes; that import would triple its cost. Hide it.
    sys.modules["pandas"] = None  # type: ignore[assignment]  (import then raises ImportError)
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]
    return sqlite_utils


class CatalogDB:
    """One catalog connection: `execute`, `query` and `table_names` straight on sqlite3, the rest
    of `sqlite_utils.Database` (what migrations use) made on first use.

    The read path (every command, every search) needs only plain SQL, and importing sqlite_utils
    (dateutil, pluggy, and a scan of every installed distribution's entry points when the first
    `Database` is made) was a fifth of a cold `curator search`.

    Attributes:
        conn: the sqlite3 connection (autocommit: explicit transactions only).
        curator_readonly: whether the catalog opened read-only (every write refuses).
    """

    def __init__(self, conn: sqlite3.Connection, readonly: bool = False) -> None:
        self.conn = conn
        self.curator_readonly = readonly
        self._full: Any = None

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        if parameters is None:
            return self.conn.execute(sql)
        return self.conn.execute(sql, parameters)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        return self.full.executescript(sql)

    def query(self, sql: str, params: Any = None) -> Iterator[dict[str, Any]]:
        """Rows as dicts, as `sqlite_utils.Database.query` gives them."""
        cursor = self.execute(sql, params)
        if cursor.description is None:
            raise ValueError("query() can only be used with SQL that returns rows - "
                             "use execute() for other statements")
        keys: list[str] = []
        for d in cursor.description:  # repeated names become name_2, name_3 as sqlite_utils does
            key, n = d[0], 2
            while key in keys:
                key, n = f"{d[0]}_{n}", n + 1
            keys.append(key)
        return (dict(zip(keys, row)) for row in cursor)

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]

    @property
    def full(self) -> sqlite_utils.Database:
        """The same connection as a `sqlite_utils.Database` (tables, schema changes)."""
        if self._full is None:
            self._full = _sqlite_utils().Database(self.conn)
        return self._full

    def __getitem__(self, table: str) -> Any:
        return self.full[table]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_full":
            raise AttributeError(name)
        return getattr(self.full, name)


def connect(path: Path, readonly: Optional[bool] = None) -> CatalogDB:
    """Open one connection with the catalog's discipline: WAL, busy timeout, explicit transactions.

    A catalog that cannot be written here (a read-only file, folder or mount) opens read-only:
    `?mode=ro`, or `?immutable=1` where SQLite cannot create its WAL index beside the file. The
    returned `CatalogDB` then has `curator_readonly = True` and every write transaction refuses.

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
    conn.execute("PRAGMA recursive_triggers = ON")  # as sqlite_utils.Database sets it
    return CatalogDB(conn, bool(readonly))


@contextlib.contextmanager
def transaction(db: CatalogDB) -> Iterator[CatalogDB]:
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
