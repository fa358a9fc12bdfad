"""Work off the labelling path: a background thread copies a big event's pages into the
catalog a moment after its commit (a WAL checkpoint), and appends the event to the rolling
event-log backup (`curator.eventlog`) right after it.

A 10,000-item label dirties thousands of scattered pages (current labels, their label index,
the item index of the event rows). Left to SQLite's auto-checkpoint, the commit that crosses
1,000 WAL pages copies them all into the catalog file and syncs it before the call returns,
which was most of a label's wall time. `event_write` commits with auto-checkpoint off and asks
for a checkpoint here instead: the thread waits `DELAY_S` so a burst of labels and undos is
copied once (their pages overlap), and runs a PASSIVE checkpoint on its own connection, which
never blocks readers or writers. `settle` (called when a catalog is closed) finishes or drops a
pending checkpoint first, so nothing writes the file after its owner closed it.

The backup (15-20 ms after a 10,000-item event at a million items) only reads the committed
catalog, so the caller need not wait for it; `settle`, `flush` and the interpreter's exit run a
pending one in the caller's thread, so a closed catalog's backup is always current.
"""

from __future__ import annotations

import atexit
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
    """One background thread per process for the work due after a catalog's commits: a WAL
    checkpoint `DELAY_S` after the first request, and the event-log backup at once. Jobs are
    keyed by (catalog path, kind)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[tuple[str, str], float] = {}
        self._busy: set[tuple[str, str]] = set()
        self._big: set[str] = set()
        self._after: dict[str, Callable[[], None]] = {}
        self._backups: dict[str, Callable[[], object]] = {}
        self._thread: threading.Thread | None = None

    def request(self, path: str, kind: str = "checkpoint", delay: float = DELAY_S) -> None:
        with self._cond:
            self._due.setdefault((path, kind), time.monotonic() + delay)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="curator-wal-checkpoint",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def request_backup(self, path: str, fn: Callable[[], object]) -> None:
        with self._cond:
            self._backups[path] = fn
        self.request(path, "backup", 0.0)

    def settle(self, path: str) -> None:
        """Run a pending backup of this catalog now, drop a pending checkpoint, and wait for
        the ones that are running."""
        self.flush(path)
        with self._cond:
            self._due.pop((path, "checkpoint"), None)
            while (path, "checkpoint") in self._busy:
                self._cond.wait()

    def flush(self, path: str) -> None:
        """Bring this catalog's event-log backup up to date before returning."""
        job = (path, "backup")
        with self._cond:
            while job in self._busy:
                self._cond.wait()
            if self._due.pop(job, None) is None:
                return
            fn = self._backups.pop(path, None)
            self._busy.add(job)
        try:
            if fn is not None:
                fn()
        finally:
            with self._cond:
                self._busy.discard(job)
                self._cond.notify_all()

    def flush_all(self) -> None:
        """Finish every pending backup, and wait for the ones the thread is writing."""
        with self._cond:
            jobs = set(self._due) | self._busy
        for path in {p for p, kind in jobs if kind == "backup"}:
            self.flush(path)

    def _next(self) -> tuple[str, str] | None:
        """The next job whose delay is over; None after a minute with nothing to do."""
        idle_until = time.monotonic() + 60
        with self._cond:
            while True:
                now = time.monotonic()
                ready = [j for j, t in self._due.items() if t <= now and j not in self._busy]
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
        while (job := self._next()) is not None:
            path, kind = job
            try:
                if kind == "backup":
                    with self._cond:
                        fn = self._backups.pop(path, None)
                    if fn is not None:
                        fn()
                    continue
                frames = checkpoint(path)
                after = self._after.get(path)
                if after is not None and frames:
                    after()
                with self._cond:
                    if frames > CAP_FRAMES:
                        self._big.add(path)
                    else:
                        self._big.discard(path)
            except Exception:  # never let one catalog's failure stop the thread
                log.exception("background %s of %s failed", kind, path)
            finally:
                with self._cond:
                    self._busy.discard(job)
                    self._cond.notify_all()


_CHECKPOINTER = _Checkpointer()
# A CLI command labels and exits: its backup is written before the interpreter goes.
atexit.register(_CHECKPOINTER.flush_all)


def request(path: Path | str) -> None:
    """Checkpoint this catalog's WAL in the background, `DELAY_S` from the first request."""
    _CHECKPOINTER.request(str(path))


def backup_soon(path: Path | str, fn: Callable[[], object]) -> None:
    """Run `fn` (the event-log backup of this catalog) on the background thread now; `flush`,
    `settle` and the process's exit run a pending one in the caller's thread."""
    _CHECKPOINTER.request_backup(str(path), fn)


def flush(path: Path | str) -> None:
    """Finish this catalog's pending event-log backup before returning."""
    _CHECKPOINTER.flush(str(path))


def after_checkpoint(path: Path | str, fn: Callable[[], None]) -> None:
    """Call `fn` on the checkpoint thread after each background checkpoint of this catalog."""
    _CHECKPOINTER._after[str(path)] = fn


def deferrable(path: Path | str) -> bool:
    """Whether a commit to this catalog may leave its checkpoint to the background thread (its
    WAL was below `CAP_FRAMES` at the last background checkpoint)."""
    return str(path) not in _CHECKPOINTER._big


def settle(path: Path | str) -> None:
    """Finish a pending backup, drop a pending checkpoint of this catalog and wait for one that
    is running."""
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
