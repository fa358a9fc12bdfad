"""The review queue: the groups of the current clustering as a sortable table, with progress."""

from __future__ import annotations

import logging
from typing import Any, Optional

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ui.models import GROUP_ROLE, GroupTableModel
from ui.session import Session


class SuggestedGroupTableModel(GroupTableModel):
    """The queue's table with one more column: the suggested label and its confidence."""

    COLUMNS = (*GroupTableModel.COLUMNS, "suggestion")
    HEADERS = (*GroupTableModel.HEADERS, "Suggestion")


def _with_suggestions(groups: list[Any], suggestions: dict[int, Any]) -> list[Any]:
    """Group rows carrying a `suggestion` text ("cat 93%"), for the extra column."""
    import dataclasses

    from curator.groups import Group

    @dataclasses.dataclass(frozen=True)
    class _Row(Group):
        suggestion: Optional[str] = None

    out = []
    for g in groups:
        s = suggestions.get(g.group_id)
        shown = s is not None and g.status == "undecided"
        text = f"{s.label} {s.confidence:.0%}" if shown else None
        out.append(_Row(**{f.name: getattr(g, f.name) for f in dataclasses.fields(g)},
                        suggestion=text) if dataclasses.is_dataclass(g) else g)
    return out

log = logging.getLogger(__name__)

STATUS_FILTERS = (("All groups", None), ("Undecided", "undecided"), ("Partly decided", "partial"),
                  ("Mixed", "mixed"), ("Labelled", "labelled"), ("Noise", "noise"),
                  ("Duplicates", "duplicate"))
ORDERS = (("Most impure first", "impurity"), ("Largest first", "size"),
          ("Least cohesive first", "cohesion"), ("Group id", "id"))


