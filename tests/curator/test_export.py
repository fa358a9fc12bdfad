"""Exports: every format gives back the catalog's labels, the names it writes are safe and unique,
provenance comes from the labelling event, CSV is safe in a spreadsheet, file modes, the manifest.

The consumer tools themselves load these exports in tests/consumers/."""

from __future__ import annotations

import csv
import errno
import json
import os
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import pytest
from click.testing import CliRunner

import curator.export.core as core_mod
from curator.errors import CuratorError, UsageError
from curator.export import (
    COLUMNS,
    EXPORTERS,
    Exporter,
    export,
    label_folders,
    register_exporter,
    safe_file_name,
    safe_name,
)
from curator.export.names import SPLIT_WORDS, has_split_word
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


def catalog_labels(project: Project, labelled_only: bool = False,
                   modality: Optional[str] = None) -> dict[int, str]:
    """item id -> label path (or state) straight from the catalog."""
    paths = {lab.id: lab.path for lab in project.labels()}
    out: dict[int, str] = {}
    for item_id, state, label_id, modal in project.catalog.db.execute(
            "SELECT items.id, il.state, il.label_id, items.modality FROM items "
            "LEFT JOIN item_labels il ON il.item_id = items.id WHERE items.status = 'ok'"):
        if (labelled_only and state != "labelled") or (modality and modal != modality):
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
            row["split"] = row["split"] or None
        return rows
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out / "items.parquet").to_pylist()
    raise AssertionError(fmt)


def manifest_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def read_labels(out: Path, fmt: str) -> dict[int, str]:
    """item id -> label path (or state), read back from an export on disk."""
    if fmt in ("jsonl", "csv", "parquet"):
        return {int(r["item_id"]): (r["label_path"] if r["label_state"] == "labelled"
                                    else r["label_state"]) for r in read_rows(out, fmt)}
    names = manifest_of(out)["label_names"]
    got: dict[int, str] = {}
    if fmt in ("imagefolder", "audiofolder"):
        import pyarrow.parquet as pq

        for meta in out.rglob("metadata.parquet"):
            table = pq.read_table(meta)
            classes = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"][
                "label"]["names"]
            for rec in table.to_pylist():
                folder = rec["file_name"].split("/")[0]
                assert (meta.parent / rec["file_name"]).is_file()
                assert names[folder] == rec["label_path"] == names[classes[rec["label"]]]
                got[rec["item_id"]] = rec["label_path"]
        return got
    if fmt in ("videofolder", "yolo"):
        for path in out.rglob("*"):
            if path.is_file() and path.parent.name in names and path.suffix in (".mp4", ".png"):
                got[_item_of(out, path)] = names[path.parent.name]
        return got
    if fmt == "coco":
        for path in out.rglob("labels.json"):
            doc = json.loads(path.read_text(encoding="utf-8"))
            cats = {c["id"]: names[c["name"]] for c in doc["categories"]}
            labelled = {a["image_id"]: cats[a["category_id"]] for a in doc["annotations"]}
            for image in doc["images"]:
                assert (path.parent / "data" / image["file_name"]).is_file()
                got[image["id"]] = labelled.get(image["id"], "none")
        return got
    if fmt == "labelstudio":
        for path in out.rglob("tasks.json"):
            for task in json.loads(path.read_text(encoding="utf-8")):
                preds = task.get("predictions") or task.get("annotations") or []
                got[task["id"]] = (preds[0]["result"][0]["value"]["choices"][0] if preds
                                   else task["data"]["state"])
        return got
    if fmt == "nemo":
        for path in out.glob("*manifest.json"):
            if path.name != "manifest.json":
                for line in path.read_text(encoding="utf-8").splitlines():
                    rec = json.loads(line)
                    got[rec["item_id"]] = rec["label"]
        return got
    if fmt == "webdataset":
        for shard in sorted(out.glob("shards/*.tar")):
            with tarfile.open(shard) as tar:
                for member in tar.getmembers():
                    if member.name.endswith(".json"):
                        rec = json.loads(tar.extractfile(member).read())
                        got[rec["item_id"]] = rec["label"] or rec["label_state"]
        return got
    raise AssertionError(fmt)


