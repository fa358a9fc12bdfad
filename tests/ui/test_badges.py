"""Labels visible on every tile, and a bulk label of a temporary group asks once first."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QMessageBox, QStyleOptionViewItem

from tests.helpers.app import TIMEOUT, opened


def test_tiles_carry_a_badge_with_the_label_colour_and_name(window, qtbot, project_dir):
    win = window
    with opened(project_dir) as p:
        p.add_label("red disc", hotkey="3", colour="#ff0000")
        ids = [r["id"] for r in p.items()]
        p.label_items(ids[:3], "red disc")
        p.label_items(ids[3:4], action="noise")
    win.open_items("selection", ids[:6])
    qtbot.waitUntil(lambda: len(win.group.model.badges) == 4, timeout=TIMEOUT)
    model = win.group.model
    assert model.badge(0) == ("labelled", "red disc", "#ff0000")
    assert model.badge(3)[0] == "noise" and model.badge(4) is None
    # The delegate paints the label's colour at the tile's bottom edge.
    image = QImage(140, 140, QImage.Format_ARGB32)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 136, 136)
    win.group.grid.itemDelegate().paint(painter, option, model.index(0))
    painter.end()
    assert QColor(image.pixel(5, 130)) == QColor("#ff0000")
    # A label made elsewhere shows on the open tiles without reopening.
    with opened(project_dir) as p:
        p.add_label("blue", colour="#0000ff")
        p.label_items(ids[4:5], "blue")
    qtbot.waitUntil(lambda: model.badge(4) == ("labelled", "blue", "#0000ff"), timeout=TIMEOUT)
    assert "labelled 'blue'" in model.data(model.index(4), Qt.ToolTipRole)


def test_labelling_many_search_results_asks_once_with_the_count(window, qtbot, project_dir,
                                                                monkeypatch):
    win = window
    with opened(project_dir) as p:
        p.add_label("cat", hotkey="7")
        p.add_label("dog", hotkey="8")
        ids = [r["id"] for r in p.items()]
        p.label_items(ids[:2], "dog")
    win.reload_labels()
    qtbot.waitUntil(lambda: any(lab.name == "cat" for lab in win.group.labels), timeout=TIMEOUT)
    win.group.BULK_GUARD = 4
    asked = []
    answer = [QMessageBox.No]
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: (asked.append(a[2]), answer[0])[1])
    win.open_items("Like item 1", ids[:8])
    qtbot.waitUntil(lambda: len(win.group.model.badges) == 2, timeout=TIMEOUT)
    qtbot.keyClick(win.group.grid, Qt.Key_7)
    assert len(asked) == 1
    assert "Label all 8 items" in asked[0] and "2 of them already carry another label" in asked[0]
    win.session.wait()
    with opened(project_dir) as p:
        assert p.labels()[0].count == 0  # cat: nothing labelled after "No"
    answer[0] = QMessageBox.Yes
    qtbot.keyClick(win.group.grid, Qt.Key_7)
    assert len(asked) == 2
    qtbot.waitUntil(lambda: win.group.model.badge(7) is not None, timeout=TIMEOUT)
    with opened(project_dir) as p:
        counts = {lab.name: lab.count for lab in p.labels()}
        assert counts == {"cat": 8, "dog": 0}
        event = p.history(limit=1)[0]
        assert "relabelling 2 that carried another label" in p.describe_event(event.id)
    # A small temporary group is labelled without asking.
    win.open_items("selection", ids[8:10])
    qtbot.keyClick(win.group.grid, Qt.Key_8)
    win.session.wait()
    assert len(asked) == 2


def test_an_open_preview_follows_j_and_k(window, qtbot):
    win = window
    gids = [g.group_id for g in win.queue.model.groups()]
    win.open_group(gids[0])
    qtbot.waitUntil(lambda: win.group.group_id == gids[0] and win.group._loading is None
                    and win.group.model.rowCount() > 0, timeout=TIMEOUT)
    win.preview_item(win.group.current_item())
    first = win.preview_window().pane.item_id
    qtbot.keyClick(win.group.grid, Qt.Key_J)
    qtbot.waitUntil(lambda: win.group.group_id == gids[1] and win.group._loading is None
                    and win.group.model.rowCount() > 0, timeout=TIMEOUT)
    members = set(win.group.model.ids())
    qtbot.waitUntil(lambda: win.preview_window().pane.item_id in members, timeout=TIMEOUT)
    assert first not in members  # the preview left the old group's item
    win.preview_window().close()
