"""The rolling event-log backup is appended to, follows undo and redo, and heals itself; big
events are checkpointed off the labelling path."""

from __future__ import annotations

import sqlite3
import time

import pytest

from curator.project import Project
from curator.scan import ScanOptions


def _made(tmp_path, media, images: int = 8) -> Project:
    """A scanned project with labels `cat` and `dog`, open (the caller closes it)."""
    src = tmp_path / "media"
    for i in range(images):
        media.image(src / f"{i:02d}.png", size=(32 + i, 32), seed=i)
    proj = Project.create(tmp_path / "proj", [src])
    proj.scan(ScanOptions(workers=0))
    proj.set_annotator("ana")
    proj.add_label("cat")
    proj.add_label("dog")
    return proj


@pytest.fixture
def project(tmp_path, media):
    with _made(tmp_path, media) as proj:
        yield proj


def _backup(project) -> sqlite3.Connection:
    return sqlite3.connect(project.root / "backups" / "event-log.db")


def _same_log(project) -> None:
    """The backup holds exactly the catalog's events and event rows (once the background
    thread has written it)."""
    from curator.checkpoint import flush

    flush(project.catalog.path)
    cat = project.catalog.db
    with _backup(project) as bk:
        for sql in ("SELECT id, action, target, undone, item_count FROM events ORDER BY id",
                    "SELECT event_id, item_id, before_state, before_label, after_state, "
                    "after_label FROM event_items ORDER BY event_id, item_id",
                    "SELECT id, name, removed_at IS NULL FROM labels ORDER BY id"):
            assert bk.execute(sql).fetchall() == cat.execute(sql).fetchall()


def test_the_backup_follows_labels_undo_redo_and_label_merges(project):
    ids = [r["id"] for r in project.items()]
    project.label_items(ids[:5], "cat")
    _same_log(project)
    project.label_items(ids[3:], "dog")
    project.undo()  # flips `undone` of an event the backup already holds
    _same_log(project)
    project.redo()
    _same_log(project)
    project.merge_labels(["dog"], "cat")
    _same_log(project)
    project.undo()
    _same_log(project)


def _slow_backups(monkeypatch) -> None:
    """A backup that takes a while, so a close that did not wait for it would be seen."""
    from curator import eventlog

    sync = eventlog._sync_into

    def slow(*args):
        time.sleep(0.4)
        sync(*args)

    monkeypatch.setattr(eventlog, "_sync_into", slow)


def test_the_backup_is_written_off_the_labelling_path_and_is_current_at_close(
        tmp_path, media, monkeypatch):
    _slow_backups(monkeypatch)
    with _made(tmp_path, media, images=4) as project:
        ids = [r["id"] for r in project.items()]
        project.label_items(ids, "cat")
        project.undo()
        events = project.catalog.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    # The close waited for the background thread (or ran the pending backup itself).
    with sqlite3.connect(tmp_path / "proj" / "backups" / "event-log.db") as bk:
        assert bk.execute("SELECT COUNT(*) FROM events").fetchone()[0] == events
        assert bk.execute("SELECT undone FROM events WHERE action = 'assign'").fetchone()[0] == 1


def test_a_cli_label_leaves_the_backup_current_when_the_process_ends(tmp_path, media):
    import subprocess
    import sys

    with _made(tmp_path, media, images=3) as project:
        ids = [r["id"] for r in project.items()]
    script = ("import sys, time; from curator import eventlog; sync = eventlog._sync_into; "
              "eventlog._sync_into = lambda *a: (time.sleep(0.5), sync(*a)); "
              "from curator.project import Project; "
              "p = Project.open(sys.argv[1]); p.label_items([int(a) for a in sys.argv[2:]], "
              "'cat')")  # no close: the interpreter's exit writes the backup
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "proj"), *map(str, ids)],
                   check=True, timeout=60)
    with sqlite3.connect(tmp_path / "proj" / "backups" / "event-log.db") as bk:
        assert bk.execute("SELECT item_count FROM events WHERE action = 'assign'"
                          ).fetchone()[0] == len(ids)


def test_a_damaged_backup_is_set_aside_and_rebuilt(project):
    ids = [r["id"] for r in project.items()]
    project.label_items(ids[:2], "cat")
    _same_log(project)
    path = project.root / "backups" / "event-log.db"
    for extra in ("-wal", "-shm"):
        (path.parent / f"{path.name}{extra}").unlink(missing_ok=True)
    path.write_bytes(b"SQLite format 3\0" + b"\xff" * 8000)
    project.label_items(ids[2:4], "dog")
    _same_log(project)
    assert (path.parent / "event-log.db.damaged").exists()
    _same_log(project)


def test_an_event_is_checkpointed_in_the_background(project):
    from curator import checkpoint

    ids = [r["id"] for r in project.items()]
    db = project.catalog.db
    path = project.catalog.path
    before = path.stat().st_mtime_ns, path.stat().st_size
    project.label_items(ids, "cat")
    # The event's commit kept the connection's own settings.
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # Nothing else writes the catalog file while the WAL is below SQLite's own threshold: the
    # background thread copies the event's pages into it (polled, with a generous deadline).
    deadline = time.monotonic() + 60
    while (path.stat().st_mtime_ns, path.stat().st_size) == before:
        assert time.monotonic() < deadline, "the event was never checkpointed"
        time.sleep(0.05)
    checkpoint.settle(path)  # nothing pending now: returns at once
    with sqlite3.connect(path) as other:  # another connection sees the label
        assert other.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0] == len(ids)


def test_closing_a_catalog_drops_its_pending_checkpoint(project):
    from curator import checkpoint

    checkpoint.request(project.catalog.path)
    checkpoint.settle(project.catalog.path)
    assert str(project.catalog.path) not in checkpoint._CHECKPOINTER._due


def test_a_burst_that_grows_the_wal_past_the_cap_checkpoints_in_the_commit_again(project,
                                                                                   monkeypatch):
    from curator import checkpoint

    path = project.catalog.path
    ids = [r["id"] for r in project.items()]
    monkeypatch.setattr(checkpoint, "CAP_FRAMES", 1)  # any WAL is "big"
    project.label_items(ids, "cat")
    deadline = time.monotonic() + 60
    while checkpoint.deferrable(path):
        assert time.monotonic() < deadline, "the background checkpoint never ran"
        time.sleep(0.05)
    db = project.catalog.db
    project.label_items(ids, "dog")  # committed with SQLite's own auto-checkpoint
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    monkeypatch.setattr(checkpoint, "CAP_FRAMES", 10**9)
    project.undo()
    deadline = time.monotonic() + 60
    while not checkpoint.deferrable(path):  # small again after the next background checkpoint
        assert time.monotonic() < deadline, "the WAL was never found small again"
        time.sleep(0.05)
