"""curator check / repair / backup, and the rolling event-log backup kept by label and undo."""

from __future__ import annotations

import sqlite3

import pytest

from curator.integrity import backup, backups, check, repair
from curator.project import Project
from curator.scan import ScanOptions


@pytest.fixture
def project_root(tmp_path, media):
    src = tmp_path / "media"
    for i in range(8):
        media.image(src / f"{i}.png", seed=i, color=(30 * i, 60, 90))
    root = tmp_path / "proj"
    with Project.create(root, [src]) as project:
        project.scan(ScanOptions(workers=0))
        project.embed("classic", "classic", workers=0)
        project.add_label("cat")
        project.add_label("dog")
        project.label_items([1, 2, 3], "cat")
        project.label_items([4], "dog")
    return root


def _labels(root) -> dict[int, tuple]:
    with sqlite3.connect(root / "catalog.db") as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT item_id, state, label_id FROM item_labels")}


def test_a_healthy_project_checks_ok(project_root):
    report = check(project_root, full=True)
    assert report.ok, report.problems
    assert report.counts["items"] == 8 and report.counts["item_labels"] == 4


def test_drifted_labels_orphans_and_stale_stores_are_found_and_repaired(project_root):
    expected = _labels(project_root)
    with sqlite3.connect(project_root / "catalog.db") as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE item_labels SET label_id = 2 WHERE item_id = 1")  # drift
        conn.execute("DELETE FROM item_labels WHERE item_id = 4")
        conn.execute("INSERT INTO item_labels (item_id, state, label_id, event_id) "
                     "VALUES (999, 'labelled', 1, 1)")  # an item that does not exist
    for path in (project_root / "vectors").rglob("ids.npy"):
        path.unlink()  # the compact store is gone
    report = check(project_root)
    kinds = {p.kind for p in report.problems}
    assert {"labels differ from history", "orphan labels", "stale vector store"} <= kinds
    done = repair(project_root)
    assert done.dropped.get("orphan labels") == 1
    assert done.labels_rebuilt >= 2 and done.stores_rebuilt == ["classic:v1"]
    assert _labels(project_root) == expected
    assert check(project_root, full=True).ok
    with Project.open(project_root) as project:
        ids, _ = project.vectors("classic:v1")
        assert len(ids) == 8


def test_backup_is_a_consistent_checked_copy(project_root):
    with Project.open(project_root) as project:
        first = backup(project.catalog)
        second = backup(project.catalog, project_root.parent / "elsewhere" / "copy.db")
    for path in (first, second):
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0] == 4
    assert backups(project_root) == [first]


def test_an_unreadable_catalog_is_restored_from_backup_with_later_labels_replayed(project_root):
    with Project.open(project_root) as project:
        backup(project.catalog)
        project.label_items([5, 6], "dog")  # after the backup: only in the event-log backup
        project.undo()  # the undo too
        project.label_items([7], "cat")
    expected = _labels(project_root)
    assert expected[7] == ("labelled", 1) and 5 not in expected
    data = (project_root / "catalog.db").read_bytes()
    (project_root / "catalog.db").write_bytes(data[: len(data) // 3])
    for extra in ("catalog.db-wal", "catalog.db-shm"):
        (project_root / extra).unlink(missing_ok=True)
    assert not check(project_root).ok
    report = repair(project_root)
    assert report.restored_from and report.damaged_copy and report.replayed_events == 3
    assert _labels(project_root) == expected
    assert check(project_root, full=True).ok


def test_repair_without_any_backup_says_so(project_root):
    from curator.errors import CatalogError

    (project_root / "catalog.db").write_bytes(b"\0" * 4096)
    with pytest.raises(CatalogError, match="no good backup"):
        repair(project_root)


def test_label_and_undo_keep_the_event_log_backup_current(project_root):
    log_path = project_root / "backups" / "event-log.db"
    from curator.checkpoint import flush

    with Project.open(project_root) as project:
        project.label_items([5], "cat")
        flush(project.catalog.path)
        with sqlite3.connect(log_path) as conn:
            events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        project.undo()
        flush(project.catalog.path)
        with sqlite3.connect(log_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == events + 1
            assert conn.execute("SELECT undone FROM events ORDER BY id DESC LIMIT 1 OFFSET 1"
                                ).fetchone()[0] == 1
    assert events >= 3


def _main(capsys, *args) -> tuple[int, str, str]:
    from curator.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_backup_and_repair_commands(project_root, capsys):
    code, out, _ = _main(capsys, "check", project_root, "--full")
    assert code == 0 and out.startswith("ok:")
    code, out, _ = _main(capsys, "backup", project_root)
    assert code == 0 and "backed up to" in out
    (project_root / "catalog.db").write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    for extra in ("catalog.db-wal", "catalog.db-shm"):
        (project_root / extra).unlink(missing_ok=True)
    code, out, err = _main(capsys, "check", project_root)
    assert code == 1 and "problem: damaged catalog" in out and "Traceback" not in err
    code, _, err = _main(capsys, "status", project_root)
    assert code == 1 and err.count("error:") == 1 and "curator repair" in err
    code, out, err = _main(capsys, "repair", project_root)
    assert code == 0, err
    assert "restored the catalog from" in out and out.rstrip().endswith("passes its check")
    code, out, _ = _main(capsys, "status", project_root)
    assert code == 0
