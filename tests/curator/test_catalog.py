"""The catalog: creation, recorded migrations, refusing folders that are not projects."""

from __future__ import annotations

import sqlite3

import pytest

from curator.catalog import Catalog
from curator.connection import connect
from curator.errors import NotAProjectError, UsageError
from curator.migrations import MIGRATIONS, applied_migrations, migrate
from curator.project import Project


def test_init_creates_catalog_with_wal_and_all_tables(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    with Project.create(tmp_path / "proj", [media]) as project:
        db = project.catalog.db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        assert {"sources", "items", "runs", "meta", "_migrations"} <= set(db.table_names())
        assert applied_migrations(db) == [name for name, _ in MIGRATIONS]
        item_cols = set(db["items"].columns_dict)
        for col in ("source_id", "path", "modality", "size", "mtime", "content_hash", "width",
                    "height", "duration", "fps", "sample_rate", "channels", "codec", "status",
                    "error", "first_seen", "last_seen", "version"):
            assert col in item_cols
        assert [s.root for s in project.sources()] == [str(media)]


def test_migrates_a_catalog_made_by_an_older_schema(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    db = connect(root / "catalog.db")
    migrate(db, upto="001_initial")
    db.execute("INSERT INTO meta VALUES ('app', 'curator')")
    db.execute("INSERT INTO sources (root, added_at) VALUES ('/data', 'then')")
    db.execute(
        "INSERT INTO items (source_id, path, modality, size, status, first_seen, last_seen) "
        "VALUES (1, 'a.jpg', 'image', 10, 'ok', 'then', 'then')"
    )
    assert "version" not in db["items"].columns_dict
    db.conn.close()

    with Project.open(root) as project:
        db = project.catalog.db
        assert applied_migrations(db)[-1] == MIGRATIONS[-1][0]
        row = db.execute("SELECT path, version FROM items").fetchone()
        assert row == ("a.jpg", 1)
        assert "pid" in db["runs"].columns_dict


def test_migration_is_recorded_once_and_reopening_is_a_no_op(tmp_path):
    (tmp_path / "m").mkdir()
    Project.create(tmp_path / "p", [tmp_path / "m"]).close()
    catalog = Catalog.open(tmp_path / "p")
    assert migrate(catalog.db) == []
    count = catalog.db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
    assert count == len(MIGRATIONS)
    catalog.close()


@pytest.mark.parametrize("kind", ["missing", "empty", "file", "other_sqlite", "garbage"])
def test_opening_something_that_is_not_a_project_says_so(tmp_path, kind):
    target = tmp_path / "x"
    if kind == "empty":
        target.mkdir()
    elif kind == "file":
        target.write_text("hello")
    elif kind == "other_sqlite":
        target.mkdir()
        conn = sqlite3.connect(target / "catalog.db")
        conn.execute("CREATE TABLE t (a)")
        conn.close()
    elif kind == "garbage":
        target.mkdir()
        (target / "catalog.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(NotAProjectError) as info:
        Project.open(target)
    assert str(target) in str(info.value)


def test_init_refuses_bad_sources_and_foreign_folders(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        Project.create(tmp_path / "p", [tmp_path / "nope"])
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Project.create(tmp_path / "p", [tmp_path / "f.txt"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    (tmp_path / "m").mkdir()
    with pytest.raises(UsageError, match="not empty"):
        Project.create(foreign, [tmp_path / "m"])
    assert (foreign / "keep.txt").read_text() == "mine"


def test_nested_sources_are_refused(tmp_path):
    (tmp_path / "m" / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="overlaps"):
        Project.create(tmp_path / "p", [tmp_path / "m", tmp_path / "m" / "sub"])


def test_interrupted_runs_are_marked(tmp_path):
    (tmp_path / "m").mkdir()
    with Project.create(tmp_path / "p", [tmp_path / "m"]) as project:
        run = project.catalog.start_run("scan", {})
        project.catalog.db.execute("UPDATE runs SET pid = 999999999 WHERE id = ?", [run])
        assert project.catalog.mark_interrupted_runs() == 1
        assert project.runs("scan")[0].status == "interrupted"


def test_recorded_run_ends_ok_cancelled_or_failed(tmp_path):
    from indexing.progress import Cancelled

    (tmp_path / "m").mkdir()
    with Project.create(tmp_path / "p", [tmp_path / "m"]) as project:
        with project.catalog.recorded_run("demo", {"a": 1}) as run:
            run.counts = {"n": 3}
        with pytest.raises(Cancelled), project.catalog.recorded_run("demo", {}):
            raise Cancelled()
        with pytest.raises(ValueError), project.catalog.recorded_run("demo", {}):
            raise ValueError("boom")
        runs = project.runs("demo")
        assert [r.status for r in runs] == ["failed", "cancelled", "ok"]
        assert runs[0].error == "boom" and runs[2].counts == {"n": 3}
        assert runs[2].params == {"a": 1} and runs[2].ended_at is not None


def _checked_statements(catalog):
    seen = []
    catalog.db.conn.set_trace_callback(seen.append)
    return seen


def test_a_second_process_writing_beside_an_open_one_skips_the_full_check(tmp_path, media):
    """The open app labels (its commits and background checkpoints change the file); the CLI
    then labels the same catalog: its first write must not run a full integrity check (minutes
    at a million items), while a change made outside Curator still gets one."""
    import json
    import os
    import time

    from curator import checkpoint
    from curator.catalog_faults import _check_marker, _file_identity
    from curator.scan import ScanOptions

    src = tmp_path / "media"
    for i in range(4):
        media.image(src / f"{i}.png", size=(16, 16), color=(i * 40, 0, 0), seed=i)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
    app = Project.open(tmp_path / "proj")
    app.add_label("a")
    ids = [it["id"] for it in app.items()]
    app.label_items(ids[:2], "a")
    path = app.catalog.path
    checkpoint.request(path)              # as after every label: the file changes in a moment
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if json.loads(_check_marker(path).read_text()) == _file_identity(path) and \
                not app.catalog.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]:
            break
        time.sleep(0.05)
    cli = Project.open(tmp_path / "proj")
    seen = _checked_statements(cli.catalog)
    cli.label_items(ids[2:3], "a")
    assert not [s for s in seen if "integrity_check" in s]
    cli.close()
    app.label_items(ids[3:], "a")
    app.close()
    stamp = os.stat(path).st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(stamp, stamp))     # an outside change: the next writer checks
    other = Project.open(tmp_path / "proj")
    seen = _checked_statements(other.catalog)
    other.label_items(ids[:1], action="clear")
    assert [s for s in seen if "integrity_check" in s]
    other.close()
