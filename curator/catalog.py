"""The project's SQLite catalog: opening a project folder, its health marker, and recorded runs.

The connection discipline (WAL, busy timeout, `transaction`) is `curator.connection`; the schema
is the recorded migrations of `curator.migrations`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from curator import __version__, procs
from curator.catalog_faults import (
    CATALOG_NAME,
    _check_marker,
    _damaged_message,
    _file_identity,
    _readonly_message,
    check_header,
    explain,
    record_sound,
    remember_opened,
)
from curator.connection import CatalogDB, connect, transaction, utcnow
from curator.errors import (
    CatalogDamagedError,
    CuratorError,
    NotAProjectError,
    ReadOnlyCatalogError,
)
from curator.migrations import MIGRATIONS, applied_migrations, migrate, newer_writer

log = logging.getLogger(__name__)

APP_ID = "curator"


class Catalog:
    """The catalog of one project folder: a connection per thread over `catalog.db`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / CATALOG_NAME
        self._local = threading.local()
        self._sound = False

    @property
    def db(self) -> CatalogDB:
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
                hint=f"create one with `curator init {root}`", option="sources",
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
            newer = newer_writer(catalog.db)
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
                self._trust()
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
        record_sound(self.path)
        self._trust()

    def _trust(self) -> None:
        # This process's own checkpoints change the file too: each re-marks it as checked.
        from curator.checkpoint import after_checkpoint

        after_checkpoint(self.path, lambda: record_sound(self.path))

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
                record_sound(self.path)

    @contextlib.contextmanager
    def write(self) -> Iterator[CatalogDB]:
        """A write transaction on this thread's connection, once the catalog passed its check.

        After the outermost commit the file is marked as checked again (only sound writers
        wrote it), so a second Curator process on the same catalog (the CLI beside the open
        app) does not run a full integrity check because of this one's writes.
        """
        self.ensure_sound()
        with transaction(self.db) as db:
            yield db
        if not db.conn.in_transaction:
            record_sound(self.path)

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, kind: str, params: dict[str, Any]) -> int:
        with self.write() as db:
            cursor = db.execute(
                "INSERT INTO runs (kind, app_version, params, started_at, status, counts, pid, "
                "host)"
                " VALUES (?, ?, ?, ?, 'running', '{}', ?, ?)",
                [kind, __version__, json.dumps(params, sort_keys=True), utcnow(), os.getpid(),
                 procs.host()],
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
        host = procs.host()
        rows = self.db.execute(
            "SELECT id, pid, host FROM runs WHERE status = 'running'"
        ).fetchall()
        dead = [rid for rid, pid, rhost in rows if rhost == host and not procs.pid_alive(pid)]
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
