"""The one background-work adapter: results, errors, cancellation, progress with rate and ETA."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QThreadPool

from indexing.progress import ProgressEvent, check_cancel
from ui import workers
from ui.workers import ProgressRelay, Worker, WorkerError, submit


def test_result_arrives_on_the_gui_thread_and_finished_fires(qtbot):
    seen = {}
    finished = []
    worker = submit(lambda x: (x * 2, threading.current_thread().name), 21,
                    on_result=lambda r: seen.update(result=r, thread=threading.current_thread()),
                    on_finished=lambda: finished.append(True))
    qtbot.waitUntil(lambda: finished == [True], timeout=5000)
    assert seen["result"][0] == 42
    assert seen["thread"] is threading.main_thread()
    assert seen["result"][1] != threading.main_thread().name  # it ran on a pool thread
    assert worker.done
    qtbot.waitUntil(lambda: worker not in workers._LIVE)  # released once finished arrived


def test_a_cancelled_job_stops_at_a_batch_boundary_and_finished_fires(qtbot):
    started = threading.Event()
    batches = []

    def job(progress=None, cancel=None):
        for i in range(500):
            check_cancel(cancel)
            started.set()
            batches.append(i)
            progress(ProgressEvent("loop", i, 500))
            time.sleep(0.01)
        return "completed"

    results = []
    worker = submit(job, on_result=results.append)
    assert started.wait(5)
    with qtbot.waitSignals([worker.signals.cancelled, worker.signals.finished], timeout=5000):
        worker.cancel()
    assert results == []  # no result for a cancelled job
    assert len(batches) < 500


def test_cancel_before_start_never_runs_the_job(qtbot):
    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    gate = threading.Event()
    ran = []
    blocker = submit(lambda: gate.wait(5), pool=pool)
    worker = Worker(lambda: ran.append(1))
    worker.cancel()
    with qtbot.waitSignals([worker.signals.cancelled, worker.signals.finished], timeout=5000):
        workers._LIVE.add(worker)
        pool.start(worker)
        gate.set()
    assert ran == []
    pool.waitForDone(5000)
    assert blocker.done


def test_an_error_arrives_as_a_signal_with_a_clear_message(qtbot):
    from curator.errors import UsageError

    errors: list[WorkerError] = []
    finished = []
    submit(lambda: 1 / 0, on_error=errors.append, on_finished=lambda: finished.append(1))
    qtbot.waitUntil(lambda: finished == [1], timeout=5000)
    assert len(errors) == 1
    assert errors[0].kind == "ZeroDivisionError"
    assert "ZeroDivisionError" in errors[0].message and not errors[0].user_facing
    assert "Traceback" in errors[0].details

    def usage():
        raise UsageError("no group 7 in clustering run 3; see `curator queue`")

    submit(usage, on_error=errors.append, on_finished=lambda: finished.append(2))
    qtbot.waitUntil(lambda: finished == [1, 2], timeout=5000)
    assert len(errors) == 2
    assert errors[1].message == "no group 7 in clustering run 3; see `curator queue`"
    assert errors[1].user_facing


def test_progress_relay_measures_rate_and_eta():
    got = []
    relay = ProgressRelay(got.append, interval=0.0)
    relay(ProgressEvent("embed", 0, 100))
    time.sleep(0.12)
    relay(ProgressEvent("embed", 50, 100))
    info = got[-1]
    assert info.stage == "embed" and info.fraction == 0.5
    assert 100 < info.rate < 1000  # ~400 items/s
    assert info.eta is not None and 0 < info.eta < 1
    relay(ProgressEvent("cluster", 1, None))
    assert got[-1].eta is None and got[-1].fraction is None


def test_progress_relay_throttles_but_keeps_the_last_event():
    got = []
    relay = ProgressRelay(got.append, interval=10.0)
    for i in range(1, 101):
        relay(ProgressEvent("scan", i, 100))
    assert len(got) == 2  # the first, then the final one
    assert got[-1].done == 100


def test_many_signal_emits_leave_the_interpreter_alive(qtbot):
    """PySide6 6.12.0 on Python 3.11 dropped a reference to True at every emit (pyproject
    excludes that release): 100k emits must leave the interpreter's counts intact."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Source(QObject):
        ping = Signal(int)

    source = Source()
    got = []
    source.ping.connect(got.append)
    before = sys.getrefcount(True)
    for i in range(100_000):
        source.ping.emit(i)
    assert len(got) == 100_000
    # A leak of one reference per emit would show as a drop of about 100k.
    assert sys.getrefcount(True) > before - 1000
