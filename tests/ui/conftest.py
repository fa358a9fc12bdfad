"""Fixtures for the desktop app: offscreen Qt, settings in tmp, a small real clustered project."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 230, 40)}
PER_CLASS = 4  # 4 x 4 images + 2 sounds: under 20 items, so the map is a quick PCA layout


def write_image(path: Path, colour: tuple, seed: int = 0, size=(48, 36)) -> Path:
    """A small real PNG of one colour with a little noise."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = np.zeros((size[1], size[0], 3), np.int64) + np.array(colour)
    arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def write_wav(path: Path, freq: float, seconds: float = 0.5, rate: int = 16000) -> Path:
    """A small real mono WAV of a sine tone."""
    import wave

    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


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
    media = root / "media"
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(PER_CLASS):
            write_image(media / name / f"{name}{i}.png", colour, seed=c * 100 + i)
    write_wav(media / "sounds" / "a.wav", 440.0)
    write_wav(media / "sounds" / "b.wav", 880.0)
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
