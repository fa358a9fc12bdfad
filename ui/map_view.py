"""The map: every item on a 2-D layout, coloured by label, group or topic; pan, zoom, hover, lasso.

The canvas never draws points itself. Workers build a grid index and a density pyramid once per
data and colouring, then render each view to an image (`ui.map_render`); the canvas blits the
latest image, stretched to the current view while the exact one is computed, so panning and
zooming stay smooth at a million points. Rendered views are kept in a small cache.
"""

from __future__ import annotations

import logging
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
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import map_render as mr
from ui.session import LABELS, Session
from ui.thumbnails import ThumbnailCache
from ui.workers import submit

log = logging.getLogger(__name__)

BACKGROUND = QColor(24, 24, 28)
COLOUR_MODES = (("Label", "label"), ("Group", "group"), ("Topic", "topic"), ("None", "none"))
NOISE_RGB = (110, 90, 70)
MIXED_RGB = (240, 160, 40)
NONE_RGB = (115, 115, 120)


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


class HoverCard(QLabel):
    """A small floating card with the hovered item's thumbnail."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent, Qt.ToolTip)
        self.setFrameShape(QFrame.Box)
        self.setAlignment(Qt.AlignCenter)
        self.setStyleSheet("background: #202024; color: #ddd; padding: 4px;")
        self.item_id = -1


class MapView(QWidget):
    """The map page: colouring, lasso, selection actions and the canvas.

    Signals:
        open_items(str, object): show these item ids as a temporary group.
        message(str): a status line.
        facets_ready(): groups, topics and labels of the items arrived (colours follow).
    """

    open_items = Signal(str, object)
    message = Signal(str)
    facets_ready = Signal()

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs
        self.labels: list[Any] = []
        self.canvas = MapCanvas(self)
        self.ids: Optional[np.ndarray] = None
        self.xy: Optional[np.ndarray] = None
        self.facets: Optional[dict[str, np.ndarray]] = None
        self._index: Optional[mr.GridIndex] = None
        self.state = "empty"  # empty, loading, ready, unavailable, error

        self.colour_by = QComboBox()
        for text, value in COLOUR_MODES:
            self.colour_by.addItem(f"Colour by {text.lower()}", value)
        self.colour_by.currentIndexChanged.connect(self.recolour)
        self.lasso_button = QToolButton()
        self.lasso_button.setText("Lasso")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("Draw around points to select them (or Shift+drag)")
        self.lasso_button.toggled.connect(lambda on: setattr(self.canvas, "lasso_mode", on))
        fit = QPushButton("Fit")
        fit.clicked.connect(self.canvas.fit)
        self.selection_label = QLabel("No selection")
        self.label_button = QPushButton("Label selection…")
        self.label_button.clicked.connect(lambda: self.label_selection())
        self.open_button = QPushButton("Open as group")
        self.open_button.clicked.connect(self.open_selection)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.canvas.clear_selection)
        self.info = QLabel("")
        self.info.setObjectName("mapInfo")
        self.info.setTextFormat(Qt.RichText)
        bar = QHBoxLayout()
        for w in (self.colour_by, self.lasso_button, fit):
            bar.addWidget(w)
        bar.addStretch(1)
        for w in (self.selection_label, self.label_button, self.open_button, clear):
            bar.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(bar)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.info)
        self.card = HoverCard(self)
        self.card.hide()
        self.canvas.hovered.connect(self._hovered)
        self.canvas.selection_changed.connect(self._selection_changed)
        self.canvas.rendered.connect(self._rendered)
        self.canvas.installEventFilter(self)
        thumbs.ready.connect(self._thumbs_ready)
        self._selection_changed(np.zeros(0, np.int64))

    # --- loading --------------------------------------------------------------------------

    def load(self) -> None:
        """Read the map layout and the item facets, then build the first colouring."""
        project = self.session.project
        if project is None:
            return
        self.state = "loading"
        self.info.setText("Loading the map…")

        def layout(p: Any) -> tuple:
            ids, xy = p.map()
            ids = np.asarray(ids, np.int64)
            xy = np.asarray(xy, np.float32)
            return ids, xy, mr.GridIndex(xy)

        # The layout first (quick, even at a million items), the colouring facets after.
        self.session.read(layout, key="map", name="map", on_result=self._loaded,
                          on_error=self._failed)

    def _failed(self, info: Any) -> None:
        self.state = "error"
        self.info.setText(f"No map: {info}")
        self.message.emit(f"map: {info}")

    def _loaded(self, answer: tuple) -> None:
        self.ids, self.xy, self._index = answer
        self.facets = None
        self.state = "ready"
        self.recolour(keep_view=False)
        self.refresh_facets()

    def refresh_facets(self) -> None:
        """Labels or groups changed: re-read the facets and recolour, keeping the view."""
        if self.ids is None or self.session.project is None:
            return
        ids = self.ids
        self.session.read(lambda p: item_facets(p, ids), key="map-facets", name="map facets",
                          on_result=self._facets_loaded)

    def _facets_loaded(self, facets: dict[str, np.ndarray]) -> None:
        self.facets = facets
        self.recolour(keep_view=True)
        self.facets_ready.emit()

    def set_labels(self, labels: list[Any]) -> None:
        self.labels = list(labels)

    def colours(self) -> np.ndarray:
        mode = self.colour_by.currentData()
        n = 0 if self.ids is None else len(self.ids)
        facets = self.facets or {}
        if mode == "group" and "group" in facets:
            return mr.categorical_colours(facets["group"])
        if mode == "topic" and "topic" in facets:
            return mr.categorical_colours(facets["topic"])
        if mode == "label" and "label" in facets:
            table = {lab.id: mr.hex_to_rgb(lab.colour) for lab in self.labels}
            label = facets["label"]
            state = facets.get("state", np.where(label >= 0, 1, 0))
            out = np.empty((n, 3), np.uint8)
            out[:] = NONE_RGB
            known = np.unique(label[label >= 0])
            for lab_id in known.tolist():
                out[label == lab_id] = table.get(lab_id, (200, 200, 200))
            out[state == 2] = NOISE_RGB
            out[state == 3] = MIXED_RGB
            return out
        out = np.empty((n, 3), np.uint8)
        out[:] = (110, 170, 230)
        return out

    def recolour(self, *_: Any, keep_view: bool = True) -> None:
        if self.ids is None or self._index is None:
            return
        colours = self.colours()
        ids, xy, index = self.ids, self.xy, self._index
        keep = keep_view and self.canvas.data is not None
        submit(build_map_data, ids, xy, colours, index, pool=self.canvas.pool, name="map colours",
               on_result=lambda data: self._data_ready(data, keep))

    def _data_ready(self, data: MapData, keep_view: bool) -> None:
        # Same items in the same order, new colours: a lasso selection made meanwhile stays.
        selected = self.canvas.selected if keep_view else np.zeros(0, np.int64)
        self.canvas.set_data(data, keep_view=keep_view)
        if len(selected):
            self.canvas.selected = selected
        self.info.setText(f"{len(data.ids):,} items · wheel zooms · drag pans · Shift+drag or "
                          "Lasso selects · hover shows a thumbnail")

    # --- hover ----------------------------------------------------------------------------

    def _hovered(self, item_id: int, global_pos: QPointF) -> None:
        if item_id < 0:
            self.card.hide()
            return
        self.card.item_id = item_id
        self._fill_card()
        self.card.move(global_pos.toPoint() + QPointF(16, 16).toPoint())
        self.card.show()

    def _fill_card(self) -> None:
        item_id = self.card.item_id
        image = self.thumbs.image(item_id)
        if image is not None:
            pix = QPixmap.fromImage(image).scaled(160, 160, Qt.KeepAspectRatio,
                                                  Qt.SmoothTransformation)
            self.card.setPixmap(pix)
        else:
            state = "no thumbnail" if self.thumbs.has(item_id) else "loading…"
            self.card.setText(f"item {item_id}\n{state}")
        self.card.setToolTip(f"item {item_id}")
        self.card.adjustSize()

    def _thumbs_ready(self, ids: list[int]) -> None:
        if self.card.isVisible() and self.card.item_id in ids:
            self._fill_card()

    # --- selection ------------------------------------------------------------------------

    def _selection_changed(self, ids: np.ndarray) -> None:
        n = len(ids)
        self.selection_label.setText(f"{n:,} selected" if n else "No selection")
        self.label_button.setEnabled(n > 0)
        self.open_button.setEnabled(n > 0)

    def _rendered(self, mode: str) -> None:
        if self.canvas.data is not None:
            self.info.setText(f"{len(self.canvas.data.ids):,} items · {mode} · "
                              f"{self.canvas.visible_count:,} in view · render "
                              f"{self.canvas.last_render_ms:.0f} ms{self.legend()}")

    def legend(self) -> str:
        """Rich text naming the colours of the label colouring."""
        if self.colour_by.currentData() != "label":
            return ""
        import html

        def swatch(rgb: tuple, text: str) -> str:
            return (f" &nbsp;<span style='color: #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}'>■</span>"
                    f" {html.escape(text)}")

        parts = [swatch(mr.hex_to_rgb(lab.colour), lab.path) for lab in self.labels[:12]]
        parts += [swatch(NOISE_RGB, "noise"), swatch(MIXED_RGB, "mixed"),
                  swatch(NONE_RGB, "unlabelled")]
        return " ·" + "".join(parts)

    def label_selection(self, label: Optional[str] = None, action: str = "assign") -> None:
        """Label the lasso selection (one event, source manual); asks which label when None."""
        ids = [int(i) for i in self.canvas.selected_ids()]
        if not ids:
            self.message.emit("select points with the lasso first")
            return
        if label is None and action == "assign":
            choices = [lab.path for lab in self.labels] + ["(noise)", "(mixed)"]
            if not choices:
                return
            label, ok = QInputDialog.getItem(self, "Label selection",
                                             f"Label for {len(ids)} item(s):", choices, 0, False)
            if not ok:
                return
            if label in ("(noise)", "(mixed)"):
                action, label = label.strip("()"), None
        self.session.write(lambda p: p.label_items(ids, label, action=action, source="manual",
                                                   note="map lasso"),
                           changes=LABELS, name="label selection",
                           on_result=lambda ev: self.message.emit(
                               f"{len(ids)} items → {label or action} (Ctrl+Z undoes)"))

    def open_selection(self) -> None:
        ids = self.canvas.selected_ids()
        if len(ids):
            self.open_items.emit(f"Map selection ({len(ids)})", [int(i) for i in ids])

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        from PySide6.QtCore import QEvent

        if obj is self.canvas and event.type() == QEvent.KeyPress and \
                not event.modifiers() & (Qt.ControlModifier | Qt.ShiftModifier) and \
                len(self.canvas.selected):
            text = event.text().lower()
            key = event.key()
            name = f"F{key - Qt.Key_F1 + 1}" if Qt.Key_F1 <= key <= Qt.Key_F12 else text
            for lab in self.labels:
                if lab.hotkey and lab.hotkey == name:
                    self.label_selection(lab.path)
                    return True
        return super().eventFilter(obj, event)


def item_facets(project: Any, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Group, topic, label and label state of each item, aligned with `ids` (one facade call)."""
    facets = project.item_facets(np.asarray(ids, np.int64))
    return {k: np.asarray(v) for k, v in vars(facets).items()}
