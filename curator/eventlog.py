"""The rolling backup of the label event log: taxonomy, events and their item rows, kept current
by every label and undo, replayed by `curator repair` after a catalog backup is restored.

The backup is appended to, never rewritten: each call copies only the events (and their item
rows) newer than the backup's newest, plus the `undone` flag of the events that those new undo
and redo events reversed, in a few set-based statements over the catalog attached read-only. It
protects against a damaged catalog file, not against power loss, so it is written without
fsync (`synchronous = OFF`); a backup found damaged is set aside and rebuilt from the catalog.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

from curator.catalog import Catalog, utcnow

log = logging.getLogger(__name__)

BACKUP_DIR = "backups"
EVENT_LOG_BACKUP = "event-log.db"


_LOG_TABLES = ("labels", "events", "event_items")


def backup_event_log(catalog: Catalog) -> Path | None:
    """Bring the rolling backup of the label event log up to date (incremental, cheap).

    `PROJECT/backups/event-log.db` holds the taxonomy, every event and its item rows; `repair`
    replays what it holds beyond a restored catalog. Never raises: a failed backup is logged.

    Returns:
        The backup's path, or None when it could not be written.
    """
    if catalog.readonly:
        return None
    target = catalog.root / BACKUP_DIR / EVENT_LOG_BACKUP
    try:
        target.parent.mkdir(exist_ok=True)
        try:
            _sync_into(catalog, target)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            # A damaged backup is worth nothing: keep it aside for a person and start afresh.
            aside = target.with_name(f"{target.name}.damaged")
            log.warning("the event-log backup %s is damaged (%s); rebuilding it", target, exc)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(f"{target}{suffix}").replace(f"{aside}{suffix}")
            _sync_into(catalog, target)
        return target
    except (OSError, sqlite3.Error) as exc:
        log.warning("could not update the event-log backup %s: %s", target, exc)
        return None


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _sync_into(catalog: Catalog, target: Path) -> None:
    # URI names, so that the catalog can be attached read-only.
    out = sqlite3.connect("file:" + quote(str(target)), uri=True, isolation_level=None,
                          timeout=30)
    try:
        out.execute("PRAGMA journal_mode = WAL")
        out.execute("PRAGMA synchronous = OFF")
        out.execute("ATTACH DATABASE ? AS cat", ["file:" + quote(str(catalog.path)) + "?mode=ro"])
        try:
            _sync_event_log(out)
        finally:
            out.execute("DETACH DATABASE cat")
    finally:
        out.close()


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})").fetchall()]


def _ensure_tables(out: sqlite3.Connection) -> dict[str, list[str]]:
    """The backup's tables as the catalog has them now (columns added by later migrations too);
    returns each table's catalog columns."""
    columns = {}
    for table in _LOG_TABLES:
        sql = out.execute("SELECT sql FROM cat.sqlite_master WHERE type = 'table' AND name = ?",
                          [table]).fetchone()[0]
        out.execute(sql.replace(f"CREATE TABLE {table}", f"CREATE TABLE IF NOT EXISTS {table}", 1))
        columns[table] = _columns(out, "cat", table)
        have = set(_columns(out, "main", table))
        for column in columns[table]:
            if column not in have:
                out.execute(f"ALTER TABLE main.{table} ADD COLUMN {column}")
    out.execute("CREATE TABLE IF NOT EXISTS backup_meta (key TEXT PRIMARY KEY, value TEXT)")
    return columns


def _sync_event_log(out: sqlite3.Connection) -> None:
    out.execute("BEGIN IMMEDIATE")
    try:
        columns = _ensure_tables(out)
        top = out.execute("SELECT COALESCE(MAX(id), 0) FROM main.events").fetchone()[0]

        def copy(table: str, where: str, args: list) -> None:
            cols = ", ".join(columns[table])
            out.execute(f"INSERT OR REPLACE INTO main.{table} ({cols}) SELECT {cols} FROM "
                        f"cat.{table} {where}", args)

        copy("labels", "", [])
        # Only an undo or redo event changes an older event's `undone`: the new ones name them.
        out.execute("UPDATE main.events SET undone = (SELECT c.undone FROM cat.events c WHERE "
                    "c.id = events.id) WHERE id IN (SELECT target FROM cat.events WHERE id > ? "
                    "AND target IS NOT NULL)", [top])
        copy("events", "WHERE id > ?", [top])
        copy("event_items", "WHERE event_id > ?", [top])
        out.execute("INSERT OR REPLACE INTO backup_meta VALUES ('updated_at', ?)", [utcnow()])
        out.execute("COMMIT")
    except BaseException:
        out.execute("ROLLBACK")
        raise
