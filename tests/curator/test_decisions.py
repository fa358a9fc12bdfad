"""Decisions belong to items: derived group status in any run, re-clustering, carried edits."""

from __future__ import annotations

import pytest

from curator.decisions import group_decisions
from curator.errors import UsageError
from curator.project import Project
from curator.scan import ScanOptions

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220)}


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    for name, colour in COLOURS.items():
        for i in range(12):
            media.image(src / name / f"{i:02d}.png", size=(40 + i, 40), color=colour, seed=i)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.embed("classic", "classic", workers=0)
        proj.set_annotator("ana")
        for name in COLOURS:
            proj.add_label(name)
        yield proj


def _colour(project, group_id, run_id):
    members = project.group(group_id, run_id).items
    colours = {project.item(i)["path"].split("/")[0] for i in members}
    assert len(colours) == 1
    return colours.pop()


def test_a_new_clustering_shows_every_decision_already_made(project):
    run1, _ = project.cluster(n_groups=3)
    for g in project.groups(run1):
        project.label_group(g.group_id, _colour(project, g.group_id, run1), run_id=run1)
    assert project.queue(run_id=run1).groups_decided == 3
    run2, _ = project.cluster(n_groups=3, seed=1)
    queue = project.queue(run_id=run2)
    assert queue.groups_total == 3 and queue.groups_decided == 3 and queue.groups == []
    for g in project.groups(run2):
        assert g.status == "labelled" and g.labelled == g.size
        assert g.label == _colour(project, g.group_id, run2)
        assert g.decision.share == 1.0


def test_partial_mixed_and_noise_groups_are_told_apart(project):
    run, _ = project.cluster(n_groups=3)
    groups = {_colour(project, g.group_id, run): g.group_id for g in project.groups(run)}
    red = project.group(groups["red"]).items
    project.label_items(red[:3], "red")
    green = project.group(groups["green"]).items
    project.label_items(green[:6], "green")
    project.label_items(green[6:], "blue")
    project.label_group(groups["blue"], action="noise")
    by_id = {g.group_id: g for g in project.groups(run)}
    assert by_id[groups["red"]].status == "partial" and by_id[groups["red"]].labelled == 3
    assert by_id[groups["green"]].status == "mixed"
    assert by_id[groups["blue"]].status == "noise"
    assert [g.group_id for g in project.queue(run_id=run).groups] == [groups["red"]]
    assert [g.group_id for g in project.groups(run, status="partial")] == [groups["red"]]
    d = group_decisions(project.catalog, run)[groups["green"]]
    assert d.labels == 2 and d.decided == 12 and d.label_count == 6


def test_cluster_undecided_groups_only_items_without_a_decision(project):
    run, _ = project.cluster(n_groups=3)
    red = next(g.group_id for g in project.groups(run) if _colour(project, g.group_id, run)
               == "red")
    project.label_group(red, "red")
    run2, counts = project.cluster(n_groups=2, undecided_only=True)
    (only,) = counts.values()
    assert only["items"] == 24
    members = [i for g in project.groups(run2) for i in project.group(g.group_id, run2).items]
    assert len(members) == 24
    assert {project.item(i)["path"].split("/")[0] for i in members} == {"green", "blue"}
    assert project.runs("cluster")[0].params["undecided"] is True
    for g in project.groups(run2):
        project.label_group(g.group_id, action="noise", run_id=run2)
    with pytest.raises(UsageError, match="every item already carries a decision"):
        project.cluster(n_groups=2, undecided_only=True)


def test_splits_and_merges_carry_over_to_a_new_run(project):
    run1, _ = project.cluster(n_groups=3)
    groups = {_colour(project, g.group_id, run1): g.group_id for g in project.groups(run1)}
    halves = project.split(groups["red"], k=2, run_id=run1)
    parts = [set(project.group(h, run1).items) for h in halves]
    merged = project.merge([groups["green"], groups["blue"]], run_id=run1)
    merged_items = set(project.group(merged, run1).items)
    run2, _ = project.cluster(n_groups=3)
    active = project.groups(run2)
    assert len(active) == 3
    got = sorted((set(project.group(g.group_id, run2).items) for g in active), key=len)
    assert sorted(parts, key=len) + [merged_items] == got or \
        sorted(parts + [merged_items], key=len) == got
    notes = [e.note for e in project.history(limit=10) if e.action in ("split", "merge")]
    assert f"carried over from run {run1}" in notes


def test_an_older_run_keeps_working_and_shows_current_labels(project):
    run1, _ = project.cluster(n_groups=3)
    run2, _ = project.cluster(n_groups=3, seed=3)
    g = project.groups(run1)[0]
    colour = _colour(project, g.group_id, run1)
    project.label_group(g.group_id, colour, run_id=run1)
    assert sum(1 for x in project.groups(run2) if x.label == colour) == 1


