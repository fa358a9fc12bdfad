"""Catalog health: check (SQLite, orphans, derived tables, stores), repair, and backups.

`check` reads only. `repair` rebuilds what is derived (current labels from the event log, the
vector stores and indexes from the shards, SQLite's indexes) and drops rows that point nowhere;
a catalog SQLite cannot read is replaced by the newest backup that passes its own check, with the
label events recorded since that backup replayed from the rolling event-log backup. `backup`
copies the catalog with SQLite's online backup API, so a copy taken while others write is
consistent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.catalog import CATALOG_NAME, Catalog, check_header, explain
from curator.errors import CatalogDamagedError, CatalogError, UsageError
from curator.eventlog import BACKUP_DIR, EVENT_LOG_BACKUP, backup_event_log
from curator.migrations import NO_VALUE, state_code_sql

log = logging.getLogger(__name__)

KEEP_BACKUPS = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a project: what, how many, and what fixes it."""

    kind: str
    count: int
    detail: str
    fix: str


@dataclass
class CheckReport:
    """The result of `check`: empty `problems` means healthy."""

    catalog: str
    full: bool
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"catalog": self.catalog, "full": self.full, "ok": self.ok, "counts": self.counts,
                "problems": [p.__dict__ for p in self.problems]}


# --- check ------------------------------------------------------------------------------------

# (kind, SQL counting rows that point nowhere, what they are)
_ORPHANS = (
    ("orphan items",
     "SELECT COUNT(*) FROM items WHERE source_id NOT IN (SELECT id FROM sources)",
     "items of a source that no longer exists"),
    ("orphan embeddings",
     ("SELECT COUNT(*) FROM embeddings WHERE item_id NOT IN (SELECT id FROM items) "
      "OR space NOT IN (SELECT space FROM spaces)"),
     "vectors of items or spaces that no longer exist"),
    ("orphan labels",
     ("SELECT COUNT(*) FROM item_states WHERE item_id NOT IN (SELECT id FROM items) "
      "OR (label_id IS NOT NULL AND label_id NOT IN (SELECT id FROM labels))"),
     "current labels of items or labels that no longer exist"),
    ("orphan event items",
     "SELECT COUNT(*) FROM event_items WHERE event_id NOT IN (SELECT id FROM events)",
     "event rows of events that no longer exist"),
    ("orphan assignments",
     ("SELECT COUNT(*) FROM assignments WHERE item_id NOT IN (SELECT id FROM items) "
      "OR run_id NOT IN (SELECT id FROM runs)"),
     "group assignments of items or runs that no longer exist"),
)

# The current label of every item, replayed from the event log: the newest event touching it.
_REPLAYED = (
    "SELECT ei.item_id, ei.after_state AS state, ei.after_label AS label_id, "
    "ei.event_id, CASE WHEN e.action = 'confirm' THEN 1 ELSE 0 END AS confirmed, "
    "ei.after_keeper AS keeper "
    "FROM event_items ei JOIN (SELECT item_id, MAX(event_id) AS event_id FROM event_items "
    "GROUP BY item_id) last ON last.item_id = ei.item_id AND last.event_id = ei.event_id "
    "JOIN events e ON e.id = ei.event_id WHERE ei.after_state IS NOT NULL "
    "AND ei.item_id IN (SELECT id FROM items)"
)


def _sqlite_check(db: Any, full: bool) -> list[str]:
    pragma = "integrity_check(20)" if full else "quick_check(20)"
    rows = [str(r[0]) for r in db.execute(f"PRAGMA {pragma}").fetchall()]
    return [] if rows == ["ok"] else [" ".join(r.split()) for r in rows if "***" not in r]


def _label_drift(db: Any) -> int:
    """Items whose current label differs from the replayed event log."""
    sql = (
        f"SELECT COUNT(*) FROM (SELECT item_id, state, label_id FROM ({_REPLAYED}) "
        "EXCEPT SELECT item_id, state, label_id FROM item_labels) "
    )
    missing = db.execute(sql).fetchone()[0]
    extra = db.execute(
        f"SELECT COUNT(*) FROM (SELECT item_id, state, label_id FROM item_labels EXCEPT "
        f"SELECT item_id, state, label_id FROM ({_REPLAYED}))"
    ).fetchone()[0]
    return int(missing + extra)


