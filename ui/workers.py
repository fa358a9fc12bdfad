"""The one background-work adapter: a QRunnable owning a QObject of signals, run on a QThreadPool.

Every slow call of the app (opening a project, a catalog query, a label write, indexing, a map
raster, thumbnail decoding) goes through `Worker`. Its `finished` signal always fires, exactly
once, whatever happened; an exception arrives as the `error` signal carrying a `WorkerError`, never
as a silent thread death; `cancel()` sets an `indexing.progress.CancelToken` that long jobs check
at every batch boundary. Signals are queued to the GUI thread because the signal object is created
there, so callbacks never run on a pool thread.
"""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from indexing.progress import Cancelled, CancelToken, ProgressEvent

log = logging.getLogger(__name__)

# Workers stay referenced from start until their `finished` is delivered on the GUI thread;
# without this the Python wrapper of the signal object could be collected while a queued
# signal is still on its way.
_LIVE: set[Worker] = set()


@dataclass(frozen=True)
class WorkerError:
    """What went wrong in a worker: a one-line message for people and the traceback for logs."""

    message: str
    kind: str
    details: str
    user_facing: bool

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ProgressInfo:
    """A progress report as the GUI shows it: the event plus measured rate and time left."""

    stage: str
    done: int
    total: Optional[int]
    unit: str
    message: str
    rate: float  # units per second in this stage, 0 when unknown
    eta: Optional[float]  # seconds left in this stage, None when unknown
    overall: Optional[float] = None  # share of a multi-stage job done (the pipeline's bar)

    @property
    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


class WorkerSignals(QObject):
    """The signals of one worker; lives on the GUI thread so every slot runs there."""

    progress = Signal(object)  # ProgressInfo
    status = Signal(str)
    result = Signal(object)
    error = Signal(object)  # WorkerError
    cancelled = Signal()
    finished = Signal()


class ProgressRelay:
    """A `Progress` callable for long jobs that throttles events and measures rate and ETA.

    Args:
        emit: receives ProgressInfo (a signal's `emit`).
        interval: minimum seconds between two reports of the same stage (the last one of a
            stage, done == total, always goes through).
    """

    def __init__(self, emit: Callable[[ProgressInfo], None], interval: float = 0.1) -> None:
        self._emit = emit
        self._interval = interval
        self._stage: Optional[str] = None
        self._start = 0.0
        self._start_done = 0
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.stage != self._stage:
            self._stage, self._start, self._start_done = event.stage, now, event.done
            self._last = 0.0
        final = event.total is not None and event.done >= event.total
        if not final and now - self._last < self._interval:
            return
        self._last = now
        elapsed = now - self._start
        rate = (event.done - self._start_done) / elapsed if elapsed > 0.05 else 0.0
        eta = None
        if event.total is not None and rate > 0:
            eta = max(0.0, (event.total - event.done) / rate)
        try:
            self._emit(ProgressInfo(event.stage, event.done, event.total, event.unit,
                                    event.message, rate, eta, event.overall))
        except RuntimeError:
            # The window went away while the job ran; the job itself must not fail for that.
            log.debug("progress receiver is gone", exc_info=True)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def describe_error(exc: BaseException) -> WorkerError:
    """A WorkerError for an exception: Curator's own errors keep their one-line message."""
    from curator.errors import CuratorError

    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, CuratorError):
        return WorkerError(str(exc), type(exc).__name__, details, True)
    message = str(exc) or type(exc).__name__
    return WorkerError(f"{type(exc).__name__}: {message}", type(exc).__name__, details, False)


class Worker(QRunnable):
    """Runs `fn(*args, **kwargs)` on a pool thread and reports through `signals`.

    When `fn` takes `progress` and/or `cancel` keyword arguments they are passed: a throttled
    `ProgressRelay` that emits `signals.progress`, and this worker's CancelToken.

    Args:
        fn: the work; its return value is emitted as `signals.result`.
        name: a short name for logs and the progress panel.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "",
                 **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = name or getattr(fn, "__name__", "work")
        self.token = CancelToken()
        self.signals = WorkerSignals()
        self.done = False
        self.signals.finished.connect(self._release)

    def cancel(self) -> None:
        """Ask the job to stop at its next batch boundary (or not to start at all)."""
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def run(self) -> None:  # pool thread
        signals = self.signals
        try:
            if self.token.cancelled:
                raise Cancelled()
            kwargs = dict(self.kwargs)
            if _accepts(self.fn, "progress") and "progress" not in kwargs:
                kwargs["progress"] = ProgressRelay(signals.progress.emit)
            if _accepts(self.fn, "cancel") and "cancel" not in kwargs:
                kwargs["cancel"] = self.token
            value = self.fn(*self.args, **kwargs)
            if self.token.cancelled and _accepts(self.fn, "cancel"):
                # The job returned early with what it had finished; say so.
                signals.status.emit(f"{self.name}: cancelled")
                signals.cancelled.emit()
            signals.result.emit(value)
        except Cancelled:
            signals.status.emit(f"{self.name}: cancelled")
            signals.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
            info = describe_error(exc)
            if info.user_facing:
                log.info("%s failed: %s", self.name, info.message)
            else:
                log.error("%s failed:\n%s", self.name, info.details)
            try:
                signals.error.emit(info)
            except RuntimeError:
                log.debug("error receiver is gone", exc_info=True)
        finally:
            self.done = True
            try:
                signals.finished.emit()
            except RuntimeError:
                log.debug("finished receiver is gone", exc_info=True)

    def _release(self) -> None:
        _LIVE.discard(self)


def submit(fn: Callable[..., Any], *args: Any, pool: Optional[QThreadPool] = None,
           on_result: Optional[Callable[[Any], None]] = None,
           on_error: Optional[Callable[[WorkerError], None]] = None,
           on_finished: Optional[Callable[[], None]] = None,
           on_progress: Optional[Callable[[ProgressInfo], None]] = None,
           name: str = "", priority: int = 0, owner: Optional[QObject] = None,
           **kwargs: Any) -> Worker:
    """Start `fn` on a pool (the global one by default) with the given callbacks connected.

    A higher `priority` runs before queued work of lower priority on the same pool. The
    callbacks are skipped once `owner` (by default the pool's parent) has been deleted: a
    window closed while its work was still running never hears back from it.

    Returns:
        The running Worker (cancel it, or connect more of its signals).
    """
    worker = Worker(fn, *args, name=name, **kwargs)
    if owner is None and pool is not None:
        owner = pool.parent()
    for signal, callback in ((worker.signals.result, on_result),
                             (worker.signals.error, on_error),
                             (worker.signals.progress, on_progress),
                             (worker.signals.finished, on_finished)):
        if callback is not None:
            signal.connect(_guarded(callback, owner))
    _LIVE.add(worker)
    (pool or QThreadPool.globalInstance()).start(worker, priority)
    return worker


def _guarded(callback: Callable[..., Any], owner: Optional[QObject]) -> Callable[..., Any]:
    if owner is None:
        return callback
    import shiboken6

    def call(*args: Any) -> None:
        if shiboken6.isValid(owner):
            callback(*args)

    return call
