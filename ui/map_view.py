"""The map: every item on a 2-D layout, coloured by label, group or topic; pan, zoom, hover, lasso.

This module is the view (colouring, legend, hover card, labelling a lasso selection); the canvas
that draws and selects is `ui.map_canvas`.

The canvas never draws points itself. Workers build a grid index and a density pyramid once per
data and colouring, then render each view to an image (`ui.map_render`); the canvas blits the
latest image, stretched to the current view while the exact one is computed, so panning and
zooming stay smooth at a million points. Rendered views are kept in a small cache.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import (
    QPixmap,
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
from ui.map_canvas import MapCanvas, MapData, build_map_data
from ui.session import LABELS, Session
from ui.thumbnails import ThumbnailCache
from ui.workers import submit

log = logging.getLogger(__name__)

COLOUR_MODES = (("Label", "label"), ("Group", "group"), ("Topic", "topic"), ("None", "none"))
NOISE_RGB = (110, 90, 70)
MIXED_RGB = (240, 160, 40)
NONE_RGB = (115, 115, 120)


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
