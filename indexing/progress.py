"""Progress reporting and cancellation for long jobs, as plain callables (no Qt, no tqdm here)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional


class Cancelled(Exception):
    """Raised inside a long job when its CancelToken was set; the job has kept all finished work."""


class CancelToken:
    """A thread-safe flag a caller sets to ask a running job to stop at the next batch boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def __call__(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: `done` of `total` units (total None when unknown) in `stage`.

    `overall` is the share (0..1) of a multi-stage job done, when a pipeline maps its stages
    into one bar; None for a single-stage job.
    """

    stage: str
    done: int
    total: Optional[int] = None
    unit: str = "items"
    message: str = ""
    overall: Optional[float] = None


Progress = Callable[[ProgressEvent], None]
"""A progress callback: receives ProgressEvent instances, must be cheap and must not raise."""


def no_progress(event: ProgressEvent) -> None:
    """The default progress callback: ignores every event."""


def is_cancelled(cancel: Optional[Callable[[], bool]]) -> bool:
    """True when a cancel callable (a CancelToken or any zero-argument callable) says stop."""
    return bool(cancel is not None and cancel())


def check_cancel(cancel: Optional[Callable[[], bool]]) -> None:
    """Raise Cancelled when `cancel` says stop; call this at every batch boundary."""
    if is_cancelled(cancel):
        raise Cancelled()
