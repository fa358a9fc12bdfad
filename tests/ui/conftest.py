"""Fixtures for the desktop app: offscreen Qt, settings in tmp, a small real clustered project."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.media import MediaFactory  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 230, 40)}
PER_CLASS = 4  # 4 x 4 images + 2 sounds: under 20 items, so the map is a quick PCA layout




@pytest.fixture(autouse=True)
def _qt_settings(tmp_path, qapp):
    """QSettings of the app go to a temporary INI folder; no test reads the user's own."""
    from PySide6.QtCore import QSettings

    from ui.app import application

    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "qsettings"))
    application()
    yield


@pytest.fixture(scope="session")
def project_template(tmp_path_factory):
    """A scanned, embedded (classic), clustered and mapped project, built once per session."""
    from curator.pipeline import IndexOptions, index
    from curator.project import Project

    root = tmp_path_factory.mktemp("uiproject")
    media, make = root / "media", MediaFactory()
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(PER_CLASS):
            make.image(media / name / f"{name}{i}.png", size=(48, 36), color=colour,
                       seed=c * 100 + i)
    make.wav(media / "sounds" / "a.wav", freq=440.0)
    make.wav(media / "sounds" / "b.wav", freq=880.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CURATOR_CONFIG", str(root / "config.toml"))
        with Project.create(root / "proj", [media]) as project:
            index(project, IndexOptions("classic", "classic", n_groups=4, workers=0))
    return root / "proj"


@pytest.fixture
def project_dir(project_template, tmp_path) -> Path:
    """A private copy of the template project for one test."""
    target = tmp_path / "proj"
    shutil.copytree(project_template, target)
    return target


@pytest.fixture
def window(qtbot, project_dir):
    """The main window with the test project open and its queue on screen."""
    from ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.project_ready, timeout=20000):
        win.open_project(str(project_dir))
    yield win
    win.wait_idle(20000)
    win.close()
