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
from typing import Optional

log = logging.getLogger(__name__)

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