def _store_problems(catalog: Catalog) -> list[Problem]:
    """Vectors the catalog points at that the stores do not hold, and stale compact stores."""
    from curator.embed import space_store
    from curator.stores import read_shard_rows

    problems = []
    db = catalog.db
    for space, dim, folder in db.execute("SELECT space, dim, folder FROM spaces").fetchall():
        shards = catalog.root / folder / "shards"
        bad = 0
        for shard, top in db.execute(
            "SELECT shard, MAX(row) FROM embeddings WHERE space = ? GROUP BY shard", [space]
        ).fetchall():
            try:
                read_shard_rows(shards / shard, dim, [top])
            except (OSError, ValueError, IndexError):
                bad += db.execute("SELECT COUNT(*) FROM embeddings WHERE space = ? AND shard = ?",
                                  [space, shard]).fetchone()[0]
        if bad:
            problems.append(Problem("missing vectors", bad,
                                    f"space {space}: vectors whose shard file is gone or short",
                                    "`curator repair` forgets them; `curator embed` redoes them"))
        store = space_store(catalog, space)
        wanted = db.execute(
            "SELECT COUNT(*) FROM embeddings e JOIN items i ON i.id = e.item_id WHERE e.space = ? "
            "AND i.status = 'ok' AND e.item_version = i.version", [space]).fetchone()[0]
        held = _store_count(store)
        if held != wanted:
            problems.append(Problem("stale vector store", abs(held - wanted),
                                    f"space {space}: the store holds {held} vectors, the catalog "
                                    f"{wanted}", "`curator repair` rebuilds the store and index"))
    return problems


def _store_count(store: Any) -> int:
    import numpy as np

    if not store.exists():
        return 0
    try:
        return len(np.load(store.ids_path, mmap_mode="r"))
    except (OSError, ValueError):
        return -1