def test_tallies_stay_true_through_labels_undo_split_merge_and_other_writers(project):
    from curator.tallies import _count_in_memory, tallies

    def same(run):
        got = sorted((g, s, lab or None, n) for g, s, lab, n in tallies(project.catalog, run))
        assert got == sorted(_count_in_memory(project.catalog, run))

    run, _ = project.cluster(n_groups=3)
    same(run)
    ids = [r["id"] for r in project.items()]
    project.label_items(ids[:10], "red")
    project.label_items(ids[5:20], "blue")
    same(run)
    project.undo()
    same(run)
    g = project.groups(run)[0].group_id
    children = project.split(g, k=2)
    same(run)
    project.label_group(children[0], action="noise")
    merged = project.merge([children[0], children[1]])
    same(run)
    project.undo()
    same(run)
    with Project.open(project.root) as other:  # another connection, as another process
        other.set_annotator("bob")
        other.label_items(ids[20:30], "green")
        other.merge_labels(["green"], "red")
    same(run)
    assert merged not in {x.group_id for x in project.groups(run)}


def test_cli_group_show_and_queue_say_what_is_in_a_group(project, capsys):
    import json

    from curator.cli import main

    run, _ = project.cluster(n_groups=3)
    groups = {_colour(project, g.group_id, run): g.group_id for g in project.groups(run)}
    red = project.group(groups["red"]).items
    project.label_items(red[:2], "red")
    root = str(project.root)
    main(["group", "show", root, str(groups["red"]), "--run", str(run), "--limit", "5"])
    out = capsys.readouterr().out
    assert f"group {groups['red']} of run {run}" in out and "topic: red" in out
    assert "labels carried: red 2" in out and "image 12" in out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(tuple("0123456789"))]
    assert len(lines) == 5 and all("image" in ln and "red/" in ln for ln in lines)
    assert "… 7 more" in out
    main(["group", "show", root, str(groups["red"]), "--json", "--limit", "100"])
    data = json.loads(capsys.readouterr().out)
    assert len(data["members"]) == 12
    assert {m["label"] for m in data["members"]} == {"red", ""}
    assert all(0.5 < m["similarity"] <= 1.0001 for m in data["members"])
    main(["queue", root, "--json", "--limit", "2", "--order", "size"])
    q = json.loads(capsys.readouterr().out)
    assert len(q["groups"]) == 2
    assert all(g["topic_name"] in COLOURS and g["modalities"] == {"image": 12}
               for g in q["groups"])
    main(["queue", root])
    out = capsys.readouterr().out
    assert "partial" in out and "red 2" in out


def _recounted(project, run):
    """Tallies and per-group summaries counted from scratch from the current labels."""
    from curator.tallies import _count_in_memory, _summaries_from_rows

    rows = _count_in_memory(project.catalog, run)
    return sorted(rows), _summaries_from_rows(rows, None)


def _kept(project, run):
    from curator.tallies import group_summaries, tallies

    kept = sorted((g, s, lab or None, n) for g, s, lab, n in tallies(project.catalog, run))
    return kept, group_summaries(project.catalog, run)


def test_summaries_after_group_label_undo_and_redo_equal_a_full_recount(project):
    run, _ = project.cluster(n_groups=3)
    groups = {_colour(project, g.group_id, run): g.group_id for g in project.groups(run)}
    red = project.group(groups["red"]).items
    project.label_items(red[:4], "blue")  # some members carry another label first
    assert _kept(project, run) == _recounted(project, run)
    project.label_group(groups["red"], "red", exclude=red[:2])
    kept = _kept(project, run)
    assert kept == _recounted(project, run)
    # Two excluded items keep "blue", two were relabelled, eight were new.
    red_id = {lab.name: lab.id for lab in project.labels()}["red"]
    assert kept[1][groups["red"]] == (groups["red"], 12, 0, 0, 0, red_id, 10, 2)
    project.undo()
    assert _kept(project, run) == _recounted(project, run)
    assert _kept(project, run)[1][groups["red"]][1] == 4
    project.redo()
    assert _kept(project, run) == _recounted(project, run)
    project.label_group(groups["green"], action="noise")
    project.undo()
    project.undo()  # the redone label goes too
    assert _kept(project, run) == _recounted(project, run)
    assert {i: b[1] for i, b in project.item_badges(red).items()} == {i: "blue" for i in red[:4]}


def test_a_group_label_reads_its_members_in_the_catalog_and_checks_exclusions(project):
    run, _ = project.cluster(n_groups=3)
    groups = {_colour(project, g.group_id, run): g.group_id for g in project.groups(run)}
    red = project.group(groups["red"]).items
    green = project.group(groups["green"]).items
    with pytest.raises(UsageError, match=f"item {green[0]} is not in group {groups['red']}"):
        project.label_group(groups["red"], "red", exclude=[green[0]])
    with pytest.raises(UsageError, match="no group 99 in clustering run"):
        project.label_group(99, "red")
    event = project.label_group(groups["red"], "red", exclude=red[:3])
    ev = project.history(limit=1)[0]
    assert ev.id == event and ev.item_count == 9 and ev.details["excluded"] == sorted(red[:3])
    assert ev.run_id == run and ev.group_id == groups["red"] and ev.source == "group"
    badges = project.item_badges(red)
    assert sorted(badges) == sorted(red[3:]) and {b[1] for b in badges.values()} == {"red"}