def _item_of(out: Path, path: Path) -> int:
    """Item id of a placed file: kinetics.csv for videos, the source bytes for images."""
    if path.suffix == ".mp4":
        with open(out / "kinetics.csv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if (out / row["path"]) == path:
                    return int(row["item_id"])
    return _SOURCES[path.read_bytes()]


_SOURCES: dict[bytes, int] = {}


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
    if split:  # decided items have a split; unlabelled ones wait until they are labelled
        assert {r["split"] for r in rows if r["label_state"] != "unlabelled"} == \
            {"train", "val", "test"}
        assert {r["split"] for r in rows if r["label_state"] == "unlabelled"} == {None}
    else:
        assert {r["split"] for r in rows} == {None}
    assert report.items == len(rows) == 30


def test_every_format_round_trips_its_items(project, tmp_path, monkeypatch):
    for item in project.items():
        _SOURCES[Path(item["abs_path"]).read_bytes()] = item["id"]
    want_all = catalog_labels(project)
    image = catalog_labels(project, modality="image")
    expect = {
        "imagefolder": catalog_labels(project, True, "image"),
        "audiofolder": catalog_labels(project, True, "audio"),
        "videofolder": catalog_labels(project, True, "video"),
        "yolo": catalog_labels(project, True, "image"),
        "nemo": catalog_labels(project, True, "audio"),
        "coco": {i: (v if v not in ("noise", "mixed", "unlabelled") else "none")
                 for i, v in image.items()},
        "labelstudio": want_all,
        "webdataset": want_all,
    }
    for fmt, want in expect.items():
        out = tmp_path / fmt
        report = export(project, fmt, out, split=SPLIT)
        assert read_labels(out, fmt) == want, fmt
        assert report.items == len(want), fmt
        manifest = manifest_of(out)
        assert manifest["counts"]["items"] == len(want)
        assert manifest["split_assignment"]["id"] == report.split_assignment


def test_imagefolder_files_are_the_source_bytes_and_paths_are_relative(project, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    export(project, "imagefolder", out, use_splits=False)
    rows = pq.read_table(out / "data" / "metadata.parquet").to_pylist()
    sources = {i["id"]: i["abs_path"] for i in project.items()}
    assert len(rows) == 22
    for rec in rows:
        target = out / "data" / rec["file_name"]
        assert not os.path.isabs(rec["file_name"])
        assert target.read_bytes() == Path(sources[rec["item_id"]]).read_bytes()
        assert not target.is_symlink()
    assert sorted(p.name for p in (out / "data" / "red").iterdir()) == \
        [f"{i}.png" for i in range(10)]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert 'path: "data/**"' in card and "class_label" in card


def test_imagefolder_gives_clashing_file_names_unique_targets(tmp_path, media):
    src = tmp_path / "media"
    for sub in ("a", "b", "c"):
        media.image(src / sub / "same.png", color=(10, 20, 30), seed=ord(sub))
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.add_label("thing")
        proj.label_items([i["id"] for i in proj.items()], "thing")
        export(proj, "imagefolder", tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out" / "data" / "thing").iterdir())
    assert names == ["same-2.png", "same-3.png", "same.png"]
    assert read_labels(tmp_path / "out", "imagefolder") == {1: "thing", 2: "thing", 3: "thing"}


def test_mixed_project_gets_one_sub_export_per_modality(project, tmp_path):
    report = export(project, "labelstudio", tmp_path / "ls")
    assert report.parts == ("image", "audio", "video")
    assert any("sub-export" in note for note in report.notes)
    for modality, tag in (("image", "Image"), ("audio", "Audio"), ("video", "Video")):
        part = tmp_path / "ls" / modality
        config = (part / "labeling_config.xml").read_text()
        assert f'<{tag} name="{modality}" value="${modality}"/>' in config
        for task in json.loads((part / "tasks.json").read_text()):
            assert set(task["data"]) >= {modality} and task["data"][modality].startswith(
                "/data/local-files/?d=")
            for pred in task.get("predictions", []):
                assert pred["result"][0]["to_name"] == modality
        readme = (part / "README.md").read_text()
        assert "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true" in readme
        assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=" in readme
    one = export(project, "labelstudio", tmp_path / "one", modality="audio", ls_as="annotations",
                 url_prefix="https://media.example/x")
    assert one.parts == () and one.items == 2
    tasks = json.loads((tmp_path / "one" / "tasks.json").read_text())
    assert all(t["data"]["audio"].startswith("https://media.example/x/") for t in tasks)
    assert all("annotations" in t and "predictions" not in t for t in tasks)
    with pytest.raises(UsageError, match="exports image"):
        export(project, "imagefolder", tmp_path / "bad", modality="audio")


def test_imagefolder_holds_only_images_and_says_where_the_rest_goes(project, tmp_path):
    report = export(project, "imagefolder", tmp_path / "out")
    suffixes = {p.suffix for p in (tmp_path / "out" / "data").rglob("*") if p.is_file()}
    assert suffixes == {".png", ".parquet"}
    assert report.skipped["not image"] == 3
    assert any("audiofolder" in note and "videofolder" in note for note in report.notes)


# --- names ------------------------------------------------------------------------------------


def test_label_export_names_are_unique_visible_and_never_split_words(tmp_path, media):
    src = tmp_path / "media"
    names = ["..", ".hidden", "-flag", "a/b", "CON", "nul.txt", "trailing. ", "x" * 190,
             "metadata.jsonl", "manifest.json", "Cat", "cat", "test", "test tube", "dev board",
             "validation_set", "train-2", "contest", "data", "README.md"]
    for i, _ in enumerate(names):
        media.image(src / f"{i:02d}.png", size=(8, 8), seed=i)
    (tmp_path / "outside").mkdir()
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        ids = [i["id"] for i in proj.items()]
        for name in names:
            proj.add_label(name)
        per_item = {item: lab.path for item, lab in zip(ids, proj.labels())}
        for item, label in per_item.items():
            proj.label_items([item], label)
        out = tmp_path / "outside" / "out"
        export(proj, "imagefolder", out, split="train=0.5,test=0.5")
        assert sorted(os.listdir(tmp_path / "outside")) == ["out"]
        real_out = os.path.realpath(out)
        for path in out.rglob("*"):
            assert os.path.commonpath([os.path.realpath(path), real_out]) == real_out
        mapping = manifest_of(out)["label_names"]
        assert sorted(mapping.values()) == sorted(lab.path for lab in proj.labels())
        assert len({n.casefold() for n in mapping}) == len(names)
        for name in mapping:
            assert name[0] not in ".-" and "/" not in name and "\\" not in name
            assert not has_split_word(name), name
            assert name.casefold() not in ("metadata.jsonl", "manifest.json", "data",
                                           "readme.md")
            assert len(name.encode()) <= 120
        assert {v: k for k, v in mapping.items()}["contest"] == "contest"  # no token: kept
        assert read_labels(out, "imagefolder") == per_item


def test_the_taxonomy_refuses_a_name_that_collides_with_a_label_path(project):
    with pytest.raises(UsageError, match="colour/red"):
        project.add_label("colour/red")
    project.add_label("colour/x")
    with pytest.raises(UsageError, match="colour/x"):
        project.add_label("x", parent="colour")
    with pytest.raises(UsageError, match="colour/red"):
        project.update_label("blue", new_name="colour/red")
    project.add_label("y", parent="colour")  # no clash: fine


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


def test_safe_names_stay_distinct_and_split_words_are_bracketed():
    names = ["a/b", "a_b", "a\\b", "a:b", "..", "_"]
    assert len({safe_name(n) for n in names}) == len(names)
    assert safe_file_name("CON.png").endswith(".png") and safe_file_name("CON.png") != "CON.png"
    assert safe_file_name("x" * 300 + ".jpeg").endswith(".jpeg")
    folders = label_folders(["Cat", "cat", "manifest.json", "test tube", "val"])
    assert len({f.casefold() for f in folders.values()}) == 5
    assert folders["test tube"] == "(test) tube" and folders["val"] == "(val)"
    for word in SPLIT_WORDS:
        assert has_split_word(word) and not has_split_word(label_folders([word])[word])


# --- provenance -------------------------------------------------------------------------------


def test_provenance_comes_from_the_labelling_event_not_the_current_clustering(project, tmp_path):
    from curator.labels import apply_event

    blue = [i["id"] for i in project.items() if i["path"].startswith("blue/")][:2]
    now = "2026-01-01T00:00:00.000Z"

    def clustering(group: int) -> int:
        with project.catalog.write() as w:
            run = w.execute("INSERT INTO runs (kind, app_version, params, started_at, status, "
                            "counts) VALUES ('cluster', '0', '{}', ?, 'ok', '{}')", [now]).lastrowid
            w.execute("INSERT INTO clusterings (run_id, space, method, n_groups, group_offset, "
                      "created_at) VALUES (?, 'x', 'kmeans', 1, 0, ?)", [run, now])
            w.execute("INSERT INTO groups (run_id, group_id, space, size, created_at) "
                      "VALUES (?, ?, 'x', 2, ?)", [run, group, now])
            w.conn.executemany("INSERT INTO assignments (run_id, item_id, group_id) "
                               "VALUES (?, ?, ?)", [(run, i, group) for i in blue])
        return run

    run = clustering(7)
    label_id = next(lab.id for lab in project.labels() if lab.name == "green")
    event = apply_event(project.catalog, "assign", blue, label_id=label_id, source="group",
                        annotator="bo", run_id=run, group_id=7)
    project.label_items(blue, action="confirm")  # a confirm does not set the label
    clustering(99)  # re-clustering afterwards changes nothing in the rows
    export(project, "parquet", tmp_path / "out")
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out" / "items.parquet")
    assert str(table.schema.field("labelled_at").type) == "timestamp[ms, tz=UTC]"
    rows = {r["item_id"]: r for r in table.to_pylist()}
    for item in blue:
        row = rows[item]
        assert (row["event_id"], row["group_id"], row["cluster_run"]) == (event, 7, run)
        assert row["annotator"] == "bo" and row["label_source"] == "group"
        assert row["confirmed"] and row["labelled_at"].year >= 2024
    other = next(r for r in rows.values() if r["label_path"] == "colour/red")
    assert other["group_id"] is None and other["cluster_run"] is None


# --- spreadsheets, modes, manifest ------------------------------------------------------------


def test_csv_cells_cannot_run_as_formulas(tmp_path, media):
    src = tmp_path / "media"
    for i, name in enumerate(["=cmd|' -C calc'!A0.png", "+1.png", "@x.png", "-2.png", "ok.png"]):
        media.image(src / name, size=(8, 8), seed=i)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.add_label("=HYPERLINK(1)")
        proj.label_items([i["id"] for i in proj.items()], "=HYPERLINK(1)")
        export(proj, "csv", tmp_path / "out")
    with open(tmp_path / "out" / "items.csv", encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@")), cell
    rows = read_rows(tmp_path / "out", "csv")
    assert {r["rel_path"] for r in rows} >= {"'=cmd|' -C calc'!A0.png", "'+1.png", "ok.png"}


def test_relative_paths_for_tabular_and_nemo(project, tmp_path):
    base = Path(project.sources()[0].root).parent
    export(project, "jsonl", tmp_path / "j", relative_to=str(base))
    for row in read_rows(tmp_path / "j", "jsonl"):
        assert not os.path.isabs(row["path"]) and (base / row["path"]).is_file()
    export(project, "nemo", tmp_path / "n", relative_to=str(base))
    line = json.loads((tmp_path / "n" / "nemo_manifest.json").read_text().splitlines()[0])
    assert (base / line["audio_filepath"]).is_file() and line["duration"] > 0


def test_symlink_and_hardlink_modes(project, tmp_path):
    import pyarrow.parquet as pq

    export(project, "imagefolder", tmp_path / "sym", mode="symlink")
    export(project, "imagefolder", tmp_path / "hard", mode="hardlink")
    sources = {i["id"]: i["abs_path"] for i in project.items()}
    for rec in pq.read_table(tmp_path / "sym" / "data" / "metadata.parquet").to_pylist():
        link = tmp_path / "sym" / "data" / rec["file_name"]
        assert link.is_symlink() and os.readlink(link) == sources[rec["item_id"]]
        hard = tmp_path / "hard" / "data" / rec["file_name"]
        assert os.stat(hard).st_ino == os.stat(sources[rec["item_id"]]).st_ino
    assert manifest_of(tmp_path / "hard")["options"]["mode"] == "hardlink"


def test_hardlink_across_devices_falls_back_to_copy_and_says_so(project, tmp_path, monkeypatch):
    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(core_mod.os, "link", cross_device)
    report = export(project, "imagefolder", tmp_path / "out", mode="hardlink")
    assert any("copied instead" in note for note in report.notes)
    assert manifest_of(tmp_path / "out")["notes"] == list(report.notes)


def test_missing_source_file_is_left_out_and_counted(project, tmp_path):
    gone = next(i for i in project.items() if i["path"] == "red/0.png")
    os.remove(gone["abs_path"])
    report = export(project, "imagefolder", tmp_path / "out")
    assert gone["id"] not in read_labels(tmp_path / "out", "imagefolder")
    assert report.skipped["file missing"] == 1
    assert report.counts["all"]["colour/red"] == 9 and report.items == 21


def test_manifest_counts_checksums_names_and_absolute_project(project, tmp_path, monkeypatch):
    import hashlib

    monkeypatch.chdir(project.root.parent)
    report = export(project, "imagefolder", Path("out"), split=SPLIT)
    out = project.root.parent / "out"
    manifest = manifest_of(out)
    assert os.path.isabs(manifest["project"])
    assert manifest["counts"]["by_split"] == report.counts
    assert sum(sum(c.values()) for c in report.counts.values()) == 22
    assert manifest["label_names"]["red"] == "colour/red"
    for rel, digest in manifest["checksums"]["sha256"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert manifest["split_assignment"]["fractions"] == {"train": 0.6, "val": 0.2, "test": 0.2}


def test_cancel_leaves_nothing(project, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export(project, "jsonl", tmp_path / "out", cancel=token)
    assert sorted(os.listdir(tmp_path)) == ["media", "proj"]


def test_exporters_are_a_registry_and_cannot_write_outside(project, tmp_path):
    assert {"jsonl", "imagefolder", "audiofolder", "videofolder", "fiftyone", "coco",
            "labelstudio", "yolo", "webdataset", "nemo"} <= set(EXPORTERS)

    def ids_only(ctx):
        with ctx.open("ids.txt") as fh:
            for chunk in ctx.chunks():
                fh.writelines(f"{row.item_id}\n" for row in chunk)

    def escape(ctx):
        ctx.target("..", "evil")

    try:
        register_exporter(Exporter("ids", ids_only, "item ids"))
        register_exporter(Exporter("evil", escape, "tries to leave"))
        export(project, "ids", tmp_path / "ids")
        assert len((tmp_path / "ids" / "ids.txt").read_text().split()) == 30
        with pytest.raises(CuratorError, match="unsafe name"):
            export(project, "evil", tmp_path / "evil")
        assert not (tmp_path / "evil").exists()
    finally:
        EXPORTERS.pop("ids", None)
        EXPORTERS.pop("evil", None)


def test_cli_export_command(project, tmp_path):
    from curator.cli import cli

    root = str(project.root)
    project.close()
    runner = CliRunner()
    done = runner.invoke(cli, ["export", root, "--format", "webdataset", "--out",
                               str(tmp_path / "w"), "--split", SPLIT, "--shard-size", "5",
                               "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["items"] == 30 and report["split_assignment"] == 1
    shards = json.loads((tmp_path / "w" / "shards.json").read_text())
    assert sum(shards["samples"].values()) == 30
    assert all(len(v) >= 1 for v in shards["shards"].values())
    again = runner.invoke(cli, ["export", root, "--format", "jsonl", "--out",
                                str(tmp_path / "j"), "--split", "train=0.5,test=0.5"])
    assert again.exit_code != 0 and "--resplit" in again.output
