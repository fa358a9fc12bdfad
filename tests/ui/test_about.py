"""The About dialog, the app icon, and the first-start page that indexes a media folder."""

from __future__ import annotations

import os
import shutil

from PySide6.QtWidgets import QFileDialog

from curator import __version__

TIMEOUT = 20000


def test_app_icon_has_every_shipped_size(qapp):
    from ui.about import ICON_SIZES, app_icon

    icon = app_icon()
    assert not icon.isNull()
    sizes = sorted(s.width() for s in icon.availableSizes())
    assert sizes == list(ICON_SIZES)
    image = icon.pixmap(64, 64).toImage()
    # A real drawing: transparent corners, an opaque body.
    assert image.pixelColor(0, 0).alpha() == 0
    assert image.pixelColor(32, 32).alpha() == 255


def test_about_shows_versions_and_the_open_projects_models(window, qtbot):
    from PySide6.QtCore import qVersion
    from PySide6.QtGui import QGuiApplication

    assert window.windowIcon().isNull() is False
    window.about_action.trigger()
    dialog = window.about_dialog
    qtbot.waitUntil(lambda: "this project's space" in dialog.details.toPlainText(),
                    timeout=TIMEOUT)
    text = dialog.details.toPlainText()
    assert f"curator {__version__} (python package)" in text
    assert f"Qt {qVersion()}" in text
    assert "numpy " in text and "faiss-cpu " in text and "PySide6 " in text
    assert "classic" in text  # the test project's embedder
    dialog.copy()
    assert QGuiApplication.clipboard().text() == text
    dialog.close()


def test_welcome_page_until_a_project_is_open(qtbot, project_dir):
    from ui.main_window import MainWindow
    from ui.settings import remember_project

    remember_project(str(project_dir))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    assert win.welcome_stack.currentWidget() is win.welcome
    assert win.welcome.recent.count() == 1
    # The first start's look for weights runs in the background, then names the models.
    qtbot.waitUntil(lambda: "classic" in win.welcome.defaults.text(), timeout=120000)
    item = win.welcome.recent.item(0)
    with qtbot.waitSignal(win.project_ready, timeout=TIMEOUT):
        win.welcome.recent.itemActivated.emit(item)
    assert win.welcome_stack.currentWidget() is win.tabs
    win.session.close()
    assert win.welcome_stack.currentWidget() is win.welcome
    win.close()


def test_welcome_indexes_a_media_folder_with_defaults(qtbot, project_template, tmp_path,
                                                       monkeypatch):
    from curator.project import Project
    from ui.main_window import MainWindow

    media = tmp_path / "holiday photos"
    shutil.copytree(project_template.parent / "media", media)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(media))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.jobs.done, timeout=120000) as done:
        win.welcome.index_button.click()
    assert done.args == [True]
    qtbot.waitUntil(lambda: win.queue.model.rowCount() > 0, timeout=TIMEOUT)
    assert win.welcome_stack.currentWidget() is win.tabs
    win.session.close()
    win.close()
    project_root = tmp_path / "holiday photos-curator"
    with Project.open(project_root) as project:
        assert [s["embedder"] for s in project.spaces()] and all(
            s["embedder"] == "classic" for s in project.spaces())
        assert project.current_run() is not None
        assert project.status().counts["image"]["ok"] == 16


def test_project_folder_beside_media_reused_renamed_or_moved(tmp_path):
    from curator.project import Project
    from ui.welcome import project_folder_for

    media = tmp_path / "media"
    media.mkdir()
    assert project_folder_for(media) == tmp_path / "media-curator"
    Project.create(tmp_path / "media-curator", [media]).close()
    assert project_folder_for(media) == tmp_path / "media-curator"  # reopened, not replaced
    other = tmp_path / "pics"
    other.mkdir()
    (tmp_path / "pics-curator").mkdir()
    (tmp_path / "pics-curator" / "notes.txt").write_text("mine")
    assert project_folder_for(other) == tmp_path / "pics-curator-2"


def test_read_only_parent_moves_the_project_to_the_fallback(tmp_path, monkeypatch):
    import ui.welcome
    from ui.welcome import project_folder_for

    media = tmp_path / "ro" / "media"
    media.mkdir(parents=True)
    # The folder's own permission bits would not stop root (CI): ask os.access as a user would.
    monkeypatch.setattr(ui.welcome.os, "access",
                        lambda path, mode: os.path.realpath(path) != str(media.parent))
    assert project_folder_for(media, tmp_path / "data") == tmp_path / "data" / "media-curator"
