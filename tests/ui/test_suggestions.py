"""Suggested labels in the app: a queue column, the group view's line, and Enter to accept."""

from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt

from tests.helpers.app import TIMEOUT, opened, settle


def _decide_one_group(project_dir) -> str:
    with opened(project_dir) as p:
        for name in ("red", "green", "blue", "yellow", "sounds"):
            p.add_label(name)
        g = max(p.groups(), key=lambda g: g.size)
        folder = Counter(p.item(i)["path"].split("/")[0] for i in p.group(g.group_id).items)
        label = folder.most_common(1)[0][0]
        p.label_group(g.group_id, label)
    return label


def test_queue_shows_suggestions_and_enter_accepts_one(window, qtbot, project_dir):
    _decide_one_group(project_dir)
    window.reload_labels()
    window.queue.reload()
    column = window.queue.model.COLUMNS.index("suggestion")
    assert window.queue.model.HEADERS[column] == "Suggestion"

    def suggested_rows():
        m = window.queue.model
        return [m.group_at(r).group_id for r in range(m.rowCount())
                if m.index(r, column).data()]

    qtbot.waitUntil(lambda: bool(suggested_rows()), timeout=TIMEOUT)
    gid = suggested_rows()[0]
    expected = window.queue.suggestions[gid]
    window.open_group(gid)
    qtbot.waitUntil(lambda: window.group.group_id == gid and window.group.suggestion is not None,
                    timeout=TIMEOUT)
    assert "Enter accepts" in window.group.details.text()
    qtbot.keyClick(window.group.grid, Qt.Key_Return)
    settle(qtbot, window)
    with opened(project_dir) as p:
        decided = next(g for g in p.groups() if g.group_id == gid)
        assert decided.status == "labelled" and decided.label == expected.label
        assert p.history()[0].group_id == gid  # one ordinary, undoable group decision
