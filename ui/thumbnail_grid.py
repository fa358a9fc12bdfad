"""The thumbnail grid of a group: a list view in icon mode that asks only for what is visible,
and the delegate that paints each thumbnail with its label badge and exclusion marks.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
)

from ui.models import ItemGridModel


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a thumbnail tile with its marks: representative, boundary, excluded, selected."""

    def __init__(self, model: ItemGridModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.model = model

    def sizeHint(self, option: Any, index: Any) -> QSize:  # noqa: N802 - Qt API
        s = self.model.icon_size + 8
        return QSize(s, s)

    def paint(self, painter: QPainter, option: Any, index: Any) -> None:
        # Called for every visible tile at every repaint: kept to a few calls per tile.
        pix, marks = self.model.tile(index.row())
        r = option.rect
        x, y, w, h = r.x() + 3, r.y() + 3, r.width() - 6, r.height() - 6
        if pix is not None:
            pw, ph = pix.width(), pix.height()
            if pw > w or ph > h:
                painter.drawPixmap(QRect(x, y, w, h), pix)
            else:
                painter.drawPixmap(x + (w - pw) // 2, y + (h - ph) // 2, pix)
        state = option.state.value  # an int: Python enum arithmetic costs at every tile
        badge = self.model.badge(index.row())
        if badge is not None:
            self._badge(painter, QRect(x, y, w, h), badge)
        if marks or state & (_SELECTED | _FOCUS):
            self._marks(painter, option, QRect(x, y, w, h), marks, state)

    def _badge(self, painter: QPainter, rect: QRect, badge: tuple) -> None:
        """The item's current decision along the tile's bottom: label colour and name, or state."""
        state, name, colour = badge
        text = name if state == "labelled" else state
        fill = QColor(colour) if state == "labelled" and colour else _STATE_BADGE.get(
            state, QColor(120, 120, 120))
        painter.save()
        metrics = painter.fontMetrics()
        h = metrics.height() + 2
        band = QRect(rect.left(), rect.bottom() - h + 1, rect.width(), h)
        painter.fillRect(band, QColor(0, 0, 0, 170))
        painter.fillRect(QRect(band.left(), band.top(), 6, h), fill)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(band.adjusted(9, 0, -2, 0), Qt.AlignVCenter | Qt.AlignLeft,
                         metrics.elidedText(text, Qt.ElideRight, band.width() - 11))
        painter.restore()

    def _marks(self, painter: QPainter, option: Any, rect: QRect, marks: int, state: int) -> None:
        # Pens and brushes are made once (module level); the painter's own pen and brush are
        # put back at the end, cheaper than save()/restore() at every tile.
        pen, brush = painter.pen(), painter.brush()
        if marks & 4:  # excluded
            painter.fillRect(rect, _SHADE)
            painter.setPen(_CROSS_PEN)
            painter.drawLine(rect.topLeft(), rect.bottomRight())
            painter.drawLine(rect.topRight(), rect.bottomLeft())
        if marks & 2:  # boundary: near another group
            painter.setPen(Qt.NoPen)
            painter.setBrush(_BOUNDARY)
            r = rect.topRight()
            painter.drawPolygon(QPolygon([r, r + _pt(-14, 0), r + _pt(0, 14)]))
        if marks & 1:  # representative
            painter.setPen(Qt.NoPen)
            painter.setBrush(_REPRESENTATIVE)
            painter.drawEllipse(rect.left() + 4, rect.top() + 4, 8, 8)
        if state & (_SELECTED | _FOCUS):
            painter.setBrush(Qt.NoBrush)
        if state & _SELECTED:
            painter.setPen(QPen(option.palette.highlight().color(), 3))
            painter.drawRect(rect.adjusted(-1, -1, 1, 1))
        if state & _FOCUS:
            painter.setPen(_FOCUS_PEN)
            painter.drawRect(rect.adjusted(-2, -2, 2, 2))
        painter.setPen(pen)
        painter.setBrush(brush)


_STATE_BADGE = {"noise": QColor(150, 120, 90), "mixed": QColor(220, 150, 40),
                "duplicate": QColor(120, 120, 200)}
_SELECTED = QStyle.StateFlag.State_Selected.value
_FOCUS = QStyle.StateFlag.State_HasFocus.value
_SHADE = QColor(0, 0, 0, 150)
_CROSS_PEN = QPen(QColor(230, 60, 60), 3)
_BOUNDARY = QColor(255, 160, 0)
_REPRESENTATIVE = QColor(70, 150, 255)
_FOCUS_PEN = QPen(QColor(255, 255, 255), 1, Qt.DashLine)


def _pt(x: int, y: int) -> Any:
    from PySide6.QtCore import QPoint

    return QPoint(x, y)


class ThumbnailGrid(QListView):
    """A QListView in icon mode that asks for thumbnails of the visible tiles first."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.IconMode)
        self.setResizeMode(QListView.Adjust)
        self.setMovement(QListView.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.Batched)
        self.setBatchSize(200)
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setWordWrap(False)
        self.verticalScrollBar().valueChanged.connect(self.request_visible)

    def visible_ids(self) -> list[int]:
        """Item ids of the tiles on screen (a row more at the bottom), top left first."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return []
        first = self.indexAt(self.viewport().rect().topLeft() + _pt(4, 4))
        start = first.row() if first.isValid() else 0
        per_row = max(1, self.viewport().width() // max(1, self.gridSize().width() or
                                                       model.icon_size + 12))
        rows = self.viewport().height() // max(1, model.icon_size + 12) + 2
        return [model.item_at(r) for r in range(start, min(model.rowCount(),
                                                            start + per_row * rows))]

    def request_visible(self) -> None:
        """Queue the visible tiles' thumbnails ahead of anything else."""
        ids = self.visible_ids()
        if ids:
            self.model().thumbs.request(ids, front=True)
