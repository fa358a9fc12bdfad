"""The app icon and the About dialog: Curator's version, build, models and library versions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent / "resources"
ICON_SIZES = (16, 32, 64, 128, 256)
HOMEPAGE_LICENSE = "Apache-2.0"


def app_icon() -> QIcon:
    """Curator's icon at every size shipped in ui/resources (made by packaging/icons/)."""
    icon = QIcon()
    for size in ICON_SIZES:
        path = RESOURCES / f"curator-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    if icon.isNull():
        log.warning("app icon files are missing from %s", RESOURCES)
    return icon


def about_text(project_models: Optional[dict[str, str]] = None) -> str:
    """The About dialog's details: `curator --version` plus the Qt runtime and the open project."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from curator.version import version_report

    lines = version_report().lines()
    lines.insert(3, f"Qt {qVersion()} (PySide6 {pyside_version}), platform "
                    f"{QGuiApplication.platformName() or 'none'}")
    for role, model in (project_models or {}).items():
        lines.append(f"this project's {role}: {model}")
    return "\n".join(lines)


class AboutDialog(QDialog):
    """Version, build, models, libraries, and a button that copies it all for a bug report."""

    def __init__(self, project_models: Optional[dict[str, str]] = None,
                 parent: Any = None) -> None:
        super().__init__(parent)
        from curator import __version__

        self.setWindowTitle("About Curator")
        self.setWindowIcon(app_icon())
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(96, 96))
        heading = QLabel(f"<h2>Curator {__version__}</h2>"
                         "<p>Unsupervised dataset curation: embed, group and label images, "
                         f"sounds and videos.</p><p>License: {HOMEPAGE_LICENSE}</p>")
        heading.setWordWrap(True)
        heading.setTextInteractionFlags(Qt.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(logo)
        top.addWidget(heading, 1)
        self.details = QPlainTextEdit(about_text(project_models))
        self.details.setObjectName("aboutDetails")
        self.details.setReadOnly(True)
        self.details.setMinimumHeight(200)
        copy = QPushButton("Copy to clipboard")
        copy.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(copy, QDialogButtonBox.ActionRole)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)
        self.resize(640, 420)

    def set_project_models(self, models: dict[str, str]) -> None:
        """Add the open project's models (read in the background) to the details."""
        self.details.setPlainText(about_text(models))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.details.toPlainText())


def spaces_as_models(spaces: list[dict[str, Any]]) -> dict[str, str]:
    """A project's embedding spaces (`Project.spaces()`) as "space NAME" → "embedder model"."""
    return {f"space {row['space']}": f"{row['embedder']} {row['model']} "
                                     f"({row.get('count', 0)} vectors)" for row in spaces}


def install_about(window: Any) -> QAction:
    """Add Help ▸ About Curator to the window and give it the app icon."""
    window.setWindowIcon(app_icon())
    action = QAction("About Curator", window)
    action.setMenuRole(QAction.AboutRole)
    action.setObjectName("aboutAction")

    def show() -> None:
        dialog = AboutDialog(parent=window)
        window.about_dialog = dialog
        dialog.show()
        if window.session.is_open:
            window.session.read(lambda p: p.spaces(), key="about", name="about",
                                on_result=lambda rows: dialog.set_project_models(
                                    spaces_as_models(rows)),
                                on_error=lambda info: log.warning("About: %s", info))

    action.triggered.connect(show)
    window.menuBar().addMenu("&Help").addAction(action)
    window.about_action = action
    return action
