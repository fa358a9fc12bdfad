"""Labels you can trust: taxonomy rules, one event per bulk label, undo and redo, history."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from curator.errors import UsageError
from curator.project import Project
from curator.scan import ScanOptions


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    for i in range(10):
        media.image(src / f"{i}.png", size=(16, 16), color=(i * 20, 0, 0), seed=i)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.set_annotator("ana")
        yield proj


def _state(project, item_id):
    row = project.catalog.db.execute(
        "SELECT l.state, lab.name FROM item_labels l LEFT JOIN labels lab ON lab.id = l.label_id "
        "WHERE l.item_id = ?", [item_id]).fetchone()
    return tuple(row) if row else None


def test_taxonomy_accepts_unicode_and_refuses_bad_names(project):
    project.add_label("猫 cat 🐱", hotkey="1")
    project.add_label("animal")
    project.add_label("dog", parent="animal", colour="#112233")
    paths = [lab.path for lab in project.labels()]
    assert paths == ["animal", "animal/dog", "猫 cat 🐱"]
    for bad in ["", "   ", "tab\there", "nul\x00", "bell\x07"]:
        with pytest.raises(UsageError):
            project.add_label(bad)
    with pytest.raises(UsageError, match="already exists"):
        project.add_label("dog")
    with pytest.raises(UsageError, match="hotkey"):
        project.add_label("other", hotkey="1")
    with pytest.raises(UsageError, match="kept for triage"):
        project.add_label("other", hotkey="j")
    with pytest.raises(UsageError, match="colour"):
        project.add_label("other", colour="red")


def test_bulk_label_is_one_event_and_undone_as_one(project):
    project.add_label("red")
    ids = [i["id"] for i in project.items()]
    event = project.label_items(ids[:7], "red")
    events = project.history()
    assert events[0].id == event and events[0].item_count == 7 and events[0].source == "manual"
    assert events[0].annotator == "ana"
    assert all(_state(project, i) == ("labelled", "red") for i in ids[:7])
    result = project.undo()
    assert result.restored == 7
    assert all(_state(project, i) is None for i in ids)
    result = project.redo()
    assert result.restored == 7
    assert all(_state(project, i) == ("labelled", "red") for i in ids[:7])


def test_undo_of_undo_is_redo(project):
    project.add_label("a")
    ids = [i["id"] for i in project.items()][:3]
    project.label_items(ids, "a")
    undo_event = project.undo().event
    assert _state(project, ids[0]) is None
    project.undo(undo_event)
    assert _state(project, ids[0]) == ("labelled", "a")


def test_undo_restores_previous_labels_and_never_clobbers_later_changes(project):
    project.add_label("a")
    project.add_label("b")
    ids = [i["id"] for i in project.items()]
    project.label_items(ids[:4], "a")
    second = project.label_items(ids[2:6], "b")
    # Someone else relabels one of those items afterwards.
    project.set_annotator("bob")
    project.label_items([ids[5]], "a")
    project.set_annotator("ana")
    result = project.undo()  # ana's latest: the "b" event
    assert result.target == second and result.skipped == 1
    assert _state(project, ids[2]) == ("labelled", "a")  # back to its value before
    assert _state(project, ids[4]) is None
    assert _state(project, ids[5]) == ("labelled", "a")  # bob's later change is kept


def test_redo_is_refused_after_a_new_change(project):
    project.add_label("a")
    ids = [i["id"] for i in project.items()]
    project.label_items(ids[:2], "a")
    project.undo()
    project.label_items(ids[3:4], "a")
    with pytest.raises(UsageError, match="new change"):
        project.redo()


def test_noise_mixed_clear_confirm_and_item_history(project):
    project.add_label("a")
    first = project.items()[0]["id"]
    project.label_items([first], "a")
    project.label_items([first], action="confirm")
    project.label_items([first], action="noise")
    project.label_items([first], action="mixed")
    project.label_items([first], action="clear")
    actions = [e.action for e in project.history(item_id=first)]
    assert actions == ["clear", "mixed", "noise", "confirm", "assign"]
    assert _state(project, first) is None
    with pytest.raises(UsageError, match="no item"):
        project.history(item_id=99999)


def test_rename_and_merge_keep_history(project):
    project.add_label("kat")
    project.add_label("cat")
    ids = [i["id"] for i in project.items()]
    project.label_items(ids[:2], "kat")
    project.label_items(ids[2:4], "cat")
    project.update_label("kat", new_name="kitten")
    assert _state(project, ids[0]) == ("labelled", "kitten")
    result = project.merge_labels(["kitten"], "cat")
    assert result["moved"] == 2
    assert all(_state(project, i) == ("labelled", "cat") for i in ids[:4])
    assert [lab.name for lab in project.labels()] == ["cat"]
    # The merge is an ordinary event: undo brings the old label back to those items.
    project.undo()
    assert _state(project, ids[0]) == ("labelled", "kitten")
    assert {lab.name for lab in project.labels()} == {"cat", "kitten"}
    taxonomy = [e.action for e in project.history() if e.source == "taxonomy"]
    assert "label-update" in taxonomy
    merge = [e for e in project.history() if "label_merge" in e.details]
    assert len(merge) == 1 and merge[0].undone


def test_remove_needs_force_when_used(project):
    project.add_label("gone")
    ids = [i["id"] for i in project.items()]
    project.label_items(ids[:2], "gone")
    with pytest.raises(UsageError, match="is on 2 item") as info:
        project.remove_label("gone")
    assert info.value.option == "force"  # the fix, kept apart from the message
    from curator.cli.base import error_line

    assert "--force" in error_line(info.value)  # ...which the CLI names as its flag
    from curator.labels import LabelRemoval, TaxonomyEntry

    removal = project.remove_label("gone", force=True)
    assert removal["cleared"] == 2 and set(removal) == set(LabelRemoval.__annotations__)
    assert all(set(e) == set(TaxonomyEntry.__annotations__) for e in project.export_taxonomy())
    assert _state(project, ids[0]) is None


def test_taxonomy_export_import_round_trip(project, tmp_path):
    project.add_label("animal", hotkey="a")
    project.add_label("cat", parent="animal")
    exported = project.export_taxonomy()
    with Project.create(tmp_path / "other", [tmp_path / "media"]) as other:
        other.import_taxonomy(list(reversed(exported)))
        assert [lab.path for lab in other.labels()] == ["animal", "animal/cat"]
        assert other.labels()[0].hotkey == "a"


def test_history_survives_a_rescan_a_reembed_and_a_recluster(project, tmp_path, media):
    project.add_label("a")
    ids = [i["id"] for i in project.items()]
    project.label_items(ids, "a")
    (tmp_path / "media" / "0.png").unlink()
    time.sleep(0.01)
    media.image(tmp_path / "media" / "1.png", size=(16, 16), color=(0, 250, 0))  # changed
    project.scan(ScanOptions(workers=0))
    project.embed("classic", "classic", workers=0)
    project.cluster(n_groups=2)
    project.embed("classic", "classic", workers=0)
    project.cluster(n_groups=3)
    assert all(_state(project, i) == ("labelled", "a") for i in ids)
    assert project.history()[0].item_count == 10
    assert [e.action for e in project.history(item_id=ids[1])] == ["assign"]


@pytest.mark.slow
def test_sigkill_during_a_100k_bulk_label_leaves_all_or_nothing(tmp_path):
    proj = tmp_path / "big"
    (tmp_path / "m").mkdir()
    with Project.create(proj, [tmp_path / "m"]) as project:
        db = project.catalog.db
        with project.catalog.write():
            db.conn.executemany(
                "INSERT INTO items (source_id, path, status, first_seen, last_seen, version) "
                "VALUES (1, ?, 'ok', 'now', 'now', 1)", [(f"{i}.jpg",) for i in range(100_000)])
        project.add_label("bulk")
    script = textwrap.dedent(f"""
        from curator.project import Project
        p = Project.open({str(proj)!r})
        ids = [r[0] for r in p.catalog.db.execute("SELECT id FROM items")]
        for _ in range(50):
            p.label_items(ids, "bulk" if _ % 2 == 0 else None,
                          action="assign" if _ % 2 == 0 else "clear")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn = sqlite3.connect(proj / "catalog.db", timeout=5)
        n = conn.execute("SELECT COUNT(*) FROM events WHERE source = 'manual'").fetchone()[0]
        conn.close()
        if n >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.15)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with Project.open(proj) as project:
        db = project.catalog.db
        events = db.execute("SELECT id, action, item_count FROM events WHERE source = 'manual' "
                            "ORDER BY id").fetchall()
        assert events and all(count == 100_000 for _, _, count in events)
        per_event = db.execute("SELECT event_id, COUNT(*) FROM event_items GROUP BY event_id"
                               ).fetchall()
        assert all(n == 100_000 for _, n in per_event) and len(per_event) == len(events)
        labelled = db.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0]
        assert labelled == (100_000 if events[-1][1] == "assign" else 0)


