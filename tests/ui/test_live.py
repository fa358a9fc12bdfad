"""A live app: what another process commits (CLI labels, taxonomy, a new run, a map) shows in
the open window without reopening; the Edit menu names what Undo and Redo would do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

TIMEOUT = 20000
ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    """Run the real CLI in a second process, as a user in a terminal would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "curator.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_changes_from_another_process_show_without_reopening(window, qtbot, project_dir):
    win = window
    assert win.session.external is not None
    cli("labels", "add", project_dir, "cat", "--hotkey", "7", "--annotator", "cli")
    qtbot.waitUntil(lambda: any(lab.name == "cat" and lab.hotkey == "7"
                                for lab in win.group.labels), timeout=TIMEOUT)

    gid = win.queue.model.groups()[0].group_id
    cli("label", project_dir, "--group", gid, "--label", "cat", "--annotator", "cli")
    qtbot.waitUntil(lambda: {g.group_id: (g.status, g.label) for g in win.queue.model.groups()}
                    .get(gid) == ("labelled", "cat"), timeout=TIMEOUT)

    # The group on screen follows a relabel made elsewhere.
    win.open_group(gid)
    qtbot.waitUntil(lambda: win.group.group_id == gid and win.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    cli("labels", "rename", project_dir, "cat", "feline", "--annotator", "cli")
    qtbot.waitUntil(lambda: any(lab.name == "feline" for lab in win.group.labels),
                    timeout=TIMEOUT)
    qtbot.waitUntil(lambda: {g.group_id: g.label for g in win.queue.model.groups()}.get(gid)
                    == "feline", timeout=TIMEOUT)

    old_run = win.queue.run_id
    out = cli("cluster", project_dir, "--groups", "3")
    qtbot.waitUntil(lambda: win.queue.run_id not in (None, old_run), timeout=TIMEOUT)
    assert f"clustering run {win.queue.run_id}" in out
    # The labelled items keep their decision in the new run's groups.
    qtbot.waitUntil(lambda: any(g.label == "feline" for g in win.queue.model.groups()) or
                    any(g.label == "feline" for g in _all_groups(project_dir)), timeout=TIMEOUT)

    win.tabs.setCurrentWidget(win.map)
    qtbot.waitUntil(lambda: win.map.state == "ready", timeout=TIMEOUT)
    loads = []
    original = win.map.load
    win.map.load = lambda: (loads.append(1), original())
    cli("map", project_dir)
    qtbot.waitUntil(lambda: bool(loads) and win.map.state == "ready", timeout=TIMEOUT)


def _all_groups(project_dir):
    from curator.project import Project

    with Project.open(project_dir) as p:
        return p.groups()


def test_edit_menu_names_what_undo_and_redo_do(window, qtbot, project_dir):
    win = window
    cli("labels", "add", project_dir, "red", "--hotkey", "1")
    qtbot.waitUntil(lambda: any(lab.name == "red" for lab in win.group.labels), timeout=TIMEOUT)
    gid = next(g.group_id for g in win.queue.model.groups() if g.size >= 2)
    win.open_group(gid)
    qtbot.waitUntil(lambda: win.group.group_id == gid and win.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    size = win.group.model.rowCount()
    qtbot.keyClick(win.group.grid, Qt.Key_1)
    qtbot.waitUntil(lambda: win.undo_action.text().startswith(
        f"Undo label 'red' on {size} items of group {gid}"), timeout=TIMEOUT)
    win.undo()
    qtbot.waitUntil(lambda: win.redo_action.text().startswith(
        f"Redo label 'red' on {size} items of group {gid}"), timeout=TIMEOUT)
