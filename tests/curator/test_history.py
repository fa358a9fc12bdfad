"""Everything undoable, everything named: items, groups and taxonomy, also across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from curator.cli import main
from curator.errors import UsageError
from curator.project import Project
from curator.scan import ScanOptions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    for name, colour in {"red": (220, 20, 20), "blue": (20, 40, 220)}.items():
        for i in range(10):
            media.image(src / name / f"{i:02d}.png", size=(40 + i, 40), color=colour, seed=i)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.embed("classic", "classic", workers=0)
        proj.set_annotator("ana")
        yield proj


def _ids(project):
    return [r["id"] for r in project.items()]


def test_undo_and_redo_say_what_they_undo(project):
    project.add_label("red disc", hotkey="3")
    ids = _ids(project)
    event = project.label_items(ids[:5], "red disc")
    assert project.describe_event(event) == f"label 'red disc' on 5 items, event {event}"
    assert project.undo_redo_texts()["undo"] == f"label 'red disc' on 5 items, event {event}"
    r = project.undo()
    assert r.text == f"undone: label 'red disc' on 5 items, event {event}"
    assert project.undo_redo_texts() == {
        "undo": project.undo_redo_texts()["undo"],
        "redo": f"label 'red disc' on 5 items, event {event}"}
    assert project.redo().text == f"redone: label 'red disc' on 5 items, event {event}"


def test_a_relabel_says_so_in_its_summary(project):
    project.add_label("a")
    project.add_label("b")
    ids = _ids(project)
    project.label_items(ids[:4], "a")
    event = project.label_items(ids[:6], "b")
    assert project.describe_event(event) == \
        f"label 'b' on 6 items, relabelling 4 that carried another label, event {event}"


def test_split_and_merge_are_undone_and_redone(project):
    run, _ = project.cluster(n_groups=2)
    g0, g1 = [g.group_id for g in project.groups(run)]
    before = {g: sorted(project.group(g, run).items) for g in (g0, g1)}
    children = project.split(g0, k=2)
    assert project.undo_redo_texts()["undo"].startswith(
        f"split of group {g0} (run {run}) into groups {children[0]}, {children[1]}")
    r = project.undo()
    assert r.text.startswith(f"undone: split of group {g0}")
    assert sorted(g.group_id for g in project.groups(run)) == sorted([g0, g1])
    assert sorted(project.group(g0, run).items) == before[g0]
    project.redo()
    assert sorted(g.group_id for g in project.groups(run)) == sorted([g1, *children])
    project.undo()
    merged = project.merge([g0, g1])
    assert project.group(merged, run).size == 20
    assert project.undo().text.startswith(f"undone: merge of groups {g0}, {g1}")
    assert {g: sorted(project.group(g, run).items) for g in (g0, g1)} == before
    assert sorted(g.group_id for g in project.groups(run)) == sorted([g0, g1])


def test_taxonomy_edits_are_undoable_in_order(project):
    project.add_label("cat", hotkey="c", colour="#112233")
    project.update_label("cat", new_name="kitten")
    project.update_label("kitten", colour="#445566")
    project.update_label("kitten", hotkey="t")
    assert project.undo().text.startswith("undone: hotkey t for label 'kitten' (was c)")
    assert project.labels()[0].hotkey == "c"
    assert project.undo().text.startswith("undone: colour #445566 for label 'kitten'")
    assert project.labels()[0].colour == "#112233"
    assert project.undo().text.startswith("undone: rename of label 'cat' to 'kitten'")
    assert project.labels()[0].name == "cat"
    assert project.undo().text.startswith("undone: new label 'cat'")
    assert project.labels() == []
    project.redo()
    assert [lab.name for lab in project.labels()] == ["cat"]


def test_undoing_a_label_merge_gives_the_items_and_the_label_back(project):
    project.add_label("dog")
    project.add_label("hound")
    ids = _ids(project)
    project.label_items(ids[:7], "hound")
    project.label_items(ids[7:9], "dog")
    result = project.merge_labels(["hound"], "dog")
    assert result["moved"] == 7
    assert [lab.name for lab in project.labels()] == ["dog"]
    text = project.undo().text
    assert text.startswith("undone: merge of label 'hound' into 'dog' (7 items moved)")
    counts = {lab.name: lab.count for lab in project.labels()}
    assert counts == {"dog": 2, "hound": 7}
    project.label_items(ids[9:10], "hound")  # usable again
    project.remove_label("hound", force=True)
    assert [lab.name for lab in project.labels()] == ["dog"]
    project.undo()
    assert {lab.name: lab.count for lab in project.labels()} == {"dog": 2, "hound": 8}


def test_undo_of_a_label_still_in_use_is_refused_with_the_reason(project):
    project.add_label("x")
    project.set_annotator("bob")
    project.label_items(_ids(project)[:2], "x")
    project.set_annotator("ana")
    with pytest.raises(UsageError, match="is on 2 items now"):
        project.undo()


def test_undo_from_several_processes_at_once_undoes_each_event_once(project, tmp_path):
    project.add_label("a")
    ids = _ids(project)
    events = [project.label_items([i], "a") for i in ids[:6]]
    root = str(project.root)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "curator.cli", "undo", root,
                               "--annotator", "ana"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert not any("already undone" in o + e for o, e in outputs)
    undone = sorted(int(o.strip().rsplit("event ", 1)[1]) for o, _ in outputs)
    assert undone == sorted(events)
    assert all(lab.count == 0 for lab in project.labels())


def test_cli_label_prints_its_own_event_and_names_the_run(project, tmp_path, capsys):
    run1, _ = project.cluster(n_groups=2)
    run2, _ = project.cluster(n_groups=2, seed=2)
    project.add_label("red")
    root = str(project.root)
    main(["label", root, "--group", "0", "--run", str(run1), "--label", "red",
          "--annotator", "ana"])
    out = capsys.readouterr()
    assert f"of group 0 (run {run1})" in out.out
    assert f"run {run1} is an older clustering; the newest is run {run2}" in out.err
    with pytest.raises(SystemExit):
        main(["label", root, "--group", "0"])
    assert "--label NAME, --noise, --mixed, --clear or --confirm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cluster", root, "--groups", "0"])
    err = capsys.readouterr().err
    assert "--groups must be a whole number of at least 1" in err and "Traceback" not in err
    main(["queue", root, "--json", "--limit", "1", "--order", "size"])
    import json

    assert len(json.loads(capsys.readouterr().out)["groups"]) == 1
    main(["history", root, "--limit", "3"])
    out = capsys.readouterr().out
    assert "group group" not in out and " 1 items" not in out


def test_a_duplicate_points_at_its_keeper_and_is_undone_as_one_event(project):
    ids = _ids(project)
    project.add_label("red")
    project.label_items(ids[:1], "red")
    event = project.mark_duplicates({ids[0]: ids[2], ids[1]: ids[2]})
    rows = dict((r[0], r[1:]) for r in project.catalog.db.execute(
        "SELECT item_id, state, keeper_id FROM item_labels"))
    assert rows[ids[0]] == ("duplicate", ids[2]) and rows[ids[1]] == ("duplicate", ids[2])
    assert project.item_badges(ids[:2])[ids[1]][0] == "duplicate"
    assert project.describe_event(event) == \
        f"2 items marked as duplicates of the copies kept, event {event}"
    project.undo()
    rows = dict((r[0], r[1:]) for r in project.catalog.db.execute(
        "SELECT item_id, state, keeper_id FROM item_labels"))
    assert rows == {ids[0]: ("labelled", None)}
    project.redo()
    assert project.catalog.db.execute(
        "SELECT keeper_id FROM item_labels WHERE item_id = ?", [ids[1]]).fetchone()[0] == ids[2]
    with pytest.raises(UsageError, match="never a copy itself"):
        project.mark_duplicates({ids[3]: ids[4], ids[4]: ids[5]})


def test_imported_labels_get_free_hotkeys(project):
    project.add_label("first", hotkey="1")
    added = project.import_taxonomy([{"name": "cat"}, {"name": "dog", "hotkey": "d"},
                                     {"name": "kitten", "parent": "cat"}])
    keys = {lab.name: lab.hotkey for lab in added}
    assert keys == {"cat": "2", "dog": "d", "kitten": "3"}