def check(root: Path | str, full: bool = False) -> CheckReport:
    """Check a project's catalog without writing anything.

    Args:
        root: the project folder.
        full: run SQLite's full `integrity_check` (slower) instead of `quick_check`.

    Returns:
        A CheckReport; a catalog SQLite cannot read at all is one "damaged catalog" problem.
    """
    root = Path(root)
    path = root / CATALOG_NAME
    report = CheckReport(str(path), full)
    repair = f"`curator repair {root}` restores the newest backup"
    try:
        check_header(path)
        catalog = Catalog(root)
        db = catalog.db
        errors = _sqlite_check(db, full)
    except CatalogDamagedError as exc:
        report.problems.append(Problem("damaged catalog", 1, str(exc), repair))
        return report
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        report.problems.append(Problem("damaged catalog", 1, str(explain(exc, path)), repair))
        return report
    try:
        if errors:
            report.problems.append(Problem("damaged catalog", len(errors), "; ".join(errors)[:300],
                                           repair))
            return report
        fk = db.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            report.problems.append(Problem("broken references", len(fk),
                                           f"rows pointing nowhere (table {fk[0][0]})",
                                           "`curator repair` drops them"))
        for kind, sql, what in _ORPHANS:
            n = db.execute(sql).fetchone()[0]
            if n:
                report.problems.append(Problem(kind, n, what, "`curator repair` drops them"))
        drift = _label_drift(db)
        if drift:
            report.problems.append(Problem("labels differ from history", drift,
                                           "current labels that disagree with the event log",
                                           "`curator repair` replays the event log"))
        report.problems.extend(_store_problems(catalog))
        for table in ("items", "events", "item_labels", "embeddings"):
            report.counts[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        report.problems.append(Problem("damaged catalog", 1, str(explain(exc, path)), repair))
    finally:
        catalog.close()
    return report


# --- repair -----------------------------------------------------------------------------------


@dataclass
class RepairReport:
    """What `repair` did."""

    restored_from: str | None = None
    damaged_copy: str | None = None
    replayed_events: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    labels_rebuilt: int = 0
    stores_rebuilt: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rebuild_current_labels(catalog: Catalog) -> int:
    """Replace `item_labels` by the event log's replay; returns how many items changed."""
    with catalog.write() as db:
        drift = _label_drift(db)
        if drift:
            db.execute("DELETE FROM item_states")
            db.execute("INSERT INTO item_states (item_id, code, label_id, event_id, confirmed, "
                       f"keeper_id) SELECT item_id, {state_code_sql('state')}, label_id, "
                       f"event_id, confirmed, keeper FROM ({_REPLAYED}) WHERE item_id IN "
                       "(SELECT id FROM items)")
            # An item its newest event left without a value keeps that event: its history
            # starts there.
            db.execute("INSERT INTO item_states (item_id, code, label_id, event_id, confirmed, "
                       f"keeper_id) SELECT item_id, {NO_VALUE}, NULL, MAX(event_id), 0, NULL "
                       "FROM event_items WHERE item_id NOT IN (SELECT item_id FROM item_states) "
                       "AND item_id IN (SELECT id FROM items) GROUP BY item_id")
    return drift


def _drop_orphans(catalog: Catalog) -> dict[str, int]:
    dropped = {}
    with catalog.write() as db:
        for kind, sql, _ in _ORPHANS:
            table = {"orphan items": "items", "orphan embeddings": "embeddings",
                     "orphan labels": "item_states", "orphan event items": "event_items",
                     "orphan assignments": "assignments"}[kind]
            where = sql.split(" WHERE ", 1)[1]
            n = db.execute(f"DELETE FROM {table} WHERE {where}").rowcount
            if n:
                dropped[kind] = n
    return dropped


def _drop_missing_vectors(catalog: Catalog) -> int:
    from curator.stores import read_shard_rows

    dropped = 0
    for space, dim, folder in catalog.db.execute(
            "SELECT space, dim, folder FROM spaces").fetchall():
        for shard, top in catalog.db.execute(
                "SELECT shard, MAX(row) FROM embeddings WHERE space = ? GROUP BY shard",
                [space]).fetchall():
            try:
                read_shard_rows(catalog.root / folder / "shards" / shard, dim, [top])
            except (OSError, ValueError, IndexError):
                with catalog.write() as db:
                    dropped += db.execute("DELETE FROM embeddings WHERE space = ? AND shard = ?",
                                          [space, shard]).rowcount
    return dropped


def repair(root: Path | str, from_backup: Path | str | None = None) -> RepairReport:
    """Repair a project: restore a backup when the catalog is unreadable (or when asked), then
    drop rows that point nowhere, replay current labels and rebuild the vector stores.

    Args:
        root: the project folder.
        from_backup: a backup file to restore; by default the newest good one, and only when the
            catalog fails its check.

    Returns:
        A RepairReport.

    Raises:
        CatalogError: the catalog is unreadable and there is no good backup to restore.
    """
    root = Path(root)
    report = RepairReport()
    damaged = not check(root, full=True).ok and _unreadable(root)
    if from_backup is not None or damaged:
        _restore(root, Path(from_backup) if from_backup else None, report)
    catalog = Catalog.open(root)
    try:
        report.dropped = _drop_orphans(catalog)
        missing = _drop_missing_vectors(catalog)
        if missing:
            report.dropped["missing vectors"] = missing
        report.labels_rebuilt = rebuild_current_labels(catalog)
        with catalog.write() as db:
            db.execute("REINDEX")
        report.stores_rebuilt = _rebuild_stores(catalog)
    finally:
        catalog.close()
    return report


def _unreadable(root: Path) -> bool:
    problems = check(root, full=True).problems
    return any(p.kind == "damaged catalog" for p in problems)


def _rebuild_stores(catalog: Catalog) -> list[str]:
    from curator.embed import compact_space
    from curator.search import sync_index

    spaces = [r[0] for r in catalog.db.execute("SELECT space FROM spaces").fetchall()]
    for space in spaces:
        compact_space(catalog, space)
        folder = catalog.root / catalog.db.execute(
            "SELECT folder FROM spaces WHERE space = ?", [space]).fetchone()[0]
        for name in ("index.faiss", "index-items.npy"):
            (folder / name).unlink(missing_ok=True)
        sync_index(catalog, space)
    return spaces


def _restore(root: Path, chosen: Path | None, report: RepairReport) -> None:
    candidates = [chosen] if chosen else backups(root)
    good = next((c for c in candidates if _backup_ok(c)), None)
    if good is None:
        where = chosen or root / BACKUP_DIR
        raise CatalogError(
            f"{root / CATALOG_NAME} cannot be repaired in place and there is no good backup in "
            f"{where}; restore catalog.db from your own backups"
        )
    path = root / CATALOG_NAME
    stamp = time.strftime("%Y%m%d-%H%M%S")
    damaged = root / f"catalog.damaged-{stamp}.db"
    if path.exists():
        os.replace(path, damaged)
        report.damaged_copy = str(damaged)
    for extra in ("-wal", "-shm", "-checked.json"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(root / (CATALOG_NAME + extra), root / f"catalog.damaged-{stamp}.db{extra}")
    tmp = root / (CATALOG_NAME + ".restore-tmp")
    _sqlite_copy(good, tmp)
    os.replace(tmp, path)
    report.restored_from = str(good)
    log.warning("restored %s from %s; the damaged file is kept as %s", path, good, damaged)
    report.replayed_events = _replay_event_log(root)


def _backup_ok(path: Path) -> bool:
    try:
        check_header(path)
        conn = sqlite3.connect(_ro_uri(path), uri=True)
        try:
            return conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    except (CatalogError, sqlite3.Error, UnicodeDecodeError, OSError):
        return False


def _replay_event_log(root: Path) -> int:
    """Copy label events newer than the restored catalog from the rolling event-log backup."""
    log_path = root / BACKUP_DIR / EVENT_LOG_BACKUP
    if not _backup_ok(log_path):
        return 0
    catalog = Catalog.open(root)
    # ATTACH cannot run inside a transaction; the attached file is only read.
    catalog.db.execute("ATTACH DATABASE ? AS bk", [str(log_path)])
    try:
        with catalog.write() as db:
            top = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
            db.execute("INSERT OR IGNORE INTO labels SELECT * FROM bk.labels")
            n = db.execute("INSERT INTO events SELECT * FROM bk.events WHERE id > ?",
                           [top]).rowcount
            db.execute("INSERT INTO event_items SELECT * FROM bk.event_items WHERE "
                       "event_id > ? AND item_id IN (SELECT id FROM items)", [top])
            db.execute("UPDATE events SET undone = (SELECT b.undone FROM bk.events b WHERE "
                       "b.id = events.id) WHERE id IN (SELECT id FROM bk.events)")
        return n
    finally:
        with contextlib.suppress(sqlite3.Error):
            catalog.db.execute("DETACH DATABASE bk")
        catalog.close()


# --- backups ----------------------------------------------------------------------------------


def backups(root: Path | str) -> list[Path]:
    """The project's catalog backups, newest first."""
    folder = Path(root) / BACKUP_DIR
    return sorted(folder.glob("catalog-*.db"), reverse=True) if folder.is_dir() else []


def _ro_uri(path: Path) -> str:
    from urllib.parse import quote

    return "file:" + quote(str(Path(path).resolve())) + "?mode=ro"


def _sqlite_copy(source: Path, dest: Path) -> None:
    src = sqlite3.connect(_ro_uri(source), uri=True)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()


def backup(catalog: Catalog, dest: Path | str | None = None, keep: int = KEEP_BACKUPS) -> Path:
    """A consistent copy of the catalog taken with SQLite's online backup API.

    Args:
        catalog: the open catalog (others may keep writing; the copy is one snapshot).
        dest: where to write it; default `PROJECT/backups/catalog-<time>.db`, keeping the
            newest `keep` of those.

    Returns:
        The path of the copy, which passed its own quick check.

    Raises:
        CatalogDamagedError: the catalog fails its check (a copy of damage is no backup).
        UsageError: `dest` exists.
    """
    if not catalog.readonly:
        catalog.ensure_sound()
    if dest is None:
        folder = catalog.root / BACKUP_DIR
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        target = folder / f"catalog-{stamp}.db"
    else:
        target = Path(dest)
        if target.exists():
            raise UsageError(f"{target} exists; choose a new file for the backup")
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    out = sqlite3.connect(tmp)
    try:
        catalog.db.conn.backup(out)
        out.execute("PRAGMA journal_mode = DELETE")
        ok = out.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        out.close()
    if not ok:
        tmp.unlink(missing_ok=True)
        raise CatalogDamagedError(f"the backup of {catalog.path} failed its check; run "
                                  f"`curator check {catalog.root}`")
    os.replace(tmp, target)
    if dest is None:
        for old in backups(catalog.root)[keep:]:
            old.unlink(missing_ok=True)
    return target


__all__ = ["CheckReport", "Problem", "RepairReport", "backup", "backup_event_log", "backups",
           "check", "rebuild_current_labels", "repair"]
