"""Exports: every format gives back the catalog's labels, splits are stratified and keep duplicates
together, writes are atomic and never leave OUT, file modes, the manifest."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
from click.testing import CliRunner

import curator.export as export_mod
from curator.errors import CuratorError, UsageError
from curator.export import (
    COLUMNS,
    EXPORTERS,
    assign_splits,
    export,
    is_export,
    label_folders,
    parse_split,
    safe_file_name,
    safe_name,
)
from curator.project import Project
from curator.scan import ScanOptions
from indexing.progress import Cancelled, CancelToken

SPLIT = "train=0.6,val=0.2,test=0.2"


def _label_by_folder(project: Project, folder_labels: dict[str, Optional[str]]) -> None:
    """Label every item under `<folder>/` with a label (None: noise)."""
    by_folder: dict[str, list[int]] = defaultdict(list)
    for item in project.items(status="ok"):
        by_folder[item["path"].split("/", 1)[0]].append(item["id"])
    for folder, label in folder_labels.items():
        if label is None:
            project.label_items(by_folder[folder], action="noise")
        else:
            project.label_items(by_folder[folder], label)


@pytest.fixture
def project(tmp_path, media):
    """22 labelled images in three classes (10/7/5, one nested label), 3 noise, 2 unlabelled,
    2 labelled audio clips and a labelled video."""
    src = tmp_path / "media"
    plan = {"red": ((200, 30, 30), 10), "green": ((30, 200, 30), 7), "blue": ((30, 30, 200), 5),
            "junk": ((128, 128, 128), 3), "new": ((250, 250, 0), 2)}
    seed = 0
    for folder, (colour, n) in plan.items():
        for i in range(n):
            seed += 1
            media.image(src / folder / f"{i}.png", size=(16, 16), color=colour, seed=seed)
    media.wav(src / "sounds" / "a.wav", seconds=0.25, freq=440)
    media.wav(src / "sounds" / "b.wav", seconds=0.5, freq=880)
    media.video(src / "clips" / "a.mp4", frames=6, size=(32, 32))
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.set_annotator("ana")
        proj.add_label("colour")
        proj.add_label("red", parent="colour")
        proj.add_label("green")
        proj.add_label("blue")
        proj.add_label("sound")
        proj.add_label("clip")
        _label_by_folder(proj, {"red": "red", "green": "green", "blue": "blue", "junk": None,
                                "sounds": "sound", "clips": "clip"})
        yield proj


def catalog_labels(project: Project, labelled_only: bool = False) -> dict[int, Optional[str]]:
    """item id -> label path (or state) straight from the catalog."""
    paths = {lab.id: lab.path for lab in project.labels()}
    out: dict[int, Optional[str]] = {}
    for item_id, state, label_id in project.catalog.db.execute(
            "SELECT items.id, il.state, il.label_id FROM items LEFT JOIN item_labels il "
            "ON il.item_id = items.id WHERE items.status = 'ok'"):
        if labelled_only and state != "labelled":
            continue
        out[item_id] = paths[label_id] if state == "labelled" else (state or "unlabelled")
    return out


# --- plain readers (independent of curator.export) --------------------------------------------


def read_rows(out: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        with open(out / "items.jsonl", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    if fmt == "csv":
        with open(out / "items.csv", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            row["item_id"] = int(row["item_id"])
        return rows
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out / "items.parquet").to_pylist()
    raise AssertionError(fmt)


def read_labels(out: Path, fmt: str) -> dict[int, Optional[str]]:
    """item id -> label path (or state), read back from an export on disk."""
    if fmt in ("jsonl", "csv", "parquet"):
        return {int(r["item_id"]): (r["label_path"] if r["label_state"] == "labelled"
                                    else r["label_state"]) for r in read_rows(out, fmt)}
    if fmt == "imagefolder":
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        folder_to_label = {v: k for k, v in manifest["label_folders"].items()}
        got = {}
        for meta in out.rglob("metadata.jsonl"):
            for line in meta.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                folder = rec["file_name"].split("/")[0]
                assert (meta.parent / rec["file_name"]).is_file()
                assert folder_to_label[folder] == rec["label_path"]
                got[rec["item_id"]] = folder_to_label[folder]
        return got
    if fmt == "coco":
        got = {}
        for path in out.glob("*.json"):
            if path.name == "manifest.json":
                continue
            doc = json.loads(path.read_text(encoding="utf-8"))
            cats = {c["id"]: c["path"] for c in doc["categories"]}
            labelled = {a["image_id"]: cats[a["category_id"]] for a in doc["annotations"]}
            for image in doc["images"]:
                got[image["id"]] = labelled.get(image["id"])
        return got
    if fmt == "labelstudio":
        got = {}
        for path in out.glob("tasks*.json"):
            for task in json.loads(path.read_text(encoding="utf-8")):
                preds = task.get("predictions") or []
                got[task["id"]] = (preds[0]["result"][0]["value"]["choices"][0] if preds
                                   else task["data"].get("state", "unlabelled"))
        return got
    if fmt == "nemo":
        got = {}
        for path in out.glob("*manifest.json"):
            if path.name == "manifest.json":
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                got[rec["item_id"]] = rec["label"]
        return got
    raise AssertionError(fmt)


def split_of(out: Path, fmt: str) -> dict[int, str]:
    if fmt == "imagefolder":
        got = {}
        for meta in out.rglob("metadata.jsonl"):
            for line in meta.read_text(encoding="utf-8").splitlines():
                got[json.loads(line)["item_id"]] = meta.parent.name
        return got
    return {int(r["item_id"]): r["split"] for r in read_rows(out, fmt)}


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("split", [None, SPLIT])
def test_tabular_formats_round_trip_every_label(project, tmp_path, fmt, split):
    out = tmp_path / "out"
    report = export(project, fmt, out, split=split)
    assert read_labels(out, fmt) == catalog_labels(project)
    rows = read_rows(out, fmt)
    assert [r["item_id"] for r in rows] == sorted(r["item_id"] for r in rows)
    assert list(rows[0]) == list(COLUMNS)
    red = next(r for r in rows if r["label_path"] == "colour/red")
    assert red["label"] == "red" and red["label_source"] == "manual" and red["annotator"] == "ana"
    assert red["labelled_at"] and int(red["event_id"]) > 0
    assert red["modality"] == "image" and os.path.isfile(red["path"])
    assert red["path"].endswith(red["rel_path"]) and red["content_hash"]
    if split:
        assert {r["split"] for r in rows} == {"train", "val", "test"}
    else:
        assert {r["split"] or None for r in rows} == {None}
    assert report.items == len(rows) == 30


@pytest.mark.parametrize("fmt", ["imagefolder", "coco", "labelstudio", "nemo"])
def test_tool_formats_round_trip_labels(project, tmp_path, fmt):
    out = tmp_path / "out"
    report = export(project, fmt, out, split=SPLIT)
    got = read_labels(out, fmt)
    want = catalog_labels(project)
    modality = {i["id"]: i["modality"] for i in project.items()}
    if fmt == "imagefolder":  # class folders: labelled items of any modality
        want = {i: lab for i, lab in want.items() if lab not in ("noise", "unlabelled")}
    elif fmt == "coco":  # images; unlabelled ones have no annotation
        want = {i: (None if lab in ("noise", "unlabelled") else lab) for i, lab in want.items()
                if modality[i] == "image"}
    elif fmt == "nemo":
        want = {i: lab for i, lab in want.items() if modality[i] == "audio"}
    assert got == want
    assert report.items == len(want)
    if fmt == "labelstudio":  # the data key says what the media is
        keys = Counter()
        for path in out.glob("tasks*.json"):
            for task in json.loads(path.read_text(encoding="utf-8")):
                key = task["data"]["modality"]
                assert task["data"][key].startswith("/data/local-files/?d=")
                for pred in task.get("predictions", []):
                    assert pred["result"][0]["to_name"] == key
                keys[key] += 1
        assert keys == {"image": 27, "audio": 2, "video": 1}
        config = (out / "labeling_config.xml").read_text()
        assert '<Video name="video"' in config and 'value="colour/red"' in config
    if fmt == "imagefolder":
        assert any(p.suffix == ".mp4" for p in out.rglob("clip/*"))


def test_imagefolder_files_are_the_source_bytes(project, tmp_path):
    out = tmp_path / "out"
    export(project, "imagefolder", out)
    assert not (out / "train").exists()
    for line in (out / "metadata.jsonl").read_text().splitlines():
        rec = json.loads(line)
        target = out / rec["file_name"]
        assert target.read_bytes() == Path(rec["source_path"]).read_bytes()
        assert not target.is_symlink()
    assert sorted(p.name for p in (out / "red").iterdir()) == [f"{i}.png" for i in range(10)]


def test_imagefolder_gives_clashing_file_names_unique_targets(tmp_path, media):
    src = tmp_path / "media"
    for sub in ("a", "b", "c"):
        media.image(src / sub / "same.png", color=(10, 20, 30), seed=ord(sub))
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.add_label("thing")
        proj.label_items([i["id"] for i in proj.items()], "thing")
        export(proj, "imagefolder", tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out" / "thing").iterdir())
    assert names == ["same-2.png", "same-3.png", "same.png"]
    assert read_labels(tmp_path / "out", "imagefolder") == {1: "thing", 2: "thing", 3: "thing"}


# --- splits -----------------------------------------------------------------------------------


def test_split_is_stratified_within_one_item_per_label(project, tmp_path):
    fractions = parse_split(SPLIT)
    export(project, "jsonl", tmp_path / "out", split=SPLIT)
    rows = read_rows(tmp_path / "out", "jsonl")
    per_label: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        key = r["label_path"] if r["label_state"] == "labelled" else r["label_state"]
        per_label[key][r["split"]] += 1
    assert set(per_label) == {"colour/red", "green", "blue", "sound", "clip", "noise",
                              "unlabelled"}
    for label, counts in per_label.items():
        n = sum(counts.values())
        for name, fraction in fractions.items():
            assert abs(counts[name] - fraction * n) <= 1, (label, dict(counts))


def test_split_is_deterministic_for_a_seed(project, tmp_path):
    export(project, "jsonl", tmp_path / "a", split=SPLIT, seed=7)
    export(project, "jsonl", tmp_path / "b", split=SPLIT, seed=7)
    export(project, "jsonl", tmp_path / "c", split=SPLIT, seed=8)
    a = (tmp_path / "a" / "items.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "items.jsonl").read_bytes()
    assert split_of(tmp_path / "a", "jsonl") != split_of(tmp_path / "c", "jsonl")


def test_assign_splits_keeps_duplicate_groups_whole_and_balanced():
    rng = np.random.default_rng(0)
    ids = np.arange(1, 201)
    strata = rng.integers(1, 4, size=200)
    groups = [[1, 2, 3, 4, 5], [10, 11], [20, 21, 22], [30, 31, 32, 33], [40, 41], [5, 50]]
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    for seed in range(5):
        split = assign_splits(ids, strata, groups, fractions, seed)
        assert (split >= 0).all()
        for group in ([1, 2, 3, 4, 5, 50], *groups[1:5]):  # [5, 50] joins the first group
            assert len({int(split[i - 1]) for i in group}) == 1, (seed, group)
        for key in (1, 2, 3):
            n = int((strata == key).sum())
            for k, f in enumerate(fractions.values()):
                got = int(((strata == key) & (split == k)).sum())
                assert abs(got - f * n) <= 5  # whole groups of up to 6 may tip a split
        assert np.array_equal(split, assign_splits(ids, strata, groups, fractions, seed))


def test_exact_duplicates_land_in_one_split(project, tmp_path):
    src = Path(project.sources()[0].root)
    original = src / "red" / "0.png"
    for where in ("red/copy1.png", "red/copy2.png", "green/copy3.png", "dupes/copy4.png"):
        (src / where).parent.mkdir(exist_ok=True)
        shutil.copyfile(original, src / where)
    project.scan(ScanOptions(workers=0))
    _label_by_folder(project, {"red": "red", "green": "green"})
    digest = next(i["content_hash"] for i in project.items() if i["path"] == "red/0.png")
    copies = {i["id"] for i in project.items() if i["content_hash"] == digest}
    assert len(copies) == 5
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        export(project, "parquet", out, split=SPLIT, seed=seed)
        rows = {r["item_id"]: r for r in read_rows(out, "parquet")}
        assert len({rows[i]["split"] for i in copies}) == 1
        assert {rows[i]["duplicate_group"] for i in copies} == {min(copies)}
        export(project, "imagefolder", tmp_path / f"img{seed}", split=SPLIT, seed=seed)
        splits = split_of(tmp_path / f"img{seed}", "imagefolder")
        assert len({splits[i] for i in copies if i in splits}) == 1


@pytest.mark.parametrize("spec", [
    "train=0.8,val=0.1", "train=0.8,train=0.2", "../x=1", "a/b=1", "train=-0.5,val=1.5",
    "train=nan", "train=1,", "train", "a=b", "train=0.5=0.5", "con fig=1", "train=inf",
])
def test_parse_split_is_strict(spec):
    with pytest.raises(UsageError):
        parse_split(spec)


def test_parse_split_accepts_good_specs():
    assert parse_split(" train = 0.7 , test=0.3 ") == {"train": 0.7, "test": 0.3}
    assert parse_split("all=1") == {"all": 1.0}
    assert parse_split("a=0.3333333,b=0.3333333,c=0.3333334") is not None
    assert parse_split(None) is None and parse_split("") is None


# --- atomic writes and the OUT folder ---------------------------------------------------------


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(name))


def test_a_failure_mid_export_leaves_no_out_and_no_partial_files(project, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_copy = shutil.copy2

    def failing_copy(a, b, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk on fire")
        return real_copy(a, b, *args, **kwargs)

    monkeypatch.setattr(export_mod.shutil, "copy2", failing_copy)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export(project, "imagefolder", tmp_path / "out", split=SPLIT)
    assert calls["n"] == 4
    assert _leftovers(tmp_path, "out") == []


def test_a_failure_keeps_the_previous_export(project, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export(project, "jsonl", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(path):
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(export_mod, "_sha256", broken)
    with pytest.raises(OSError):
        export(project, "csv", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path, "out") == ["out"]


def test_cancel_leaves_nothing(project, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export(project, "parquet", tmp_path / "out", cancel=token)
    assert _leftovers(tmp_path, "out") == []


def test_out_must_be_new_empty_or_a_previous_export(project, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.docx").write_text("precious")
    with pytest.raises(UsageError, match="not empty and not a Curator export"):
        export(project, "jsonl", busy)
    assert (busy / "thesis.docx").read_text() == "precious"
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        export(project, "jsonl", afile)
    with pytest.raises(UsageError, match="source folder"):
        export(project, "jsonl", Path(project.sources()[0].root) / "exports")
    with pytest.raises(UsageError, match="source folder"):
        export(project, "jsonl", tmp_path)
    with pytest.raises(UsageError, match="holds the project"):
        export(project, "jsonl", project.root)
    empty = tmp_path / "empty"
    empty.mkdir()
    export(project, "imagefolder", empty)
    assert is_export(empty) and (empty / "red").is_dir()
    export(project, "jsonl", empty)  # replaces the previous export entirely
    assert sorted(p.name for p in empty.iterdir()) == ["items.jsonl", "manifest.json"]
    with pytest.raises(UsageError, match="unknown export format"):
        export(project, "xml", tmp_path / "x")
    with pytest.raises(UsageError, match="unknown mode"):
        export(project, "imagefolder", tmp_path / "x", mode="teleport")


# --- names that must not escape ---------------------------------------------------------------


def test_unsafe_label_names_never_escape_out(tmp_path, media):
    src = tmp_path / "media"
    names = ["..", ".", "a/b", "a\\b", "CON", "nul.txt", "COM1", "trailing. ", "x" * 190,
             "metadata.jsonl", "manifest.json", "Cat", "cat"]
    for i, _ in enumerate(names):
        media.image(src / f"{i:02d}.png", size=(8, 8), seed=i)
    (tmp_path / "outside").mkdir()
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        ids = [i["id"] for i in proj.items()]
        for name in names:
            proj.add_label(name)
        stored = {lab.name for lab in proj.labels()}
        assert len(stored) == len(names)
        per_item = dict(zip(ids, sorted(stored)))
        for item, label in per_item.items():
            proj.label_items([item], label)
        out = tmp_path / "outside" / "out"
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "out" not in
                        p.relative_to(tmp_path).parts)
        export(proj, "imagefolder", out, split="train=0.5,test=0.5")
        after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "out" not in
                       p.relative_to(tmp_path).parts)
        assert before == after  # nothing new anywhere but OUT
        assert sorted(os.listdir(tmp_path / "outside")) == ["out"]
        real_out = os.path.realpath(out)
        for path in out.rglob("*"):
            assert os.path.commonpath([os.path.realpath(path), real_out]) == real_out
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        folders = manifest["label_folders"]
        assert len({f.casefold() for f in folders.values()}) == len(names)
        for folder in folders.values():
            assert folder not in (".", "..", "metadata.jsonl", "manifest.json")
            assert "/" not in folder and "\\" not in folder
            assert len(folder.encode()) <= 120
        assert set(manifest["renamed_label_folders"]) >= {"..", ".", "a/b", "CON", "COM1"}
        assert read_labels(out, "imagefolder") == per_item


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "x\u0007", "bell\x07\x00",
                                  "\u202eevil", "CON", "con", "Nul.txt", "COM1", "LPT9.log",
                                  "end. ", "dots...", " ", "é" * 200, "a:b*c?", "line\nbreak"])
def test_safe_name_makes_every_name_a_plain_folder_name(name):
    safe = safe_name(name)
    assert safe == safe_name(name)  # deterministic
    assert safe not in ("", ".", "..")
    assert not set(safe) & set('/\\<>:"|?*')
    assert all(ord(c) >= 32 and c not in "\u202e\u2028\u2029" for c in safe)
    assert not safe.endswith((".", " "))
    assert safe.split(".")[0].upper() not in {"CON", "NUL", "COM1", "LPT9", "PRN", "AUX"}
    assert len(safe.encode("utf-8")) <= 120
    assert safe_name("plain name") == "plain name"


def test_safe_names_stay_distinct_and_files_keep_extensions():
    names = ["a/b", "a_b", "a\\b", "a:b", "..", "_"]
    assert len({safe_name(n) for n in names}) == len(names)
    assert safe_file_name("CON.png").endswith(".png") and safe_file_name("CON.png") != "CON.png"
    assert safe_file_name("x" * 300 + ".jpeg").endswith(".jpeg")
    assert safe_file_name("ok.png") == "ok.png"
    folders = label_folders(["Cat", "cat", "manifest.json"])
    assert len({f.casefold() for f in folders.values()}) == 3
    assert folders["Cat"] == "Cat" and folders["manifest.json"] != "manifest.json"


# --- file modes -------------------------------------------------------------------------------


def test_symlink_and_hardlink_modes(project, tmp_path):
    export(project, "imagefolder", tmp_path / "sym", mode="symlink")
    export(project, "imagefolder", tmp_path / "hard", mode="hardlink")
    for line in (tmp_path / "sym" / "metadata.jsonl").read_text().splitlines():
        rec = json.loads(line)
        link = tmp_path / "sym" / rec["file_name"]
        assert link.is_symlink() and os.readlink(link) == rec["source_path"]
        hard = tmp_path / "hard" / rec["file_name"]
        assert not hard.is_symlink()
        assert os.stat(hard).st_ino == os.stat(rec["source_path"]).st_ino
    manifest = json.loads((tmp_path / "hard" / "manifest.json").read_text())
    assert manifest["options"]["mode"] == "hardlink" and manifest["notes"] == []


def test_hardlink_across_devices_falls_back_to_copy_and_says_so(project, tmp_path, monkeypatch):
    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(export_mod.os, "link", cross_device)
    report = export(project, "imagefolder", tmp_path / "out", mode="hardlink")
    assert any("copied instead" in note for note in report.notes)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["notes"] == list(report.notes)
    for line in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines():
        rec = json.loads(line)
        target = tmp_path / "out" / rec["file_name"]
        assert os.stat(target).st_ino != os.stat(rec["source_path"]).st_ino
        assert target.read_bytes() == Path(rec["source_path"]).read_bytes()


def test_missing_source_file_is_left_out_and_counted(project, tmp_path):
    gone = next(i for i in project.items() if i["path"] == "red/0.png")
    os.remove(gone["abs_path"])
    report = export(project, "imagefolder", tmp_path / "out")
    assert gone["id"] not in read_labels(tmp_path / "out", "imagefolder")
    assert report.skipped["file missing"] == 1
    assert report.counts["all"]["colour/red"] == 9 and report.items == 24


# --- options and manifest ---------------------------------------------------------------------


def test_only_labeled_leaves_out_noise_and_unlabelled(project, tmp_path):
    report = export(project, "csv", tmp_path / "out", only_labeled=True)
    got = read_labels(tmp_path / "out", "csv")
    assert got == catalog_labels(project, labelled_only=True)
    assert set(got.values()) == {"colour/red", "green", "blue", "sound", "clip"}
    assert report.skipped == {"not labelled": 5}


def test_manifest_counts_and_checksums_match_the_files(project, tmp_path):
    out = tmp_path / "out"
    report = export(project, "jsonl", out, split=SPLIT, seed=3)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["curator_export"] == 1 and manifest["format"] == "jsonl"
    assert manifest["options"] == {"split": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 3,
                                   "only_labeled": False, "mode": None}
    rows = read_rows(out, "jsonl")
    counted: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        counted[r["split"]][r["label_path"] if r["label_state"] == "labelled"
                            else r["label_state"]] += 1
    assert manifest["counts"]["by_split"] == {k: dict(v) for k, v in counted.items()}
    assert manifest["counts"]["items"] == len(rows) == report.items
    assert manifest["counts"]["by_label"]["colour/red"] == 10
    sums = manifest["checksums"]["sha256"]
    assert set(sums) == {"items.jsonl"}
    assert sums["items.jsonl"] == hashlib.sha256((out / "items.jsonl").read_bytes()).hexdigest()
    assert {t["path"] for t in manifest["taxonomy"]} == {"colour", "colour/red", "green", "blue",
                                                          "sound", "clip"}
    assert manifest["runs"]["scan"]["id"] >= 1
    assert manifest["project"] == str(project.root)


def test_group_and_embedding_columns_come_from_the_current_clustering(project, tmp_path):
    project.embed("classic", "classic", workers=0)
    run_id, _ = project.cluster(n_groups=3)
    assignment = dict(project.catalog.db.execute(
        "SELECT item_id, group_id FROM assignments WHERE run_id = ?", [run_id]).fetchall())
    export(project, "parquet", tmp_path / "out")
    rows = read_rows(tmp_path / "out", "parquet")
    assert rows and all(r["cluster_run"] == run_id for r in rows)
    assert {r["item_id"]: r["group_id"] for r in rows} == assignment
    assert all(r["embedding_spaces"] == ["classic:v1"] for r in rows)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["runs"]["cluster"]["id"] == run_id


def test_exporters_are_a_registry(project, tmp_path):
    assert {"jsonl", "csv", "parquet", "imagefolder", "coco", "labelstudio", "nemo"} <= set(
        EXPORTERS)

    def write(ctx):
        with ctx.open("ids.txt") as fh:
            for chunk in ctx.chunks():
                fh.write("".join(f"{r.item_id} {r.split}\n" for r in chunk))

    export_mod.register_exporter(export_mod.Exporter("ids", write, "item ids", needs_label=True))
    try:
        export(project, "ids", tmp_path / "out", split="a=0.5,b=0.5")
    finally:
        EXPORTERS.pop("ids")
    lines = (tmp_path / "out" / "ids.txt").read_text().splitlines()
    assert {int(line.split()[0]) for line in lines} == set(catalog_labels(project, True))
    assert {line.split()[1] for line in lines} == {"a", "b"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["checksums"]["sha256"]) == {"ids.txt"}


def test_a_plugin_exporter_cannot_write_outside(project, tmp_path):
    def evil(ctx):
        with ctx.open("..", "escaped.txt") as fh:
            fh.write("boo")

    export_mod.register_exporter(export_mod.Exporter("evil", evil, "tries to escape"))
    try:
        with pytest.raises(CuratorError, match="unsafe name"):
            export(project, "evil", tmp_path / "out")
    finally:
        EXPORTERS.pop("evil")
    assert not (tmp_path / "escaped.txt").exists()
    assert _leftovers(tmp_path, "out") == []


# --- the facade method and CLI command ---------------------------------------------------------


def test_cli_export_command(project, tmp_path):
    from curator.cli import cli as command

    runner = CliRunner()
    root = str(project.root)
    result = runner.invoke(command, ["export", root, "--format", "csv", "--out", str(tmp_path / "o"),
                                     "--split", SPLIT, "--only-labeled"])
    assert result.exit_code == 0, result.output
    assert "exported 25 items as csv" in result.output and "left out: 5 (not labelled)" in \
        result.output
    result = runner.invoke(command, ["export", root, "--format", "jsonl", "--out",
                                     str(tmp_path / "j"),
                                     "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["items"] == 30
    result = runner.invoke(command, ["export", root, "--format", "jsonl", "--out",
                                     str(tmp_path / "x"),
                                     "--split", "train=2"])
    assert isinstance(result.exception, UsageError)
