"""The app's Index… runs the CLI's pipeline with the user's settings, not defaults of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curator.pipeline import IndexOptions


def test_index_dialog_starts_from_the_users_settings(qtbot, monkeypatch):
    Path(os.environ["CURATOR_CONFIG"]).write_text(
        'batch_size = 8\ndevice = "cpu"\nworkers = 0\noffline = true\n', encoding="utf-8")
    monkeypatch.setenv("CURATOR_MODEL", "classic")
    from ui.dialogs import IndexDialog
    from ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    # The same options `curator index` starts from; on a first start a model whose weights are
    # not on this machine falls back to classic (here: the CLAP default).
    # That look runs in the background (it imports torch); Index… waits for its answer.
    expected, _ = IndexOptions.from_settings().with_models_here()
    got: list[IndexOptions] = []
    win.with_index_options(got.append)
    qtbot.waitUntil(lambda: bool(got), timeout=120000)
    assert got == [expected] and win.index_options == expected
    assert (expected.model, expected.batch_size, expected.device, expected.workers,
            expected.offline) == ("classic", 8, "cpu", 0, True)
    dialog = IndexDialog(win.index_options, win)
    qtbot.addWidget(dialog)
    dialog.form.groups.setValue(5)
    chosen = dialog.form.options()
    # What the dialog does not show passes through from the settings unchanged.
    assert (chosen.batch_size, chosen.device, chosen.workers, chosen.offline) == (8, "cpu", 0,
                                                                                   True)
    assert chosen.n_groups == 5 and chosen.model == "classic"
    win.close()


def test_the_app_runs_the_pipeline(qtbot, project_template, tmp_path):
    """`run_indexing` is `curator.pipeline.index`: the same stages, runs and weighted progress."""
    from curator.project import Project
    from indexing.progress import CancelToken
    from ui.jobs import run_indexing

    media = project_template.parent / "media"
    events = []
    with Project.create(tmp_path / "p", [media]) as project:
        report = run_indexing(project, IndexOptions("classic", "classic", n_groups=3, workers=0),
                              progress=events.append, cancel=CancelToken())
        kinds = sorted(r.kind for r in project.runs() if r.status == "ok")
    assert kinds == ["cluster", "embed", "map", "scan"]
    assert report.embed.embedded == report.scan.new > 0
    assert events[-1].overall == pytest.approx(1.0) and events[0].stage.startswith("1/4 scan")