class QueueView(QWidget):
    """The groups table with its filters and the two progress bars.

    Signals:
        open_group(int): the user picked a group (Enter or double-click).
        loaded(): a new answer is on screen (all rows, or the rows a decision changed).
        suggested(object): every group's suggestion, read anew (group id -> Suggestion).
    """

    open_group = Signal(int)
    loaded = Signal()
    suggested = Signal(object)

    def __init__(self, session: Session, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = SuggestedGroupTableModel(self)
        self.suggestions: dict[int, Any] = {}
        self._shown_groups: list[Any] = []
        self.run_id: Optional[int] = None
        self.empty_reason = ""

        self.table = QTableView(self)
        self.table.setModel(self.model)
        # No sort column until the user clicks a header: the facade's order is the queue order.
        self.table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicatorClearable(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        # The label gets the spare width; the space name only what it needs.
        header.setStretchLastSection(False)
        header.setSectionResizeMode(self.model.COLUMNS.index("label"), QHeaderView.Stretch)
        # Not ResizeToContents: that measures every row at every scroll, selection and repaint
        # (hundreds of ms per step at 3,000 groups); the column is fitted once per answer.
        self.table.setAlternatingRowColors(True)
        self.table.doubleClicked.connect(lambda index: self._open(index))
        # Topic names (words) are read for the rows on screen, after they show and on scroll.
        self._naming = QTimer(self)
        self._naming.setSingleShot(True)
        self._naming.setInterval(150)
        self._naming.timeout.connect(self._name_visible)
        self.table.verticalScrollBar().valueChanged.connect(lambda _: self._naming.start())
        self.table.activated.connect(lambda index: self._open(index))
        # Suggestions learn from every decision, but computing them takes a while at a million
        # items: after decisions they are re-read once the user pauses, not at every key.
        self._suggest_timer = QTimer(self)
        self._suggest_timer.setSingleShot(True)
        self._suggest_timer.setInterval(2000)
        self._suggest_timer.timeout.connect(self._read_suggestions)

        self.status_filter = QComboBox()
        for text, value in STATUS_FILTERS:
            self.status_filter.addItem(text, value)
        self.order = QComboBox()
        for text, value in ORDERS:
            self.order.addItem(text, value)
        self.label_filter = QComboBox()
        self.label_filter.addItem("Any label", None)
        self.modality_filter = QComboBox()
        for text, value in (("Any modality", None), ("Images", "image"), ("Audio", "audio"),
                            ("Video", "video")):
            self.modality_filter.addItem(text, value)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Filter rows (label, topic, id)…")
        self.text_filter.setClearButtonEnabled(True)
        self.text_filter.textChanged.connect(self._filter_rows)
        for combo in (self.status_filter, self.order, self.label_filter, self.modality_filter):
            combo.currentIndexChanged.connect(self.reload)

        self.groups_bar = QProgressBar()
        self.groups_bar.setFormat("groups decided %v / %m")
        self.items_bar = QProgressBar()
        self.items_bar.setFormat("items labelled %v / %m")
        self.summary = QLabel("")

        filters = QHBoxLayout()
        for w in (self.status_filter, self.order, self.label_filter, self.modality_filter):
            filters.addWidget(w)
        filters.addWidget(self.text_filter, 1)
        bars = QHBoxLayout()
        bars.addWidget(self.groups_bar, 1)
        bars.addWidget(self.items_bar, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addLayout(bars)
        layout.addWidget(self.summary)

    # --- data -----------------------------------------------------------------------------

    def filters(self) -> dict[str, Any]:
        return {"status": self.status_filter.currentData(),
                "label": self.label_filter.currentData(),
                "modality": self.modality_filter.currentData(), "order": self.order.currentData()}

    def reload(self) -> None:
        """Re-read the groups (the table and the groups bar) and, separately, the item counts.

        The table comes from `Project.groups()` alone so it is back on screen quickly after a
        decision; the item counts (`Project.queue()`, which counts assignments and labels) follow
        in their own read.
        """
        f = self.filters()

        def rows(project: Any) -> dict[str, Any]:
            from curator.errors import UsageError

            try:
                run_id = project.current_run()
                everything = project.groups(order=f["order"])
            except UsageError as exc:
                return {"groups": [], "empty": str(exc)}
            if f["status"] or f["label"] or f["modality"]:
                shown = project.groups(order=f["order"], status=f["status"], label=f["label"],
                                       modality=f["modality"])
            else:
                shown = everything
            decided = sum(1 for g in everything if g.status != "undecided")
            return {"groups": shown, "run_id": run_id, "groups_total": len(everything),
                    "groups_decided": decided}

        def shown(answer: dict[str, Any]) -> None:
            self._loaded(answer)
            self._read_suggestions()
            # The counts after the rows: they must not slow the table's first appearance.
            self.session.read(self._counts, key="queue-counts", on_result=self._counted,
                              name="queue counts", priority=-1)

        self.session.read(rows, key="queue", on_result=shown, name="queue", priority=2)

    def _read_suggestions(self) -> None:
        self._suggest_timer.stop()
        run_id = self.run_id
        if run_id is None:
            return
        self.session.read(lambda p: p.suggestions(run_id), key="queue-suggestions",
                          on_result=self._suggested, name="suggestions", priority=-1,
                          on_error=lambda err: log.info("no suggestions: %s", err))

    @staticmethod
    def _counts(project: Any) -> dict[str, Any]:
        from curator.errors import UsageError

        try:
            q = project.queue(order="id")
        except UsageError:
            return {}
        return {"items_total": q.items_total, "items_labelled": q.items_labelled}

    def _counted(self, answer: dict[str, Any]) -> None:
        if not answer:
            self.items_bar.setRange(0, 1)
            self.items_bar.setValue(0)
            return
        self.items_bar.setRange(0, max(1, answer["items_total"]))
        self.items_bar.setValue(min(answer["items_labelled"], answer["items_total"]))

    def _loaded(self, answer: dict[str, Any]) -> None:
        current = self.current_group()
        self.empty_reason = answer.get("empty", "")
        if answer.get("run_id") != self.run_id:
            self.model.topic_names.clear()  # group ids belong to their run
            self.suggestions = {}
            self.suggested.emit(self.suggestions)
        self.run_id = answer.get("run_id")
        self._shown_groups = list(answer["groups"])
        self.model.set_groups(_with_suggestions(self._shown_groups, self.suggestions))
        if self.empty_reason:
            self.summary.setText(self.empty_reason)
            self.groups_bar.setRange(0, 1)
            self.groups_bar.setValue(0)
        else:
            self.groups_bar.setRange(0, max(1, answer["groups_total"]))
            self.groups_bar.setValue(answer["groups_decided"])
            self.summary.setText(f"clustering run {answer['run_id']} · "
                                 f"{len(answer['groups'])} groups shown · Enter opens a group")
        self._fit_space_column()
        if current is not None:
            self.select_group(current)
        self._naming.start()
        self.loaded.emit()

    def _fit_space_column(self) -> None:
        """Size the Space column to its longest name: a few distinct names, measured once."""
        spaces = {str(g.space) for g in self._shown_groups}
        if not spaces:
            return
        metrics = self.table.fontMetrics()
        width = max(metrics.horizontalAdvance(s) for s in spaces) + 24
        column = self.model.COLUMNS.index("space")
        self.table.horizontalHeader().resizeSection(
            column, max(width, metrics.horizontalAdvance(self.model.HEADERS[column]) + 24))

    def refresh_groups(self, group_ids: list[int]) -> None:
        """Re-read only these groups' rows (after a decision on them) and update them in place.

        A decision on a group changes only its own members, so the other rows stand; with a
        status or label filter set the row may have to leave the list, so that re-reads all.
        """
        f = self.filters()
        if f["status"] or f["label"] or self.run_id is None:
            self.reload()
            return
        run_id = self.run_id

        def rows(project: Any) -> list[Any]:
            return project.groups(run_id, order=f["order"], group_ids=list(group_ids))

        def shown(groups: list[Any]) -> None:
            if run_id != self.run_id:
                return
            fresh = {g.group_id: g for g in groups}
            before = {g.group_id: g.status for g in self._shown_groups if g.group_id in fresh}
            self._shown_groups = [fresh.get(g.group_id, g) for g in self._shown_groups]
            self.model.replace_groups(_with_suggestions(groups, self.suggestions))
            self.groups_bar.setValue(self.groups_bar.value() + sum(
                (g.status != "undecided") - (before.get(g.group_id) != "undecided")
                for g in groups if g.group_id in before))
            self.session.read(self._counts, key="queue-counts", on_result=self._counted,
                              name="queue counts", priority=-1)
            self._suggest_timer.start()
            self.loaded.emit()

        self.session.read(rows, key=f"queue-rows-{','.join(map(str, group_ids))}",
                          on_result=shown, name="queue rows", priority=2)

    def show_decision(self, group_id: int, status: str, label: Optional[str]) -> None:
        """Show a committed decision in its row at once (the re-read of the row follows)."""
        import dataclasses

        old = next((g.status for g in self._shown_groups if g.group_id == group_id), None)
        self._shown_groups = [dataclasses.replace(g, status=status, label=label)
                              if g.group_id == group_id and dataclasses.is_dataclass(g) else g
                              for g in self._shown_groups]
        self.model.show_decision(group_id, status, label)
        if old is not None:
            self.groups_bar.setValue(self.groups_bar.value() + (status != "undecided")
                                     - (old != "undecided"))

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        # While hidden the table neither scrolls to the current row nor names topics.
        super().showEvent(event)
        index = self.table.currentIndex()
        if index.isValid():
            self.table.scrollTo(index)
        self._naming.start()

    def _name_visible(self) -> None:
        """Read the topics in words of the rows on screen that have none yet."""
        if self.run_id is None or not self.model.rowCount() or not self.table.isVisible():
            return
        first = max(0, self.table.rowAt(0))
        last = self.table.rowAt(self.table.viewport().height() - 1)
        last = self.model.rowCount() - 1 if last < 0 else last
        ids = [self.model.group_at(r).group_id for r in range(first, last + 1)]
        ids = [g for g in ids if g not in self.model.topic_names]
        if not ids:
            return
        run_id = self.run_id

        def named(found: dict[int, str]) -> None:
            if run_id == self.run_id:
                self.model.set_topic_names(found)

        self.session.read(lambda p: {g: f.topic_text() for g, f in
                                     p.group_facts(ids, run_id).items()},
                          key="queue-topics", on_result=named, name="topic names",
                          priority=-2, on_error=lambda err: log.info("no topic names: %s", err))

    def _suggested(self, suggestions: dict[int, Any]) -> None:
        """Fresh suggestions arrived: the rows stay, the suggestion column updates in place."""
        self.suggestions = dict(suggestions)
        current = self.current_group()
        self.model.set_groups(_with_suggestions(self._shown_groups, self.suggestions))
        if current is not None:
            self.select_group(current)
        self.suggested.emit(self.suggestions)

    def set_labels(self, labels: list[Any]) -> None:
        # The nearest taxonomy name is part of a topic: a changed taxonomy names them again.
        self.model.topic_names.clear()
        self._naming.start()
        self.model.label_colours = {lab.path: lab.colour for lab in labels if lab.colour}
        self.model.label_colours.update({lab.name: lab.colour for lab in labels if lab.colour})
        current = self.label_filter.currentData()
        self.label_filter.blockSignals(True)
        self.label_filter.clear()
        self.label_filter.addItem("Any label", None)
        for lab in labels:
            self.label_filter.addItem(lab.path, lab.path)
        at = self.label_filter.findData(current)
        self.label_filter.setCurrentIndex(max(0, at))
        self.label_filter.blockSignals(False)

    # --- navigation -----------------------------------------------------------------------

    def _filter_rows(self, text: str) -> None:
        current = self.current_group()
        self.model.set_filter(text)
        if current is not None:
            self.select_group(current)

    def order_ids(self) -> list[int]:
        """Group ids in the order shown (sorting and row filter applied)."""
        return self.model.group_ids()

    def current_group(self) -> Optional[int]:
        index = self.table.currentIndex()
        return index.data(GROUP_ROLE) if index.isValid() else None

    def select_group(self, group_id: int) -> bool:
        row = self.model.row_of(group_id)
        if row is None:
            return False
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        if self.table.isVisible():  # a hidden table scrolls when it is shown (showEvent)
            self.table.scrollTo(index)
        return True

    def neighbour(self, group_id: Optional[int], step: int) -> Optional[int]:
        """The group `step` rows after (or before) `group_id` in the shown order."""
        ids = self.order_ids()
        if not ids:
            return None
        if group_id not in ids:
            return ids[0] if step > 0 else ids[-1]
        at = ids.index(group_id) + step
        return ids[at] if 0 <= at < len(ids) else None

    def next_undecided(self, after: Optional[int]) -> Optional[int]:
        """The next undecided group after `after` in the shown order (wrapping), not `after`."""
        rows = self.model.groups()
        statuses = {g.group_id: g.status for g in rows}
        ids = [g.group_id for g in rows]
        if not ids:
            return None
        start = ids.index(after) + 1 if after in ids else 0
        for gid in ids[start:] + ids[:start]:
            if gid != after and statuses.get(gid) == "undecided":
                return gid
        return None

    def _open(self, index: Any) -> None:
        gid = index.data(GROUP_ROLE)
        if gid is not None:
            self.open_group.emit(int(gid))
