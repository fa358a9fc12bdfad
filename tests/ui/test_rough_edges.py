"""Rough edges of the app (issue 11, finding 10): the Export dialog's default keeps every
modality, the queue gives its spare width to the label, the merge dialog offers named groups,
the group view names its topic in words."""

from __future__ import annotations

from PySide6.QtCore import Qt

TIMEOUT = 20000


def test_export_dialog_defaults_to_a_format_that_keeps_audio_and_video(qtbot):
    from curator.project import Project
    from ui.dialogs import ExportDialog

    dialog = ExportDialog(Project)  # the facade class: its export signature drives the fields
    qtbot.addWidget(dialog)
    assert dialog.format.currentText() == "jsonl"
    assert dialog.arguments()["fmt"] == "jsonl"


def test_queue_label_column_takes_the_spare_width(window, qtbot):
    window.resize(1400, 800)
    qtbot.waitUntil(lambda: window.queue.model.rowCount() > 0, timeout=TIMEOUT)
    table = window.queue.table
    cols = window.queue.model.COLUMNS
    qtbot.wait(50)
    label = table.columnWidth(cols.index("label"))
    space = table.columnWidth(cols.index("space"))
    assert label > space and label >= 150
    assert space < table.viewport().width() / 3


def test_merge_dialog_offers_groups_by_size_and_state_not_bare_numbers(window, qtbot,
                                                                       monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    offered: list[str] = []
    monkeypatch.setattr(QInputDialog, "getItem",
                        staticmethod(lambda parent, title, text, items, *a, **k:
                                     (offered.extend(items) or items[0], False)))
    gid = window.queue.order_ids()[0]
    window.open_group(gid)
    qtbot.waitUntil(lambda: window.group.group_id == gid and window.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_G, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: bool(offered), timeout=TIMEOUT)
    assert all(" items · " in text for text in offered)
    assert all(not text.strip().isdigit() for text in offered)


def test_merge_dialog_names_each_groups_topic_in_words(window, qtbot, monkeypatch):
    """Topics the queue has not named yet are read in the background before the dialog opens;
    those it has named are taken from its rows."""
    from PySide6.QtWidgets import QInputDialog

    offered: list[list[str]] = []
    monkeypatch.setattr(QInputDialog, "getItem",
                        staticmethod(lambda parent, title, text, items, *a, **k:
                                     (offered.append(list(items)) or items[0], False)))
    model = window.queue.model
    gid = window.queue.order_ids()[0]
    window.open_group(gid)
    qtbot.waitUntil(lambda: window.group.group_id == gid and window.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    window.wait_idle()
    model.topic_names.clear()  # as for rows never scrolled onto the screen
    qtbot.keyClick(window.group.grid, Qt.Key_G, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: bool(offered), timeout=TIMEOUT)
    words = ("red", "green", "blue", "yellow", "sounds")
    others = [g for g in model.groups() if g.group_id != gid
              and g.space == window.group.info.get("space")]
    assert len(offered[0]) == len(others) > 0
    for g, text in zip(others, offered[0]):
        assert text.startswith(f"group {g.group_id} · {g.size} items · ")
        assert any(w in text.rsplit(" · ", 1)[1] for w in words), text
        assert model.topic_names[g.group_id] in text  # kept for the queue's rows too
    # Named once: the next time the dialog opens from what the queue's rows hold.
    from curator.project import Project

    asked: list[int] = []
    original = Project.group_facts
    monkeypatch.setattr(Project, "group_facts",
                        lambda self, ids, *a, **k: asked.extend(ids) or original(self, ids, *a,
                                                                                 **k))
    qtbot.keyClick(window.group.grid, Qt.Key_G, Qt.ShiftModifier)
    assert len(offered) == 2 and offered[1] == offered[0]
    window.wait_idle()
    assert not set(asked) & {g.group_id for g in others}


def test_group_view_names_its_topic_in_words(window, qtbot):
    gid = window.queue.order_ids()[0]
    window.open_group(gid)
    qtbot.waitUntil(lambda: window.group.group_id == gid and window.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    colours = ("red", "green", "blue", "yellow", "sounds")
    qtbot.waitUntil(lambda: any(f"topic {c}" in window.group.details.text() for c in colours),
                    timeout=TIMEOUT)


def test_queue_shows_topics_in_words_not_numbers(window, qtbot):
    model = window.queue.model
    col = model.COLUMNS.index("topic")
    words = ("red", "green", "blue", "yellow", "sounds")

    def named() -> bool:
        texts = [model.index(r, col).data() for r in range(model.rowCount())]
        return bool(texts) and all(any(w in (t or "") for w in words) for t in texts)

    qtbot.waitUntil(named, timeout=TIMEOUT)
    window.queue.text_filter.setText("red")  # the row filter finds a topic by its words
    assert model.rowCount() > 0 and all(
        "red" in model.index(r, col).data() or "red" in (model.group_at(r).label or "")
        for r in range(model.rowCount()))
