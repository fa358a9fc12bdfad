"""The main window's dialogs and long jobs: new project, Index… (with the first start's model
check), Export… and the taxonomy editor.

The dialogs and `curator.pipeline` are imported when first used: they pull in the catalog
(NumPy, sqlite-utils), which the window does not need before it shows.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from ui import settings as app_settings
from ui.model_check import IndexOptionsCheck

log = logging.getLogger(__name__)


def make_model_check(window: Any) -> IndexOptionsCheck:
    """The options Index… starts from: the user's settings (config file, CURATOR_* environment,
    as `curator index` reads them), the models last chosen in the dialog first.

    On a first start (no models chosen yet) models whose weights are not here fall back to
    `classic`, so the first Index… works on any machine (and in the lite build, which has no
    torch). That look imports torch: it runs in the background, only when Index… needs it.
    """
    model = app_settings.value("index/model", "", str)
    audio_model = app_settings.value("index/audio_model", "", str)

    def make() -> Any:
        from curator.pipeline import IndexOptions

        return IndexOptions.from_settings(model=model or None, audio_model=audio_model or None)

    return IndexOptionsCheck(make, done=bool(model), parent=window,
                             chosen=(model, audio_model) if model and audio_model else None)


class WindowDialogs:
    """Mixed into MainWindow: its dialogs, indexing and export jobs."""

    # --- indexing -------------------------------------------------------------------------

    @property
    def index_options(self) -> Any:
        """The IndexOptions Index… starts from (on a first start, before the model check lands,
        those of the user's settings)."""
        return self.model_check.options

    @index_options.setter
    def index_options(self, options: Any) -> None:
        self.model_check.choose(options)

    @property
    def models_checked(self) -> bool:
        return self.model_check.done

    def with_index_options(self, then: Callable[[Any], None]) -> None:
        """Call `then(options)` with the options Index… uses, once the first start's model check
        (in the background) has said which models are here."""
        if self.model_check.when_checked(then) and self.session.is_open:
            self.show_message("looking for model weights on this machine…")

    def _check_models_when_idle(self) -> None:
        if not self.models_checked and not self.opening and not self.session.is_open:
            self.with_index_options(lambda options: None)

    def _models_found(self, options: Any) -> None:
        from ui.welcome import refresh_welcome

        refresh_welcome(self)

    def index_dialog(self) -> None:
        if not self.session.is_open:
            self.show_message("open a project first")
            return
        self.with_index_options(self._open_index_dialog)

    def _open_index_dialog(self, options: Any) -> None:
        from PySide6.QtWidgets import QDialog

        from ui.dialogs import IndexDialog

        if not self.session.is_open:
            return
        dialog = IndexDialog(options, self)
        if dialog.exec() == QDialog.Accepted:
            self.start_indexing(dialog.form.options())

    def start_indexing(self, options: Any) -> Any:
        """Run scan → embed → group → map in the background with the progress panel."""
        from ui.jobs import run_indexing

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

    # --- projects -------------------------------------------------------------------------

    def new_project(self) -> None:
        from PySide6.QtWidgets import QDialog

        from ui.dialogs import NewProjectDialog

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
        from PySide6.QtWidgets import QFileDialog

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

    def ask_annotator(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        current = self.session.project.annotator if self.session.is_open else ""
        name, ok = QInputDialog.getText(self, "Annotator", "Your name (kept with every label):",
                                        text=current)
        if ok:
            app_settings.set_value("annotator", name.strip())
            if self.session.is_open:
                self.session.project.set_annotator(name.strip() or None)
                self.status_label.setText(f"{self.session.project.root} · annotator "
                                          f"{self.session.project.annotator}")

    # --- taxonomy and export --------------------------------------------------------------

    def taxonomy_dialog(self) -> None:
        from ui.dialogs import TaxonomyEditor

        if not self.session.is_open:
            self.show_message("open a project first")
            return
        if self._taxonomy is None:
            self._taxonomy = TaxonomyEditor(self.session, self)
        self._taxonomy.reload()
        self._taxonomy.show()
        self._taxonomy.raise_()

    def export_dialog(self) -> None:
        from PySide6.QtWidgets import QDialog

        from ui.dialogs import ExportDialog

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
