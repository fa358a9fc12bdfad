"""The open project of a window: facade calls run on worker pools; the session says what changed.

The GUI thread never touches the catalog. Reads run on a small pool and may overlap; writes run
one at a time on their own pool so labels, undos and redos apply in the order they were given.
A read submitted under a `key` drops the results of older reads with the same key, so a slow
stale query can never overwrite a newer answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from ui.workers import Worker, WorkerError, submit

log = logging.getLogger(__name__)

# What a write changed, so views refresh only what they show.
LABELS = "labels"
GROUPS = "groups"
TAXONOMY = "taxonomy"
INDEX = "index"
# A whole group of the current run was decided: only that group's members (and so only its queue
# row) changed, so views update that row instead of re-reading every group.
GROUP_DECISION = "group-decision"


class Session(QObject):
    """Holds the open `Project` and runs calls on it in the background.

    Signals:
        opened(object): the Project, once open.
        closed(): the project was closed.
        changed(str): a write finished; LABELS, GROUP_DECISION, GROUPS, TAXONOMY or INDEX.
        error(object): a WorkerError from any call that had no error callback of its own.
        message(str): a short status line (undo/redo outcomes, counts).
        external(object): a set of change kinds committed by another process or window
            (labels, taxonomy, groups, run:cluster, run:map, ...; see curator.changes).
    """

    opened = Signal(object)
    closed = Signal()
    changed = Signal(str)
    error = Signal(object)
    message = Signal(str)
    external = Signal(object)

    # How often the change log is polled; one poll is one PRAGMA when nothing changed.
    POLL_MS = 400

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.project: Any = None
        self.path: Optional[Path] = None
        self.read_pool = QThreadPool(self)
        self.read_pool.setMaxThreadCount(2)
        self.write_pool = QThreadPool(self)
        self.write_pool.setMaxThreadCount(1)
        self.job_pool = QThreadPool(self)  # long jobs (indexing) must not starve reads
        self.job_pool.setMaxThreadCount(1)
        self._latest: dict[str, int] = {}
        self._seq = 0
        # Change detection runs on its own one-thread pool so a long read never delays it.
        self.watch_pool = QThreadPool(self)
        self.watch_pool.setMaxThreadCount(1)
        self._feed: Any = None
        self._polling = False
        self._own_events: set[int] = set()
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(self.POLL_MS)
        self._poll_timer.timeout.connect(self.poll_changes)

    # --- lifecycle ------------------------------------------------------------------------

    def open(self, path: str | Path, create_sources: Optional[list[str]] = None,
             on_opened: Optional[Callable[[Any], None]] = None,
             on_error: Optional[Callable[[WorkerError], None]] = None) -> Worker:
        """Open (or, with sources, create) a project in the background."""

        def work() -> Any:
            # Imported here, on the worker: the catalog's imports (NumPy, sqlite-utils) then
            # run while the window shows, not before.
            from curator.project import Project

            if create_sources is not None:
                return Project.create(Path(path), list(create_sources))
            return Project.open(Path(path))

        def done(project: Any) -> None:
            self.close()
            self.project = project
            self.path = Path(project.root)
            self._start_watching(project)
            self.opened.emit(project)
            if on_opened is not None:
                on_opened(project)

        return submit(work, pool=self.read_pool, name="open project", on_result=done,
                      on_error=on_error or self.error.emit)

    def adopt(self, project: Any) -> None:
        """Use a Project opened elsewhere (tests, benchmarks)."""
        self.close()
        self.project = project
        self.path = Path(project.root)
        self._start_watching(project)
        self.opened.emit(project)

    def close(self) -> None:
        if self.project is None:
            return
        self._poll_timer.stop()
        self.wait(5000)
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        try:
            self.project.close()
        except Exception:  # noqa: BLE001 - closing must never stop the window from closing
            log.warning("closing the project failed", exc_info=True)
        self.project = None
        self.path = None
        self.closed.emit()

    def wait(self, msecs: int = 30000) -> bool:
        """Wait for every call in flight (tests, closing)."""
        ok = True
        for pool in (self.job_pool, self.write_pool, self.read_pool, self.watch_pool):
            ok = pool.waitForDone(msecs) and ok
        return ok

    @property
    def is_open(self) -> bool:
        return self.project is not None

    # --- changes made elsewhere ---------------------------------------------------------------

    def _start_watching(self, project: Any) -> None:
        from curator.changes import ChangeFeed

        # The baseline is taken before the views read anything: whatever is committed after
        # it reaches them either through their first read or through a poll.
        self._feed = ChangeFeed(project.catalog.path)
        self._feed.start()
        self._own_events.clear()
        self._poll_timer.start()

    def poll_changes(self) -> None:
        """Look for changes committed elsewhere (the timer calls this; tests may too)."""
        feed, project = self._feed, self.project
        if feed is None or self._polling:
            return
        self._polling = True

        def done(changes: Any) -> None:
            self._polling = False
            if self.project is not project or not changes:
                return
            from curator.changes import summarise

            foreign = [c for c in changes if c.ref not in self._own_events
                       or c.kinds[0].startswith("run:")]
            self._own_events.difference_update(c.ref for c in changes)
            if foreign:
                self.external.emit(summarise(foreign))

        def failed(info: WorkerError) -> None:
            self._polling = False
            log.warning("change poll failed: %s", info)

        submit(feed.poll, pool=self.watch_pool, name="watch changes", on_result=done,
               on_error=failed)

    def _remember_own(self, value: Any) -> None:
        """Events this window wrote itself: the poll does not report them back as foreign."""
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            self._own_events.add(value)
        elif isinstance(value, dict) and isinstance(value.get("event"), int):
            self._own_events.add(value["event"])

    # --- calls ----------------------------------------------------------------------------

    def read(self, fn: Callable[..., Any], *args: Any,
             on_result: Optional[Callable[[Any], None]] = None,
             on_error: Optional[Callable[[WorkerError], None]] = None,
             key: Optional[str] = None, name: str = "", priority: int = 0) -> Optional[Worker]:
        """Run `fn(project, *args)` on the read pool; `on_result` gets its value on the GUI thread.

        Reads with a higher `priority` (what is on screen now) overtake queued lower ones
        (prefetches, counts).
        """
        return self._call(self.read_pool, fn, args, on_result, on_error, key, name, None,
                          priority)

    def write(self, fn: Callable[..., Any], *args: Any,
              on_result: Optional[Callable[[Any], None]] = None,
              on_error: Optional[Callable[[WorkerError], None]] = None,
              changes: str = LABELS, name: str = "") -> Optional[Worker]:
        """Run `fn(project, *args)` on the write pool, in order; emits `changed(changes)` after."""
        return self._call(self.write_pool, fn, args, on_result, on_error, None, name, changes)

    def job(self, fn: Callable[..., Any], *args: Any,
            on_result: Optional[Callable[[Any], None]] = None,
            on_error: Optional[Callable[[WorkerError], None]] = None,
            name: str = "", changes: Optional[str] = INDEX) -> Optional[Worker]:
        """A long job (indexing): `fn(project, *args, progress=, cancel=)` on its own pool."""
        return self._call(self.job_pool, fn, args, on_result, on_error, None, name, changes)

    def _call(self, pool: QThreadPool, fn: Callable[..., Any], args: tuple,
              on_result: Optional[Callable[[Any], None]],
              on_error: Optional[Callable[[WorkerError], None]], key: Optional[str], name: str,
              changes: Optional[str], priority: int = 0) -> Optional[Worker]:
        project = self.project
        if project is None:
            self.message.emit("open a project first")
            return None
        self._seq += 1
        seq = self._seq
        if key is not None:
            self._latest[key] = seq

        def result(value: Any) -> None:
            if key is not None and self._latest.get(key) != seq:
                return  # a newer read with the same key was submitted
            if self.project is not project:
                return  # the project was closed or replaced meanwhile
            # The caller's own follow-up first (e.g. "show the next group"), then the views
            # refresh, so a refresh never re-reads something the caller is about to replace.
            if on_result is not None:
                on_result(value)
            if changes is not None:
                self.changed.emit(changes)

        def error(info: WorkerError) -> None:
            if key is not None and self._latest.get(key) != seq:
                return
            (on_error or self.error.emit)(info)

        call = _bind(fn, project, args)
        if changes is not None:
            # Remember our own event on the worker thread, as soon as it is committed: a change
            # poll running meanwhile must not take it for another process's (a full re-read).
            call = _remembering(call, self._remember_own)
        return submit(call, pool=pool,
                      name=name or getattr(fn, "__name__", ""), on_result=result, on_error=error,
                      priority=priority)


def _bind(fn: Callable[..., Any], project: Any, args: tuple) -> Callable[..., Any]:
    """`fn` with the project and args bound, keeping its progress/cancel parameters visible."""
    import functools

    return functools.partial(fn, project, *args)


def _remembering(call: Callable[..., Any], remember: Callable[[Any], None]) -> Callable[..., Any]:
    """`call`, handing its result to `remember` on the worker thread before it is returned."""
    import functools

    @functools.wraps(call)
    def run(*args: Any, **kwargs: Any) -> Any:
        value = call(*args, **kwargs)
        remember(value)
        return value

    return run
