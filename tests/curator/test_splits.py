"""Splits are data: one stored assignment, the same in every format, stable when more items are
labelled, stratified, duplicate-aware, and managed with `curator splits`."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from curator import splits
from curator.errors import UsageError
from curator.export import assign_splits, export, parse_split
from curator.project import Project
from curator.scan import ScanOptions

SPLIT = "train=0.6,val=0.2,test=0.2"


@pytest.fixture
def project(tmp_path, media):
    """60 images in three labels (30/20/10), 10 unlabelled; two exact copies of a red image."""
    src = tmp_path / "media"
    n = 0
    for folder, count in (("red", 30), ("green", 20), ("blue", 10), ("new", 10)):
        for i in range(count):
            n += 1
            media.image(src / folder / f"{i}.png", size=(12, 12), color=(n * 3, 9, 9), seed=n)
    shutil.copy(src / "red" / "0.png", src / "red" / "copy-a.png")
    shutil.copy(src / "red" / "0.png", src / "red" / "copy-b.png")
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        for name in ("red", "green", "blue"):
            proj.add_label(name)
        folders = defaultdict(list)
        for item in proj.items():
            folders[item["path"].split("/")[0]].append(item["id"])
        for name in ("red", "green", "blue"):
            proj.label_items(folders[name], name)
        proj.folders = folders
        yield proj


def split_map(out: Path) -> dict[int, str]:
    """item id -> split from any export, read from its own files."""
    import pyarrow.parquet as pq

    got: dict[int, str] = {}
    if (out / "items.jsonl").exists():
        for line in (out / "items.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["split"]:
                got[row["item_id"]] = row["split"]
    for meta in out.rglob("metadata.parquet"):
        for rec in pq.read_table(meta).to_pylist():
            got[rec["item_id"]] = rec["split"]
    for labels in out.rglob("labels.json"):
        if labels.parent.name == "unassigned":  # unlabelled images: no split yet
            continue
        doc = json.loads(labels.read_text())
        for image in doc.get("images", []):
            got[image["id"]] = labels.parent.name
        for uuid in doc.get("labels", {}) if "images" not in doc else ():
            got[int(uuid.split("-")[0])] = labels.parent.name
    return got


def test_every_format_and_every_later_export_uses_the_same_splits(project, tmp_path):
    export(project, "jsonl", tmp_path / "j", split=SPLIT, seed=3)
    reference = split_map(tmp_path / "j")
    assert len(reference) == 62
    for fmt in ("imagefolder", "coco", "fiftyone"):
        export(project, fmt, tmp_path / fmt)  # no --split: the stored assignment
        got = split_map(tmp_path / fmt)
        assert got and all(reference[i] == s for i, s in got.items()), fmt
    export(project, "jsonl", tmp_path / "again", split=SPLIT, seed=3)  # same request: reused
    assert split_map(tmp_path / "again") == reference
    with pytest.raises(splits.SplitMismatch, match="re-split"):
        export(project, "jsonl", tmp_path / "other", split=SPLIT, seed=4)
    assert project.split_table().assignment.id == 1


def test_items_labelled_later_join_without_moving_anyone(project, tmp_path):
    export(project, "jsonl", tmp_path / "a", split=SPLIT)
    before = split_map(tmp_path / "a")
    project.add_label("yellow")
    project.label_items(project.folders["new"], "yellow")
    project.label_items(project.folders["green"][:3], "red")  # a relabel keeps its split
    export(project, "parquet", tmp_path / "b")
    import pyarrow.parquet as pq

    after = {r["item_id"]: r["split"] for r in pq.read_table(tmp_path / "b" / "items.parquet")
             .to_pylist() if r["split"]}
    assert {i: after[i] for i in before} == before
    new = Counter(after[i] for i in project.folders["new"])
    assert new == {"train": 6, "val": 2, "test": 2}  # the ratios, within the new label
    table = project.split_table()
    assert table.counts["train"]["yellow"] == 6 and table.unassigned == 0


def test_split_is_stratified_and_copies_share_a_split(project):
    assignment = project.assign_splits(SPLIT, seed=1)
    table = project.split_table()
    for label, total in (("green", 20), ("blue", 10)):
        got = [table.counts[s].get(label, 0) for s in assignment.names]
        assert got == [round(total * f) for f in (0.6, 0.2, 0.2)], label
    red = [table.counts[s].get("red", 0) for s in assignment.names]
    assert sum(red) == 32 and all(abs(r - 32 * f) <= 2 for r, f in zip(red, (0.6, 0.2, 0.2)))
    ids, index = splits.stored(project.catalog.db)
    of = dict(zip(ids.tolist(), index.tolist()))
    copies = [i["id"] for i in project.items() if i["path"] in
              ("red/0.png", "red/copy-a.png", "red/copy-b.png")]
    assert len({of[i] for i in copies}) == 1


def test_duplicate_groups_are_spread_over_splits():
    ids = np.arange(1, 201)
    strata = np.ones(200, dtype=np.int64)
    groups = [[i, i + 1] for i in range(1, 81, 2)]  # 40 pairs, 120 singles
    index = assign_splits(ids, strata, groups, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    per_pair = Counter(int(index[g[0] - 1]) for g in groups)
    assert all(index[g[0] - 1] == index[g[1] - 1] for g in groups)
    assert set(per_pair) == {0, 1, 2}  # not every pair in train
    assert Counter(index.tolist()) == {0: 100, 1: 50, 2: 50}


def test_reassign_and_clear(project, tmp_path):
    first = project.assign_splits(SPLIT, seed=0)
    second = project.assign_splits("train=0.5,test=0.5", seed=0)
    assert second.id == first.id + 1 and second.names == ["train", "test"]
    report = export(project, "jsonl", tmp_path / "out")
    assert report.split_assignment == second.id
    assert set(report.counts) == {"train", "test", "unassigned"}
    assert project.clear_splits() == second.id
    assert project.split_table().assignment is None
    assert export(project, "jsonl", tmp_path / "none").split_assignment is None
    with pytest.raises(UsageError):
        parse_split("train=0.5,test=0.6")


def test_cli_splits_show_assign_clear(project):
    from curator.cli import cli

    root = str(project.root)
    item = project.folders["red"][0]
    project.close()
    runner = CliRunner()
    done = runner.invoke(cli, ["splits", "show", root])
    assert done.exit_code == 0 and "no split assignment" in done.output
    done = runner.invoke(cli, ["splits", "assign", root, "--split", SPLIT, "--seed", "2"])
    assert done.exit_code == 0 and "split assignment #1" in done.output, done.output
    done = runner.invoke(cli, ["splits", "show", root])
    assert "red" in done.output and "train" in done.output and "seed 2" in done.output
    done = runner.invoke(cli, ["splits", "assign", root, "--split", "test", "--items",
                               str(item)])
    assert done.exit_code == 0, done.output
    shown = json.loads(runner.invoke(cli, ["splits", "show", root, "--json"]).output)
    assert shown["assignment"]["id"] == 1 and sum(
        sum(c.values()) for c in shown["counts"].values()) == 62
    with Project.open(root) as proj:
        ids, index = splits.stored(proj.catalog.db)
        assert index[list(ids).index(item)] == 2
    done = runner.invoke(cli, ["splits", "clear", root])
    assert done.exit_code == 0 and "cleared split assignment #1" in done.output
