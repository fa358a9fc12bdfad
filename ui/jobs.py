"""The app's long jobs (indexing runs `curator.pipeline.index`) and the panel showing progress.

The panel shows the stage, a bar, the measured rate and the time left, and a Cancel button that
sets the job's CancelToken; every finished batch is kept, so indexing again resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ui.workers import ProgressInfo, Worker

if TYPE_CHECKING:  # the pipeline imports the catalog: loaded when a job runs
    from curator.pipeline import IndexOptions, IndexReport

log = logging.getLogger(__name__)


def run_indexing(project: Any, options: IndexOptions, progress: Optional[Callable] = None,
                 cancel: Optional[Callable[[], bool]] = None) -> IndexReport:
    """The app's *Index…*: the same pipeline as `curator index`, on a worker thread.

    Raises:
        Cancelled: the cancel token was set; finished batches are kept.
    """
    from curator.pipeline import index

    return index(project, options, progress, cancel)


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class JobPanel(QWidget):
    """Progress of the running job: stage, bar, items/s, time left, Cancel.

    Signals:
        done(bool): the job ended; True when it succeeded.
    """

    done = Signal(bool)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.worker: Optional[Worker] = None
        self.stage = QLabel("")
        self.stage.setMinimumWidth(260)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.rate = QLabel("")
        self.eta = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Hide")
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.rate)
        layout.addWidget(self.eta)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.close_button)
        self.hide()

    @property
    def running(self) -> bool:
        return self.worker is not None and not self.worker.done

    def attach(self, worker: Worker, title: str) -> None:
        """Follow a started worker."""
        self.worker = worker
        self.stage.setText(f"{title}: starting…")
        self.bar.setRange(0, 0)
        self.rate.setText("")
        self.eta.setText("")
        self.cancel_button.setEnabled(True)
        self.close_button.setEnabled(False)
        worker.signals.progress.connect(self.on_progress)
        worker.signals.cancelled.connect(lambda: self._ended("Cancelled: finished work is kept; "
                                                             "index again to resume.", False))
        worker.signals.error.connect(lambda info: self._ended(f"Failed: {info}", False))
        worker.signals.result.connect(lambda _: self._ended(f"{title}: done.", True)
                                      if not worker.cancelled else None)
        worker.signals.finished.connect(self._finished)
        self.show()

    def on_progress(self, info: ProgressInfo) -> None:
        self.stage.setText(info.stage + (f" · {info.message}" if info.message else ""))
        if info.overall is not None:
            # A pipeline: the bar shows the whole job, its text the current stage's count.
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * info.overall))
            self.bar.setFormat(f"{info.done:,} / {info.total:,} {info.unit}" if info.total
                               else f"{info.done:,} {info.unit}")
        elif info.total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * (info.fraction or 0)))
            self.bar.setFormat(f"{info.done:,} / {info.total:,} {info.unit}")
        else:
            self.bar.setRange(0, 0)
        self.rate.setText(f"{info.rate:,.1f} {info.unit}/s" if info.rate else "")
        self.eta.setText(f"about {_duration(info.eta)} left" if info.eta is not None else "")

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.stage.setText("Cancelling after the current batch…")
            self.cancel_button.setEnabled(False)

    def _ended(self, text: str, ok: bool) -> None:
        self.stage.setText(text)
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if ok else 0)
        self.bar.setFormat("")
        self.eta.setText("")
        self.done.emit(ok)

    def _finished(self) -> None:
        self.cancel_button.setEnabled(False)
        self.close_button.setEnabled(True)


__all__ = ["run_indexing", "JobPanel"]
