"""The map canvas: a zoomable, pannable 2-D scatter of every item, rendered off the GUI thread,
with hover and lasso selection.

Rendering (density pyramid and points, `ui.map_render`) runs in a worker per view change; the
canvas keeps showing the last frame until the new one lands.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QWidget,
)

from ui import map_render as mr
from ui.workers import submit

BACKGROUND = QColor(24, 24, 28)


def _to_qimage(rgba: np.ndarray) -> QImage:
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format_RGBA8888).copy()


class MapData:
    """What one colouring of the map needs, built on a worker: ids, index, colours, pyramid."""

    def __init__(self, ids: np.ndarray, xy: np.ndarray, colours: np.ndarray,
                 index: Optional[mr.GridIndex] = None) -> None:
        self.ids = np.asarray(ids, np.int64)
        self.index = index or mr.GridIndex(np.asarray(xy, np.float32))
        self.colours = np.ascontiguousarray(colours, np.uint8)
        self.pyramid = mr.DensityPyramid(self.index, self.colours) if len(self.ids) else None
        self.position = None  # lazily: item id -> row (ids may be unsorted)

    def rows_of(self, item_ids: np.ndarray) -> np.ndarray:
        order = np.argsort(self.ids)
        sorted_ids = self.ids[order]
        pos = np.searchsorted(sorted_ids, item_ids)
        pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
        found = sorted_ids[pos] == item_ids
        return order[pos[found]]


def build_map_data(ids: np.ndarray, xy: np.ndarray, colours: np.ndarray,
                   index: Optional[mr.GridIndex] = None) -> MapData:
    """MapData for one colouring (run on a worker: it builds the grid index and pyramid)."""
    return MapData(ids, xy, colours, index)


def _render_job(data: MapData, view: mr.View, width: int, height: int,
                selected: Optional[np.ndarray]) -> tuple[QImage, mr.View, str, int, float]:
    started = time.perf_counter()
    raster = mr.render(data.index, data.colours, view, width, height, selected=selected,
                       pyramid=data.pyramid)
    image = _to_qimage(raster.rgba)
    return image, raster.view, raster.mode, raster.visible, time.perf_counter() - started


class MapCanvas(QWidget):
    """The drawing surface of the map.

    Signals:
        hovered(int, QPointF): the item under the cursor (-1 for none) and the global position.
        selection_changed(object): item ids (int64 array) chosen with the lasso.
        rendered(str): a new raster is on screen; its mode (density or points).
    """

    hovered = Signal(int, QPointF)
    selection_changed = Signal(object)
    rendered = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(200, 150)
        self.data: Optional[MapData] = None
        self.view = mr.View(-1, -1, 1, 1)
        self.selected = np.zeros(0, np.int64)  # row indices into data
        self.lasso_mode = False
        self._lasso: list[QPointF] = []
        self._drag_from: Optional[QPointF] = None
        self._drag_view: Optional[mr.View] = None
        self._image: Optional[QImage] = None
        self._image_view: Optional[mr.View] = None
        self.mode = ""
        self.visible_count = 0
        self.last_paint_ms = 0.0
        self.last_render_ms = 0.0
        self._cache: OrderedDict[tuple, tuple[QImage, mr.View, str, int]] = OrderedDict()
        self._in_flight: Optional[tuple] = None
        self._wanted: Optional[tuple] = None
        self._hover_row: Optional[int] = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._render_now)

    # --- data -----------------------------------------------------------------------------

    def set_data(self, data: Optional[MapData], keep_view: bool = False) -> None:
        self.data = data
        self._cache.clear()
        self.selected = np.zeros(0, np.int64)
        if data is not None and not keep_view:
            self.view = mr.fit_view(data.index.xy, max(self.width(), 1), max(self.height(), 1))
        self.request_render()

    def fit(self) -> None:
        if self.data is not None:
            self.view = mr.fit_view(self.data.index.xy, max(self.width(), 1),
                                    max(self.height(), 1))
            self.request_render()

    def selected_ids(self) -> np.ndarray:
        if self.data is None or not len(self.selected):
            return np.zeros(0, np.int64)
        return np.sort(self.data.ids[self.selected])

    def set_selection_rows(self, rows: np.ndarray) -> None:
        self.selected = np.asarray(rows, np.int64)
        self._cache.clear()
        self.request_render()
        self.selection_changed.emit(self.selected_ids())

    def clear_selection(self) -> None:
        self.set_selection_rows(np.zeros(0, np.int64))

    # --- coordinates ----------------------------------------------------------------------

    def to_data(self, p: QPointF) -> tuple[float, float]:
        v = self.view
        return (v.x0 + p.x() / max(self.width(), 1) * v.width,
                v.y1 - p.y() / max(self.height(), 1) * v.height)

    def to_screen(self, x: float, y: float) -> QPointF:
        v = self.view
        return QPointF((x - v.x0) / v.width * self.width(), (v.y1 - y) / v.height * self.height())

    def _rect_of(self, view: mr.View) -> QRectF:
        a = self.to_screen(view.x0, view.y1)
        b = self.to_screen(view.x1, view.y0)
        return QRectF(a, b)

    # --- rendering ------------------------------------------------------------------------

    def _key(self) -> tuple:
        return (self.view.key(), self.width(), self.height(), len(self.selected),
                id(self.data))

    def request_render(self) -> None:
        """Ask for the current view's raster (from the cache, or rendered on a worker)."""
        self.update()
        if not self._timer.isActive():
            self._timer.start()

    def _render_now(self) -> None:
        if self.data is None or self.width() < 2 or self.height() < 2:
            return
        key = self._key()
        if key in self._cache:
            self._cache.move_to_end(key)
            image, view, mode, visible = self._cache[key]
            self._show(image, view, mode, visible)
            return
        if self._in_flight is not None:
            self._wanted = key  # render the newest view once the one in flight is done
            return
        self._in_flight = key
        selected = self.selected if len(self.selected) else None
        submit(_render_job, self.data, self.view, self.width(), self.height(), selected,
               pool=self.pool, name="map raster",
               on_result=lambda r, k=key, d=self.data: self._rendered(k, d, r),
               on_finished=self._render_finished)

    def _rendered(self, key: tuple, data: Optional[MapData], result: tuple) -> None:
        if data is not self.data:
            return
        image, view, mode, visible, seconds = result
        self.last_render_ms = seconds * 1000
        self._cache[key] = (image, view, mode, visible)
        while len(self._cache) > 12:
            self._cache.popitem(last=False)
        if key == self._key():
            self._show(image, view, mode, visible)

    def _show(self, image: QImage, view: mr.View, mode: str, visible: int) -> None:
        self._image, self._image_view, self.mode, self.visible_count = image, view, mode, visible
        self.update()
        self.rendered.emit(mode)

    def _render_finished(self) -> None:
        self._in_flight = None
        if self._wanted is not None:
            self._wanted = None
            if self._key() not in self._cache:
                self._timer.start()

    @property
    def busy(self) -> bool:
        return self._in_flight is not None or self._timer.isActive()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        started = time.perf_counter()
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._image is not None and self._image_view is not None:
            p.setRenderHint(QPainter.SmoothPixmapTransform, self.mode == "density")
            p.drawImage(self._rect_of(self._image_view), self._image)
        elif self.data is None:
            p.setPen(QColor(170, 170, 170))
            p.drawText(self.rect(), Qt.AlignCenter, "No map yet")
        if self._hover_row is not None and self.data is not None:
            x, y = self.data.index.xy[self._hover_row]
            c = self.to_screen(float(x), float(y))
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.setBrush(Qt.NoBrush)
            p.drawEllipse(c, 6, 6)
        if len(self._lasso) > 1:
            path = QPainterPath(self._lasso[0])
            for q in self._lasso[1:]:
                path.lineTo(q)
            path.closeSubpath()
            p.setPen(QPen(QColor(255, 230, 80), 1.5, Qt.DashLine))
            p.setBrush(QColor(255, 230, 80, 40))
            p.drawPath(path)
        p.end()
        self.last_paint_ms = (time.perf_counter() - started) * 1000

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.data is not None and event.oldSize().width() > 0 and event.oldSize().height() > 0:
            # Keep the centre and the scale; show more or less around it.
            v = self.view
            sx = v.width / event.oldSize().width()
            sy = v.height / event.oldSize().height()
            cx, cy = (v.x0 + v.x1) / 2, (v.y0 + v.y1) / 2
            w, h = self.width() * sx / 2, self.height() * sy / 2
            self.view = mr.View(cx - w, cy - h, cx + w, cy + h)
        elif self.data is not None:
            self.fit()
        self.request_render()

    # --- interaction ----------------------------------------------------------------------

    def zoom(self, factor: float, at: Optional[QPointF] = None) -> None:
        """Zoom by `factor` (> 1 zooms in) keeping the data point under `at` in place."""
        at = at or QPointF(self.width() / 2, self.height() / 2)
        x, y = self.to_data(at)
        v = self.view
        self.view = mr.View(x - (x - v.x0) / factor, y - (y - v.y0) / factor,
                            x + (v.x1 - x) / factor, y + (v.y1 - y) / factor)
        self.request_render()

    def pan_pixels(self, dx: float, dy: float) -> None:
        v = self.view
        ux = dx / max(self.width(), 1) * v.width
        uy = dy / max(self.height(), 1) * v.height
        self.view = mr.View(v.x0 - ux, v.y0 + uy, v.x1 - ux, v.y1 + uy)
        self.request_render()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.25 ** steps, event.position())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() != Qt.LeftButton:
            return super().mousePressEvent(event)
        if self.lasso_mode or event.modifiers() & Qt.ShiftModifier:
            self._lasso = [event.position()]
        else:
            self._drag_from = event.position()
            self._drag_view = self.view
        self.setFocus()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._lasso and event.buttons() & Qt.LeftButton:
            self._lasso.append(event.position())
            self.update()
            return
        if self._drag_from is not None and event.buttons() & Qt.LeftButton:
            d = event.position() - self._drag_from
            v = self._drag_view
            ux = d.x() / max(self.width(), 1) * v.width
            uy = d.y() / max(self.height(), 1) * v.height
            self.view = mr.View(v.x0 - ux, v.y0 + uy, v.x1 - ux, v.y1 + uy)
            self.request_render()
            return
        self._hover(event.position(), event.globalPosition())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._lasso:
            points = self._lasso + [event.position()]
            self._lasso = []
            self.update()
            if len(points) >= 3:
                self.lasso_select(points)
            return
        self._drag_from = None
        self._drag_view = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.fit()

    def leaveEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if self._hover_row is not None:
            self._hover_row = None
            self.update()
            self.hovered.emit(-1, QPointF())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        key = event.key()
        if key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom(1.5)
        elif key == Qt.Key_Minus:
            self.zoom(1 / 1.5)
        elif key == Qt.Key_0:
            self.fit()
        elif key == Qt.Key_Escape:
            self.clear_selection()
        elif key in (Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down):
            step = 60
            dx = {Qt.Key_Left: step, Qt.Key_Right: -step}.get(key, 0)
            dy = {Qt.Key_Up: step, Qt.Key_Down: -step}.get(key, 0)
            self.pan_pixels(dx, dy)
        else:
            super().keyPressEvent(event)

    def _hover(self, pos: QPointF, global_pos: QPointF) -> None:
        if self.data is None or not len(self.data.ids):
            return
        x, y = self.to_data(pos)
        radius = 8 * self.view.width / max(self.width(), 1)
        row = self.data.index.nearest(x, y, radius)
        if row != self._hover_row:
            self._hover_row = row
            self.update()
            self.hovered.emit(-1 if row is None else int(self.data.ids[row]), global_pos)

    def lasso_select(self, points: list[QPointF]) -> None:
        """Select the items inside a polygon given in widget coordinates (on a worker)."""
        if self.data is None:
            return
        polygon = np.array([self.to_data(q) for q in points], np.float64)
        data = self.data
        submit(mr.lasso, data.index, polygon, pool=self.pool, name="lasso",
               on_result=lambda rows: self.set_selection_rows(rows) if data is self.data else None)
