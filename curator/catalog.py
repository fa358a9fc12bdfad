"""The project's SQLite catalog: connection discipline, recorded schema migrations and runs."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

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

from curator import __version__
from curator.catalog_faults import (
    BUSY_TIMEOUT_MS,
    CATALOG_NAME,
    _check_marker,
    _damaged_message,
    _db_file,
    _file_identity,
    _readonly_message,
    check_header,
    connect_readonly,
    explain,
    remember_opened,
    writable,
)
from curator.errors import (
    CatalogDamagedError,
    CuratorError,
    NotAProjectError,
    ReadOnlyCatalogError,
)

log = logging.getLogger(__name__)

APP_ID = "curator"


def utcnow() -> str:
    """Now as an ISO-8601 UTC timestamp with milliseconds, the catalog's one time format."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- migrations -------------------------------------------------------------------------------
# Each migration runs once, in order, inside one transaction, and is recorded in `_migrations`.
# Never edit a released migration: add a new one.


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(
        """CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            root TEXT NOT NULL UNIQUE,
            added_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            source_id INTEGER NOT NULL REFERENCES sources(id),
            path TEXT NOT NULL,
            modality TEXT,
            format TEXT,
            size INTEGER,
            mtime REAL,
            mtime_ns INTEGER,
            content_hash TEXT,
            width INTEGER,
            height INTEGER,
            duration REAL,
            fps REAL,
            sample_rate INTEGER,
            channels INTEGER,
            codec TEXT,
            status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
            error TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            UNIQUE (source_id, path)
        )"""
    )
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            app_version TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX items_status ON items (status)")


def _m002_item_details_and_run_owner(db: sqlite_utils.Database) -> None:
    # Richer media facts, a content version that later stages compare against to find stale
    # work, and the owner of a run so an interrupted one can be told from a live one.
    items = db["items"]
    for name, kind in [
        ("mode", str),
        ("frames", int),
        ("orientation", int),
        ("has_audio", int),
        ("version", int),
        ("changed_at", str),
    ]:
        items.add_column(name, kind)
    db.execute("UPDATE items SET version = 1 WHERE version IS NULL")
    db.execute("CREATE INDEX items_hash ON items (content_hash)")
    db.execute("CREATE INDEX items_modality ON items (modality, status)")
    runs = db["runs"]
    for name, kind in [("error", str), ("pid", int), ("host", str)]:
        runs.add_column(name, kind)


def _m003_embeddings(db: sqlite_utils.Database) -> None:
    # Which vector of which space each item has, where it lives, and for which content version.
    db.execute(
        """CREATE TABLE spaces (
            space TEXT PRIMARY KEY,
            embedder TEXT NOT NULL,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            modalities TEXT NOT NULL,
            preprocess TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            folder TEXT NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE embeddings (
            item_id INTEGER NOT NULL REFERENCES items(id),
            space TEXT NOT NULL REFERENCES spaces(space),
            shard TEXT NOT NULL,
            row INTEGER NOT NULL,
            frames_shard TEXT,
            frames_row INTEGER,
            frames_count INTEGER,
            item_version INTEGER NOT NULL,
            content_hash TEXT,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (item_id, space)
        )"""
    )
    db.execute("CREATE INDEX embeddings_space ON embeddings (space, item_id)")




