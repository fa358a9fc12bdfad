"""Sources that move: relocate keeps items, labels and vectors; unmounted is not deleted."""

from __future__ import annotations

import os
import shutil

import pytest

from curator.errors import UsageError
from curator.integrity import check
from curator.project import Project
from curator.scan import ScanOptions
from curator.sources import list_sources, relocate, remove


@pytest.fixture
def labelled(tmp_path, media):
    src = tmp_path / "photos"
    for i in range(10):
        media.image(src / "sub" / f"{i}.png", seed=i, color=(25 * i, 80, 160 - 10 * i))
    root = tmp_path / "proj"
    with Project.create(root, [src]) as project:
        project.scan(ScanOptions(workers=0))
        project.embed("classic", "classic", workers=0)
        project.add_label("cat")
        project.label_items([1, 2, 3, 4], "cat")
    return root, src


def _state(project: Project) -> tuple[dict, dict, int]:
    items = {i["id"]: (i["path"], i["status"]) for i in project.items()}
    labels = dict(project.catalog.db.execute("SELECT item_id, label_id FROM item_labels"))
    vectors = project.catalog.db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    return items, labels, vectors


def test_a_renamed_source_is_left_alone_then_relocated_with_everything(tmp_path, labelled):
    root, src = labelled
    with Project.open(root) as project:
        before = _state(project)
    moved = tmp_path / "photos-2026"
    os.rename(src, moved)
    with Project.open(root) as project:
        report = project.scan(ScanOptions(workers=0))
        assert report.unreachable == [str(src)] and report.missing == 0
        assert _state(project) == before  # nothing marked missing
        done = relocate(project.catalog, str(src), moved)
        assert (done.items, done.found, done.not_found) == (10, 10, 0)
        report = project.scan(ScanOptions(workers=0))
        assert (report.new, report.missing, report.unreachable) == (0, 0, [])
        assert _state(project) == before
        assert project.embed("classic", "classic", workers=0).embedded == 0
        assert [s.root for s in list_sources(project.catalog)] == [str(moved)]
    assert check(root).ok


def test_relocating_onto_a_source_already_added_merges_the_duplicates(tmp_path, labelled):
    """The finding: rename, add the new path, scan: 0 of the labels came along. Now they do."""
    root, src = labelled
    moved = tmp_path / "renamed"
    os.rename(src, moved)
    (moved / "sub" / "3.png").rename(moved / "three.png")  # one file also moved inside
    with Project.open(root) as project:
        before_items, before_labels, _ = _state(project)
        project.add_sources([str(moved)])
        project.scan(ScanOptions(workers=0))
        assert len(project.items()) == 20  # the re-found copies, without labels
        done = relocate(project.catalog, str(src), moved)
        assert done.merged_source and done.merged == 10
        items, labels, _ = _state(project)
        assert set(items) == set(before_items) and labels == before_labels
        assert items[4] == ("three.png", "ok")
        assert project.embed("classic", "classic", workers=0).embedded == 0
        out = tmp_path / "export"
        project.export("jsonl", out, only_labeled=True)
        text = (out / "items.jsonl").read_text() if (out / "items.jsonl").exists() else "".join(
            p.read_text() for p in out.glob("*.jsonl"))
        assert str(src) not in text and "three.png" in text
    assert check(root).ok


def test_an_empty_mount_point_is_not_a_deletion(labelled):
    root, src = labelled
    parked = src.parent / "parked"
    shutil.move(str(src / "sub"), parked)  # the disk is "unmounted": its folder stays, empty
    with Project.open(root) as project:
        report = project.scan(ScanOptions(workers=0))
        assert report.unreachable == [str(src)] and report.missing == 0
        assert all(i["status"] == "ok" for i in project.items())


def test_a_new_file_with_a_missing_items_content_inherits_its_identity(tmp_path, labelled, media):
    root, src = labelled
    other = tmp_path / "other"
    other.mkdir()
    with Project.open(root) as project:
        project.add_sources([str(other)])
        kept = src / "sub" / "2.png"
        (item_id,) = [i["id"] for i in project.items() if i["path"] == "sub/2.png"]
        assert item_id in (1, 2, 3, 4)  # a labelled one
        data = kept.read_bytes()
        kept.unlink()
        assert project.scan(ScanOptions(workers=0)).missing == 1
        assert project.item(item_id)["status"] == "missing"
        (other / "found-again.png").write_bytes(data)
        report = project.scan(ScanOptions(workers=0))
        assert (report.renamed, report.new) == (1, 0)
        item = project.item(item_id)
        assert item["status"] == "ok" and item["path"] == "found-again.png"
        assert item["abs_path"] == str(other / "found-again.png")
        labels = dict(project.catalog.db.execute("SELECT item_id, label_id FROM item_labels"))
        assert item_id in labels


def test_the_same_folder_through_a_symlink_is_refused(tmp_path, labelled):
    root, src = labelled
    link = tmp_path / "photos-link"
    link.symlink_to(src, target_is_directory=True)
    with Project.open(root) as project, pytest.raises(UsageError, match="overlaps"):
        project.add_sources([str(link)])
    with pytest.raises(UsageError, match="overlaps"):
        Project.create(tmp_path / "p2", [src, link])


def test_remove_refuses_labelled_items_unless_forced(labelled):
    root, src = labelled
    with Project.open(root) as project:
        with pytest.raises(UsageError, match="labelled"):
            remove(project.catalog, str(src))
        done = remove(project.catalog, "1", force=True)
        assert done.items == 10 and done.labelled > 0 and project.items() == []
        assert len(project.history()) >= 1  # the history keeps its events
    assert check(root).ok


def test_sources_commands(tmp_path, labelled, capsys):
    from curator.cli import main

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    root, src = labelled
    moved = tmp_path / "elsewhere"
    os.rename(src, moved)
    code, out, _ = run("sources", "list", root)
    assert code == 0 and str(src) in out and "not reachable" in out and "10 ok" in out
    code, out, err = run("sources", "relocate", root, src, moved)
    assert code == 0, err
    assert "10 items kept, 10 found" in out
    code, _, err = run("sources", "relocate", root, "/nowhere", moved)
    assert code == 1 and "no source" in err
    code, _, err = run("sources", "remove", root, moved)
    assert code == 1 and "labelled" in err and "--force" in err
