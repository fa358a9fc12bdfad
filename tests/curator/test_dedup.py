"""Duplicates: exact and near groups with keepers by rule, outliers, the stored result, and exports
that keep every copy in one split."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import curator.dedup as dedup_mod
from curator.dedup import (
    DedupReport,
    duplicate_groups,
    find_duplicates,
    latest_path,
    load_duplicates,
    merge_groups,
)
from curator.errors import CuratorError, UsageError
from curator.export import export
from curator.project import Project
from curator.scan import ScanOptions


def pattern(seed: int, block: int = 8) -> np.ndarray:
    """A 6x6 grid of random colours: every seed looks different to any embedder."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 255, (6, 6, 3)), np.ones((block, block, 1))).astype(np.uint8)


def save(path: Path, array: np.ndarray, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.fixture
def corpus(tmp_path, media):
    """Two sources: distinct images in three folders, with planted copies.

    - exact: a/c0/1.png copied byte for byte to a/c2/copy.png and b/copy.png
    - near: a/c0/0.png re-saved slightly changed as JPEG (a/c1/near.jpg) and at twice the
      size (b/big.png)
    - audio: the same tone at two lengths
    """
    a, b = tmp_path / "a", tmp_path / "b"
    for c in range(3):
        for i in range(6):
            save(a / f"c{c}" / f"{i}.png", pattern(100 * c + i))
    changed = pattern(0).astype(int)
    changed[:8, :8] += 6
    save(a / "c1" / "near.jpg", np.clip(changed, 0, 255).astype(np.uint8), quality=92)
    save(b / "big.png", pattern(0, block=16))
    shutil.copyfile(a / "c0" / "1.png", a / "c2" / "copy.png")
    shutil.copyfile(a / "c0" / "1.png", b / "copy.png")
    media.wav(a / "snd" / "short.wav", seconds=1.0, freq=440)
    media.wav(a / "snd" / "long.wav", seconds=1.3, freq=440)
    media.wav(a / "snd" / "other.wav", seconds=1.0, freq=3000)
    # Modification times: the original is the oldest of its copies.
    for k, rel in enumerate(["c0/1.png", "c2/copy.png"]):
        os.utime(a / rel, (1_000_000 + k, 1_000_000 + k))
    os.utime(b / "copy.png", (2_000_000, 2_000_000))
    os.utime(a / "c0" / "0.png", (500_000, 500_000))
    with Project.create(tmp_path / "proj", [a, b]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.embed("classic", "classic", workers=0)
        yield proj


def ids_of(project: Project, *rels: str) -> tuple[int, ...]:
    by_path = {os.path.join(i["source_root"], i["path"]): i["id"] for i in project.items()}
    root = Path(project.root).parent
    return tuple(sorted(by_path[str(root / rel)] for rel in rels))


def test_exact_and_near_groups_with_a_keeper(corpus):
    corpus.cluster(n_groups=3)
    report = find_duplicates(corpus.catalog, threshold=0.95)
    exact = ids_of(corpus, "a/c0/1.png", "a/c2/copy.png", "b/copy.png")
    near_image = ids_of(corpus, "a/c0/0.png", "a/c1/near.jpg", "b/big.png")
    near_audio = ids_of(corpus, "a/snd/short.wav", "a/snd/long.wav")
    assert [g.items for g in report.exact] == [exact]
    assert report.exact[0].content_hash and report.exact[0].kind == "exact"
    assert sorted(g.items for g in report.near) == sorted([near_image, near_audio])
    assert all(g.space == "classic:v1" and g.keeper in g.items for g in report.near)
    # resolution: the copy twice the size is kept
    keeper = {g.items: g.keeper for g in report.groups}
    assert keeper[near_image] == ids_of(corpus, "b/big.png")[0]
    summary = report.summary()
    assert summary["exact_groups"] == 1 and summary["near_groups"] == 2
    assert summary["removable"] == 2 + 2 + 1
    assert duplicate_groups(corpus.catalog) == sorted([list(exact), list(near_image),
                                                       list(near_audio)])


@pytest.mark.parametrize("rule,prefer,expected", [
    ("resolution", None, {"near_image": "b/big.png", "exact": "a/c0/1.png"}),  # tie: path
    ("oldest", None, {"near_image": "a/c0/0.png", "exact": "a/c0/1.png"}),
    ("source", "b", {"near_image": "b/big.png", "exact": "b/copy.png"}),
    ("source", "a/c2", {"exact": "a/c2/copy.png"}),
    ("longest", None, {"near_audio": "a/snd/long.wav"}),
])
def test_keeper_rules(corpus, rule, prefer, expected):
    root = Path(corpus.root).parent
    report = find_duplicates(corpus.catalog, rule=rule,
                             preferred_source=str(root / prefer) if prefer else None)
    groups = {"exact": ids_of(corpus, "a/c0/1.png", "a/c2/copy.png", "b/copy.png"),
              "near_image": ids_of(corpus, "a/c0/0.png", "a/c1/near.jpg", "b/big.png"),
              "near_audio": ids_of(corpus, "a/snd/short.wav", "a/snd/long.wav")}
    keeper = {g.items: g.keeper for g in report.groups}
    for name, rel in expected.items():
        assert keeper[groups[name]] == ids_of(corpus, rel)[0], (rule, name)
    assert report.params["rule"] == rule


def test_bad_parameters_are_one_clear_error(corpus, tmp_path):
    for threshold in (0, 1.5, -0.1, "high"):
        with pytest.raises(UsageError, match="threshold"):
            find_duplicates(corpus.catalog, threshold=threshold)
    with pytest.raises(UsageError, match="unknown keeper rule"):
        find_duplicates(corpus.catalog, rule="prettiest")
    with pytest.raises(UsageError, match="preferred source") as info:
        find_duplicates(corpus.catalog, rule="source")
    assert info.value.option == "preferred_source" and "--" not in info.value.hint
    with pytest.raises(UsageError, match="not a source"):
        find_duplicates(corpus.catalog, rule="source", preferred_source=str(tmp_path / "elsewhere"))
    assert load_duplicates(corpus.catalog) is None


def test_result_is_stored_atomically_and_read_back(corpus, monkeypatch):
    assert load_duplicates(corpus.catalog) is None
    assert duplicate_groups(corpus.catalog) == [list(ids_of(corpus, "a/c0/1.png", "a/c2/copy.png",
                                                    "b/copy.png"))]  # exact, computed now
    first = find_duplicates(corpus.catalog, threshold=0.95)
    again = load_duplicates(corpus.catalog)
    assert again == first
    assert json.loads(latest_path(corpus.catalog).read_text())["params"]["threshold"] == 0.95
    runs = corpus.runs("dedup")
    assert runs[0].status == "ok" and runs[0].counts["near_groups"] == 2
    before = latest_path(corpus.catalog).read_bytes()

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(dedup_mod.os, "replace", broken)
    with pytest.raises(OSError):
        find_duplicates(corpus.catalog, threshold=0.99)
    assert latest_path(corpus.catalog).read_bytes() == before
    assert sorted(p.name for p in latest_path(corpus.catalog).parent.iterdir()) == ["latest.json"]
    assert corpus.runs("dedup")[0].status == "failed"
    monkeypatch.undo()
    latest_path(corpus.catalog).write_text("{not json")
    with pytest.raises(CuratorError, match="cannot be read") as info:
        load_duplicates(corpus.catalog)
    assert "curator dedup" in info.value.hint


def test_outliers_need_a_clustering_and_are_ranked(corpus):
    assert find_duplicates(corpus.catalog).outliers == ()
    run_id, _ = corpus.cluster(n_groups=3)
    report = find_duplicates(corpus.catalog, outliers=5)
    assert report.cluster_run == run_id and len(report.outliers) == 5
    scores = [o.score for o in report.outliers]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 2 for s in scores)
    assignment = dict(corpus.catalog.db.execute(
        "SELECT item_id, group_id FROM assignments WHERE run_id = ?", [run_id]).fetchall())
    assert all(o.group_id == assignment[o.item_id] for o in report.outliers)
    # A group made later by a split has no stored centroid: its centroid is computed.
    biggest = corpus.groups(run_id, order="size")[0]
    new_ids = corpus.split(biggest.group_id, k=2)
    report = find_duplicates(corpus.catalog, outliers=100)
    assignment = dict(corpus.catalog.db.execute(
        "SELECT item_id, group_id FROM assignments WHERE run_id = ?", [run_id]).fetchall())
    assert all(o.group_id == assignment[o.item_id] for o in report.outliers)
    assert {o.group_id for o in report.outliers} & set(new_ids)
    assert len(report.near) == 2


def test_merge_groups_joins_overlapping_groups():
    assert merge_groups([[5, 3], [3, 9], [1, 2], [7], [2, 8], [10, 11]]) == [
        [1, 2, 8], [3, 5, 9], [10, 11]]
    assert merge_groups([]) == []


def test_report_json_round_trip(corpus):
    report = find_duplicates(corpus.catalog)
    assert DedupReport.from_json(json.loads(json.dumps(report.to_json()))) == report


# --- exports keep every copy in one split -----------------------------------------------------


def test_export_puts_exact_and_near_copies_in_one_split(corpus, tmp_path):
    corpus.set_annotator("ana")
    for name in ("c0", "c1", "c2", "b", "snd"):
        corpus.add_label(name)
    for item in corpus.items():
        top = item["path"].split("/")[0]
        label = top if top in ("c0", "c1", "c2", "snd") else "b"
        corpus.label_items([item["id"]], label)
    find_duplicates(corpus.catalog, threshold=0.95)
    copies = [ids_of(corpus, "a/c0/1.png", "a/c2/copy.png", "b/copy.png"),
              ids_of(corpus, "a/c0/0.png", "a/c1/near.jpg", "b/big.png"),
              ids_of(corpus, "a/snd/short.wav", "a/snd/long.wav")]
    for seed in range(6):
        out = tmp_path / f"out{seed}"
        # Each seed is a re-split of the project's stored assignment.
        export(corpus, "jsonl", out, split="train=0.5,val=0.25,test=0.25", seed=seed,
               resplit=True)
        rows = {json.loads(line)["item_id"]: json.loads(line)
                for line in (out / "items.jsonl").read_text().splitlines()}
        for group in copies:
            assert len({rows[i]["split"] for i in group}) == 1, (seed, group)
            assert {rows[i]["duplicate_group"] for i in group} == {min(group)}
        export(corpus, "imagefolder", tmp_path / f"img{seed}")  # the same stored splits
        manifest = json.loads((tmp_path / f"img{seed}" / "manifest.json").read_text())
        images = [r for r in rows.values() if r["modality"] == "image"]
        assert manifest["counts"]["items"] == len(images)
        assert {s: sum(c.values()) for s, c in manifest["counts"]["by_split"].items()} == \
            dict(Counter(r["split"] for r in images))
        splits = Counter(r["split"] for r in rows.values())
        assert abs(splits["train"] - len(rows) / 2) <= 3  # whole groups may tip it a little


# --- the facade methods and CLI command --------------------------------------------------------


def test_cli_dedup_command(corpus):
    from curator.cli import cli as command

    runner = CliRunner()
    result = runner.invoke(command, ["dedup", str(corpus.root), "--keep", "oldest"])
    assert result.exit_code == 0, result.output
    assert "1 exact groups (3 items), 2 near groups (5 items)" in result.output
    assert "a/c0/1.png" in result.output  # the oldest copy is suggested
    result = runner.invoke(command, ["dedup", str(corpus.root), "--json", "--threshold", "0.99"])
    assert json.loads(result.output)["params"]["threshold"] == 0.99
    result = runner.invoke(command, ["dedup", str(corpus.root), "--threshold", "2"])
    assert result.exit_code == 2
    with Project.open(corpus.root) as proj:
        assert proj.duplicates().params["threshold"] == 0.99
