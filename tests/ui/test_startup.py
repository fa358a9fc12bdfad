"""What the window does at start: it shows before the catalog's imports (they run on the worker
that opens the project), builds the tabs beyond the queue when first shown, and its first-start
page says what the look for model weights found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.app import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys, tempfile
from PySide6.QtCore import QSettings
from ui.app import application
from ui.main_window import MainWindow
app = application()
QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, tempfile.mkdtemp())
win = MainWindow()
win.show()
app.processEvents()
print(json.dumps(sorted(sys.modules)))
"""


def test_the_window_shows_without_the_catalog_numpy_or_the_later_tabs():
    """A fresh interpreter: everything imported up to the first paint of the window."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "ui.main_window" in modules and "ui.queue_view" in modules
    for heavy in ("numpy", "sqlite_utils", "curator.catalog", "curator.project",
                  "curator.pipeline", "ui.dialogs", "ui.map_view", "ui.panels", "ui.preview"):
        assert heavy not in modules, heavy


OPEN_PROBE = """
import json, sys
import ui.app
app, win = ui.app.start_window(sys.argv[1])  # as `curator-gui DIR` starts
ready = []
win.project_ready.connect(lambda: ready.append(win.queue.model.rowCount()))
while not ready:
    app.processEvents()
print(json.dumps({"rows": ready[0], "modules": list(sys.modules)}))
"""


def test_a_project_on_screen_without_the_scanner_dialogs_or_later_tabs(project_dir, tmp_path):
    """`curator-gui DIR` imports the catalog's stack before PySide6 (which slows every module
    imported after it), then neither the scanner (file walking, media probing), the indexing
    pipeline, the dialogs nor the tabs not shown."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, "-c", OPEN_PROBE, str(project_dir)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    order = answer["modules"]  # sys.modules keeps the order imports started in
    modules = set(order)
    assert answer["rows"] > 0
    assert order.index("numpy") < order.index("PySide6")
    assert order.index("curator.project") < order.index("PySide6")
    for unused in ("curator.scan", "curator.walk", "indexing.media", "curator.pipeline",
                   "ui.dialogs", "ui.map_view", "ui.panels", "ui.preview"):
        assert unused not in modules, unused


def test_later_tabs_are_built_in_place_when_first_shown(qtbot):
    from ui.main_window import MainWindow
    from ui.map_view import MapView
    from ui.panels import ReportPanel

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    titles = [win.tabs.tabText(i) for i in range(win.tabs.count())]
    assert titles == ["Queue", "Group", "Map", "Duplicates", "Suspects", "Audit", "Report"]
    assert win.built("map") is None and not isinstance(win.tabs.widget(2), MapView)
    win.tabs.setCurrentIndex(0)
    changes: list[int] = []
    win.tabs.currentChanged.connect(changes.append)
    report = win.report  # read before it is shown: built, the current tab stays
    assert isinstance(report, ReportPanel) and win.tabs.widget(6) is report
    assert win.tabs.currentIndex() == 0 and changes == []
    win.tabs.setCurrentIndex(2)  # View ▸ Map (Ctrl+3)
    assert isinstance(win.tabs.widget(2), MapView) and win.tabs.currentWidget() is win.map
    assert win.tabs.tabText(2) == "Map" and win.is_current("map") and changes == [2]
    assert win.map is win.tabs.widget(2)  # built once
    win.close()


def test_a_saved_map_tab_and_colouring_come_back(qtbot):
    from ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.tabs.setCurrentIndex(2)
    at = win.map.colour_by.findData("group")
    assert at >= 0
    win.map.colour_by.setCurrentIndex(at)
    win.close()  # saves the layout
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.tabs.currentIndex() == 2 and again.built("map") is not None
    assert again.map.colour_by.currentData() == "group"
    again.close()


def test_first_start_page_shows_what_the_model_check_found(qtbot, monkeypatch):
    from curator.pipeline import IndexOptions
    from ui.main_window import MainWindow

    notes = ["no weights for ViT-B-32/openai (image) on this machine: Index… embeds image with "
             "the weight-free classic embedder; `curator doctor` says how to add weights",
             "audio: using clap-htsat (weights found locally)"]
    purposes: list[str] = []

    def check(self, purpose="this run"):
        purposes.append(purpose)
        return self.with_overrides(model="classic"), list(notes)

    monkeypatch.setattr(IndexOptions, "with_models_here", check)
    win = MainWindow()  # a first start: no models chosen yet
    qtbot.addWidget(win)
    win.show()
    page = win.welcome
    qtbot.waitUntil(lambda: "Looking for model weights" in page.defaults.text(), timeout=TIMEOUT)
    assert not page.notes.isVisible()
    qtbot.waitUntil(lambda: page.notes.isVisible(), timeout=TIMEOUT)
    assert purposes == ["Index…"]
    assert "classic image/video model" in page.defaults.text()
    assert page.notes.text().splitlines() == notes
    assert win.model_check.notes == notes
    win.close()


def test_first_start_page_says_when_the_model_check_failed(qtbot, monkeypatch):
    from curator.pipeline import IndexOptions
    from ui.main_window import MainWindow

    def check(self, purpose="this run"):
        raise OSError("model cache folder unreadable")

    monkeypatch.setattr(IndexOptions, "with_models_here", check)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.welcome.notes.isVisible(), timeout=TIMEOUT)
    assert "could not look for model weights" in win.welcome.notes.text()
    assert "model cache folder unreadable" in win.welcome.notes.text()
    assert win.models_checked  # Index… still starts, from the unchecked options
    win.close()


def test_welcome_names_the_models_chosen_before_without_building_the_options(qtbot):
    from ui import settings as app_settings
    from ui.main_window import MainWindow

    app_settings.set_value("index/model", "classic")
    app_settings.set_value("index/audio_model", "clap-test")
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: "clap-test audio model" in win.welcome.defaults.text(),
                    timeout=TIMEOUT)
    assert "classic image/video model" in win.welcome.defaults.text()
    assert win.model_check._options is None  # nothing imported the pipeline for this
    assert win.index_options.audio_model == "clap-test"  # Index… starts from that choice
    win.close()
