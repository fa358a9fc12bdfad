"""The first-start page: pick a media folder and Curator makes a project beside it and indexes it.

Shown in place of the tabs while no project is open. One click ("Open a media folder…") asks
for a folder, creates `<folder>-curator` next to it (or under the user data folder when the
parent is read-only), and runs Index… with the remembered options (`classic` by default: it
needs no model weights, so it works on every machine and in the lite build).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui import settings as app_settings
from ui.about import app_icon

log = logging.getLogger(__name__)

PROJECT_SUFFIX = "-curator"


def project_folder_for(media: Path, fallback_root: Optional[Path] = None) -> Path:
    """Where the project of a media folder goes: `<parent>/<name>-curator`.

    An existing Curator project there is reused (indexing resumes); a non-empty folder that is
    not a project gets a numbered name; a read-only parent moves the project under
    `fallback_root` (default: the user data folder).
    """
    media = Path(media).expanduser().resolve()
    parent = media.parent
    if not os.access(parent, os.W_OK):
        if fallback_root is None:
            import platformdirs

            fallback_root = Path(platformdirs.user_data_dir("Curator", "Curator")) / "projects"
        parent = Path(fallback_root)
    base = media.name or "media"
    for n in range(1, 1000):
        candidate = parent / (f"{base}{PROJECT_SUFFIX}" + (f"-{n}" if n > 1 else ""))
        if not candidate.exists() or (candidate / "catalog.db").exists():
            return candidate
        if candidate.is_dir() and not any(candidate.iterdir()):
            return candidate
    raise RuntimeError(f"no free project folder name beside {media}")


class WelcomePage(QWidget):
    """Big buttons for the first steps and the recent projects.

    Signals:
        media_folder_chosen(str): the user picked a media folder to index.
        open_project_requested(str): a recent project was clicked.
    """

    media_folder_chosen = Signal(str)
    open_project_requested = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePage")
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(96, 96))
        logo.setAlignment(Qt.AlignCenter)
        title = QLabel("<h1>Welcome to Curator</h1>")
        title.setAlignment(Qt.AlignCenter)
        intro = QLabel("Curator groups your images, sounds and videos so you can label whole "
                       "groups at once. Pick the folder that holds your media to begin: Curator "
                       "makes a project next to it and indexes it (scan, embed, group, map).")
        intro.setWordWrap(True)
        intro.setAlignment(Qt.AlignCenter)
        self.index_button = QPushButton("Open a media folder…")
        self.index_button.setObjectName("welcomeIndexButton")
        self.index_button.setMinimumHeight(44)
        self.index_button.setDefault(True)
        self.index_button.clicked.connect(self._choose_media)
        self.open_button = QPushButton("Open a project…")
        self.new_button = QPushButton("New project (choose models)…")
        self.defaults = QLabel("")
        self.defaults.setWordWrap(True)
        self.defaults.setAlignment(Qt.AlignCenter)
        self.defaults.setStyleSheet("color: #aaa;")
        self.notes = QLabel("")
        self.notes.setObjectName("welcomeModelNotes")
        self.notes.setWordWrap(True)
        self.notes.setAlignment(Qt.AlignCenter)
        self.notes.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.notes.setStyleSheet("color: #aaa;")
        self.notes.hide()
        self.recent = QListWidget()
        self.recent.setObjectName("welcomeRecent")
        self.recent.setMaximumHeight(160)
        self.recent.itemActivated.connect(self._open_recent)
        self.recent_label = QLabel("Recent projects")
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.new_button)
        column = QVBoxLayout()
        column.addStretch(1)
        for widget in (logo, title, intro, self.index_button, self.defaults, self.notes):
            column.addWidget(widget)
        column.addLayout(buttons)
        column.addSpacing(16)
        column.addWidget(self.recent_label)
        column.addWidget(self.recent)
        column.addStretch(2)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 3)
        outer.addStretch(1)

    def refresh(self, model: str = "", audio_model: str = "", checking: bool = False,
                notes: Sequence[str] = ()) -> None:
        """Show the models Index… will use and the recent projects that still exist.

        Args:
            checking: the first start's look for model weights is still running.
            notes: what that look found (`IndexOptions.with_models_here`): which models fall
                back to classic and why, which models' weights are here; one line each.
        """
        if checking:
            self.defaults.setText("Looking for model weights on this machine (a model whose "
                                  "weights are not here is replaced by classic)…")
        else:
            self.defaults.setText(f"Indexes with the {model} image/video model and the "
                                  f"{audio_model} audio model; choose others later with "
                                  "File ▸ Index….")
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes) and not checking)
        self.refresh_recent()

    def refresh_recent(self) -> None:
        """List the recent projects that still exist."""
        self.recent.clear()
        for path in app_settings.recent_projects():
            QListWidgetItem(path, self.recent)
        self.recent.setVisible(self.recent.count() > 0)
        self.recent_label.setVisible(self.recent.count() > 0)

    def _choose_media(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Media folder to index")
        if folder:
            self.media_folder_chosen.emit(folder)

    def _open_recent(self, item: QListWidgetItem) -> None:
        self.open_project_requested.emit(item.text())


def install_welcome(window: Any) -> WelcomePage:
    """Put the welcome page in front of the window's tabs until a project is open.

    Args:
        window: the MainWindow (its `tabs`, `session`, `index_options`, `open_project`,
            `open_dialog`, `new_project`, `start_indexing` and `show_error` are used).

    Returns:
        The page (also `window.welcome`).
    """
    page = WelcomePage()
    layout = window.centralWidget().layout()
    at = layout.indexOf(window.tabs)
    stack = QStackedWidget()
    layout.insertWidget(at, stack, 1)
    layout.removeWidget(window.tabs)
    stack.addWidget(page)
    stack.addWidget(window.tabs)
    window.welcome = page
    window.welcome_stack = stack

    def show_tabs(*_: Any) -> None:
        stack.setCurrentWidget(window.tabs)

    def show_welcome(*_: Any) -> None:
        page.refresh_recent()
        stack.setCurrentWidget(page)
        # The page's text names the models, whose options import the catalog: at start that
        # waits until the window is on screen, and is not needed when a project opens first.
        QTimer.singleShot(0, page, lambda: refresh_welcome(window))

    page.media_folder_chosen.connect(lambda folder: index_media_folder(window, folder))
    page.open_project_requested.connect(window.open_project)
    page.open_button.clicked.connect(window.open_dialog)
    page.new_button.clicked.connect(window.new_project)
    window.session.opened.connect(show_tabs)
    window.session.closed.connect(show_welcome)
    show_welcome()
    return page


def refresh_welcome(window: Any) -> None:
    """Name the models Index… will use (and the model check's notes) on the welcome page, while
    it is shown."""
    if (window.welcome_stack.currentWidget() is not window.welcome or window.session.is_open
            or window.opening):
        return
    if not window.models_checked:
        window.welcome.refresh(checking=True)
        return
    model, audio_model = window.model_check.model_names()
    window.welcome.refresh(model, audio_model, notes=window.model_check.notes)


def index_media_folder(window: Any, media: str) -> Optional[Path]:
    """Make (or reopen) the project of a media folder and run Index… with the window's options."""
    try:
        project = project_folder_for(Path(media))
    except (OSError, RuntimeError) as exc:
        window.show_error(f"cannot make a project for {media}: {exc}")
        return None
    window.status_label.setText(f"Creating {project} for {media}…")

    def create(options: Any) -> None:
        window.session.open(str(project), create_sources=[media],
                            on_opened=lambda _p: window.start_indexing(options),
                            on_error=window.show_error)

    # The first start's model check runs in the background; indexing starts from its answer.
    window.with_index_options(create)
    return project
