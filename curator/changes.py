"""What changed in a catalog since a reader last looked: the change log and a cheap poll.

Every write that a view shows leaves a row in `changes`, written by triggers in the same
transaction as the write (so no write path can forget it): a labelling event or its undo
(`labels`), a taxonomy edit (`taxonomy`), a split or merge (`groups`), and the end of a run
(`run:scan`, `run:embed`, `run:cluster`, `run:map`, ...). A reader polls `PRAGMA data_version`,
which changes only when another connection commits, and reads the log only then.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

_ORIGINAL = "(SELECT {col} FROM events t WHERE t.id = NEW.target)"


def create_change_log(db: Any) -> None:
    """The `changes` table and the triggers that fill it, and the group tallies
    (migration 006_triage_changes)."""
    from curator.tallies import create_tally_tables

    create_tally_tables(db)
    db.execute("CREATE TABLE changes (id INTEGER PRIMARY KEY, time TEXT NOT NULL, "
               "kind TEXT NOT NULL, ref INTEGER, run_id INTEGER)")
    action = f"COALESCE({_ORIGINAL.format(col='action')}, NEW.action)"
    details = f"COALESCE({_ORIGINAL.format(col='details')}, NEW.details)"
    db.execute(
        "CREATE TRIGGER changes_events AFTER INSERT ON events BEGIN "
        "INSERT INTO changes (time, kind, ref, run_id) VALUES (NEW.time, CASE "
        f"WHEN {action} IN ('split', 'merge') THEN 'groups' "
        f"WHEN {action} LIKE 'label-%' THEN 'taxonomy' "
        f"WHEN {details} LIKE '%\"label_merge\"%' OR {details} LIKE '%\"label_remove\"%' "
        "THEN 'labels,taxonomy' ELSE 'labels' END, NEW.id, NEW.run_id); END")
    db.execute(
        "CREATE TRIGGER changes_runs AFTER UPDATE OF status ON runs "
        "WHEN NEW.status != OLD.status AND NEW.status != 'running' BEGIN "
        "INSERT INTO changes (time, kind, ref, run_id) VALUES "
        "(COALESCE(NEW.ended_at, NEW.started_at), 'run:' || NEW.kind, NEW.id, NEW.id); END")


def duplicate_state(db: Any) -> None:
    """Migration 007_triage_duplicate_state."""
    # A duplicate is a state of its own that points at the item kept (never noise): the state
    # CHECK of item_labels is widened (a table rebuild; SQLite cannot alter a CHECK) and the
    # keeper travels with the events so undo and redo restore it.
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'item_labels'").fetchone()[0]
    if "'duplicate'" not in sql:
        _rebuild_item_labels(db)
    columns = {r[1] for r in db.execute("PRAGMA table_info(event_items)")}
    for column in ("before_keeper", "after_keeper"):
        if column not in columns:
            db.execute(f"ALTER TABLE event_items ADD COLUMN {column} INTEGER")


def _rebuild_item_labels(db: Any) -> None:
    db.execute(
        """CREATE TABLE item_labels_new (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            state TEXT NOT NULL CHECK (state IN ('labelled', 'noise', 'mixed', 'duplicate')),
            label_id INTEGER REFERENCES labels(id),
            event_id INTEGER NOT NULL REFERENCES events(id),
            confirmed INTEGER NOT NULL DEFAULT 0,
            keeper_id INTEGER
        )""")
    db.execute("INSERT INTO item_labels_new (item_id, state, label_id, event_id, confirmed) "
               "SELECT item_id, state, label_id, event_id, confirmed FROM item_labels")
    db.execute("DROP TABLE item_labels")
    db.execute("ALTER TABLE item_labels_new RENAME TO item_labels")
    db.execute("CREATE INDEX item_labels_label ON item_labels (label_id)")


@dataclass(frozen=True)
class Change:
    """One row of the change log."""

    id: int
    time: str
    kinds: tuple[str, ...]
    ref: Optional[int]
    run_id: Optional[int]


class ChangeFeed:
    """Polls one catalog for changes made by other connections, on its own connection.

    `poll()` costs one `PRAGMA data_version` when nothing changed (microseconds, whatever the
    catalog's size) and one indexed read of the new log rows when something did.
    """

    def __init__(self, catalog_path: Path | str) -> None:
        self.path = Path(catalog_path)
        self._conn: Optional[sqlite3.Connection] = None
        self._version: Optional[int] = None
        self.last_id = 0

    def start(self) -> None:
        """Take the baseline now: later polls report only what is committed after this."""
        self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(str(self.path), timeout=5, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA query_only = ON")
            self._version = self._data_version()
            row = self._conn.execute("SELECT MAX(id) FROM changes").fetchone()
            self.last_id = int(row[0] or 0)
        return self._conn

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def poll(self) -> list[Change]:
        """The changes committed by other connections since the last poll (oldest first)."""
        conn = self._connection()
        version = self._data_version()
        if version == self._version:
            return []
        self._version = version
        rows = conn.execute("SELECT id, time, kind, ref, run_id FROM changes WHERE id > ? "
                            "ORDER BY id", [self.last_id]).fetchall()
        if rows:
            self.last_id = rows[-1][0]
        return [Change(r[0], r[1], tuple(r[2].split(",")), r[3], r[4]) for r in rows]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def summarise(changes: list[Change]) -> set[str]:
    """The distinct kinds of a batch of changes (labels, taxonomy, groups, run:cluster, ...)."""
    return {kind for change in changes for kind in change.kinds}