def test_two_processes_label_and_read_at_once_without_locking_errors(project, tmp_path):
    project.add_label("p")
    project.add_label("q")
    root = str(project.root)
    script = textwrap.dedent(f"""
        import sys
        from curator.project import Project
        p = Project.open({root!r})
        p.set_annotator(sys.argv[1])
        ids = [r[0] for r in p.catalog.db.execute("SELECT id FROM items")]
        for i in range(60):
            p.label_items(ids[i % 5:], sys.argv[2])
            p.history(limit=5)
            p.labels()
        print("ok")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, who, lab], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for who, lab in (("w1", "p"), ("w2", "q"))]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "locked" not in err, err
        assert out.strip() == "ok"
    assert project.catalog.db.execute("SELECT COUNT(*) FROM events WHERE source = 'manual'"
                                      ).fetchone()[0] == 120


def _item_story(project, item_id):
    return [(e.action, e.label) for e in project.history(item_id=item_id)]


def test_item_history_follows_clears_undos_and_redos(project):
    """An item's history is walked back from its newest event; a clear or an undo back to no
    value must not cut it, and events on other items must not leak in."""
    project.add_label("a")
    project.add_label("b")
    ids = [it["id"] for it in project.items()]
    item, other = ids[0], ids[1]
    project.label_items([item, other], "a")
    project.label_items([item], action="clear")
    project.label_items([item], "b")
    project.undo()                       # back to no value
    project.label_items([other], "b")
    project.label_items([item], action="noise")
    project.undo()                       # noise undone: no value again
    project.redo()
    project.undo()
    project.label_items([item], "a")
    story = _item_story(project, item)
    assert story == [("assign", "a"), ("undo", None), ("redo", None), ("undo", None),
                     ("noise", None), ("undo", "b"), ("assign", "b"), ("clear", None),
                     ("assign", "a")]
    assert _item_story(project, other) == [("assign", "b"), ("assign", "a")]
    assert _item_story(project, ids[2]) == []
    index = project.catalog.db.execute(
        "SELECT name FROM sqlite_master WHERE name = 'event_items_item'").fetchone()
    assert index is None


def test_item_history_limit_keeps_the_newest(project):
    project.add_label("a")
    item = project.items()[0]["id"]
    for _ in range(6):
        project.label_items([item], "a")
        project.label_items([item], action="clear")
    assert [e.action for e in project.history(item_id=item, limit=3)] == [
        "clear", "assign", "clear"]
    assert len(project.history(item_id=item)) == 12


def test_catalog_from_before_the_item_chain_migrates_its_history(project):
    """A catalog written before `009_triage_item_chain` (no `before_event` where an item had no
    value, an index of the event rows by item, no `cleared_items`) keeps every item's history."""
    project.add_label("a")
    project.add_label("b")
    ids = [it["id"] for it in project.items()]
    project.label_items(ids[:3], "a")
    project.label_items(ids[:2], action="clear")
    project.label_items(ids[:1], "b")
    project.label_items(ids[1:2], action="noise")
    project.undo()
    want = {i: _item_story(project, i) for i in ids}
    db = project.catalog.db
    with project.catalog.write():
        _schema_before_item_states(db)
        db.execute("UPDATE event_items SET before_event = NULL WHERE before_state IS NULL")
        db.execute("CREATE INDEX event_items_item ON event_items (item_id, event_id)")
        db.execute("DROP TABLE cleared_items")
        db.execute("DELETE FROM _migrations WHERE name = '009_triage_item_chain'")
    from curator.migrations import migrate
    assert migrate(db) == ["009_triage_item_chain", "010_triage_item_states"]
    assert {i: _item_story(project, i) for i in ids} == want
    assert want[ids[1]] == [("undo", None), ("noise", None), ("clear", None), ("assign", "a")]


def _schema_before_item_states(db) -> None:
    """Put the current labels back as `009_triage_item_chain` left them: an `item_labels` table
    with the state's name, and `cleared_items` for the items without a value."""
    db.execute("CREATE TABLE old_labels (item_id INTEGER PRIMARY KEY REFERENCES items(id), "
               "state TEXT NOT NULL, label_id INTEGER, event_id INTEGER NOT NULL, "
               "confirmed INTEGER NOT NULL DEFAULT 0, keeper_id INTEGER)")
    db.execute("INSERT INTO old_labels SELECT item_id, state, label_id, event_id, confirmed, "
               "keeper_id FROM item_labels")
    db.execute("CREATE TABLE cleared_items (item_id INTEGER PRIMARY KEY, "
               "event_id INTEGER NOT NULL)")
    db.execute("INSERT INTO cleared_items SELECT item_id, event_id FROM item_states "
               "WHERE code = 4")
    db.execute("DROP VIEW item_labels")
    db.execute("DROP TABLE item_states")
    db.execute("ALTER TABLE old_labels RENAME TO item_labels")
    db.execute("DELETE FROM _migrations WHERE name = '010_triage_item_states'")


def test_current_labels_move_to_state_codes_and_read_the_same(project):
    """`010_triage_item_states` keeps every item's current value (each state, its label, its
    keeper, confirmed) and history, and gives the readers the same `item_labels` rows through a
    view."""
    for name in ("a", "b"):
        project.add_label(name)
    ids = [it["id"] for it in project.items()]
    project.label_items(ids[:3], "a")
    project.label_items(ids[1:2], action="confirm")
    project.label_items(ids[3:4], "b")
    project.label_items(ids[4:5], action="noise")
    project.label_items(ids[5:6], action="mixed")
    project.mark_duplicates({ids[6]: ids[0]})
    project.label_items(ids[7:9], "b")
    project.label_items(ids[7:8], action="clear")  # no value, by a clear ...
    project.label_items(ids[9:10], "a")
    project.undo()  # ... and by an undo
    db = project.catalog.db
    read = "SELECT item_id, state, label_id, event_id, confirmed, keeper_id FROM item_labels"
    want = db.execute(f"{read} ORDER BY item_id").fetchall()
    stories = {i: _item_story(project, i) for i in ids}
    assert {r[1] for r in want} == {"labelled", "noise", "mixed", "duplicate"}
    assert [r[4] for r in want].count(1) == 1 and want[6][5] == ids[0]
    assert stories[ids[7]] == [("clear", None), ("assign", "b")]
    with project.catalog.write():
        _schema_before_item_states(db)
    from curator.migrations import migrate
    assert migrate(db) == ["010_triage_item_states"]
    assert db.execute(f"{read} ORDER BY item_id").fetchall() == want
    assert {i: _item_story(project, i) for i in ids} == stories
    codes = dict(db.execute("SELECT item_id, code FROM item_states").fetchall())
    assert [codes[i] for i in ids] == [0, 0, 0, 0, 1, 2, 3, 4, 0, 4]
    assert "cleared_items" not in db.table_names()
    # The view takes writes too (a repair tool, a script), and refuses an unknown state.
    db.execute("UPDATE item_labels SET state = 'noise', label_id = NULL WHERE item_id = ?",
               [ids[0]])
    assert db.execute("SELECT code FROM item_states WHERE item_id = ?", [ids[0]]).fetchone() == (1,)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE item_labels SET state = 'bogus' WHERE item_id = ?", [ids[1]])
    db.execute("DELETE FROM item_labels WHERE item_id = ?", [ids[0]])
    assert db.execute("SELECT code, event_id FROM item_states WHERE item_id = ?",
                      [ids[0]]).fetchone()[0] == 4
    # Undo after the move restores the value the event found, and keeps the item's history.
    project.label_items(ids[8:9], "a")
    project.undo()
    assert _state(project, ids[8]) == ("labelled", "b")
    assert [a for a, _ in _item_story(project, ids[8])] == ["undo", "assign", "assign"]
