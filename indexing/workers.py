"""A crash-proof process pool for per-file work: a hung or dead decoder costs one file."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskFailure:
    """What a task returned when its worker died or ran past the deadline."""

    reason: str


def _worker_main(conn: Connection, fn: Callable[[Any], Any], initializer: Callable | None) -> None:
    # Ctrl-C belongs to the parent, which cancels cleanly; workers must not die with tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        for index, task in message:
            result = _run_one(fn, task)
            try:
                conn.send((index, result))
            except OSError:  # the parent went away
                return
            except Exception as exc:  # noqa: BLE001 - the result would not pickle: one failure
                try:
                    reason = f"result could not be sent back ({_reason(exc)})"
                    conn.send((index, TaskFailure(reason)))
                except Exception:  # noqa: BLE001 - give up on this worker only
                    return


def _reason(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:300]


def _run_one(fn: Callable[[Any], Any], task: Any) -> Any:
    """`fn(task)`, or a TaskFailure for any exception, including SystemExit from a library."""
    try:
        return fn(task)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # a task's failure is data for the caller
        log.debug("task failed", exc_info=True)
        return TaskFailure(_reason(exc))


class _Slot:
    """One worker process and the tasks it holds."""

    def __init__(self, ctx: Any, fn: Callable, initializer: Callable | None) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        self.process = ctx.Process(target=_worker_main, args=(child, fn, initializer), daemon=True)
        self.process.start()
        child.close()
        self.pending: deque[tuple[int, Any]] = deque()
        self.deadline: float | None = None

    def kill(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _context() -> Any:
    if sys.platform.startswith("linux"):
        # forkserver: workers start from a clean process, never from a parent holding threads or
        # SQLite handles, and much faster than spawn.
        return mp.get_context("forkserver")
    return mp.get_context("spawn")


def max_workers() -> int:
    """The most worker processes a pool starts: twice the usable cores (at least 2)."""
    return max(2, 2 * default_workers())


def capped_workers(workers: int) -> int:
    """`workers`, capped at `max_workers()` with a warning: more only thrash the cores."""
    cap = max_workers()
    if workers > cap:
        log.warning("%d workers asked for on %d cores; using %d", workers, default_workers(), cap)
        return cap
    return workers


def default_workers() -> int:
    """One worker per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def imap_robust(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    workers: int | None = None,
    *,
    timeout: float | None = 120.0,
    chunk_size: int = 8,
    initializer: Callable[[], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    max_in_flight: int | None = None,
) -> Iterator[tuple[T, Any]]:
    """Run `fn` over `tasks` in worker processes; yield `(task, result)` as each finishes.

    The result is what `fn` returned, or a TaskFailure when `fn` raised, when its process died
    (a segfaulting decoder) or when one task ran longer than `timeout` seconds; a dead or stuck
    worker is replaced and the run goes on. Order of results is not the order of tasks.

    Args:
        fn: a picklable top-level function of one task.
        tasks: any iterable, consumed lazily (at most `max_in_flight` tasks are held).
        workers: number of processes; 0 runs in this process (no isolation; for debugging).
        timeout: seconds one task may take; None for no limit.
        chunk_size: tasks sent to a worker at once (results still come back one by one).
        initializer: run once in each worker.
        cancel: a callable; when it returns True no further tasks are started, and the
            generator returns after yielding nothing more.
        max_in_flight: bound on tasks handed out and not yet returned.
    """
    if workers is None:
        workers = default_workers()
    if workers <= 0:
        yield from _imap_inline(fn, tasks, initializer, cancel)
        return

    pool = _Pool(fn, tasks, capped_workers(workers), timeout, chunk_size, initializer, cancel,
                 max_in_flight)
    try:
        for slot in pool.slots:
            pool.feed(slot)
        while any(slot.pending for slot in pool.slots):
            ready, now = pool.wait_ready()
            for slot in list(pool.slots):
                if slot.pending:
                    yield from pool.collect(slot, ready, now)
    finally:
        pool.shutdown()


def _imap_inline(fn: Callable[[T], R], tasks: Iterable[T], initializer: Callable[[], None] | None,
                 cancel: Callable[[], bool] | None) -> Iterator[tuple[T, Any]]:
    """imap_robust with no workers: each task in this process, in order (for debugging)."""
    if initializer is not None:
        initializer()
    for task in tasks:
        if cancel is not None and cancel():
            return
        yield task, _run_one(fn, task)


class _Pool:
    """One imap_robust run's worker slots, its task source and the tasks handed out."""

    def __init__(self, fn: Callable, tasks: Iterable[Any], workers: int, timeout: float | None,
                 chunk_size: int, initializer: Callable[[], None] | None,
                 cancel: Callable[[], bool] | None, max_in_flight: int | None) -> None:
        self.fn, self.initializer, self.cancel = fn, initializer, cancel
        self.timeout, self.chunk_size = timeout, chunk_size
        self.ctx = _context()
        self.max_in_flight = max_in_flight or workers * chunk_size * 2
        self.source = iter(tasks)
        self.exhausted = False
        self.by_index: dict[int, Any] = {}
        self.next_index = 0
        self.slots = [_Slot(self.ctx, fn, initializer) for _ in range(workers)]

    def feed(self, slot: _Slot) -> None:
        """Hand an idle slot its next chunk, unless the source is dry, full or cancelled."""
        if slot.pending or self.exhausted or (self.cancel is not None and self.cancel()):
            return
        chunk = []
        while len(chunk) < self.chunk_size and len(self.by_index) < self.max_in_flight:
            try:
                task = next(self.source)
            except StopIteration:
                self.exhausted = True
                break
            self.by_index[self.next_index] = task
            chunk.append((self.next_index, task))
            self.next_index += 1
        if chunk:
            slot.pending.extend(chunk)
            slot.conn.send(chunk)
            slot.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def wait_ready(self) -> tuple[set[Any], float]:
        """Block until a busy slot has a result, dies or reaches its deadline."""
        waitables: list[Any] = []
        for slot in self.slots:
            if slot.pending:
                waitables.extend([slot.conn, slot.process.sentinel])
        deadlines = [s.deadline for s in self.slots if s.pending and s.deadline is not None]
        wait_for = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        ready = set(wait(waitables, timeout=wait_for))
        return ready, time.monotonic()

    def collect(self, slot: _Slot, ready: set[Any], now: float) -> Iterator[tuple[Any, Any]]:
        """Yield a busy slot's finished results, then fail and replace it if it died or hung."""
        timeout = self.timeout
        got_any = False
        # Drain every finished result before looking at the process's health.
        while slot.pending and (slot.conn in ready or got_any) and slot.conn.poll():
            try:
                index, result = slot.conn.recv()
            except (EOFError, OSError):
                break
            got_any = True
            task = self.by_index.pop(index)
            slot.pending.popleft()
            slot.deadline = None if timeout is None else now + timeout
            yield task, result
        if slot.pending and not slot.process.is_alive():
            index, task = slot.pending.popleft()
            self.by_index.pop(index, None)
            code = slot.process.exitcode
            yield task, TaskFailure(f"decoder crashed (worker exit code {code})")
            slot = self._restart(slot)
        elif slot.pending and slot.deadline is not None and now >= slot.deadline:
            index, task = slot.pending.popleft()
            self.by_index.pop(index, None)
            yield task, TaskFailure(f"timed out after {timeout:.0f} s")
            slot = self._restart(slot)
        if not slot.pending:
            self.feed(slot)

    def _restart(self, slot: _Slot) -> _Slot:
        """Kill the slot's process; a fresh one in its place gets the tasks it still held."""
        requeue = list(slot.pending)
        slot.kill()
        fresh = _Slot(self.ctx, self.fn, self.initializer)
        self.slots[self.slots.index(slot)] = fresh
        _resend(fresh, requeue, self.timeout)
        return fresh

    def shutdown(self) -> None:
        """Ask every worker to stop; kill those that do not within half a second."""
        for slot in self.slots:
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in self.slots:
            slot.process.join(timeout=0.5)
            if slot.process.is_alive():
                slot.kill()
            else:
                slot.conn.close()

def _resend(slot: _Slot, chunk: list[tuple[int, Any]], timeout: float | None) -> None:
    if chunk:
        slot.pending.extend(chunk)
        slot.conn.send(chunk)
        slot.deadline = None if timeout is None else time.monotonic() + timeout
