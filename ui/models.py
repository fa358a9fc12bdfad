"""Qt item models: thin, lazily filled adapters over answers of the Project facade.

The models keep only the last answer of a query (the rows on screen) and the view's own state
(which items the user marked to exclude); every decision lives in the catalog and is re-read
after each write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QPixmap

from ui.thumbnails import ThumbnailCache, placeholder

SORT_ROLE = Qt.UserRole + 1
GROUP_ROLE = Qt.UserRole + 2
ITEM_ROLE = Qt.UserRole + 3
MARKS_ROLE = Qt.UserRole + 4

_STATUS_COLOURS = {
    "undecided": QColor(160, 160, 160),
    "labelled": QColor(80, 180, 100),
    "noise": QColor(150, 120, 90),
    "mixed": QColor(220, 150, 40),
    "partial": QColor(120, 170, 200),
    "duplicate": QColor(120, 120, 200),
}


class GroupTableModel(QAbstractTableModel):
    """The review queue: one row per group of the current clustering (`Project.groups()`).

    Sorting (header clicks) and the free-text row filter happen here, in Python, over the last
    answer: the queue order is then a plain list, which the triage keys read after every
    decision without walking Qt indexes.
    """

    COLUMNS = ("group", "size", "cohesion", "impurity", "status", "label", "topic", "space")
    HEADERS = ("Group", "Size", "Cohesion", "Impurity", "Status", "Label", "Topic", "Space")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._answer: list[Any] = []  # the facade's rows, in its order
        self._rows: list[Any] = []  # what is shown: filtered, maybe sorted
        self._row_of: dict[int, int] = {}
        self._sort: Optional[tuple[int, Qt.SortOrder]] = None
        self._filter = ""
        self.label_colours: dict[str, str] = {}
        self.topic_names: dict[int, str] = {}  # group id -> topic in words, read lazily

    def set_groups(self, groups: Sequence[Any]) -> None:
        """Show a new answer; when the same groups stay in the same order, rows update in place."""
        self._answer = list(groups)
        rows = self._arrange()
        if [g.group_id for g in rows] == [g.group_id for g in self._rows] and rows:
            self._rows = rows
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(rows) - 1, len(self.COLUMNS) - 1))
            return
        self.beginResetModel()
        self._set_rows(rows)
        self.endResetModel()

    def _set_rows(self, rows: list[Any]) -> None:
        self._rows = rows
        self._row_of = {g.group_id: i for i, g in enumerate(rows)}

    def _arrange(self) -> list[Any]:
        rows = self._answer
        if self._filter:
            needle = self._filter.casefold()
            rows = [g for g in rows if needle in f"{g.group_id} {g.label or ''} {g.topic} "
                    f"{self.topic_names.get(g.group_id, '')} {g.status} {g.space}".casefold()]
        if self._sort is not None:
            column, order = self._sort
            key = self.COLUMNS[column]
            rows = sorted(rows, key=lambda g: _sort_key(_group_value(g, key)),
                          reverse=order == Qt.DescendingOrder)
        return list(rows)

    def sort(self, column: int, order: Qt.SortOrder = Qt.AscendingOrder) -> None:
        """Qt calls this on a header click; column -1 restores the facade's order."""
        self._sort = None if column < 0 else (column, order)
        self.layoutAboutToBeChanged.emit()
        self._set_rows(self._arrange())
        self.layoutChanged.emit()

    def set_filter(self, text: str) -> None:
        self._filter = text.strip()
        self.beginResetModel()
        self._set_rows(self._arrange())
        self.endResetModel()

    def show_decision(self, group_id: int, status: str, label: Optional[str]) -> None:
        """Show a committed decision in its row until the next answer of the facade arrives."""
        import dataclasses

        row = self._row_of.get(group_id)
        if row is None:
            return
        g = self._rows[row]
        if dataclasses.is_dataclass(g):
            self.replace_groups([dataclasses.replace(g, status=status, label=label)])

    def replace_groups(self, groups: Iterable[Any]) -> None:
        """Put fresh answers for some groups in their rows, in place: no reset, no re-sort; only
        those rows repaint (a decision changes one row of thousands)."""
        fresh = {g.group_id: g for g in groups}
        if not fresh:
            return
        self._answer = [fresh.get(g.group_id, g) for g in self._answer]
        for group_id, g in fresh.items():
            row = self._row_of.get(group_id)
            if row is not None:
                self._rows[row] = g
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def set_topic_names(self, names: dict[int, str]) -> None:
        """Show these groups' topics in words (in place of the topic number)."""
        self.topic_names.update({g: t for g, t in names.items() if t})
        rows = [self._row_of[g] for g in names if g in self._row_of]
        if rows:
            col = self.COLUMNS.index("topic")
            self.dataChanged.emit(self.index(min(rows), col), self.index(max(rows), col))

    def group_at(self, row: int) -> Any:
        return self._rows[row]

    def row_of(self, group_id: int) -> Optional[int]:
        return self._row_of.get(group_id)

    def groups(self) -> list[Any]:
        """The rows shown, in the order shown."""
        return list(self._rows)

    def group_ids(self) -> list[int]:
        return [g.group_id for g in self._rows]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.DisplayRole) -> Any:
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        # Called about ten times per cell per repaint (one per role): roles the table does not
        # use return first, and role numbers are plain ints (enum comparisons cost).
        role = int(role)
        if role not in _TABLE_ROLES or not index.isValid():
            return None
        row = index.row()
        if row >= len(self._rows):
            return None
        g = self._rows[row]
        column = self.COLUMNS[index.column()]
        if role == _DISPLAY:
            if column == "topic" and g.group_id in self.topic_names:
                return self.topic_names[g.group_id]
            value = _group_value(g, column)
            if isinstance(value, float):
                return f"{value:.3f}"
            return "" if value is None else str(value)
        if role == GROUP_ROLE:
            return g.group_id
        if role == SORT_ROLE:
            value = _group_value(g, column)
            return "" if value is None else value
        if role == _FOREGROUND:
            return _STATUS_COLOURS.get(g.status) if column == "status" else None
        if role == _DECORATION:
            if column == "label" and g.label:
                colour = self.label_colours.get(g.label)
                if colour:
                    return QColor(colour)
            return None
        # Text alignment: numbers right-aligned (a topic shown as its number too).
        if column in _NUMERIC or (column == "topic" and g.group_id not in self.topic_names):
            return _RIGHT
        return None


