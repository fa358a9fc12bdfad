"""The main window: views in tabs, the search box, undo/redo, indexing, and the error banner.

The window binds views to the session: it routes "a group was decided" to "show the next
undecided group", refreshes what a write changed, and persists its layout with QSettings.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, Optional

from PySide6.QtCore import QByteArray, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui import settings as app_settings
from ui.about import install_about
from ui.banner import Banner
from ui.dialogs import ExportDialog, IndexDialog, IndexOptions, NewProjectDialog, TaxonomyEditor
from ui.group_view import GroupView
from ui.jobs import JobPanel, run_indexing
from ui.map_view import MapView
from ui.model_check import IndexOptionsCheck
from ui.panels import AuditPanel, DuplicatesPanel, ReportPanel, SuspectsPanel
from ui.preview import PreviewWindow
from ui.queue_view import QueueView
from ui.session import GROUP_DECISION, GROUPS, INDEX, LABELS, TAXONOMY, Session
from ui.thumbnails import ThumbnailCache
from ui.welcome import install_welcome
from ui.window_actions import install_actions
from ui.workers import WorkerError

log = logging.getLogger(__name__)

class MainWindow(QMainWindow):
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
        # The user's settings (config file, CURATOR_* environment), as `curator index` reads
        # them; the models last chosen in the dialog take precedence.
        # First start: models whose weights are not here fall back to `classic`, so the first
        # Index… works on any machine (and in the lite build, which has no torch). That look
        # imports torch: it runs in the background, only when Index… needs the answer.
        self.model_check = IndexOptionsCheck(IndexOptions.from_settings(
            model=app_settings.value("index/model", "", str) or None,
            audio_model=app_settings.value("index/audio_model", "", str) or None),
            done=bool(app_settings.value("index/model", "", str)), parent=self)
        self.model_check.checked.connect(self._models_found)
        self._preview: Optional[PreviewWindow] = None
        self._taxonomy: Optional[TaxonomyEditor] = None
        self._map_dirty = True
        self._facets_dirty = False
        self._ready_pending = False

        self.queue = QueueView(self.session)
        self.group = GroupView(self.session, self.thumbs)
        self.map = MapView(self.session, self.thumbs)
        self.duplicates = DuplicatesPanel(self.session, self.thumbs)
        self.suspects = SuspectsPanel(self.session, self.thumbs)
        self.audit = AuditPanel(self.session, self.thumbs)
        self.report = ReportPanel(self.session, self.thumbs)
        self.tabs = QTabWidget()
        for widget, title in ((self.queue, "Queue"), (self.group, "Group"), (self.map, "Map"),
                              (self.duplicates, "Duplicates"), (self.suspects, "Suspects"),
                              (self.audit, "Audit"), (self.report, "Report")):
            self.tabs.addTab(widget, title)
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
        self._opening = False
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
        self.map.open_items.connect(self.open_items)
        self.map.message.connect(self.show_message)
        for panel in (self.duplicates, self.suspects, self.audit, self.report):
            panel.message.connect(self.show_message)
            panel.open_items.connect(self.open_items)
            panel.preview.connect(self.preview_item)

    # --- project --------------------------------------------------------------------------

    def open_project(self, path: str) -> None:
        """Open a project folder in the background; the window stays responsive."""
        self.status_label.setText(f"Opening {path}…")
        self._opening = True
        self.session.open(path, on_error=self._open_failed)

    def _open_failed(self, info: WorkerError) -> None:
        self._opening = False
        self.status_label.setText("No project open.")
        if info.kind == "NotAProjectError":
            # The app's own way to the fix (the CLI names `curator init` instead).
            info = dataclasses.replace(info, message=f"{info.message}. Choose File ▸ New "
                                                     "project… to create one.")
        self.show_error(info)

    def _opened(self, project: Any) -> None:
        self._opening = False
        annotator = app_settings.value("annotator", "", str)
        if annotator:
            project.set_annotator(annotator)
        self.thumbs.set_project(project)
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
            if self.tabs.currentWidget() is self.map:
                self._tab_changed(self.tabs.currentIndex())

    def _queue_loaded(self) -> None:
        self.group.merge_candidates = [
            (g.group_id, f"group {g.group_id} · {g.size} items · {g.label or g.status}", g.space)
            for g in self.queue.model.groups()]
        if self.queue.empty_reason and self.session.is_open:
            self.show_message(self.queue.empty_reason)
        if self._ready_pending:
            self._ready_pending = False
            self.project_ready.emit()

    def new_project(self) -> None:
        dialog = NewProjectDialog(self)
        if dialog.exec() != QDialog.Accepted:
            return
        answer = dialog.result_value()
        self.index_options = answer.options

        def created(project: Any) -> None:
            if answer.index_now:
                self.start_indexing(answer.options)

        self.status_label.setText(f"Creating {answer.folder}…")
        self.session.open(answer.folder, create_sources=list(answer.sources), on_opened=created,
                          on_error=self._open_failed)

    def open_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = app_settings.recent_projects()
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_project(p))
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def reload_labels(self) -> None:
        self.session.read(lambda p: p.labels(), key="labels", name="labels",
                          on_result=self._labels_loaded)

    def _labels_loaded(self, labels: list[Any]) -> None:
        self.labels = list(labels)
        self.group.set_labels(self.labels)
        self.queue.set_labels(self.labels)
        self.map.set_labels(self.labels)
        self.audit.labels = self.labels

    # --- indexing -------------------------------------------------------------------------

    @property
    def index_options(self) -> IndexOptions:
        """The options Index… starts from (on a first start, before the model check lands,
        those of the user's settings)."""
        return self.model_check.options

    @index_options.setter
    def index_options(self, options: IndexOptions) -> None:
        self.model_check.choose(options)

    @property
    def models_checked(self) -> bool:
        return self.model_check.done

    def with_index_options(self, then: Callable[[IndexOptions], None]) -> None:
        """Call `then(options)` with the options Index… uses, once the first start's model check
        (in the background) has said which models are here."""
        if self.model_check.when_checked(then) and self.session.is_open:
            self.show_message("looking for model weights on this machine…")

    def _check_models_when_idle(self) -> None:
        if not self.models_checked and not self._opening and not self.session.is_open:
            self.with_index_options(lambda options: None)

    def _models_found(self, options: IndexOptions) -> None:
        if hasattr(self, "welcome") and not self.session.is_open:
            self.welcome.refresh(options.model, options.audio_model)

    def index_dialog(self) -> None:
        if not self.session.is_open:
            self.show_message("open a project first")
            return
        self.with_index_options(self._open_index_dialog)

    def _open_index_dialog(self, options: IndexOptions) -> None:
        if not self.session.is_open:
            return
        dialog = IndexDialog(options, self)
        if dialog.exec() == QDialog.Accepted:
            self.start_indexing(dialog.form.options())

    def start_indexing(self, options: IndexOptions) -> Any:
        """Run scan → embed → group → map in the background with the progress panel."""
        if self.jobs.running:
            self.show_message("a job is already running; cancel it first")
            return None
        self.index_options = options
        app_settings.set_value("index/model", options.model)
        app_settings.set_value("index/audio_model", options.audio_model)
        worker = self.session.job(run_indexing, options, name="indexing",
                                  on_result=self._indexed, on_error=self.show_error)
        if worker is not None:
            self.jobs.attach(worker, "Indexing")
        return worker

    def _indexed(self, report: Any) -> None:
        if report.unavailable:
            self.show_error("some models could not be loaded: " + " | ".join(report.unavailable))

    def _job_done(self, ok: bool) -> None:
        self.queue.reload()
        self._map_dirty = True
        self._tab_changed(self.tabs.currentIndex())

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
            if self.tabs.currentWidget() is self.map:
                self._tab_changed(self.tabs.currentIndex())
        if kinds & {"run:scan", "run:embed"}:
            self._changed(INDEX)
        if "run:dedup" in kinds and self.tabs.currentWidget() is self.duplicates:
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
            if self.tabs.currentWidget() is self.map:
                self.map.refresh_facets()
            else:
                self._facets_dirty = True
        if kind in (TAXONOMY, INDEX):
            self.reload_labels()
        if kind == INDEX:
            self._map_dirty = True

    def _tab_changed(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if widget is self.map and self._map_dirty and self.session.is_open:
            self._map_dirty = False
            self._facets_dirty = False
            self.map.load()
        elif widget is self.map and self._facets_dirty:
            self._facets_dirty = False
            self.map.refresh_facets()
        elif widget in (self.duplicates, self.suspects, self.audit):
            widget.activate()
        elif widget is self.report and self.session.is_open:
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

    def ask_annotator(self) -> None:
        current = self.session.project.annotator if self.session.is_open else ""
        name, ok = QInputDialog.getText(self, "Annotator", "Your name (kept with every label):",
                                        text=current)
        if ok:
            app_settings.set_value("annotator", name.strip())
            if self.session.is_open:
                self.session.project.set_annotator(name.strip() or None)
                self.status_label.setText(f"{self.session.project.root} · annotator "
                                          f"{self.session.project.annotator}")

    # --- search ---------------------------------------------------------------------------

    def search_from_box(self) -> None:
        text = self.search_box.text().strip()
        if not text:
            return
        if text.lower().startswith("like:") and text[5:].strip().isdigit():
            self.search_like(int(text[5:].strip()))
        else:
            self.search_text(text)

    def search_text(self, text: str, k: int = 100) -> None:
        self._search(f"Search “{text}”", {"text": text, "k": k})

    def search_like(self, item_id: Optional[int], k: int = 100) -> None:
        if item_id is None:
            self.show_message("pick an item first")
            return
        self._search(f"Like item {item_id}", {"like": int(item_id), "k": k})

    def _search(self, title: str, query: dict[str, Any]) -> None:
        project = self.session.project
        if project is None:
            self.show_message("open a project first")
            return
        self.show_message(f"{title}: searching…")
        self.session.read(lambda p: p.search(**query), key="search", name="search",
                          on_result=lambda hits: self._search_done(title, hits),
                          on_error=self._search_failed)

    def _search_failed(self, info: Any) -> None:
        # The domain says what is wrong; the app names its own way out (not a CLI flag).
        if "text tower" in str(info):
            self.show_error(f"{info}: select an item and press Ctrl+L (More like this)")
        else:
            self.show_error(info)

    # Search results further than this (cosine) below the best hit are left out: "more like
    # this" shows the near neighbours, not the 100 nearest whatever their distance.
    SEARCH_CUTOFF = 0.15

    def _search_done(self, title: str, hits: list[Any]) -> None:
        top = max((float(h.score) for h in hits), default=0.0)
        kept = [h for h in hits if float(h.score) >= top - self.SEARCH_CUTOFF]
        ids = [h.item_id for h in kept]
        scores = {h.item_id: float(h.score) for h in kept}
        self.group.show_items(f"{title}", ids, kind="search", scores=scores)
        self.tabs.setCurrentWidget(self.group)
        dropped = len(hits) - len(kept)
        self.show_message(f"{title}: {len(ids)} results within {self.SEARCH_CUTOFF} of the best"
                          + (f" ({dropped} further ones left out)" if dropped else "")
                          + "; badges show labels they already carry")

    # --- preview --------------------------------------------------------------------------

    def preview_window(self) -> PreviewWindow:
        if self._preview is None:
            self._preview = PreviewWindow(self.session, self.thumbs, self)
            self._preview.pane.more_like_this.connect(self.search_like)
            self._preview.step.connect(self._preview_step)
        return self._preview

    def preview_item(self, item_id: Optional[int]) -> None:
        if item_id is None:
            return
        window = self.preview_window()
        window.pane.show_item(int(item_id))
        window.show()
        window.raise_()

    def _preview_follow(self) -> None:
        if self._preview is not None and self._preview.isVisible():
            item = self.group.current_item()
            if item is not None and item != getattr(self._preview.pane, "item_id", None):
                self._preview.pane.show_item(int(item))

    def _preview_step(self, step: int) -> None:
        grid = self.group.grid
        index = grid.currentIndex()
        row = (index.row() if index.isValid() else 0) + step
        if 0 <= row < self.group.model.rowCount():
            grid.setCurrentIndex(self.group.model.index(row))
            self.preview_item(self.group.model.item_at(row))

    # --- other dialogs --------------------------------------------------------------------

    def taxonomy_dialog(self) -> None:
        if not self.session.is_open:
            self.show_message("open a project first")
            return
        if self._taxonomy is None:
            self._taxonomy = TaxonomyEditor(self.session, self)
        self._taxonomy.reload()
        self._taxonomy.show()
        self._taxonomy.raise_()

    def export_dialog(self) -> None:
        project = self.session.project
        if project is None:
            self.show_message("open a project first")
            return
        dialog = ExportDialog(project, self)
        if dialog.exec() != QDialog.Accepted:
            return
        args = dialog.arguments()
        if not args["out"]:
            self.show_error("choose an export folder")
            return

        import inspect

        try:
            params = inspect.signature(project.export).parameters
        except (TypeError, ValueError):
            params = {}
        if "fmt" not in params and "format" in params:
            args["format"] = args.pop("fmt")

        def work(p: Any, progress: Any = None, cancel: Any = None) -> Any:
            return p.export(progress=progress, cancel=cancel, **args)

        worker = self.session.job(work, name="export", changes=None, on_error=self.show_error,
                                  on_result=lambda r: self.show_message(
                                      f"exported to {args['out']}"))
        if worker is not None:
            self.jobs.attach(worker, "Export")

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
        colour = app_settings.value("map/colour_by", "label", str)
        at = self.map.colour_by.findData(colour)
        if at >= 0:
            self.map.colour_by.setCurrentIndex(at)

    def save_state(self) -> None:
        s = app_settings.settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.currentIndex())
        s.setValue("group/icon_size", self.group.model.icon_size)
        s.setValue("map/colour_by", self.map.colour_by.currentData())
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

