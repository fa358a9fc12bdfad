"""Updates without data loss: a project made by the previous release opens, migrates and keeps
everything; a catalog written by a newer Curator is refused, untouched, with one clear line."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from curator import __version__
from curator.errors import CuratorError
from curator.migrations import MIGRATIONS, applied_migrations
from curator.project import Project

DATA = Path(__file__).resolve().parents[1] / "data"
OLD_PROJECTS = sorted(p for p in DATA.glob("project-*") if p.is_dir())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=[p.name for p in OLD_PROJECTS])
def old_project(request, tmp_path):
    """A private copy of one stored old project, with what its release recorded about it."""
    source = DATA / request.param
    target = tmp_path / request.param
    shutil.copytree(source, target)
    expected = json.loads((DATA / f"{request.param}.json").read_text())
    return target, expected


def test_a_previous_release_project_is_stored():
    assert OLD_PROJECTS, "tests/data/project-<version>/ is missing (tests/data/make_old_project.py)"
    for folder in OLD_PROJECTS:
        assert (folder / "catalog.db").is_file()
        assert not list(folder.glob("catalog.db-*")), f"{folder}: WAL left beside the catalog"


def test_old_project_opens_migrates_and_keeps_everything(old_project):
    root, expected = old_project
    with Project.open(root) as project:
        db = project.catalog.db
        migrations = applied_migrations(db)
        assert migrations == [name for name, _ in MIGRATIONS]
        assert migrations[:len(expected["migrations"])] == expected["migrations"]
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == expected["items"]
        assert sorted(label.name for label in project.labels()) == expected["labels"]
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == expected["events"]
        labels = {str(r[0]): [r[1], r[2]] for r in db.execute(
            "SELECT il.item_id, il.state, l.name FROM item_labels il "
            "LEFT JOIN labels l ON l.id = il.label_id")}
        assert labels == expected["item_labels"]
        runs = [[r.kind, r.status] for r in reversed(project.runs())]
        assert runs[:len(expected["runs"])] == expected["runs"]
        # The stored work is usable, not only present: groups, vectors, thumbnails, undo.
        run_id = expected["clustering_run"]
        assert project.current_run() == run_id
        assert len(project.groups(run_id)) == expected["groups"]
        ids, vectors = project.vectors(project.spaces()[0]["space"])
        assert len(ids) == vectors.shape[0] > 0
        assert project.thumbnail(int(ids[0]))[:2] == b"\xff\xd8"  # a JPEG
        project.set_annotator("fixture")  # the annotator who labelled it
        undone = project.undo()
        assert undone.restored >= 1


def test_migrating_twice_is_a_no_op(old_project):
    root, _ = old_project
    Project.open(root).close()
    with Project.open(root) as project:
        assert applied_migrations(project.catalog.db) == [name for name, _ in MIGRATIONS]


def _mark_newer(root: Path, migration: str = "", reader: str = "", writer: str = "") -> str:
    """Make the copy look written by a newer Curator; returns the catalog's digest afterwards."""
    conn = sqlite3.connect(root / "catalog.db")
    if migration:
        conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, '2030-01-01')",
                     [migration])
    if reader:
        conn.execute("INSERT INTO meta (key, value) VALUES ('min_reader_version', ?)", [reader])
    if writer:
        conn.execute("UPDATE runs SET app_version = ? WHERE id = (SELECT MAX(id) FROM runs)",
                     [writer])
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return _digest(root / "catalog.db")


def test_newer_schema_is_refused_and_left_untouched(old_project):
    root, _ = old_project
    before = _mark_newer(root, migration="999_from_the_future", writer="9.1.0")
    with pytest.raises(CuratorError) as info:
        Project.open(root)
    message = str(info.value)
    assert "\n" not in message
    assert "Curator 9.1.0" in message and "999_from_the_future" in message
    assert f"this Curator {__version__}" in message and "upgrade Curator" in message
    assert _digest(root / "catalog.db") == before


def test_newer_schema_without_a_newer_run_still_names_the_cause(old_project):
    root, _ = old_project
    _mark_newer(root, migration="999_from_the_future")
    with pytest.raises(CuratorError, match="written by a newer Curator .schema 999_from_the"):
        Project.open(root)


def test_min_reader_version_from_a_newer_release_is_refused(old_project):
    root, _ = old_project
    before = _mark_newer(root, reader="99.0")
    with pytest.raises(CuratorError, match=r"needs Curator 99\.0 or later"):
        Project.open(root)
    assert _digest(root / "catalog.db") == before


def test_min_reader_version_this_release_meets_is_accepted(old_project):
    root, _ = old_project
    _mark_newer(root, reader=__version__)
    Project.open(root).close()


def test_cli_refuses_a_newer_project_in_one_line(old_project, capsys):
    from curator.cli import main

    root, _ = old_project
    _mark_newer(root, migration="999_from_the_future", writer="9.1.0")
    with pytest.raises(SystemExit) as info:
        main(["status", str(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1
    assert len(err) == 1 and err[0].startswith("error:") and "Curator 9.1.0" in err[0]
