"""WAL checkpoints off the labelling path: a background thread copies a big event's pages into
the catalog a moment after its commit.

A 10,000-item label dirties thousands of scattered pages (current labels, their label index,
the item index of the event rows). Left to SQLite's auto-checkpoint, the commit that crosses
1,000 WAL pages copies them all into the catalog file and syncs it before the call returns,
which was most of a label's wall time. `event_write` commits with auto-checkpoint off and asks
for a checkpoint here instead: the thread waits `DELAY_S` so a burst of labels and undos is
copied once (their pages overlap), and runs a PASSIVE checkpoint on its own connection, which
never blocks readers or writers. `settle` (called when a catalog is closed) finishes or drops a
pending checkpoint first, so nothing writes the file after its owner closed it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

DELAY_S = 0.5
"""Seconds a checkpoint waits for more commits to the same catalog."""
CAP_FRAMES = 16384
"""WAL pages (64 MB of 4 KiB pages) above which writers checkpoint in their own commit again.

A background checkpoint can only let the WAL start over when no commit lands while it runs; in a
burst of events (an import, a script labelling hundreds of groups) that never happens, so past
this size the writers go back to SQLite's own auto-checkpoint until the WAL is small again."""


class _Checkpointer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._busy: set[str] = set()
        self._big: set[str] = set()
        self._after: dict[str, Callable[[], None]] = {}
        self._thread: threading.Thread | None = None

    def request(self, path: str) -> None:
        with self._cond:
            self._due.setdefault(path, time.monotonic() + DELAY_S)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="curator-wal-checkpoint",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def settle(self, path: str) -> None:
        with self._cond:
            self._due.pop(path, None)
            while path in self._busy:
                self._cond.wait()

    def _next(self) -> str | None:
        """The next catalog whose delay is over; None after a minute with nothing to do."""
        idle_until = time.monotonic() + 60
        with self._cond:
            while True:
                now = time.monotonic()
                ready = [p for p, t in self._due.items() if t <= now]
                if ready:
                    del self._due[ready[0]]
                    self._busy.add(ready[0])
                    return ready[0]
                if not self._due and now >= idle_until:
                    self._thread = None
                    return None
                wait = min(self._due.values(), default=idle_until) - now
                self._cond.wait(timeout=max(wait, 0.01))

    def _run(self) -> None:
        while (path := self._next()) is not None:
            try:
                frames = checkpoint(path)
                after = self._after.get(path)
                if after is not None and frames:
                    after()
                with self._cond:
                    if frames > CAP_FRAMES:
                        self._big.add(path)
                    else:
                        self._big.discard(path)
            finally:
                with self._cond:
                    self._busy.discard(path)
                    self._cond.notify_all()


_CHECKPOINTER = _Checkpointer()


def request(path: Path | str) -> None:
    """Checkpoint this catalog's WAL in the background, `DELAY_S` from the first request."""
    _CHECKPOINTER.request(str(path))


def after_checkpoint(path: Path | str, fn: Callable[[], None]) -> None:
    """Call `fn` on the checkpoint thread after each background checkpoint of this catalog."""
    _CHECKPOINTER._after[str(path)] = fn


def deferrable(path: Path | str) -> bool:
    """Whether a commit to this catalog may leave its checkpoint to the background thread (its
    WAL was below `CAP_FRAMES` at the last background checkpoint)."""
    return str(path) not in _CHECKPOINTER._big


def settle(path: Path | str) -> None:
    """Drop a pending checkpoint of this catalog and wait for one that is running."""
    _CHECKPOINTER.settle(str(path))


def checkpoint(path: Path | str) -> int:
    """A PASSIVE checkpoint on a connection of its own (never creates the file; never raises).

    Returns:
        The pages in the WAL when it ran (0 when it could not run).
    """
    try:
        conn = sqlite3.connect("file:" + quote(str(path)) + "?mode=rw", uri=True, timeout=5,
                               isolation_level=None)
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        return max(int(row[1]), 0)
    except sqlite3.Error as exc:
        log.debug("background checkpoint of %s skipped: %s", path, exc)
        return 0
