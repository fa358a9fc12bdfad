"""Groups, the review queue and search on a real small project (classic embedder)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from curator.cli import main
from curator.errors import UsageError
from curator.scan import ScanOptions
from tests.helpers.projects import COLOURS, colour_of, embedded_project


@pytest.fixture
def project(tmp_path, media):
    with embedded_project(tmp_path, media) as proj:
        yield proj


def test_cluster_recovers_the_colour_classes_and_records_a_run(project):
    run_id, counts = project.cluster(n_groups=3)
    (only,) = counts.values()
    assert only["groups"] == 3
    groups = project.groups(run_id)
    assert sum(g.size for g in groups) == 36
    for g in groups:
        members = project.group(g.group_id, run_id).items
        assert len({colour_of(project, i) for i in members}) == 1
    run = project.runs("cluster")[0]
    assert run.status == "ok" and run.params["n_groups"] == 3


def test_label_group_with_exceptions_then_recluster_keeps_labels(project):
    run_id, _ = project.cluster(n_groups=3)
    project.add_label("red")
    g = next(g for g in project.groups(run_id)
             if colour_of(project, project.group(g.group_id).items[0]) == "red")
    members = project.group(g.group_id).items
    event = project.label_group(g.group_id, "red", exclude=[members[0]])
    ev = project.history()[0]
    assert ev.id == event and ev.item_count == len(members) - 1 and ev.source == "group"
    assert ev.group_id == g.group_id and ev.run_id == run_id
    queue = project.queue()
    assert queue.groups_decided == 1 and queue.items_labelled == len(members) - 1
    assert all(q.group_id != g.group_id for q in queue.groups)
    # A new clustering is a new run: the labels stay on the items.
    project.cluster(n_groups=4)
    labelled = project.catalog.db.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0]
    assert labelled == len(members) - 1
    # Undo restores the group's status in its own run.
    project.undo()
    assert project.queue(run_id=run_id).groups_decided == 0


def test_split_and_merge_within_a_run(project):
    run_id, _ = project.cluster(n_groups=2)
    mixed = max(project.groups(run_id), key=lambda g: g.size)
    assert len({colour_of(project, i) for i in project.group(mixed.group_id).items}) == 2
    new = project.split(mixed.group_id, k=2)
    assert len(new) == 2
    for gid in new:
        assert len({colour_of(project, i) for i in project.group(gid).items}) == 1
    assert all(g.group_id != mixed.group_id for g in project.groups(run_id))
    merged = project.merge(new)
    assert project.group(merged).size == mixed.size
    with pytest.raises(UsageError, match="already"):
        project.split(mixed.group_id)


def test_index_stays_consistent_through_add_reembed_and_missing(project, tmp_path, media):
    project.sync_indexes()
    red = [i["id"] for i in project.items() if i["path"].startswith("red/")]
    hits = project.search(like=red[0], k=5)
    assert all(h.path.split("/")[-2] == "red" for h in hits)
    # missing: never returned again
    victim = project.item(red[1])
    (tmp_path / "media" / victim["path"]).unlink()
    project.scan(ScanOptions(workers=0))
    counts = project.sync_indexes()["classic:v1"]
    assert counts["removed"] == 1
    assert red[1] not in [h.item_id for h in project.search(like=red[0], k=40)]
    # re-embedded: found at its new vector (a red file turned green)
    time.sleep(0.01)
    media.image(tmp_path / "media" / "red" / "03.png", size=(40, 40), color=COLOURS["green"])
    project.scan(ScanOptions(workers=0))
    project.embed("classic", "classic", workers=0)
    changed = next(i["id"] for i in project.items() if i["path"] == "red/03.png")
    green = [i["id"] for i in project.items() if i["path"].startswith("green/")]
    near = [h.item_id for h in project.search(like=green[0], k=14)]
    assert changed in near
    # added: a new planted neighbour is found
    media.image(tmp_path / "media" / "blue" / "new.png", size=(41, 40), color=COLOURS["blue"],
                seed=3)
    project.scan(ScanOptions(workers=0))
    project.embed("classic", "classic", workers=0)
    new_id = next(i["id"] for i in project.items() if i["path"] == "blue/new.png")
    blue3 = next(i["id"] for i in project.items() if i["path"] == "blue/03.png")
    assert new_id in [h.item_id for h in project.search(like=blue3, k=12)]


def test_search_by_file_and_text_without_a_text_tower(project, tmp_path, media):
    probe = media.image(tmp_path / "query.png", size=(40, 40), color=COLOURS["green"])
    hits = project.search(file=str(probe), k=5)
    assert all("/green/" in h.path for h in hits)
    with pytest.raises(UsageError, match="text tower"):
        project.search(text="a green square")
    with pytest.raises(UsageError, match="exactly one"):
        project.search(k=3)


def test_map_covers_every_item(project):
    counts = project.compute_map(sample_size=20)
    ids, xy = project.map()
    assert counts["classic:v1"]["items"] == 36 == len(ids)
    assert np.isfinite(np.asarray(xy)).all() and np.asarray(xy).shape == (36, 2)


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def test_cli_from_clustered_project_to_labels_and_undo(project, capsys):
    root = str(project.root)
    code, out, err = _cli(capsys, "cluster", root, "--groups", "3", "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    code, out, _ = _cli(capsys, "queue", root, "--json")
    q = json.loads(out)
    assert q["run_id"] == run_id and len(q["groups"]) == 3
    assert _cli(capsys, "labels", "add", root, "first", "--hotkey", "1")[0] == 0
    gid = q["groups"][0]["group_id"]
    code, out, err = _cli(capsys, "label", root, "--group", str(gid), "--label", "first",
                          "--annotator", "cli")
    assert code == 0 and "event" in out, err
    code, out, _ = _cli(capsys, "history", root, "--json")
    assert json.loads(out)[0]["annotator"] == "cli"
    code, out, err = _cli(capsys, "undo", root, "--annotator", "cli")
    assert code == 0 and f"undone: label 'first' on 12 items of group {gid}" in out
    code, out, err = _cli(capsys, "redo", root, "--annotator", "cli")
    assert code == 0
    code, out, err = _cli(capsys, "label", root, "--group", "999", "--label", "first")
    assert code == 1 and "no group 999" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(capsys, "label", root, "--group", str(gid), "--label", "nope")
    assert code == 1 and "no label 'nope'" in err
    code, out, err = _cli(capsys, "search", root, "--like", str(q["groups"][0]["group_id"] + 1),
                          "--k", "3", "--json")
    assert code == 0 and len(json.loads(out)) == 3


def test_item_facets_align_with_the_ids_given(project):
    run_id, _ = project.cluster(n_groups=3)
    project.add_label("red")
    red = [i["id"] for i in project.items() if i["path"].startswith("red/")]
    project.label_items(red[:2], "red")
    project.label_items(red[2:3], action="noise")
    ids = np.array([red[2], 99999, red[0], red[5]])
    facets = project.item_facets(ids, run_id)
    assert facets.state.tolist() == [2, 0, 1, 0]
    label_id = project.labels()[0].id
    assert facets.label.tolist() == [-1, -1, label_id, -1]
    assert facets.group[1] == -1 and (facets.group[[0, 2, 3]] >= 0).all()
    assert len(set(facets.group[[0, 2, 3]].tolist())) == 1  # all red: one group
    red_group = next(g for g in project.groups(run_id) if g.group_id == facets.group[0])
    assert facets.topic[0] == red_group.topic and facets.topic[1] == -1


@pytest.mark.parametrize("bad", [np.nan, 0.0])
def test_a_broken_vector_is_a_clear_error_naming_the_item(project, bad):
    from curator.embed import space_store
    from curator.errors import CuratorError

    ids, _ = project.vectors("classic:v1")
    store = space_store(project.catalog, "classic:v1")
    vectors = np.load(store.vectors_path, mmap_mode="r+")
    vectors[3] = bad
    vectors.flush()
    del vectors
    with pytest.raises(CuratorError) as info:
        project.cluster(n_groups=3)
    message = str(info.value)
    assert f"item {int(ids[3])} has" in message and "re-embed" in message
    assert project.runs("cluster")[0].status == "failed"
