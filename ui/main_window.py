"""The main window: views in tabs, undo/redo, the error banner, and what binds them.

The window binds views to the session: it routes "a group was decided" to "show the next
undecided group", refreshes what a write changed, and persists its layout with QSettings.
Its parts live beside it: the tabs built on first use (`window_tabs`), the dialogs and long
jobs (`window_dialogs`), search and the preview (`window_search`), the menus and toolbar
(`window_actions`), the first-start page (`welcome`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional

from PySide6.QtCore import QByteArray, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QVBoxLayout, QWidget

from ui import settings as app_settings
from ui.about import install_about
from ui.banner import Banner
from ui.group_view import GroupView
from ui.jobs import JobPanel
from ui.queue_view import QueueView
from ui.session import GROUP_DECISION, GROUPS, INDEX, LABELS, TAXONOMY, Session
from ui.thumbnails import ThumbnailCache
from ui.welcome import install_welcome, refresh_welcome
from ui.window_actions import install_actions
from ui.window_dialogs import WindowDialogs, make_model_check
from ui.window_search import WindowSearch
from ui.window_tabs import WindowTabs
from ui.workers import WorkerError

log = logging.getLogger(__name__)

class MainWindow(WindowTabs, WindowDialogs, WindowSearch, QMainWindow):
    """The Curator desktop window.

    Signals:
        project_ready(): a project is open and its queue is on screen.
    """

    project_ready = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Curator")
        self.session = Session(self)
        self.thumbs = ThumbnailCache(parent=self)
        self.labels: list[Any] = []
        # The options Index… starts from, checked for model weights in the background.
        self.model_check = make_model_check(self)
        self.model_check.checked.connect(self._models_found)
        self._preview: Any = None  # ui.preview.PreviewWindow, built on first use
        self._taxonomy: Any = None  # ui.dialogs.TaxonomyEditor, built on first use
        self._map_dirty = True
        self._facets_dirty = False
        self._ready_pending = False
        self.opening = False  # a project is being opened

        self.queue = QueueView(self.session)
        self.group = GroupView(self.session, self.thumbs)
        self.group.queue_model = self.queue.model  # "merge with" offers the queue's rows
        # Map, Duplicates, Suspects, Audit and Report are built when first shown.
        self._install_tabs({"queue": self.queue, "group": self.group})
        self.tabs.currentChanged.connect(self._tab_changed)
        self.banner = Banner()
        self.jobs = JobPanel()
        self.jobs.done.connect(self._job_done)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.jobs)
        self.setCentralWidget(central)
        self.status_label = QLabel("Open or create a project (File menu).")
        self.statusBar().addWidget(self.status_label, 1)

        install_actions(self)  # File, Edit and View menus, the toolbar and its search box
        self._connect()
        install_about(self)  # Help ▸ About, the window icon
        install_welcome(self)  # the first-start page until a project is open
        # With nothing to open, the welcome page waits for the user: a good moment for the
        # first start's model check (it names the models on the page).
        QTimer.singleShot(800, self._check_models_when_idle)
        self.restore_state()
        # Another process (the CLI) may be indexing this project: look for a newer clustering
        # every few seconds (one cheap read) and show it when it lands.
        self._watch = QTimer(self)
        self._watch.setInterval(5000)
        self._watch.timeout.connect(self._look_for_new_run)
        self._watch.start()

    # --- construction ---------------------------------------------------------------------

    def _connect(self) -> None:
        s = self.session
        s.opened.connect(self._opened)
        s.changed.connect(self._changed)
        s.external.connect(self._external)
        s.error.connect(self.show_error)
        s.message.connect(self.show_message)
        self.queue.open_group.connect(self.open_group)
        self.queue.loaded.connect(self._queue_loaded)
        self.queue.suggested.connect(self.group.set_suggestions)
        self.group.navigate.connect(self._navigate)
        self.group.shown.connect(self._prefetch_after)
        self.group.decided.connect(self._decided)
        self.group.preview_requested.connect(self.preview_item)
        # An open preview follows the grid: j/k to another group, arrows to another item.
        self.group.shown.connect(lambda _gid: self._preview_follow())
        self.group.grid.selectionModel().currentChanged.connect(
            lambda *_: self._preview_follow())
        self.group.message.connect(self.show_message)
        self.group.group_created.connect(self.open_group)

    # --- project --------------------------------------------------------------------------

    def open_project(self, path: str) -> None:
        """Open a project folder in the background; the window stays responsive."""
        self.status_label.setText(f"Opening {path}…")
        self.opening = True
        self.session.open(path, on_error=self._open_failed)

    def _open_failed(self, info: WorkerError) -> None:
        self.opening = False
        self.status_label.setText("No project open.")
        if info.kind == "NotAProjectError":
            # The app's own way to the fix (the CLI names `curator init` instead).
            info = dataclasses.replace(info, message=f"{info.message}. Choose File ▸ New "
                                                     "project… to create one.")
        self.show_error(info)
        refresh_welcome(self)

    def _opened(self, project: Any) -> None:
        self.opening = False
        annotator = app_settings.value("annotator", "", str)
        if annotator:
            project.set_annotator(annotator)
        self.thumbs.set_project(project)
        if self.built("map") is not None:
            self.map.canvas.set_data(None)
        self.group.forget_prefetched()
        app_settings.remember_project(str(project.root))
        self.setWindowTitle(f"Curator — {os.path.basename(str(project.root))}")
        self.status_label.setText(f"{project.root} · annotator {project.annotator}")
        self.banner.hide()
        self._map_dirty = True
        self._ready_pending = True
        self.reload_labels()
        self.queue.reload()
        self.refresh_undo_texts()
        self._tab_changed(self.tabs.currentIndex())

    def _look_for_new_run(self) -> None:
        if not self.session.is_open or self.jobs.running:
            return

        def newest(project: Any) -> Optional[int]:
            from curator.errors import UsageError

            try:
                return project.current_run()
            except UsageError:
                return None

        self.session.read(newest, key="watch", name="watch", priority=-3,
                          on_result=self._newest_run, on_error=lambda info: None)

    def _newest_run(self, run_id: Optional[int]) -> None:
        if run_id is not None and run_id != self.queue.run_id:
            self.show_message(f"a new clustering (run {run_id}) is ready; showing it")
            self.queue.reload()
            self._map_dirty = True
            if self.is_current("map"):
                self._tab_changed(self.tabs.currentIndex())

    def _queue_loaded(self) -> None:
        if self.queue.empty_reason and self.session.is_open:
            self.show_message(self.queue.empty_reason)
        if self._ready_pending:
            self._ready_pending = False
            self.project_ready.emit()

    def reload_labels(self) -> None:
        self.session.read(lambda p: p.labels(), key="labels", name="labels",
                          on_result=self._labels_loaded)

    def _labels_loaded(self, labels: list[Any]) -> None:
        self.labels = list(labels)
        self.group.set_labels(self.labels)
        self.queue.set_labels(self.labels)
        if self.built("map") is not None:
            self.map.set_labels(self.labels)
        if self.built("audit") is not None:
            self.audit.labels = self.labels

    # --- what changed ---------------------------------------------------------------------

    def _external(self, kinds: set) -> None:
        """Another process or window committed changes: refresh only the views they touch."""
        for kind in (LABELS, GROUPS, TAXONOMY):
            if kind in kinds:
                self._changed(kind)
        if "run:cluster" in kinds:
            self._look_for_new_run()
        if "run:map" in kinds:
            self._map_dirty = True
            if self.is_current("map"):
                self._tab_changed(self.tabs.currentIndex())
        if kinds & {"run:scan", "run:embed"}:
            self._changed(INDEX)
        if "run:dedup" in kinds and self.is_current("duplicates"):
            self.duplicates.activate()

    def refresh_undo_texts(self) -> None:
        """The Edit menu says what Undo and Redo would do ("Undo label 'cat' on 12 items …")."""
        if not self.session.is_open:
            return
        self.session.read(lambda p: p.undo_redo_texts(), key="undo-texts", name="undo texts",
                          on_result=self._set_undo_texts, on_error=lambda info: None)

    def _set_undo_texts(self, texts: dict[str, Any]) -> None:
        for action, verb, key in ((self.undo_action, "Undo", "undo"),
                                  (self.redo_action, "Redo", "redo")):
            text = texts.get(key)
            shown = text if not text or len(text) <= 70 else text[:69] + "…"
            action.setText(f"{verb} {shown}" if shown else verb)
            # Never disabled: the text arrives asynchronously, and a key pressed meanwhile must
            # still reach the facade (which says "nothing to undo" itself).
            action.setToolTip(f"{verb} {text}" if text else f"nothing to {key}")

    def _changed(self, kind: str) -> None:
        if kind in (LABELS, GROUP_DECISION, GROUPS, TAXONOMY):
            self.refresh_undo_texts()
        if kind in (LABELS, GROUPS, INDEX, TAXONOMY):
            # (A group decision re-reads only its own row: `_decided` does that.)
            self.queue.reload()
        if kind in (LABELS, GROUP_DECISION, GROUPS):
            if kind != GROUP_DECISION:  # a group decision leaves the other groups as they were
                self.group.forget_prefetched()
            self.group.refresh()
            if self.is_current("map"):
                self.map.refresh_facets()
            else:
                self._facets_dirty = True
        if kind in (TAXONOMY, INDEX):
            self.reload_labels()
        if kind == INDEX:
            self._map_dirty = True

    def _tab_changed(self, index: int) -> None:
        widget = self.current_view()  # a tab shown for the first time is built now
        map_view = self.built("map")
        if widget is map_view and self._map_dirty and self.session.is_open:
            self._map_dirty = False
            self._facets_dirty = False
            self.map.load()
        elif widget is map_view and self._facets_dirty:
            self._facets_dirty = False
            self.map.refresh_facets()
        elif widget in {self.built(n) for n in ("duplicates", "suspects", "audit")}:
            widget.activate()
        elif widget is self.built("report") and self.session.is_open:
            self.report.activate()

    # --- triage flow ----------------------------------------------------------------------

    def open_group(self, group_id: int) -> None:
        self.queue.select_group(group_id)
        self.group.show_group(group_id)
        self.tabs.setCurrentWidget(self.group)

    def open_items(self, title: str, ids: Any) -> None:
        self.group.show_items(title, [int(i) for i in ids], kind="selection")
        self.tabs.setCurrentWidget(self.group)

    def _navigate(self, step: int) -> None:
        target = self.queue.neighbour(self.group.group_id, step)
        if target is None:
            self.show_message("end of the queue" if step > 0 else "start of the queue")
            return
        self.open_group(target)

    def _prefetch_after(self, group_id: int) -> None:
        # Triage goes to the next undecided group (or the next row with j): have both ready.
        self.group.prefetch(self.queue.next_undecided(group_id))
        self.group.prefetch(self.queue.neighbour(group_id, 1))

    def _decided(self, group_id: int, status: str = "labelled", label: str = "") -> None:
        # The write is committed: show it in the queue row now, then re-read that one row (a
        # decision on a group changes only its own members) for the catalog's own answer.
        self.queue.show_decision(group_id, status, label or None)
        target = self.queue.next_undecided(group_id)
        if target is None:
            self.show_message("every group of the queue is decided 🎉")
        else:
            self.open_group(target)
        self.queue.refresh_groups([group_id])

    def undo(self) -> None:
        self.session.write(lambda p: p.undo(), changes=LABELS, name="undo",
                           on_result=self._reversed)

    def redo(self) -> None:
        self.session.write(lambda p: p.redo(), changes=LABELS, name="redo",
                           on_result=self._reversed)

    def _reversed(self, r: Any) -> None:
        # Undo can touch the taxonomy too; the queue and group refresh with the LABELS change.
        self.show_message(r.text + (f" ({r.skipped} item(s) changed since, kept)"
                                    if r.skipped else ""))
        self.reload_labels()

    # --- messages -------------------------------------------------------------------------

    def show_error(self, info: Any) -> None:
        log.info("shown to the user: %s", info)
        self.banner.show_error(info)
        self.status_label.setText(f"⚠ {info}")

    def show_message(self, text: str) -> None:
        self.status_label.setText(text)

    # --- state ----------------------------------------------------------------------------

    def restore_state(self) -> None:
        geometry = app_settings.value("window/geometry")
        if isinstance(geometry, (QByteArray, bytes)):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = app_settings.value("window/state")
        if isinstance(state, (QByteArray, bytes)):
            self.restoreState(state)
        tab = app_settings.value("window/tab", 0, int)
        if tab and 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)
        size = app_settings.value("group/icon_size", 128, int)
        self.group.set_icon_size(size)
        self.map_colour_by = app_settings.value("map/colour_by", "label", str)
        if self.built("map") is not None:
            at = self.map.colour_by.findData(self.map_colour_by)
            if at >= 0:
                self.map.colour_by.setCurrentIndex(at)

    def save_state(self) -> None:
        s = app_settings.settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.currentIndex())
        s.setValue("group/icon_size", self.group.model.icon_size)
        if self.built("map") is not None:
            self.map_colour_by = self.map.colour_by.currentData()
        s.setValue("map/colour_by", self.map_colour_by)
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.save_state()
        if self.jobs.running:
            self.jobs.cancel()
        if self._preview is not None:
            self._preview.close()
        self.session.close()
        self.thumbs.wait(2000)
        super().closeEvent(event)

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Wait for every background call (tests, benchmarks)."""
        ok = self.session.wait(msecs)
        ok = self.thumbs.wait(msecs) and ok
        return ok