_DISPLAY = int(Qt.DisplayRole)
_FOREGROUND = int(Qt.ForegroundRole)
_DECORATION = int(Qt.DecorationRole)
_TABLE_ROLES = frozenset({_DISPLAY, _FOREGROUND, _DECORATION, int(Qt.TextAlignmentRole),
                          int(GROUP_ROLE), int(SORT_ROLE)})
_NUMERIC = frozenset({"group", "size", "cohesion", "impurity"})
_RIGHT = int(Qt.AlignRight | Qt.AlignVCenter)


def _group_value(g: Any, column: str) -> Any:
    if column == "group":
        return g.group_id
    return getattr(g, column, None)


def _sort_key(value: Any) -> tuple:
    # None last, numbers by value, text case-insensitively; never compares a str with a float.
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, str(value).casefold())


class ItemGridModel(QAbstractListModel):
    """The items of one group (or of a temporary group) as thumbnails, exposed in pages.

    Args:
        thumbs: the shared thumbnail cache; rows repaint when their image arrives.
    """

    PAGE = 400

    def __init__(self, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs
        self._ids: list[int] = []
        self._shown = 0
        self._row_of: dict[int, int] = {}
        self.representatives: set[int] = set()
        self.boundary: set[int] = set()
        self.excluded: set[int] = set()
        self.scores: dict[int, float] = {}
        self.captions: dict[int, str] = {}
        # The current decision of each shown item, from `Project.item_badges`: the tile badge.
        self.badges: dict[int, tuple[str, str, Optional[str]]] = {}
        self.icon_size = 128
        # Thumbnails scaled to the tile size once, not at every paint (bounded: big groups scroll).
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        thumbs.ready.connect(self._thumbs_ready)

    def set_items(self, ids: Sequence[int], representatives: Iterable[int] = (),
                  boundary: Iterable[int] = (), scores: Optional[dict[int, float]] = None) -> None:
        self.beginResetModel()
        self._ids = [int(i) for i in ids]
        self._row_of = {i: r for r, i in enumerate(self._ids)}
        self._shown = min(len(self._ids), self.PAGE)
        self.representatives = {int(i) for i in representatives}
        self.boundary = {int(i) for i in boundary}
        self.excluded = set()
        self.scores = dict(scores or {})
        self.captions = {}
        self.badges = {}
        self._pixmaps.clear()
        self.endResetModel()
        self.thumbs.forget_pending()

    def ids(self) -> list[int]:
        return list(self._ids)

    def item_at(self, row: int) -> int:
        return self._ids[row]

    def row_of(self, item_id: int) -> Optional[int]:
        row = self._row_of.get(item_id)
        return row if row is not None and row < self._shown else None

    def set_badges(self, badges: dict[int, tuple[str, str, Optional[str]]]) -> None:
        """Show each item's current decision: id -> (state, label name, colour)."""
        changed = set(badges) ^ set(self.badges) | {
            i for i, b in badges.items() if self.badges.get(i) != b}
        self.badges = dict(badges)
        self._repaint(changed)

    def badge(self, row: int) -> Optional[tuple[str, str, Optional[str]]]:
        if row >= self._shown:
            return None
        return self.badges.get(self._ids[row])

    def carrying_other(self, label: Optional[str], item_ids: Iterable[int]) -> int:
        """How many of these items carry a decision other than `label` (for the bulk guard)."""
        n = 0
        for i in item_ids:
            b = self.badges.get(i)
            if b is not None and not (b[0] == "labelled" and b[1] == label):
                n += 1
        return n

    def toggle_excluded(self, item_ids: Iterable[int]) -> None:
        ids = list(item_ids)
        if ids and all(i in self.excluded for i in ids):
            self.excluded.difference_update(ids)
        else:
            self.excluded.update(ids)
        self._repaint(ids)

    def set_icon_size(self, size: int) -> None:
        if size == self.icon_size:
            return
        self.icon_size = size
        self._pixmaps.clear()
        if self._shown:
            self.dataChanged.emit(self.index(0), self.index(self._shown - 1))

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else self._shown

    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: N802
        return not parent.isValid() and self._shown < len(self._ids)

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: N802
        if parent.isValid():
            return
        more = min(self.PAGE, len(self._ids) - self._shown)
        if more <= 0:
            return
        self.beginInsertRows(QModelIndex(), self._shown, self._shown + more - 1)
        self._shown += more
        self.endInsertRows()

    def tile(self, row: int) -> tuple[Optional[QPixmap], int]:
        """The pixmap and marks of a tile in one call (the delegate paints many per frame).

        Returns:
            (pixmap or None, marks bitmask: 1 representative, 2 boundary, 4 excluded).
        """
        if row >= self._shown:
            return None, 0
        item_id = self._ids[row]
        marks = ((item_id in self.representatives) | (item_id in self.boundary) << 1 |
                 (item_id in self.excluded) << 2)
        return self._pixmap(item_id), marks

    def _pixmap(self, item_id: int) -> QPixmap:
        pix = self._pixmaps.get(item_id)
        if pix is not None:
            self._pixmaps.move_to_end(item_id)
            return pix
        image = self.thumbs.image(item_id)
        if image is None:
            kind = "none" if self.thumbs.has(item_id) else "loading"
            return placeholder(self.icon_size, kind)
        s = self.icon_size
        if max(image.width(), image.height()) != s:  # decoded at the tile size: no rescale
            image = image.scaled(s, s, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        pix = QPixmap.fromImage(image)
        self._pixmaps[item_id] = pix
        if len(self._pixmaps) > 1500:
            self._pixmaps.popitem(last=False)
        return pix

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= self._shown:
            return None
        item_id = self._ids[index.row()]
        if role == ITEM_ROLE:
            return item_id
        if role == Qt.DecorationRole:
            return self._pixmap(item_id)
        if role == MARKS_ROLE:
            return {
                "representative": item_id in self.representatives,
                "boundary": item_id in self.boundary,
                "excluded": item_id in self.excluded,
                "loading": not self.thumbs.has(item_id),
                "caption": self.captions.get(item_id, ""),
            }
        if role == Qt.ToolTipRole:
            parts = [f"item {item_id}"]
            if item_id in self.representatives:
                parts.append("representative")
            if item_id in self.boundary:
                parts.append("boundary: near another group")
            if item_id in self.excluded:
                parts.append("excluded from the group decision")
            if item_id in self.scores:
                parts.append(f"score {self.scores[item_id]:.3f}")
            badge = self.badges.get(item_id)
            if badge is not None:
                parts.append(f"labelled {badge[1]!r}" if badge[0] == "labelled" else badge[0])
            return " · ".join(parts)
        if role == Qt.SizeHintRole:
            return QSize(self.icon_size + 8, self.icon_size + 8)
        return None

    def _thumbs_ready(self, ids: list[int]) -> None:
        self._repaint(ids)

    def _repaint(self, ids: Iterable[int]) -> None:
        rows = [self._row_of[i] for i in ids if i in self._row_of and self._row_of[i] < self._shown]
        if not rows:
            return
        # One signal for the span: cheap for the view, which repaints only what is visible.
        self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), [Qt.DecorationRole])


__all__ = ["GroupTableModel", "ItemGridModel", "SORT_ROLE", "GROUP_ROLE", "ITEM_ROLE",
           "MARKS_ROLE"]
