"""The scanner: walks every source, probes new and changed files in workers, updates the catalog.

A scan never deletes an item. New files are added, changed files get a new hash and a new content
version (so later stages see them as stale), vanished files become `missing`, a file moved within
its source keeps its item (and so its labels), and every bad file becomes one `error` item with a
reason.
Results are committed in short batches: a scan killed at any point leaves a consistent catalog and
the next scan finishes the job without duplicating an item.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.walk import (  # noqa: F401  (ScanOptions and the walk are part of this API)
    ScanOptions,
    _Entry,
    _glob_regex,
    display_path,
    probe_task,
    walk_source,
)
from indexing.progress import Cancelled, Progress, ProgressEvent, is_cancelled, no_progress

log = logging.getLogger(__name__)

COMMIT_EVERY = 500
COMMIT_SECONDS = 2.0


@dataclass
class ScanReport:
    """What a scan found and changed, per source and in total."""

    run_id: int = 0
    listed: int = 0
    new: int = 0
    changed: int = 0
    touched: int = 0
    unchanged: int = 0
    renamed: int = 0
    reappeared: int = 0
    missing: int = 0
    errors: int = 0
    probed: int = 0
    skipped: int = 0
    unreachable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.listed / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("run_id")
        data["files_per_second"] = round(self.files_per_second, 1)
        return data


@dataclass(slots=True)
class _Known:
    id: int
    size: Optional[int]
    mtime_ns: Optional[int]
    status: str
    content_hash: Optional[str]
    error: Optional[str] = None


# Errors that say nothing about the file's content: a rescan tries these files again even when
# their size and mtime are the same. Any other error stays until the file changes.
TRANSIENT_ERRORS = ("permission denied", "vanished", "cannot read", "timed out", "crashed",
                    "cannot stat", "cannot list", "embedding failed")


def _transient(error: Optional[str]) -> bool:
    return error is None or any(part in error for part in TRANSIENT_ERRORS)


# --- globs ------------------------------------------------------------------------------------


PROBE_COLUMNS = (
    "content_hash", "modality", "format", "width", "height", "duration", "fps", "sample_rate",
    "channels", "codec", "mode", "frames", "orientation", "has_audio", "status", "error",
)


# --- the scan ---------------------------------------------------------------------------------


@dataclass
class _Pending:
    """Catalog writes waiting for the next short transaction."""

    inserts: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    renames: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.renames)


@dataclass
class _Plan:
    """What the walk found: files to probe, walk errors, and what may have vanished."""

    known: dict[tuple[int, str], _Known]
    to_probe: list[_Entry] = field(default_factory=list)
    walk_errors: list[_Entry] = field(default_factory=list)
    walk_complete: bool = True
    # Items not seen by a complete walk, and their content hashes to recognise a move.
    vanished: dict[tuple[int, str], _Known] = field(default_factory=dict)
    # Items missing since an earlier scan: a new file with their content becomes them again.
    lost: dict[tuple[int, str], _Known] = field(default_factory=dict)
    by_hash: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def _plan(catalog: Catalog, sources: list[tuple[int, str]], options: ScanOptions,
          report: ScanReport, progress: Progress,
          cancel: Optional[Callable[[], bool]]) -> _Plan:
    """Walk every source and sort each file into unchanged / to probe / walk error."""
    db = catalog.db
    known: dict[tuple[int, str], _Known] = {}
    for row in db.execute(
        "SELECT id, source_id, path, size, mtime_ns, status, error FROM items"
    ):
        known[(row[1], row[2])] = _Known(row[0], row[3], row[4], row[5], None, row[6])
    plan = _Plan(known)
    seen: set[tuple[int, str]] = set()
    holding = {sid for (sid, _), old in known.items() if old.status != "missing"}
    for source_id, root in sources:
        if not os.path.isdir(root) or (source_id in holding and _empty_folder(root)):
            # An unmounted disk (or the empty mount point it leaves) is not a deletion: its
            # items keep their status.
            log.warning("source %s is %s; its items are left as they are", root,
                        "empty where it had files" if os.path.isdir(root) else "not reachable")
            report.unreachable.append(root)
            continue
        for entry in walk_source(source_id, root, options, cancel):
            key = (source_id, entry.rel)
            if key in seen:
                continue
            seen.add(key)
            report.listed += 1
            if report.listed % 500 == 0:
                progress(ProgressEvent("listing", report.listed, None, "files"))
            if entry.error is not None:
                plan.walk_errors.append(entry)
                continue
            old = known.get(key)
            if (
                old is not None
                and old.size == entry.size
                and old.mtime_ns == entry.mtime_ns
                and (old.status == "ok" or (old.status == "error" and not _transient(old.error)))
            ):
                # Its last_seen is set for the whole source in one statement at the end.
                report.unchanged += 1
            else:
                plan.to_probe.append(entry)
    progress(ProgressEvent("listing", report.listed, report.listed, "files"))
    plan.walk_complete = not is_cancelled(cancel)

    # Re-probed items need their old hash to tell a content change from a touch.
    reprobe = {known[(e.source_id, e.rel)].id: known[(e.source_id, e.rel)]
               for e in plan.to_probe if (e.source_id, e.rel) in known}
    _load_hashes(db, reprobe)
    if plan.walk_complete:
        roots = dict(sources)
        for key, old in known.items():
            if key in seen or old.status == "missing":
                continue
            root = roots.get(key[0])
            if root in report.unreachable:
                continue
            if root is None or not os.path.lexists(os.path.join(root, key[1])):
                plan.vanished[key] = old
        plan.lost = {key: old for key, old in known.items()
                     if old.status == "missing" and key not in seen}
    candidates = {**plan.lost, **plan.vanished}
    _load_hashes(db, {old.id: old for old in candidates.values()})
    for key, old in candidates.items():
        if old.content_hash:
            plan.by_hash.setdefault(old.content_hash, []).append(key)
    return plan


class _CatalogWriter:
    """Turns probe results into item inserts, updates and moves, committed in short batches."""

    def __init__(self, catalog: Catalog, plan: _Plan, report: ScanReport, now: str) -> None:
        self.catalog = catalog
        self.plan = plan
        self.report = report
        self.now = now
        self.pending = _Pending()
        self.last_commit = time.monotonic()

    def record(self, entry: _Entry, row: dict[str, Any]) -> None:
        """Queue the catalog change for one walked or probed file."""
        plan, report, now = self.plan, self.report, self.now
        old = plan.known.get((entry.source_id, entry.rel))
        values = tuple(row.get(c) for c in PROBE_COLUMNS)
        mtime = entry.mtime_ns / 1e9 if entry.mtime_ns is not None else None
        if row["status"] == "error":
            report.errors += 1
        if old is None:
            moved = self._moved_from(entry, row)
            if moved is not None:
                report.renamed += 1
                self.pending.renames.append((entry.source_id, entry.rel, entry.size, mtime,
                                             entry.mtime_ns, *values, now, moved.id))
            else:
                report.new += 1
                self.pending.inserts.append((entry.source_id, entry.rel, entry.size, mtime,
                                             entry.mtime_ns, *values, now, now, now))
        else:
            content_changed = bool(
                old.content_hash and row.get("content_hash")
                and old.content_hash != row.get("content_hash")
            )
            if old.status == "missing":
                report.reappeared += 1
            elif content_changed:
                report.changed += 1
            elif old.status == "ok":
                report.touched += 1
            self.pending.updates.append((entry.size, mtime, entry.mtime_ns, *values, now,
                                         int(content_changed), int(content_changed), now,
                                         old.id))
        if (len(self.pending) >= COMMIT_EVERY
                or time.monotonic() - self.last_commit > COMMIT_SECONDS):
            self.flush()

    def _moved_from(self, entry: _Entry, row: dict[str, Any]) -> Optional[_Known]:
        """The vanished or missing item a new file is (same content), taken off the list: one of
        the same source first, else a missing one of another source (labels follow content)."""
        digest = row.get("content_hash")
        if not digest or row["status"] != "ok":
            return None
        candidates = self.plan.by_hash.get(digest)
        if not candidates:
            return None
        same = [k for k in candidates if k[0] == entry.source_id]
        key = (same or candidates)[0]
        candidates.remove(key)
        return self.plan.vanished.pop(key, None) or self.plan.lost.pop(key)

    def flush(self) -> None:
        """Write the queued changes in one short transaction."""
        pending = self.pending
        if not len(pending):
            return
        cols = ", ".join(PROBE_COLUMNS)
        marks = ", ".join("?" * len(PROBE_COLUMNS))
        sets = ", ".join(f"{c} = ?" for c in PROBE_COLUMNS)
        with self.catalog.write() as wdb:
            if pending.inserts:
                wdb.conn.executemany(
                    f"INSERT INTO items (source_id, path, size, mtime, mtime_ns, {cols}, "
                    f"first_seen, last_seen, version, changed_at) VALUES (?, ?, ?, ?, ?, {marks}, "
                    f"?, ?, 1, ?) ON CONFLICT (source_id, path) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in
                                ("size", "mtime", "mtime_ns", *PROBE_COLUMNS, "last_seen")),
                    pending.inserts,
                )
            if pending.updates:
                wdb.conn.executemany(
                    f"UPDATE items SET size = ?, mtime = ?, mtime_ns = ?, {sets}, last_seen = ?, "
                    "version = version + ?, changed_at = CASE WHEN ? THEN ? ELSE changed_at END "
                    "WHERE id = ?",
                    pending.updates,
                )
            if pending.renames:
                wdb.conn.executemany(
                    "UPDATE items SET source_id = ?, path = ?, size = ?, mtime = ?, mtime_ns = ?, "
                    f"{sets}, last_seen = ? WHERE id = ?",
                    pending.renames,
                )
        pending.inserts.clear()
        pending.updates.clear()
        pending.renames.clear()
        self.last_commit = time.monotonic()


def _probe(plan: _Plan, writer: _CatalogWriter, options: ScanOptions, report: ScanReport,
           progress: Progress, cancel: Optional[Callable[[], bool]]) -> None:
    """Probe new and changed files in worker processes, handing each result to the writer."""
    from indexing.workers import TaskFailure, imap_robust

    total = len(plan.to_probe)
    progress(ProgressEvent("probing", 0, total, "files"))
    tasks = ((e.abs, e.size) for e in plan.to_probe)
    entries_by_path = {e.abs: e for e in plan.to_probe}
    workers = options.workers
    if workers is None and total < 64:
        workers = 0 if total < 8 else min(2, os.cpu_count() or 1)
    if options.ray is not None and total:
        from curator.distributed import ray_probe

        stream = ray_probe(tasks, probe_task, options.ray, cancel)
    else:
        stream = imap_robust(probe_task, tasks, workers, timeout=options.timeout, cancel=cancel)
    for (path, _), result in stream:
        if isinstance(result, TaskFailure):
            result = {"status": "error", "error": result.reason, "content_hash": None}
        writer.record(entries_by_path[path], result)
        report.probed += 1
        progress(ProgressEvent("probing", report.probed, total, "files"))


def _mark_missing(catalog: Catalog, plan: _Plan, sources: list[tuple[int, str]],
                  report: ScanReport, now: str) -> None:
    """After a complete scan, vanished files become `missing` (their history stays), and
    everything else that is there was seen now."""
    ids = [old.id for old in plan.vanished.values()]
    with catalog.write() as wdb:
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            wdb.conn.execute(
                f"UPDATE items SET status = 'missing' WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        for source_id, root in sources:
            if root not in report.unreachable:
                wdb.conn.execute("UPDATE items SET last_seen = ? WHERE source_id = ? AND "
                                 "status != 'missing' AND last_seen != ?",
                                 [now, source_id, now])
    report.missing = len(ids)


def scan_catalog(
    catalog: Catalog,
    options: ScanOptions = ScanOptions(),
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
    run_id: Optional[int] = None,
) -> ScanReport:
    """Bring the catalog in line with the files under every source.

    Three steps: plan (walk and sort every file), write (probe new and changed files and record
    them in short transactions) and, after a complete walk, mark what vanished as missing.

    Args:
        catalog: the project's catalog.
        options: globs, hidden files, workers.
        progress: receives "listing" then "probing" events (files).
        cancel: checked between files; a cancelled scan keeps everything committed so far.
        run_id: the run this scan is recorded under.

    Returns:
        A ScanReport.

    Raises:
        Cancelled: `cancel` said stop (after committing what was probed).
    """
    progress = progress or no_progress
    report = ScanReport(run_id=run_id or 0)
    started = time.monotonic()
    sources = list(catalog.db.execute("SELECT id, root FROM sources ORDER BY id").fetchall())
    now = utcnow()
    plan = _plan(catalog, sources, options, report, progress, cancel)
    writer = _CatalogWriter(catalog, plan, report, now)
    for entry in plan.walk_errors:  # nothing to probe: the walk said what is wrong
        writer.record(entry, {"status": "error", "error": entry.error})
    _probe(plan, writer, options, report, progress, cancel)
    writer.flush()
    if not plan.walk_complete or is_cancelled(cancel):
        # Everything probed so far is committed; the next scan goes on from there.
        raise Cancelled()
    _mark_missing(catalog, plan, sources, report, now)
    report.seconds = time.monotonic() - started
    return report


def _empty_folder(root: str) -> bool:
    """Whether a folder holds no entries at all (an unmounted disk's mount point)."""
    try:
        with os.scandir(root) as it:
            return next(it, None) is None
    except OSError:
        return False


def _load_hashes(db: Any, items: dict[int, _Known]) -> None:
    """Fill in the stored content hash of these items (loaded only where a scan needs it)."""
    ids = list(items)
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for item_id, digest in db.execute(
                f"SELECT id, content_hash FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                chunk):
            items[item_id].content_hash = digest


def source_root(path: Path) -> str:
    """The absolute, normalised form a source root is stored in (symlinks kept as given)."""
    return os.path.abspath(os.path.expanduser(str(path)))