def _m004_groups(db: sqlite_utils.Database) -> None:
    # Groups belong to a clustering run; assignments say which group of the run holds an item.
    db.execute(
        """CREATE TABLE clusterings (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            space TEXT NOT NULL,
            part TEXT NOT NULL DEFAULT '',
            method TEXT NOT NULL,
            n_groups INTEGER NOT NULL,
            n_items INTEGER NOT NULL DEFAULT 0,
            group_offset INTEGER NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, space, part)
        )"""
    )
    db.execute(
        """CREATE TABLE groups (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            group_id INTEGER NOT NULL,
            space TEXT NOT NULL,
            size INTEGER NOT NULL,
            cohesion REAL,
            impurity REAL,
            topic INTEGER,
            representatives TEXT NOT NULL DEFAULT '[]',
            boundary TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'split', 'merged')),
            parent INTEGER,
            status TEXT NOT NULL DEFAULT 'undecided'
                CHECK (status IN ('undecided', 'labelled', 'noise', 'mixed')),
            label_id INTEGER,
            decided_event INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, group_id)
        )"""
    )
    db.execute(
        """CREATE TABLE assignments (
            run_id INTEGER NOT NULL,
            item_id INTEGER NOT NULL,
            group_id INTEGER NOT NULL,
            PRIMARY KEY (run_id, item_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX assignments_group ON assignments (run_id, group_id, item_id)")
    # The review queue reads every active group of a run ordered by impurity or size.
    db.execute("CREATE INDEX groups_queue ON groups (run_id, state, impurity, size, status)")


def _m005_labels(db: sqlite_utils.Database) -> None:
    # The taxonomy, the append-only event log (with each touched item's value before and
    # after, so any event can be undone and redone), and the current label per item,
    # materialised from the log for speed.
    db.execute(
        """CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            parent_id INTEGER REFERENCES labels(id),
            colour TEXT,
            hotkey TEXT,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            removed_at TEXT,
            merged_into INTEGER REFERENCES labels(id)
        )"""
    )
    db.execute("CREATE UNIQUE INDEX labels_name ON labels (name) WHERE removed_at IS NULL")
    db.execute("CREATE UNIQUE INDEX labels_hotkey ON labels (hotkey) "
               "WHERE removed_at IS NULL AND hotkey IS NOT NULL")
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            annotator TEXT NOT NULL,
            action TEXT NOT NULL,
            label_id INTEGER,
            source TEXT NOT NULL,
            run_id INTEGER,
            group_id INTEGER,
            note TEXT NOT NULL DEFAULT '',
            item_count INTEGER NOT NULL DEFAULT 0,
            target INTEGER REFERENCES events(id),
            undone INTEGER NOT NULL DEFAULT 0,
            details TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX events_annotator ON events (annotator, id)")
    db.execute(
        """CREATE TABLE event_items (
            event_id INTEGER NOT NULL REFERENCES events(id),
            item_id INTEGER NOT NULL,
            before_state TEXT,
            before_label INTEGER,
            before_event INTEGER,
            after_state TEXT,
            after_label INTEGER,
            PRIMARY KEY (event_id, item_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX event_items_item ON event_items (item_id, event_id)")
    db.execute(
        """CREATE TABLE item_labels (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            state TEXT NOT NULL CHECK (state IN ('labelled', 'noise', 'mixed')),
            label_id INTEGER REFERENCES labels(id),
            event_id INTEGER NOT NULL REFERENCES events(id),
            confirmed INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute("CREATE INDEX item_labels_label ON item_labels (label_id)")
    db.execute(
        """CREATE TABLE audits (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            annotator TEXT NOT NULL,
            seed INTEGER NOT NULL,
            params TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute(
        """CREATE TABLE audit_items (
            audit_id INTEGER NOT NULL REFERENCES audits(id),
            item_id INTEGER NOT NULL,
            stratum TEXT NOT NULL,
            label_id INTEGER,
            verdict TEXT CHECK (verdict IN ('correct', 'wrong', 'unsure')),
            corrected_label INTEGER,
            reviewed_at TEXT,
            PRIMARY KEY (audit_id, item_id)
        ) WITHOUT ROWID"""
    )


def _m006_triage_changes(db: sqlite_utils.Database) -> None:
    # A change log that every write path fills through triggers, so an open app (or a second
    # window) can see what another process changed: kinds are labels, taxonomy, groups (split,
    # merge) and run:<kind> when a scan, embed, cluster or map run ends.
    from curator.changes import create_change_log

    create_change_log(db)
def _m006_exports_splits(db: sqlite_utils.Database) -> None:
    # The stored train/val/test assignment every export reuses (see curator.splits).
    db.execute(
        """CREATE TABLE split_assignments (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            annotator TEXT NOT NULL DEFAULT '',
            fractions TEXT NOT NULL,
            seed INTEGER NOT NULL,
            cleared_at TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE item_splits (
            item_id INTEGER PRIMARY KEY,
            assignment_id INTEGER NOT NULL REFERENCES split_assignments(id),
            split INTEGER NOT NULL,
            assigned_at TEXT NOT NULL
        )"""
    )


def _m007_triage_duplicate_state(db: sqlite_utils.Database) -> None:
    # A `duplicate` item state that points at the item kept (item_labels.keeper_id, carried by
    # event_items so undo and redo restore it).
    from curator.changes import duplicate_state

    duplicate_state(db)


def _m008_perf_group_summaries(db: sqlite_utils.Database) -> None:
    # One row of sums per group and run beside the tallies, so the queue reads 3,000 rows.
    from curator.tallies import create_summary_table

    create_summary_table(db)


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_item_details_and_run_owner", _m002_item_details_and_run_owner),
    ("003_embeddings", _m003_embeddings),
    ("004_groups", _m004_groups),
    ("005_labels", _m005_labels),
    ("006_triage_changes", _m006_triage_changes),
    ("006_exports_splits", _m006_exports_splits),
    ("007_triage_duplicate_state", _m007_triage_duplicate_state),
    ("008_perf_group_summaries", _m008_perf_group_summaries),
]


def applied_migrations(db: sqlite_utils.Database) -> list[str]:
    if "_migrations" not in db.table_names():
        return []
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY id").fetchall()]


def migrate(db: sqlite_utils.Database, upto: Optional[str] = None) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction.

    Args:
        db: an open catalog.
        upto: stop after the migration of this name (tests use it to build older schemas).

    Returns:
        The names applied now.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations "
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
    )
    done = set(applied_migrations(db))
    applied = []
    for name, fn in MIGRATIONS:
        if name not in done:
            with transaction(db):
                # Another process may have migrated while we waited for the write lock.
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?", [name]).fetchone():
                    continue
                fn(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, utcnow()]
                )
            log.info("catalog migrated: %s", name)
            applied.append(name)
        if name == upto:
            break
    return applied


# --- newer catalogs ---------------------------------------------------------------------------
# A catalog from a newer Curator is refused before anything is written: an unknown migration
# means a schema this version does not know; `meta.min_reader_version` lets a later release
# mark data that an older one would misread even without a schema change.


def _version_key(version: str) -> tuple[int, ...]:
    """"0.10.2rc1" → (0, 10, 2): the numeric release parts, enough to order Curator versions."""
    parts = []
    for piece in str(version).split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _newer_writer(db: sqlite_utils.Database) -> Optional[str]:
    """Why this Curator must not open the catalog (written by a newer one), or None."""
    known = {name for name, _ in MIGRATIONS}
    unknown = [m for m in applied_migrations(db) if m not in known]
    row = db.execute("SELECT value FROM meta WHERE key = 'min_reader_version'").fetchone()
    needed = row[0] if row else None
    if not unknown and not (needed and _version_key(needed) > _version_key(__version__)):
        return None
    writers = [r[0] for r in db.execute("SELECT DISTINCT app_version FROM runs").fetchall()]
    newest = max(writers + [needed or "0"], key=_version_key)
    by = f"Curator {newest}" if _version_key(newest) > _version_key(__version__) else (
        "a newer Curator")
    what = f"schema {unknown[-1]}" if unknown else f"needs Curator {needed} or later"
    return f"was written by {by} ({what}), newer than this Curator {__version__}"


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


class Catalog:
    """The catalog of one project folder: a connection per thread over `catalog.db`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / CATALOG_NAME
        self._local = threading.local()
        self._sound = False

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path)
            self._local.db = db
        return db

    @classmethod
    def create(cls, root: Path) -> Catalog:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        catalog = cls(root)
        migrate(catalog.db)
        with transaction(catalog.db) as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('app', ?), ('created_at', ?), "
                "('created_by', ?)",
                [APP_ID, utcnow(), __version__],
            )
        return catalog

    @classmethod
    def open(cls, root: Path) -> Catalog:
        """Open an existing project's catalog, migrating an older schema.

        Raises:
            NotAProjectError: the folder is missing or holds no Curator catalog.
        """
        root = Path(root)
        if not root.exists():
            raise NotAProjectError(f"{root}: no such folder", hint="create a project with "
                                   "`curator init`")
        if not root.is_dir():
            raise NotAProjectError(f"{root} is a file, not a Curator project folder")
        path = root / CATALOG_NAME
        if not path.exists():
            raise NotAProjectError(
                f"{root} is not a Curator project (no {CATALOG_NAME})",
                hint=f"create one with `curator init {root} --source MEDIA_FOLDER`",
            )
        check_header(path)
        catalog = cls(root)
        remember_opened(path)
        try:
            tables = catalog.db.table_names()
            app = None
            if "meta" in tables:
                row = catalog.db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
                app = row[0] if row else None
            applied = applied_migrations(catalog.db)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            catalog.close()
            raise explain(exc, path) from exc
        if app != APP_ID:
            catalog.close()
            raise NotAProjectError(f"{path} is an SQLite file but not a Curator catalog")
        try:
            newer = _newer_writer(catalog.db)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            catalog.close()
            raise explain(exc, path) from exc
        if newer:
            catalog.close()
            raise CuratorError(f"{path} {newer}; upgrade Curator to open it (nothing was changed)")
        if catalog.readonly:
            known = {name for name, _ in MIGRATIONS}
            if len(set(applied) & known) < len(known):
                catalog.close()
                raise ReadOnlyCatalogError(
                    f"{path} needs a schema upgrade, which needs write access; "
                    + _readonly_message(path).split("; ", 1)[1]
                )
            log.info("%s is read-only here; opened read-only", path)
            return catalog
        try:
            migrate(catalog.db)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            catalog.close()
            raise explain(exc, path) from exc
        return catalog

    @property
    def readonly(self) -> bool:
        """Whether this catalog is open read-only (a read-only file, folder or mount)."""
        return bool(getattr(self.db, "curator_readonly", False))

    def ensure_sound(self) -> None:
        """Refuse to write into a catalog that fails SQLite's integrity check.

        The check runs once per process and catalog, and is skipped while the file is unchanged
        since the last check that passed (a marker beside it records size, mtime and inode).

        Raises:
            CatalogDamagedError: the check failed; the message says how to repair.
            ReadOnlyCatalogError: the catalog is open read-only.
        """
        if self._sound:
            return
        if self.readonly:
            raise ReadOnlyCatalogError(_readonly_message(self.path))
        marker = _check_marker(self.path)
        identity = _file_identity(self.path)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text()) == identity:
                self._sound = True
                return
        try:
            # integrity_check, not quick_check: a flipped byte in an index passes the quick one,
            # and a write would spread the damage. The marker makes it once per outside change.
            rows = [r[0] for r in self.db.execute("PRAGMA integrity_check(5)").fetchall()]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise explain(exc, self.path) from exc
        if rows != ["ok"]:
            detail = " ".join(" ".join(rows).replace("*** in database main ***", "").split())
            raise CatalogDamagedError(_damaged_message(self.path, detail[:200]))
        self._sound = True
        with contextlib.suppress(OSError):
            tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(_file_identity(self.path)))
            os.replace(tmp, marker)

    def close(self) -> None:
        from curator.checkpoint import settle

        settle(self.path)  # perf: no background checkpoint writes the file after its close
        db = getattr(self._local, "db", None)
        if db is not None:
            readonly = getattr(db, "curator_readonly", False)
            db.conn.close()
            self._local.db = None
            if self._sound and not readonly:
                # It passed its check when this process began writing, and only sound writers
                # wrote since: the next command need not check again unless the file changes.
                with contextlib.suppress(OSError):
                    marker = _check_marker(self.path)
                    tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(_file_identity(self.path)))
                    os.replace(tmp, marker)

    def write(self) -> contextlib.AbstractContextManager:
        """A write transaction on this thread's connection, once the catalog passed its check."""
        self.ensure_sound()
        return transaction(self.db)

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, kind: str, params: dict[str, Any]) -> int:
        with self.write() as db:
            cursor = db.execute(
                "INSERT INTO runs (kind, app_version, params, started_at, status, counts, pid, "
                "host)"
                " VALUES (?, ?, ?, ?, 'running', '{}', ?, ?)",
                [kind, __version__, json.dumps(params, sort_keys=True), utcnow(), os.getpid(),
                 socket.gethostname()],
            )
            return int(cursor.lastrowid)

    def update_run(self, run_id: int, counts: dict[str, Any]) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE runs SET counts = ? WHERE id = ?",
                [json.dumps(counts, sort_keys=True), run_id],
            )

    def end_run(
        self, run_id: int, status: str, counts: dict[str, Any], error: Optional[str] = None
    ) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, counts = ?, error = ? WHERE id = ?",
                [status, utcnow(), json.dumps(counts, sort_keys=True), error, run_id],
            )

    @contextlib.contextmanager
    def recorded_run(self, kind: str, params: dict[str, Any]) -> Iterator[RunHandle]:
        """Record a computation as a run: 'ok' when the block ends, 'cancelled' when it raises
        Cancelled, 'failed' (with the error) otherwise. Set `handle.counts` inside the block."""
        from curator.stage_lock import stage_lock
        from indexing.progress import Cancelled

        # One stage at a time per project (triage): a second process refuses, naming the first.
        with stage_lock(self.root, kind):
            self.mark_interrupted_runs()
            handle = RunHandle(self.start_run(kind, params))
            status, error = "failed", None
            try:
                yield handle
                status = "ok"
            except Cancelled:
                status = "cancelled"
                raise
            except BaseException as exc:
                error = str(exc)[:500]
                raise
            finally:
                self.end_run(handle.id, status, handle.counts, error=error)

    def mark_interrupted_runs(self) -> int:
        """Runs left 'running' by a process of this host that no longer exists were killed."""
        if self.readonly:
            return 0
        host = socket.gethostname()
        rows = self.db.execute(
            "SELECT id, pid, host FROM runs WHERE status = 'running'"
        ).fetchall()
        dead = [rid for rid, pid, rhost in rows if rhost == host and not _pid_alive(pid)]
        if dead:
            with self.write() as db:
                db.execute(
                    f"UPDATE runs SET status = 'interrupted', ended_at = COALESCE(ended_at, ?) "
                    f"WHERE id IN ({','.join('?' * len(dead))})",
                    [utcnow(), *dead],
                )
        return len(dead)

    def runs(self, kind: Optional[str] = None, limit: int = 50) -> list[RunRecord]:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [RunRecord.from_row(row) for row in self.db.query(sql, args)]


def _pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunHandle:
    """A run in progress: its id and the counts to record (a cancelled job raises Cancelled)."""

    id: int
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """One recorded computation (scan, embed, cluster, ...) and how it ended."""

    id: int
    kind: str
    app_version: str
    params: dict[str, Any]
    started_at: str
    ended_at: Optional[str]
    status: str
    counts: dict[str, Any]
    error: Optional[str]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        return cls(
            id=row["id"],
            kind=row["kind"],
            app_version=row["app_version"],
            params=json.loads(row["params"] or "{}"),
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            status=row["status"],
            counts=json.loads(row["counts"] or "{}"),
            error=row.get("error"),
        )
