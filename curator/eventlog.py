"""The rolling backup of the label event log: taxonomy, events and their item rows, kept current
by every label and undo, replayed by `curator repair` after a catalog backup is restored."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

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
        out = sqlite3.connect(target, isolation_level=None, timeout=30)
        try:
            _sync_event_log(catalog, out)
        finally:
            out.close()
        return target
    except (OSError, sqlite3.Error) as exc:
        log.warning("could not update the event-log backup %s: %s", target, exc)
        return None


def _sync_event_log(catalog: Catalog, out: sqlite3.Connection) -> None:
    db = catalog.db
    out.execute("PRAGMA journal_mode = WAL")
    for table in _LOG_TABLES:
        sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                         [table]).fetchone()[0]
        out.execute(sql.replace(f"CREATE TABLE {table}", f"CREATE TABLE IF NOT EXISTS {table}", 1))
    out.execute("CREATE TABLE IF NOT EXISTS backup_meta (key TEXT PRIMARY KEY, value TEXT)")
    top = out.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    columns = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})").fetchall()]
               for t in _LOG_TABLES}
    rows = {
        "labels": db.execute(f"SELECT {', '.join(columns['labels'])} FROM labels").fetchall(),
        "events": db.execute(f"SELECT {', '.join(columns['events'])} FROM events WHERE id > ?",
                             [top]).fetchall(),
        "event_items": db.execute(f"SELECT {', '.join(columns['event_items'])} FROM event_items "
                                  "WHERE event_id > ?", [top]).fetchall(),
    }
    undone = db.execute("SELECT id FROM events WHERE undone = 1 AND id <= ?", [top]).fetchall()
    out.execute("BEGIN IMMEDIATE")
    try:
        for table, data in rows.items():
            marks = ", ".join("?" * len(columns[table]))
            out.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", data)
        out.execute("UPDATE events SET undone = 0 WHERE id <= ?", [top])
        out.executemany("UPDATE events SET undone = 1 WHERE id = ?", undone)
        out.execute("INSERT OR REPLACE INTO backup_meta VALUES ('updated_at', ?)", [utcnow()])
        out.execute("COMMIT")
    except BaseException:
        out.execute("ROLLBACK")
        raise
