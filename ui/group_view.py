"""The group view: one group's thumbnails and the keyboard that decides it.

Keys (the grid has focus):
    a taxonomy hotkey   label the whole group minus excluded items, then go to the next undecided
    Alt + hotkey        label only the selected items
    Shift+N / Shift+M   the group is noise / mixed
    Shift+S             split the group (asks for k, default 2)
    Shift+G             merge with another group (asks which)
    Shift+L             label only the selected items (asks which label)
    x                   exclude the selected items from the group decision (again: include)
    j / k               next / previous group of the queue
    Enter               accept the suggested label (shown under the title) for the whole group
    space               preview the current item
    Ctrl+= / Ctrl+-     larger / smaller thumbnails
A temporary group (search results, a lasso selection) is decided the same way, item by item
(`Project.label_items`, source manual), and the view stays on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ui.group_decisions import GroupDecisions
from ui.models import ITEM_ROLE, ItemGridModel
from ui.session import Session
from ui.thumbnail_grid import ThumbnailDelegate, ThumbnailGrid
from ui.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

MIN_ICON, MAX_ICON, ICON_STEP = 48, 320, 24


@dataclass(frozen=True)
class GroupSource:
    """What the grid shows: a group of the clustering run, or a temporary set of items."""

    title: str
    group_id: Optional[int] = None  # None for a temporary group
    kind: str = "group"  # group, search, selection


class GroupView(GroupDecisions, QWidget):
    """One group's thumbnails with the triage keyboard.

    Signals:
        navigate(int): +1 next group, -1 previous group (j/k).
        decided(int, str, str): the shown group was decided (group id, new status, label or
            ""); the window marks its queue row and moves on.
        preview_requested(int): show this item large (space).
        message(str): a status line.
        group_created(int): split or merge made this group; show it.
        shown(int): a group's items are on screen (the window prefetches the next one).
    """

    PREFETCH_THUMBS = 64
    # Labelling a temporary group (search results, a lasso) of more items than this asks first.
    BULK_GUARD = 20

    navigate = Signal(int)
    shown = Signal(int)
    decided = Signal(int, str, str)
    preview_requested = Signal(int)
    message = Signal(str)
    group_created = Signal(int)

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs
        self.source: Optional[GroupSource] = None
        self._loading: Optional[int] = None
        self._moved_on = False
        self._prefetched: dict[int, dict[str, Any]] = {}
        self.info: dict[str, Any] = {}
        self.labels: list[Any] = []
        self.suggestion: Optional[Any] = None  # the shown group's `Suggestion`, once read
        # Every group's suggestion as the queue last read it (None: not read yet).
        self.suggestions: Optional[dict[int, Any]] = None
        # Work that can wait until the visible thumbnails are painted (topic words, prefetching
        # the next groups): run then, so it never competes with the switch itself.
        self._deferred: list[Callable[[], None]] = []
        self._waiting: set[int] = set()
        self._deferred_timer = QTimer(self)
        self._deferred_timer.setSingleShot(True)
        self._deferred_timer.setInterval(1500)  # at the latest (a thumbnail that never comes)
        self._deferred_timer.timeout.connect(self._run_deferred)
        thumbs.ready.connect(self._thumbs_arrived)
        # The queue's rows (a GroupTableModel, with the topics it named), for "merge with";
        # the window sets it.
        self.queue_model: Any = None
        self.model = ItemGridModel(thumbs, self)
        self.grid = ThumbnailGrid(self)
        self.grid.setModel(self.model)
        self.grid.setItemDelegate(ThumbnailDelegate(self.model, self.grid))
        self.grid.installEventFilter(self)
        self.grid.doubleClicked.connect(lambda index: self.preview_requested.emit(
            index.data(ITEM_ROLE)))
        self.grid.setContextMenuPolicy(Qt.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._context_menu)
        self.model.modelReset.connect(self.grid.request_visible)

        self.title = QLabel("No group open: pick one in the queue (Enter) or search.")
        self.title.setObjectName("groupTitle")
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.details = QLabel("")
        self.details.setObjectName("groupDetails")
        self.size_slider = QSlider(Qt.Horizontal)
        self.size_slider.setRange(MIN_ICON, MAX_ICON)
        self.size_slider.setSingleStep(ICON_STEP)
        self.size_slider.setFixedWidth(140)
        self.size_slider.setToolTip("Thumbnail size (Ctrl+= / Ctrl+-)")
        self.size_slider.valueChanged.connect(self.set_icon_size)
        self.hint = QLabel("")
        self.hint.setObjectName("keyHint")
        self.hint.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("Size"))
        top.addWidget(self.size_slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.details)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.hint)

        for text, keys, slot in (("Larger thumbnails", ("Ctrl+=", "Ctrl++"), self.zoom_in),
                                 ("Smaller thumbnails", ("Ctrl+-",), self.zoom_out)):
            action = QAction(text, self)
            action.setShortcuts(list(keys))
            action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
        self.set_icon_size(128)
        self._update_hint()

    # --- what is shown --------------------------------------------------------------------

    @property
    def group_id(self) -> Optional[int]:
        return self.source.group_id if self.source else None

    @property
    def is_temporary(self) -> bool:
        return self.source is not None and self.source.group_id is None

    def show_group(self, group_id: int) -> None:
        """Load a group of the current run (representatives first) in the background."""
        self.source = GroupSource(f"Group {group_id}", group_id)
        if group_id in self._prefetched:
            self._loading = None
            self._group_loaded(group_id, self._prefetched.pop(group_id))
            return
        self._loading = group_id
        self.title.setText(f"Group {group_id} · loading…")
        self.session.read(lambda p: p.group(group_id).to_json(), key="group-view",
                          on_result=lambda info: self._group_loaded(group_id, info),
                          name="group", priority=3)

    def prefetch(self, group_id: Optional[int]) -> None:
        """Read a group likely to come next, and queue its first thumbnails, in the background."""
        if group_id is None or group_id == self.group_id or group_id in self._prefetched:
            return

        def loaded(info: dict[str, Any]) -> None:
            self._prefetched[group_id] = info
            while len(self._prefetched) > 4:
                self._prefetched.pop(next(iter(self._prefetched)))
            self.thumbs.request(info["items"][:self.PREFETCH_THUMBS], background=True)

        self.session.read(lambda p: p.group(group_id).to_json(), name="prefetch",
                          on_result=loaded, on_error=lambda info: None, priority=-2)

    def forget_prefetched(self) -> None:
        """Something changed in the catalog: prefetched groups may be stale."""
        self._prefetched.clear()

    def show_items(self, title: str, item_ids: Sequence[int], kind: str = "search",
                   scores: Optional[dict[int, float]] = None) -> None:
        """Show a temporary group (search results, a selection on the map)."""
        self.source = GroupSource(title, None, kind)
        self.info = {"size": len(item_ids)}
        self.model.set_items(item_ids, scores=scores)
        self._load_badges()
        self._update_title()
        self.grid.setFocus()
        if self.model.rowCount():
            self.grid.setCurrentIndex(self.model.index(0))

    def refresh(self) -> None:
        """Re-read the shown group after a change (its status, label, members)."""
        if self.source is None or self.source.group_id is None:
            self._load_badges()
            self._update_title()
            return
        gid = self.source.group_id
        if self._loading == gid:
            return  # its first load is still on the way and will be current
        if self._moved_on:
            # This change is our own decision, and the view already shows the next group.
            self._moved_on = False
            return
        self.session.read(lambda p: p.group(gid).to_json(), key="group-view",
                          on_result=lambda info: self._group_loaded(gid, info, keep=True),
                          on_error=lambda info: log.info("group %s: %s", gid, info),
                          name="group")

    def _group_loaded(self, group_id: int, info: dict[str, Any], keep: bool = False) -> None:
        if self.source is None or self.source.group_id != group_id:
            return
        self._loading = None
        if keep and self.info.get("topic_name"):
            info.setdefault("topic_name", self.info["topic_name"])
        self.info = info
        if not (keep and info["items"] == self.model.ids()):
            self.model.set_items(info["items"], info.get("representatives", ()),
                                 info.get("boundary", ()))
            if self.model.rowCount():
                self.grid.setCurrentIndex(self.model.index(0))
            self.grid.scrollToTop()
        self._load_badges()
        self._update_title()
        self._read_suggestion(group_id, info)
        if not keep:
            self.grid.setFocus()
            self.grid.request_visible()
            self._deferred.clear()
            self.after_visible(lambda: self._shown_now(group_id))

    def _shown_now(self, group_id: int) -> None:
        if self.group_id == group_id:
            self.shown.emit(group_id)
            self._read_topic(group_id)

    def after_visible(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the thumbnails on screen are decoded (or after 1.5 s at the latest)."""
        self._deferred.append(fn)
        # The tiles on screen now, found once (hit-testing the grid at every arrival is not
        # free); each arrival only strikes ids off.
        self._waiting = {i for i in self.grid.visible_ids() if not self.thumbs.has(i)}
        if not self._waiting:
            QTimer.singleShot(0, self._run_deferred)
        else:
            self._deferred_timer.start()

    def _thumbs_arrived(self, ids: list) -> None:
        if not self._deferred:
            return
        self._waiting.difference_update(ids)
        if not self._waiting:
            # After this event's repaint: the tiles go on screen before the deferred work.
            QTimer.singleShot(0, self._run_deferred)

    def _run_deferred(self) -> None:
        self._deferred_timer.stop()
        work, self._deferred = self._deferred, []
        for fn in work:
            fn()

    def set_suggestions(self, suggestions: dict[int, Any]) -> None:
        """The queue read every group's suggestion: the shown group takes its own from there."""
        self.suggestions = dict(suggestions)
        if self.group_id is not None and self.info.get("status", "undecided") == "undecided":
            self.suggestion = self.suggestions.get(self.group_id)
            self._update_title()

    def _read_topic(self, group_id: int) -> None:
        """The group's topic in words (path words; the nearest taxonomy name where the space has
        a text tower), read after the group is on screen: a text model may have to load."""
        def shown(text: str) -> None:
            if self.group_id == group_id and text:
                self.info["topic_name"] = text
                self._update_title()

        self.session.read(lambda p: p.group_facts([group_id])[group_id].topic_text(),
                          key="group-topic", on_result=shown, name="topic", priority=-1,
                          on_error=lambda err: log.info("no topic name: %s", err))

    def _load_badges(self) -> None:
        """Read the current decision of every shown item (the badges) in the background."""
        ids = self.model.ids()
        if not ids or self.session.project is None:
            return

        def loaded(badges: dict) -> None:
            if self.model.ids() == ids:
                self.model.set_badges(badges)
                self._update_title()

        self.session.read(lambda p: p.item_badges(ids), key="badges", name="badges",
                          on_result=loaded, priority=2)

    def _update_title(self) -> None:
        if self.source is None:
            return
        if self.source.group_id is None:
            self.title.setText(f"{self.source.title} · {self.model.rowCount()} items")
            self.details.setText("Temporary group: hotkeys label its items (minus excluded) "
                                 "one by one; the view stays here.")
            return
        i = self.info
        status = i.get("status", "")
        label = f" → {i['label']}" if i.get("label") else ""
        state = "" if i.get("state", "active") == "active" else f" ({i['state']})"
        self.title.setText(f"Group {self.source.group_id}{state} · {i.get('size', 0)} items · "
                           f"{status}{label}")
        cohesion = i.get("cohesion")
        impurity = i.get("impurity")
        self.details.setText(
            f"space {i.get('space', '?')} · topic {i.get('topic_name') or i.get('topic', '?')} · "
            f"cohesion "
            f"{cohesion if cohesion is None else f'{cohesion:.3f}'} · impurity "
            f"{impurity if impurity is None else f'{impurity:.3f}'} · "
            f"{len(self.model.excluded)} excluded · ● representative ◥ boundary"
            + (f" · suggested: {self.suggestion.label} ({self.suggestion.confidence:.0%}), "
               "Enter accepts" if self.suggestion is not None
               and self.suggestion.group_id == self.source.group_id else ""))

    def set_labels(self, labels: list[Any]) -> None:
        self.labels = list(labels)
        self._update_hint()

    def _update_hint(self) -> None:
        keys = [f"[{lab.hotkey}] {lab.path}" for lab in self.labels if lab.hotkey]
        self.hint.setText(("  ".join(keys) + "   ·   " if keys else "No hotkeys yet (Taxonomy…) "
                           "  ·   ") + "x exclude · Shift+N noise · Shift+M mixed · Shift+S split"
                          " · Shift+G merge · j/k next/prev · space preview · Ctrl+Z undo")

    # --- thumbnails size ------------------------------------------------------------------

    def set_icon_size(self, size: int) -> None:
        size = max(MIN_ICON, min(MAX_ICON, int(size)))
        self.thumbs.set_side(size)
        self.model.set_icon_size(size)
        self.grid.setIconSize(QSize(size, size))
        self.grid.setGridSize(QSize(size + 10, size + 10))
        if self.size_slider.value() != size:
            self.size_slider.setValue(size)
        self.grid.request_visible()

    def zoom_in(self) -> None:
        self.set_icon_size(self.model.icon_size + ICON_STEP)

    def zoom_out(self) -> None:
        self.set_icon_size(self.model.icon_size - ICON_STEP)

    # --- keyboard -------------------------------------------------------------------------

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if obj is self.grid and event.type() == QEvent.KeyPress:
            return self.handle_key(event)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if not self.handle_key(event):
            super().keyPressEvent(event)

    def handle_key(self, event: QKeyEvent) -> bool:
        """Triage keys; returns True when the key was used."""
        key = event.key()
        mods = event.modifiers() & (Qt.ShiftModifier | Qt.ControlModifier | Qt.AltModifier |
                                    Qt.MetaModifier)
        if mods == Qt.ControlModifier and key in (Qt.Key_Equal, Qt.Key_Plus):
            self.zoom_in()
            return True
        if mods == Qt.ControlModifier and key == Qt.Key_Minus:
            self.zoom_out()
            return True
        if mods == Qt.ShiftModifier:
            shifted = {Qt.Key_N: lambda: self.decide("noise"), Qt.Key_M: lambda: self.decide(
                "mixed"), Qt.Key_S: self.split, Qt.Key_G: self.merge_with,
                Qt.Key_L: self.label_selection}
            if key in shifted:
                shifted[key]()
                return True
            return False
        if mods not in (Qt.NoModifier, Qt.AltModifier, Qt.KeypadModifier):
            return False
        if mods == Qt.NoModifier:
            if key == Qt.Key_J:
                self.navigate.emit(1)
                return True
            if key == Qt.Key_K:
                self.navigate.emit(-1)
                return True
            if key == Qt.Key_X:
                self.exclude_selected()
                return True
            if key in (Qt.Key_Return, Qt.Key_Enter):
                self.accept_suggestion()
                return True
            if key == Qt.Key_Space:
                item = self.current_item()
                if item is not None:
                    self.preview_requested.emit(item)
                return True
        label = self.label_for_key(event)
        if label is not None:
            if mods == Qt.AltModifier:
                self.label_selection(label.path)
            else:
                self.decide("assign", label.path)
            return True
        return False

    # --- suggestions ----------------------------------------------------------------------

    def _read_suggestion(self, group_id: int, info: dict[str, Any]) -> None:
        """Read the group's suggested label in the background (after the group is on screen)."""
        self.suggestion = None
        if info.get("status", "undecided") != "undecided":
            self._update_title()
            return
        if self.suggestions is not None:
            # The queue's answer (re-read after decisions): no read per group switch.
            self.suggestion = self.suggestions.get(group_id)
            self._update_title()
            return

        def shown(found: dict[int, Any]) -> None:
            if self.group_id == group_id:
                self.suggestion = found.get(group_id)
                self._update_title()

        self.session.read(lambda p: p.suggestions(), key="group-suggestion", on_result=shown,
                          on_error=lambda err: log.info("no suggestion: %s", err),
                          name="suggestion", priority=-1)

    def accept_suggestion(self) -> None:
        """Enter: label the shown group (minus exclusions) with its suggested label."""
        if self.source is None or self.source.group_id is None:
            self.message.emit("suggestions are made for groups of the clustering")
            return
        s = self.suggestion
        if s is None or s.group_id != self.source.group_id:
            self.message.emit(f"no suggestion for group {self.source.group_id} yet: label one "
                              "group first, or use a model with a text tower")
            return
        self.decide("assign", s.label)

    def label_for_key(self, event: QKeyEvent) -> Any:
        key = event.key()
        name = None
        if Qt.Key_F1 <= key <= Qt.Key_F12:
            name = f"F{key - Qt.Key_F1 + 1}"
        elif Qt.Key_0 <= key <= Qt.Key_9:
            name = chr(key)
        elif Qt.Key_A <= key <= Qt.Key_Z:
            name = chr(key).lower()
        if name is None:
            return None
        for lab in self.labels:
            if lab.hotkey and lab.hotkey == name:
                return lab
        return None

    # --- selection ------------------------------------------------------------------------

    def selected_items(self) -> list[int]:
        rows = sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())
        return [self.model.item_at(r) for r in rows]

    def current_item(self) -> Optional[int]:
        index = self.grid.currentIndex()
        if index.isValid():
            return index.data(ITEM_ROLE)
        return self.model.item_at(0) if self.model.rowCount() else None

    def exclude_selected(self) -> None:
        ids = self.selected_items()
        if not ids and self.current_item() is not None:
            ids = [self.current_item()]
        self.model.toggle_excluded(ids)
        self._update_title()

    def _context_menu(self, pos: Any) -> None:
        menu = QMenu(self)
        menu.addAction("Preview (space)", lambda: self.preview_requested.emit(self.current_item()))
        menu.addAction("Exclude / include selected (x)", self.exclude_selected)
        sub = menu.addMenu("Label selected items")
        for lab in self.labels:
            sub.addAction(lab.path, lambda name=lab.path: self.label_selection(name))
        sub.addSeparator()
        sub.addAction("Noise", lambda: self.label_selection("(noise)"))
        sub.addAction("Mixed", lambda: self.label_selection("(mixed)"))
        menu.addAction("More like this", lambda: self.window().search_like(self.current_item())
                       if hasattr(self.window(), "search_like") else None)
        menu.exec(self.grid.viewport().mapToGlobal(pos))
