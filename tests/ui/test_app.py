"""The desktop app end to end on a small real project: queue, hotkeys with exclusions, undo/redo,
split, search, map and lasso, preview, window state, indexing, and errors shown to the user."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication, QDialog, QLabel

from tests.helpers.app import TIMEOUT, opened, settle


def add_labels(qtbot, win, project_dir, names=(("red", "1"), ("green", "2"), ("blue", "3"))):
    with opened(project_dir) as p:
        for name, key in names:
            p.add_label(name, hotkey=key)
    win.reload_labels()
    qtbot.waitUntil(lambda: len(win.group.labels) == len(names), timeout=TIMEOUT)


def item_labels(project_dir):
    with opened(project_dir) as p:
        return {r[0]: (r[1], r[2]) for r in p.catalog.db.execute(
            "SELECT il.item_id, il.state, l.name FROM item_labels il LEFT JOIN labels l "
            "ON l.id = il.label_id")}


def label_events(project_dir):
    with opened(project_dir) as p:
        return [dict(r) for r in p.catalog.db.query(
            "SELECT * FROM events WHERE source != 'taxonomy' ORDER BY id")]


def open_first_group(qtbot, win, min_size=2):
    gid = next(g.group_id for g in win.queue.model.groups() if g.size >= min_size)
    win.open_group(gid)
    qtbot.waitUntil(lambda: win.group.group_id == gid and win.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    return gid


def test_open_project_shows_queue_with_progress(window, qtbot, project_dir):
    with opened(project_dir) as p:
        groups = p.groups()
        queue = p.queue()
    assert window.queue.model.rowCount() == len(groups) > 0
    assert window.queue.order_ids() == [g.group_id for g in groups]  # the facade's order
    assert window.queue.groups_bar.maximum() == queue.groups_total
    # The item counts follow the rows in their own read.
    qtbot.waitUntil(lambda: window.queue.items_bar.maximum() == queue.items_total,
                    timeout=TIMEOUT)
    from ui.settings import recent_projects

    assert str(project_dir) in recent_projects()


def test_queue_filters_go_through_the_facade(window, qtbot, project_dir):
    gid = window.queue.model.groups()[0].group_id
    with opened(project_dir) as p:
        p.label_group(gid, action="noise")
    window.queue.status_filter.setCurrentIndex(window.queue.status_filter.findData("undecided"))
    qtbot.waitUntil(lambda: gid not in window.queue.order_ids() and
                    window.queue.model.rowCount() > 0, timeout=TIMEOUT)
    assert all(g.status == "undecided" for g in window.queue.model.groups())


def test_walk_queue_with_j_and_k(window, qtbot):
    ids = window.queue.order_ids()
    assert len(ids) >= 3
    window.open_group(ids[0])
    qtbot.waitUntil(lambda: window.group.model.rowCount() > 0, timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_J)
    qtbot.waitUntil(lambda: window.group.group_id == ids[1], timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_J)
    qtbot.waitUntil(lambda: window.group.group_id == ids[2], timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_K)
    qtbot.waitUntil(lambda: window.group.group_id == ids[1], timeout=TIMEOUT)
    assert window.queue.current_group() == ids[1]


def test_hotkey_labels_group_minus_exclusions_then_undo_redo(window, qtbot, project_dir):
    win = window
    add_labels(qtbot, win, project_dir)
    gid = open_first_group(qtbot, win)
    members = win.group.model.ids()
    excluded = members[1]
    grid = win.group.grid
    grid.setCurrentIndex(win.group.model.index(1))
    qtbot.keyClick(grid, Qt.Key_X)
    assert win.group.model.excluded == {excluded}
    before = len(label_events(project_dir))

    qtbot.keyClick(grid, Qt.Key_1)
    qtbot.waitUntil(lambda: win.group.group_id not in (None, gid), timeout=TIMEOUT)
    settle(qtbot, window)
    labels = item_labels(project_dir)
    assert excluded not in labels
    assert all(labels[i] == ("labelled", "red") for i in members if i != excluded)
    events = label_events(project_dir)
    assert len(events) == before + 1
    assert events[-1]["group_id"] == gid and events[-1]["item_count"] == len(members) - 1
    # The view moved on to an undecided group.
    statuses = {g.group_id: g.status for g in win.queue.model.groups()}
    assert statuses[gid] == "labelled"
    assert statuses[win.group.group_id] == "undecided"

    win.activateWindow()
    qtbot.keyClick(grid, Qt.Key_Z, Qt.ControlModifier)
    qtbot.waitUntil(lambda: not any(i in item_labels(project_dir) for i in members),
                    timeout=TIMEOUT)
    qtbot.keyClick(grid, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: item_labels(project_dir).get(members[0]) == ("labelled", "red"),
                    timeout=TIMEOUT)
    qtbot.keyClick(grid, Qt.Key_Z, Qt.ControlModifier)
    qtbot.waitUntil(lambda: members[0] not in item_labels(project_dir), timeout=TIMEOUT)
    qtbot.keyClick(grid, Qt.Key_Y, Qt.ControlModifier)
    qtbot.waitUntil(lambda: item_labels(project_dir).get(members[0]) == ("labelled", "red"),
                    timeout=TIMEOUT)
    settle(qtbot, window)
    assert excluded not in item_labels(project_dir)
    with opened(project_dir) as p:
        assert [g.status for g in p.groups() if g.group_id == gid] == ["labelled"]


def test_noise_and_mixed_keys(window, qtbot, project_dir):
    ids = [g.group_id for g in window.queue.model.groups() if g.size >= 1][:2]
    window.open_group(ids[0])
    qtbot.waitUntil(lambda: window.group.model.rowCount() > 0, timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_N, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: window.group.group_id != ids[0], timeout=TIMEOUT)
    settle(qtbot, window)
    window.open_group(ids[1])
    qtbot.waitUntil(lambda: window.group.group_id == ids[1] and
                    window.group.model.rowCount() > 0, timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_M, Qt.ShiftModifier)
    settle(qtbot, window)
    with opened(project_dir) as p:
        status = {g.group_id: g.status for g in p.groups()}
    assert status[ids[0]] == "noise" and status[ids[1]] == "mixed"


def test_label_only_selected_items_with_alt_hotkey(window, qtbot, project_dir):
    add_labels(qtbot, window, project_dir)
    gid = open_first_group(qtbot, window)
    grid = window.group.grid
    from PySide6.QtCore import QItemSelectionModel

    grid.selectionModel().select(window.group.model.index(0), QItemSelectionModel.ClearAndSelect)
    chosen = window.group.selected_items()
    assert len(chosen) == 1
    qtbot.keyClick(grid, Qt.Key_2, Qt.AltModifier)
    qtbot.waitUntil(lambda: item_labels(project_dir).get(chosen[0]) == ("labelled", "green"),
                    timeout=TIMEOUT)
    settle(qtbot, window)
    others = [i for i in window.group.model.ids() if i not in chosen]
    labels = item_labels(project_dir)
    assert not any(i in labels for i in others)
    assert window.group.group_id == gid  # labelling a selection does not move on
    assert label_events(project_dir)[-1]["source"] == "manual"


def test_split_with_shift_s(window, qtbot, project_dir, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    asked = []
    monkeypatch.setattr(QInputDialog, "getInt",
                        staticmethod(lambda *a, **k: (asked.append(a) or (2, True))))
    gid = open_first_group(qtbot, window, min_size=3)
    size = window.group.model.rowCount()
    qtbot.keyClick(window.group.grid, Qt.Key_S, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: window.group.group_id not in (None, gid), timeout=TIMEOUT)
    settle(qtbot, window)
    assert asked and asked[0][3] == 2  # the dialog's default k is 2
    with opened(project_dir) as p:
        everything = p.groups(include_inactive=True)
    states = {g.group_id: g.state for g in everything}
    children = [g for g in everything if g.parent == gid]
    assert states[gid] == "split"
    assert len(children) == 2 and sum(g.size for g in children) == size
    assert window.group.group_id in {g.group_id for g in children}
    assert gid not in window.queue.order_ids()


def test_merge_with_shift_g(window, qtbot, project_dir, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    ids = window.queue.order_ids()
    offered = []
    monkeypatch.setattr(QInputDialog, "getItem",
                        staticmethod(lambda parent, title, text, items, *a, **k:
                                     (offered.extend(items) or items[0], True)))
    window.open_group(ids[1])
    qtbot.waitUntil(lambda: window.group.group_id == ids[1] and
                    window.group.model.rowCount() > 0, timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_G, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: window.group.group_id not in ids, timeout=TIMEOUT)
    settle(qtbot, window)
    with opened(project_dir) as p:
        states = {g.group_id: g.state for g in p.groups(include_inactive=True)}
    assert states[ids[0]] == states[ids[1]] == "merged"
    assert offered[0].startswith(f"group {ids[0]} ") and len(offered) == len(ids) - 1


def test_search_like_shows_temporary_group_labelled_manually(window, qtbot, project_dir):
    add_labels(qtbot, window, project_dir)
    with opened(project_dir) as p:
        red = next(i["id"] for i in p.items(modality="image") if "red" in i["path"])
    window.search_like(red, k=3)
    qtbot.waitUntil(lambda: window.group.is_temporary and window.group.model.rowCount() == 3,
                    timeout=TIMEOUT)
    hits = window.group.model.ids()
    assert red not in hits  # the query item itself is not a result
    with opened(project_dir) as p:
        paths = {i: p.item(i)["path"] for i in hits}
    assert all("red" in path for path in paths.values())  # nearest neighbours share the colour
    qtbot.keyClick(window.group.grid, Qt.Key_1)
    qtbot.waitUntil(lambda: all(item_labels(project_dir).get(i) == ("labelled", "red")
                                for i in hits), timeout=TIMEOUT)
    settle(qtbot, window)
    event = label_events(project_dir)[-1]
    assert event["source"] == "manual" and event["item_count"] == 3
    assert window.group.is_temporary  # stays on the results


def test_text_search_without_text_tower_says_so(window, qtbot):
    window.search_box.setText("a red car")
    qtbot.keyClick(window.search_box, Qt.Key_Return)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=TIMEOUT)
    assert "text tower" in window.banner.text.text()
    assert "Ctrl+L" in window.banner.text.text() and "--like" not in window.banner.text.text()
    assert not window.banner.details_button.isVisible()  # a user error, not a crash


def _send_mouse(widget, kind, pos, buttons):
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons,
                        Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def test_map_is_drawn_and_a_lasso_selection_is_labelled(window, qtbot, project_dir):
    add_labels(qtbot, window, project_dir)
    window.tabs.setCurrentWidget(window.map)
    canvas = window.map.canvas
    qtbot.waitUntil(lambda: canvas.data is not None and canvas._image is not None and
                    not canvas.busy, timeout=TIMEOUT)
    image = canvas.grab().toImage()
    background = QColor(24, 24, 28).rgb()
    drawn = sum(1 for y in range(0, image.height(), 2) for x in range(0, image.width(), 2)
                if image.pixel(x, y) != background)
    assert drawn > 10
    with opened(project_dir) as p:
        ids, _ = p.map()
    assert len(canvas.data.ids) == len(ids)

    window.map.lasso_button.setChecked(True)
    w, h = canvas.width(), canvas.height()
    corners = [(2, 2), (w - 2, 2), (w - 2, h - 2), (2, h - 2)]
    _send_mouse(canvas, QEvent.MouseButtonPress, QPointF(*corners[0]), Qt.LeftButton)
    for c in corners[1:]:
        _send_mouse(canvas, QEvent.MouseMove, QPointF(*c), Qt.LeftButton)
    _send_mouse(canvas, QEvent.MouseButtonRelease, QPointF(*corners[-1]), Qt.NoButton)
    qtbot.waitUntil(lambda: len(canvas.selected_ids()) == len(ids), timeout=TIMEOUT)
    assert window.map.label_button.isEnabled()
    before = len(label_events(project_dir))
    window.map.label_selection("blue")
    qtbot.waitUntil(lambda: len(label_events(project_dir)) == before + 1, timeout=TIMEOUT)
    settle(qtbot, window)
    labels = item_labels(project_dir)
    assert all(labels.get(int(i)) == ("labelled", "blue") for i in ids)
    assert label_events(project_dir)[-1]["item_count"] == len(ids)


def test_map_zoom_and_pan_keep_rendering(window, qtbot):
    window.tabs.setCurrentWidget(window.map)
    canvas = window.map.canvas
    qtbot.waitUntil(lambda: canvas.data is not None and canvas._image is not None and
                    not canvas.busy, timeout=TIMEOUT)
    first = canvas.view
    canvas.zoom(4.0)
    canvas.pan_pixels(30, -20)
    assert canvas.view.width == pytest.approx(first.width / 4)
    qtbot.waitUntil(lambda: canvas._image_view == canvas.view or not canvas.busy,
                    timeout=TIMEOUT)
    canvas.fit()
    qtbot.waitUntil(lambda: not canvas.busy, timeout=TIMEOUT)
    assert canvas.view.width == pytest.approx(first.width, rel=0.01)


def test_space_previews_item_with_facts_and_history(window, qtbot, project_dir):
    add_labels(qtbot, window, project_dir)
    open_first_group(qtbot, window)
    item = window.group.model.item_at(0)
    with opened(project_dir) as p:
        p.label_items([item], "green")
    window.group.grid.setCurrentIndex(window.group.model.index(0))
    qtbot.keyClick(window.group.grid, Qt.Key_Space)
    preview = window.preview_window()
    qtbot.waitUntil(lambda: preview.isVisible() and preview.pane.item.get("id") == item,
                    timeout=TIMEOUT)
    pane = preview.pane
    assert pane.path_label.text().endswith(pane.item["path"])
    history = [pane.history_list.item(i).text() for i in range(pane.history_list.count())]
    assert any("green" in line for line in history)
    preview.close()


def test_window_state_and_thumbnail_size_are_restored(qtbot, project_dir):
    from ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.resize(700, 500)
    win.group.set_icon_size(200)
    win.tabs.setCurrentIndex(2)
    win.close()
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.group.model.icon_size == 200
    assert again.tabs.currentIndex() == 2
    assert (again.width(), again.height()) == (700, 500)
    again.close()


def test_thumbnail_size_keys(window, qtbot):
    open_first_group(qtbot, window)
    size = window.group.model.icon_size
    qtbot.keyClick(window.group.grid, Qt.Key_Equal, Qt.ControlModifier)
    assert window.group.model.icon_size > size
    qtbot.keyClick(window.group.grid, Qt.Key_Minus, Qt.ControlModifier)
    qtbot.keyClick(window.group.grid, Qt.Key_Minus, Qt.ControlModifier)
    assert window.group.model.icon_size < size


def test_grid_shows_placeholders_then_thumbnails(window, qtbot):
    from ui.models import MARKS_ROLE

    window.thumbs.clear()
    open_first_group(qtbot, window)
    model = window.group.model
    qtbot.waitUntil(lambda: all(not model.index(r).data(MARKS_ROLE)["loading"]
                                for r in range(model.rowCount())), timeout=TIMEOUT)
    pix = model.index(0).data(Qt.DecorationRole)
    image = window.thumbs.image(model.item_at(0))
    assert image is not None and not pix.isNull()
    assert max(pix.width(), pix.height()) == model.icon_size  # scaled once to the tile
    assert abs(pix.width() / pix.height() - image.width() / image.height()) < 0.05
    marks = model.index(0).data(MARKS_ROLE)
    assert marks["representative"]  # representatives come first


def test_unexpected_worker_error_is_shown_in_the_banner(window, qtbot):
    def broken(project):
        raise RuntimeError("the disk caught fire")

    window.session.read(broken)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=TIMEOUT)
    assert "the disk caught fire" in window.banner.text.text()
    assert "Unexpected" in window.banner.text.text()
    assert window.banner.details_button.isVisible()
    assert "RuntimeError" in window.banner.details


def test_opening_a_folder_that_is_no_project_says_so(qtbot, tmp_path):
    from ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_project(str(tmp_path / "nothing-here"))
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=TIMEOUT)
    # The app's own wording: the way to the fix in the app, no command line.
    assert "New project" in win.banner.text.text()
    assert "curator" not in win.banner.text.text().replace(str(tmp_path), "")
    assert not win.session.is_open
    win.close()


def test_indexing_from_the_window_then_cancel(qtbot, project_template, tmp_path):
    from curator.pipeline import IndexOptions
    from ui.main_window import MainWindow

    media = project_template.parent / "media"
    win = MainWindow()
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.session.opened, timeout=TIMEOUT):
        win.session.open(str(tmp_path / "fresh"), create_sources=[str(media)])
    with qtbot.waitSignal(win.jobs.done, timeout=120000) as done:
        win.start_indexing(IndexOptions("classic", "classic", n_groups=3, build_map=False))
    assert done.args == [True]
    qtbot.waitUntil(lambda: win.queue.model.rowCount() >= 3, timeout=TIMEOUT)
    assert "done" in win.jobs.stage.text()

    with qtbot.waitSignal(win.jobs.done, timeout=60000) as cancelled:
        worker = win.start_indexing(IndexOptions("classic", "classic", n_groups=3))
        worker.cancel()
    assert cancelled.args == [False]
    assert "Cancelled" in win.jobs.stage.text()
    settle(qtbot, win)
    win.close()


def test_duplicates_found_then_accepted_as_one_undoable_event(window, qtbot, project_dir,
                                                              monkeypatch):

    window.tabs.setCurrentWidget(window.duplicates)
    panel = window.duplicates
    panel.threshold.setValue(0.8)  # the test images of one colour are near duplicates
    panel.find()
    qtbot.waitUntil(lambda: panel.accept_button.isEnabled(), timeout=TIMEOUT)
    assert panel.sets and all(s["keeper"] in s["items"] for s in panel.sets)
    non_keepers = panel.non_keepers()
    keepers = {s["keeper"] for s in panel.sets}
    assert non_keepers and not keepers & set(non_keepers)
    before = len(label_events(project_dir))
    panel.accept_all()
    qtbot.waitUntil(lambda: len(label_events(project_dir)) == before + 1, timeout=TIMEOUT)
    labels = item_labels(project_dir)
    assert all(labels.get(i) == ("duplicate", None) for i in non_keepers)  # never noise
    # Each copy shows its similarity to the keeper beside both thumbnails.
    qtbot.waitUntil(lambda: all(panel._nodes[i].text(1) for i in non_keepers), timeout=TIMEOUT)
    texts = [panel._nodes[i].text(1) for i in non_keepers]
    # (a set chains pairs at >= 0.8, so a copy may sit a little further from the keeper itself)
    assert all(t.startswith("similarity ") and 0.5 <= float(t.split()[1]) <= 1.0001
               for t in texts), texts
    assert not any(k in labels for k in keepers)
    assert label_events(project_dir)[-1]["item_count"] == len(non_keepers)
    window.undo()
    qtbot.waitUntil(lambda: not any(i in item_labels(project_dir) for i in non_keepers),
                    timeout=TIMEOUT)
    settle(qtbot, window)


def test_duplicate_sets_from_any_shape(window):
    panel = window.duplicates
    panel.show_sets([{"kind": "near", "items": [5, 6, 7], "keeper": 6},
                     {"kind": "exact", "items": [8, 9], "keeper": 9}])
    assert panel.non_keepers() == [5, 7, 8]
    assert panel.tree.topLevelItemCount() == 2


def test_export_dialog_runs_an_export_job(window, qtbot, project_dir, monkeypatch, tmp_path):
    import ui.dialogs  # the window imports its dialogs when first used

    out = tmp_path / "exported"

    class Filled(ui.dialogs.ExportDialog):
        def exec(self):
            self.format.setCurrentText("jsonl")
            self.out.setText(str(out))
            self.split.setText("train=0.5,val=0.5")
            return QDialog.Accepted

    monkeypatch.setattr(ui.dialogs, "ExportDialog", Filled)
    with qtbot.waitSignal(window.jobs.done, timeout=60000) as done:
        window.export_dialog()
    assert done.args == [True]
    assert (out / "manifest.json").exists()
    lines = [line for f in out.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(lines) >= 16
    settle(qtbot, window)


def test_report_panel_shows_the_coverage_report(window, qtbot, monkeypatch):

    window.tabs.setCurrentWidget(window.report)
    qtbot.waitUntil(lambda: window.report.browser.toPlainText().strip() != "", timeout=TIMEOUT)
    text = window.report.browser.toPlainText().lower()
    assert "label" in text
    settle(qtbot, window)


def test_taxonomy_editor_adds_and_edits_labels(window, qtbot, project_dir, monkeypatch):
    import ui.dialogs as dialogs

    answers = iter([{"name": "cat", "parent": "", "colour": "#112233", "hotkey": "c",
                     "description": "felines"},
                    {"name": "kitten", "parent": "", "colour": "#112233", "hotkey": "v",
                     "description": "felines"}])

    class FakeDialog:
        def __init__(self, *a, **k):
            self._values = next(answers)

        def exec(self):
            return QDialog.Accepted

        def values(self):
            return self._values

    monkeypatch.setattr(dialogs, "LabelDialog", FakeDialog)
    window.taxonomy_dialog()
    editor = window._taxonomy
    editor.add()
    qtbot.waitUntil(lambda: editor.tree.topLevelItemCount() == 1, timeout=TIMEOUT)
    editor.tree.setCurrentItem(editor.tree.topLevelItem(0))
    editor.edit_selected()
    qtbot.waitUntil(lambda: editor.tree.topLevelItemCount() == 1 and
                    editor.tree.topLevelItem(0).text(0) == "kitten", timeout=TIMEOUT)
    with opened(project_dir) as p:
        (label,) = p.labels()
    assert (label.name, label.hotkey, label.colour) == ("kitten", "v", "#112233")
    qtbot.waitUntil(lambda: [lab.name for lab in window.group.labels] == ["kitten"],
                    timeout=TIMEOUT)
    editor.close()


def test_audit_records_verdicts(window, qtbot, project_dir):
    add_labels(qtbot, window, project_dir)
    with opened(project_dir) as p:
        ids = [i["id"] for i in p.items(modality="image")][:6]
        p.label_items(ids, "red")
    window.tabs.setCurrentWidget(window.audit)
    panel = window.audit
    panel.size.setValue(3)
    panel.start()
    qtbot.waitUntil(lambda: panel.current is not None, timeout=TIMEOUT)
    first = panel.current["item_id"]
    panel.verdict("correct")
    qtbot.waitUntil(lambda: panel.current is not None and panel.current["item_id"] != first,
                    timeout=TIMEOUT)
    settle(qtbot, window)
    with opened(project_dir) as p:
        report = p.audit_report(panel.audit_id)
    assert report.reviewed == 1
    assert "Reviewed 1 of 3" in panel.estimate.text()


def test_audio_preview_without_a_sound_device_still_shows(window, qtbot, project_dir):
    with opened(project_dir) as p:
        audio = next(i["id"] for i in p.items(modality="audio"))
    window.preview_item(audio)
    preview = window.preview_window()
    pane = preview.pane
    qtbot.waitUntil(lambda: pane.item.get("id") == audio, timeout=TIMEOUT)
    assert pane.stage.currentWidget() is pane.media
    assert pane.media.player is not None  # playback is ready (silent without a device)
    from PySide6.QtMultimedia import QMediaDevices

    if not QMediaDevices.audioOutputs():
        assert "No sound device" in pane.media.note.text()
    qtbot.waitUntil(lambda: pane.media.spectrogram.spectrogram is not None, timeout=TIMEOUT)
    assert pane.media.spectrogram.time_labels() and pane.media.spectrogram.freq_labels()
    assert any(label.text() == "sample_rate" for label in pane.findChildren(QLabel))
    preview.close()


def test_project_opens_while_another_process_is_writing(qtbot, project_dir):
    """The CLI indexing elsewhere holds the write lock: the window still opens and reads (WAL)."""
    import sqlite3

    from ui.main_window import MainWindow

    writer = sqlite3.connect(str(project_dir / "catalog.db"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO meta (key, value) VALUES ('busy-elsewhere', '1')")
    try:
        win = MainWindow()
        qtbot.addWidget(win)
        win.show()
        with qtbot.waitSignal(win.project_ready, timeout=10000):
            win.open_project(str(project_dir))
        assert win.queue.model.rowCount() > 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    win.close()


def test_new_project_dialog_creates_the_project(qtbot, project_template, tmp_path, monkeypatch):
    import ui.dialogs  # the window imports its dialogs when first used
    import ui.main_window as main_window
    from ui.dialogs import NewProjectDialog

    media = project_template.parent / "media"
    target = tmp_path / "created"

    class Filled(NewProjectDialog):
        def exec(self):
            self.folder.setText(str(target))
            self.add_source(str(media))
            self.form.model.setCurrentText("classic")
            self.form.audio_model.setCurrentText("classic")
            self.index_now.setChecked(False)
            self._accept()
            return self.result()

    monkeypatch.setattr(ui.dialogs, "NewProjectDialog", Filled)
    win = main_window.MainWindow()
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.session.opened, timeout=TIMEOUT):
        win.new_project()
    assert (target / "catalog.db").exists()
    assert [s.root for s in win.session.project.sources()] == [str(media)]
    assert win.index_options.model == "classic"
    win.close()


def test_suspects_found_and_a_suggestion_accepted(window, qtbot, project_dir):
    add_labels(qtbot, window, project_dir)
    with opened(project_dir) as p:
        images = p.items(modality="image")
        red = [i["id"] for i in images if i["path"].startswith("red/")]
        green = [i["id"] for i in images if i["path"].startswith("green/")]
        p.label_items(red[1:] + green[:1], "red")  # one green image wrongly labelled red
        p.label_items(green[1:], "green")
    window.tabs.setCurrentWidget(window.suspects)
    panel = window.suspects
    panel.find()
    qtbot.waitUntil(lambda: bool(panel.rows), timeout=TIMEOUT)
    wrong = next(r for r in panel.rows if r["item_id"] == green[0])
    assert wrong["suggested"] == "green"
    panel.table.selectRow(panel.rows.index(wrong))
    panel.accept_selected()
    qtbot.waitUntil(lambda: item_labels(project_dir).get(green[0]) == ("labelled", "green"),
                    timeout=TIMEOUT)
    settle(qtbot, window)
