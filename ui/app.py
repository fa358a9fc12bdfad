"""Starting the desktop app: `curator gui [DIR]` and the `curator-gui` entry point call `main`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

log = logging.getLogger(__name__)

USAGE = "usage: curator-gui [PROJECT_DIR]\n\nOpens the Curator desktop app (and the project)."


def apply_style(app: Any) -> None:
    """A calm dark Fusion palette: thumbnails and the map read better on a dark background."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")
    p = QPalette()
    base, window, text = QColor(30, 30, 34), QColor(42, 42, 47), QColor(222, 222, 222)
    p.setColor(QPalette.Window, window)
    p.setColor(QPalette.WindowText, text)
    p.setColor(QPalette.Base, base)
    p.setColor(QPalette.AlternateBase, QColor(36, 36, 41))
    p.setColor(QPalette.ToolTipBase, window)
    p.setColor(QPalette.ToolTipText, text)
    p.setColor(QPalette.Text, text)
    p.setColor(QPalette.Button, window)
    p.setColor(QPalette.ButtonText, text)
    p.setColor(QPalette.Highlight, QColor(58, 120, 200))
    p.setColor(QPalette.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.PlaceholderText, QColor(140, 140, 140))
    p.setColor(QPalette.Disabled, QPalette.Text, QColor(120, 120, 120))
    p.setColor(QPalette.Disabled, QPalette.ButtonText, QColor(120, 120, 120))
    app.setPalette(p)


def application() -> Any:
    """The QApplication (made once), named so QSettings find the app's own store."""
    from PySide6.QtWidgets import QApplication

    from ui.settings import APPLICATION, ORGANIZATION

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "curator-gui"])
        apply_style(app)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    from curator import __version__
    from ui.about import app_icon

    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    app.setDesktopFileName("curator")  # matches packaging/linux/curator.desktop (Wayland)
    return app


def _project_arg(argv_or_dir: Union[None, str, os.PathLike, Sequence[str]]) -> Optional[str]:
    if argv_or_dir is None:
        args = sys.argv[1:]
    elif isinstance(argv_or_dir, (str, os.PathLike)):
        return str(argv_or_dir)
    else:
        args = list(argv_or_dir)
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(USAGE + "\n")
        raise SystemExit(0)
    paths = [a for a in args if not a.startswith("-")]
    return paths[0] if paths else None


def preload_project_modules() -> None:
    """Import the catalog's stack (NumPy, sqlite-utils, the Project facade) before PySide6.

    Once PySide6 is imported it looks at every module imported after it (it reads each one's
    source file to see whether it uses PySide6's `__feature__` switches: PYSIDE-2029), which
    makes NumPy and the catalog about a third slower to import. With a project to open, the
    queue comes on screen sooner when they come first; without one, the welcome page needs none
    of them and the window shows at once.
    """
    import curator.project  # noqa: F401


def start_window(project: Optional[str] = None) -> tuple[Any, Any]:
    """Make the application and its window, show it, and open `project` (in the background).

    Returns:
        (the QApplication, the MainWindow).
    """
    if project:
        preload_project_modules()
    app = application()
    from ui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if project:
        window.open_project(str(Path(project).expanduser()))
    return app, window


def main(argv_or_dir: Union[None, str, os.PathLike, Sequence[str]] = None) -> int:
    """Open the window (at once) and the project, if any, in the background.

    Args:
        argv_or_dir: a project folder, or command-line arguments (default: sys.argv[1:]).

    Returns:
        The Qt event loop's exit code.
    """
    project = _project_arg(argv_or_dir)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app, window = start_window(project)
    seconds = os.environ.get("CURATOR_GUI_EXIT_AFTER")
    if seconds:
        _exit_after(app, window, float(seconds), bool(project))
    return int(app.exec())


def _exit_after(app: Any, window: Any, seconds: float, expect_project: bool) -> None:
    """Smoke runs (the bundle check in CI): quit after `seconds`; exit 1 if anything went wrong.

    Wrong means: an error shown in the banner, or a project asked for that is not open.
    """
    from PySide6.QtCore import QTimer

    def finish() -> None:
        problems = []
        if window.banner.isVisible():
            problems.append(f"error shown: {window.banner.text.text()}")
        if expect_project and not window.session.is_open:
            problems.append("the project did not open")
        opened = window.session.project.root if window.session.is_open else "no project"
        sys.stderr.write(f"curator-gui smoke: {'; '.join(problems) or 'ok'} ({opened})\n")
        window.close()
        app.exit(1 if problems else 0)

    QTimer.singleShot(int(seconds * 1000), finish)


if __name__ == "__main__":  # python -m ui.app [DIR]
    raise SystemExit(main())
