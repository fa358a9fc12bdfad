"""What keeps the app quick at a million items: nothing slow on the GUI thread at start, a
decision re-reads only its own queue row, a group switch paints its thumbnails before any
follow-up work."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt, QTimer

from tests.helpers.app import TIMEOUT, opened, settle


def test_the_window_starts_without_looking_for_model_weights(qtbot, monkeypatch):
    """Looking for weights imports torch (tens of seconds): it runs in the background, and only
    when Index… needs its answer."""
    from curator.pipeline import IndexOptions
    from ui.main_window import MainWindow

    calls: list[int] = []
    release = threading.Event()

    def check(self, purpose="this run"):
        calls.append(threading.get_ident())
        release.wait(10)
        return self.with_overrides(model="classic", audio_model="classic"), ["no weights"]

    monkeypatch.setattr(IndexOptions, "with_models_here", check)
    win = MainWindow()  # a first start: no models chosen yet
    qtbot.addWidget(win)
    win.show()
    assert calls == [] and not win.models_checked
    got: list[IndexOptions] = []
    win.with_index_options(got.append)
    win.with_index_options(got.append)  # asked twice while the check runs: one check
    ticks: list[int] = []
    timer = QTimer(win)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    qtbot.waitUntil(lambda: len(calls) == 1 and len(ticks) >= 3, timeout=TIMEOUT)
    assert calls[0] != threading.get_ident()  # not on the GUI thread, which kept running
    assert got == []
    release.set()
    qtbot.waitUntil(lambda: len(got) == 2, timeout=TIMEOUT)
    assert got[0].model == got[0].audio_model == "classic" == win.index_options.model
    assert win.models_checked and len(calls) == 1
    win.with_index_options(got.append)  # checked once per window
    assert len(got) == 3 and len(calls) == 1
    timer.stop()
    win.close()


def test_the_window_is_usable_before_the_queue_read_completes(qtbot, project_dir, monkeypatch):
    from curator.project import Project
    from ui.main_window import MainWindow

    release = threading.Event()
    original = Project.groups

    def slow_groups(self, *args, **kwargs):
        release.wait(15)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "groups", slow_groups)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_project(str(project_dir))
    qtbot.waitUntil(lambda: win.session.is_open, timeout=TIMEOUT)
    assert win.queue.model.rowCount() == 0  # the queue is still being read
    # The window answers meanwhile: tabs switch, the search box takes text, another read runs.
    win.tabs.setCurrentWidget(win.map)
    assert win.tabs.currentWidget() is win.map
    qtbot.keyClicks(win.search_box, "like:1")
    assert win.search_box.text() == "like:1"
    labels: list = []
    win.session.read(lambda p: p.labels(), on_result=labels.append)
    qtbot.waitUntil(lambda: bool(labels), timeout=TIMEOUT)
    assert win.queue.model.rowCount() == 0
    release.set()
    with opened(project_dir) as p:
        expected = [g.group_id for g in original(p)]
    qtbot.waitUntil(lambda: win.queue.order_ids() == expected, timeout=TIMEOUT)
    settle(qtbot, win)
    win.close()


def test_group_rows_of_some_groups_match_the_full_listing(project_dir):
    with opened(project_dir) as p:
        listing = p.groups()
        some = sorted(g.group_id for g in listing)[1:3]
        rows = p.groups(group_ids=some)
    # The same rows (status, label, counts), in the listing's own order.
    assert rows == [g for g in listing if g.group_id in some] and len(rows) == 2


def test_a_decision_rereads_only_its_own_queue_row(window, qtbot, project_dir, monkeypatch):
    from curator.project import Project

    seen: list = []
    window.session.external.connect(seen.append)
    with opened(project_dir) as p:
        p.add_label("red", hotkey="1")
    # The new label came from another process: the change poll reports it (a full re-read).
    qtbot.waitUntil(lambda: bool(seen) and bool(window.group.labels), timeout=TIMEOUT)
    settle(qtbot, window)
    reads: list = []
    original = Project.groups

    def spy(self, *args, **kwargs):
        reads.append(kwargs.get("group_ids"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "groups", spy)
    gid = next(g.group_id for g in window.queue.model.groups() if g.status == "undecided")
    others = {g.group_id: g for g in window.queue.model.groups() if g.group_id != gid}
    decided = window.queue.groups_bar.value()
    window.open_group(gid)
    qtbot.waitUntil(lambda: window.group.group_id == gid and window.group.model.rowCount() > 0,
                    timeout=TIMEOUT)
    qtbot.keyClick(window.group.grid, Qt.Key_1)
    qtbot.waitUntil(lambda: [gid] in reads, timeout=TIMEOUT)
    settle(qtbot, window)
    assert reads and all(r == [gid] for r in reads)  # no read of every group
    row = window.queue.model.group_at(window.queue.model.row_of(gid))
    with opened(project_dir) as p:
        truth = next(g for g in original(p) if g.group_id == gid)
    assert (row.status, row.label, row.labelled) == (truth.status, truth.label, truth.labelled)
    assert row.status == "labelled" and row.label == "red"
    assert window.queue.groups_bar.value() == decided + 1
    for g in window.queue.model.groups():
        if g.group_id != gid:
            assert (g.status, g.label) == (others[g.group_id].status, others[g.group_id].label)
    # Suggestions read later (they were asked before the decision) keep the decision shown.
    window.queue._suggested(dict(window.queue.suggestions))
    row = window.queue.model.group_at(window.queue.model.row_of(gid))
    assert row.status == "labelled"


def test_a_group_switch_paints_its_thumbnails_before_any_follow_up(window, qtbot, project_dir,
                                                                     monkeypatch):
    """`shown` (which prefetches the next groups and reads the topic in words) waits for the
    visible thumbnails; the suggestion comes from the queue's answer, not a read per switch."""
    from curator.project import Project

    settle(qtbot, window)
    qtbot.waitUntil(lambda: window.group.suggestions is not None, timeout=TIMEOUT)
    asked: list = []
    original = Project.suggestions
    monkeypatch.setattr(Project, "suggestions",
                        lambda self, *a, **k: asked.append(1) or original(self, *a, **k))
    states: list[bool] = []
    window.group.shown.connect(lambda gid: states.append(all(
        window.thumbs.has(i) for i in window.group.grid.visible_ids())))
    ids = window.queue.order_ids()[:2]
    for gid in ids:
        window.thumbs.clear()
        window.group.forget_prefetched()
        window.open_group(gid)
        qtbot.waitUntil(lambda n=len(states): len(states) > n, timeout=TIMEOUT)
        assert window.group.group_id == gid
    assert states == [True, True]
    assert window.group.grid.visible_ids()  # the check above was about real tiles
    settle(qtbot, window)
    assert asked == []


def test_a_batch_of_thumbnails_reads_like_one_by_one(project_dir):
    """The grid reads a screenful in one pass over the store; the bytes are the same."""
    with opened(project_dir) as p:
        ids = [r[0] for r in p.catalog.db.execute("SELECT id FROM items ORDER BY id")]
        assert ids
        batch = p.thumbnails([*ids, 10**6])
        assert batch[10**6] is None  # no such item: no thumbnail, no error
        assert {i: batch[i] for i in ids} == {i: p.thumbnail(i) for i in ids}
        assert sum(b is not None and b[:2] == b"\xff\xd8" for b in batch.values()) >= 16
