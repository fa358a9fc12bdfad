"""The preview's spectrogram: the clip's log-mel picture with a time axis (s) and a frequency axis
(Hz, kHz), spanning exactly the clip, with a playhead; a click seeks there.

The picture is computed on a pool thread (`indexing.spectrogram.audio_spectrogram`) when an
audio item is shown; the stale result of an item left meanwhile is dropped.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from ui.workers import submit

log = logging.getLogger(__name__)

LEFT, BOTTOM, TOP, RIGHT = 58, 30, 8, 12  # margins for the axes' labels (px)
TICK = 4


class SpectrogramView(QWidget):
    """A spectrogram with its axes.

    Signals:
        seek(float): the user clicked at this time (seconds) of the clip.
    """

    seek = Signal(float)
    ready = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.spectrogram: Any = None
        self.image: Optional[QImage] = None
        self.message = ""
        self.position: Optional[float] = None
        self._token = 0
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.setMinimumSize(240, 160)

    # --- data ---------------------------------------------------------------------------------

    def load(self, path: str) -> None:
        """Compute the spectrogram of `path` in the background and show it when ready."""
        from indexing.spectrogram import audio_spectrogram

        self._token += 1
        token = self._token
        self.set_spectrogram(None, "computing the spectrogram…")
        submit(audio_spectrogram, path, pool=self.pool, name="spectrogram",
               on_result=lambda spec: self._loaded(token, spec),
               on_error=lambda info: self._failed(token, info))

    def _loaded(self, token: int, spec: Any) -> None:
        if token == self._token:
            self.set_spectrogram(spec)
            self.ready.emit()

    def _failed(self, token: int, info: Any) -> None:
        if token == self._token:
            self.set_spectrogram(None, f"no spectrogram: {info}")
            self.ready.emit()

    def clear(self) -> None:
        self._token += 1
        self.set_spectrogram(None)

    def set_spectrogram(self, spec: Any, message: str = "") -> None:
        """Show a computed `indexing.spectrogram.Spectrogram` (None: only `message`)."""
        self.spectrogram = spec
        self.message = message
        self.position = None
        if spec is None:
            self.image = None
        else:
            rgb = spec.rgb
            h, w = rgb.shape[:2]
            self.image = QImage(rgb.tobytes(), w, h, 3 * w, QImage.Format_RGB888).copy()
        self.update()

    def set_position(self, seconds: Optional[float]) -> None:
        """Draw the playhead at this time (None: no playhead)."""
        self.position = seconds
        self.update()

    # --- geometry -----------------------------------------------------------------------------

    def plot_rect(self) -> QRect:
        """Where the picture is drawn: the widget less the axes' margins."""
        return QRect(LEFT, TOP, max(1, self.width() - LEFT - RIGHT),
                     max(1, self.height() - TOP - BOTTOM))

    def x_of(self, seconds: float) -> float:
        r = self.plot_rect()
        span = self.spectrogram.seconds if self.spectrogram is not None else 1.0
        return r.left() + r.width() * seconds / max(span, 1e-9)

    def y_of(self, hz: float) -> float:
        r = self.plot_rect()
        return r.bottom() + 1 - r.height() * self.spectrogram.height_of(hz)

    def time_labels(self) -> list[tuple[str, float]]:
        """(label, x) of the time axis' ticks as drawn."""
        if self.spectrogram is None:
            return []
        most = max(2, self.plot_rect().width() // 70)
        return [(text, self.x_of(t)) for t, text in self.spectrogram.time_ticks(most)]

    def freq_labels(self) -> list[tuple[str, float]]:
        """(label, y) of the frequency axis' ticks as drawn, top down; a tick closer than a line
        of text to the one above it is left out (the mel scale crowds the low ones)."""
        if self.spectrogram is None:
            return []
        gap = self.fontMetrics().height() + 2
        out: list[tuple[str, float]] = []
        for hz, text in reversed(self.spectrogram.freq_ticks()):
            y = self.y_of(hz)
            if not out or y - out[-1][1] >= gap:
                out.append((text, y))
        return out

    # --- drawing ------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        if self.image is None:
            painter.setPen(self.palette().windowText().color())
            painter.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self.message)
            painter.end()
            return
        plot = self.plot_rect()
        painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
        painter.drawImage(QRectF(plot), self.image)
        self._axes(painter, plot)
        if self.position is not None and 0 <= self.position <= self.spectrogram.seconds:
            painter.setPen(QPen(Qt.white, 1))
            x = self.x_of(self.position)
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        painter.end()

    def _axes(self, painter: QPainter, plot: QRect) -> None:
        text = self.palette().windowText().color()
        painter.setPen(QPen(text, 1))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        painter.drawLine(plot.bottomLeft(), plot.topLeft())
        metrics = painter.fontMetrics()
        for label, y in self.freq_labels():
            painter.drawLine(QPointF(plot.left() - TICK, y), QPointF(plot.left(), y))
            box = QRectF(0, y - metrics.height() / 2, plot.left() - TICK - 3, metrics.height())
            painter.drawText(box, Qt.AlignRight | Qt.AlignVCenter, label)
        labels = self.time_labels()
        for i, (label, x) in enumerate(labels):
            painter.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + TICK))
            width = metrics.horizontalAdvance(label) + 4
            # The last label ends at the plot's right edge rather than past the widget.
            left = min(x - width / 2, self.width() - width) if i else x
            painter.drawText(QRectF(left, plot.bottom() + TICK + 1, width, metrics.height()),
                             Qt.AlignHCenter | Qt.AlignTop, label)
        spec = self.spectrogram
        if spec.total_seconds is not None:
            painter.drawText(QRectF(plot.left(), 0, plot.width(), TOP + metrics.height()),
                             Qt.AlignRight | Qt.AlignTop,
                             f"first {spec.seconds:.0f} s of {spec.total_seconds:.0f} s")

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        plot = self.plot_rect()
        if self.spectrogram is not None and plot.contains(event.position().toPoint()):
            share = (event.position().x() - plot.left()) / max(plot.width(), 1)
            self.seek.emit(float(share * self.spectrogram.seconds))
        super().mousePressEvent(event)
