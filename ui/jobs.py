"""Long jobs of the app (indexing: scan, embed, group, map) and the panel that shows their progress.

The panel shows the stage, a bar, the measured rate and the time left, and a Cancel button that
sets the job's CancelToken; every finished batch is kept, so indexing again resumes.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from indexing.progress import Cancelled, ProgressEvent, check_cancel
from ui.dialogs import IndexOptions
from ui.workers import ProgressInfo, Worker

log = logging.getLogger(__name__)

STAGES = ("scan", "embed", "group", "map")


def run_indexing(project: Any, options: IndexOptions, progress: Optional[Callable] = None,
                 cancel: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
    """Scan, embed, cluster and map a project, reporting each step as "i/4 stage: detail".

    Raises:
        Cancelled: the cancel token was set; finished batches are kept.
    """
    from curator.scan import ScanOptions

    def stage(i: int, name: str) -> Callable[[ProgressEvent], None]:
        def report(e: ProgressEvent) -> None:
            if progress is not None:
                detail = f": {e.stage}" if e.stage and e.stage != name else ""
                progress(ProgressEvent(f"{i}/{len(STAGES)} {name}{detail}", e.done, e.total,
                                       e.unit, e.message))
        return report

    summary: dict[str, Any] = {}
    scan = project.scan(ScanOptions(), progress=stage(1, "scan"), cancel=cancel)
    summary["scan"] = scan.counts() if hasattr(scan, "counts") else str(scan)
    if getattr(scan, "cancelled", False):
        raise Cancelled()
    check_cancel(cancel)
    embed = project.embed(options.model, options.audio_model, progress=stage(2, "embed"),
                          cancel=cancel)
    summary["embed"] = embed.counts() if hasattr(embed, "counts") else str(embed)
    summary["unavailable"] = list(getattr(embed, "unavailable", []))
    if getattr(embed, "cancelled", False):
        raise Cancelled()
    check_cancel(cancel)
    run_id, counts = project.cluster(options.n_groups, progress=stage(3, "group"), cancel=cancel)
    summary["cluster"] = {"run_id": run_id, **counts}
    check_cancel(cancel)
    if options.build_map:
        summary["map"] = project.compute_map(progress=stage(4, "map"), cancel=cancel)
    return summary


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
        if info.total:
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
