"""Sources that move: list them with their health, relocate one (keeping every item, label and
vector), or remove one.

Relocating keeps item ids, so labels, events, vectors and group assignments follow. When the new
folder is already a source (it was added and scanned under its new name), the items found there
are merged into the old ones: matched by relative path (with the same content, where both hashes
are known), else by a content hash that appears once; the old item keeps its id and history and
takes the new location, the duplicate is dropped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceInfo:
    """A source folder with its item counts and whether it is reachable now."""

    id: int
    root: str
    added_at: str
    counts: dict[str, int]
    reachable: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SourceRemoval:
    """What `remove` forgot: the source's folder, its items, and how many of them had labels."""

    source: str
    items: int
    labelled: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RelocateReport:
    """What `relocate` did."""

    old: str
    new: str
    items: int = 0
    found: int = 0
    merged: int = 0
    not_found: int = 0
    merged_source: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_sources(catalog: Catalog) -> list[SourceInfo]:
    """Every source with its item counts by status, oldest first."""
    counts: dict[int, dict[str, int]] = {}
    for sid, status, n in catalog.db.execute(
            "SELECT source_id, status, COUNT(*) FROM items GROUP BY 1, 2"):
        counts.setdefault(sid, {})[status] = n
    out = []
    for sid, root, added in catalog.db.execute(
            "SELECT id, root, added_at FROM sources ORDER BY id").fetchall():
        out.append(SourceInfo(sid, root, added, counts.get(sid, {}), os.path.isdir(root)))
    return out


def find_source(catalog: Catalog, ref: str) -> tuple[int, str]:
    """A source by id, stored root, or any path that resolves to its root.

    Raises:
        UsageError: no source matches.
    """
    rows = catalog.db.execute("SELECT id, root FROM sources ORDER BY id").fetchall()
    if ref.isdigit():
        for sid, root in rows:
            if sid == int(ref):
                return sid, root
    wanted = os.path.abspath(os.path.expanduser(ref))
    for sid, root in rows:
        if root in (wanted, ref):
            return sid, root
    real = os.path.realpath(wanted)
    for sid, root in rows:
        if os.path.exists(root) and os.path.realpath(root) == real:
            return sid, root
    known = ", ".join(root for _, root in rows) or "none"
    raise UsageError(f"no source {ref!r} in this project (sources: {known}); "
                     "see `curator sources list`")


def _check_new_root(catalog: Catalog, sid: int, new: str) -> int | None:
    """The id of an existing source at `new` (to merge into the old), or None; refuses overlap."""
    from curator.items import _nested

    if not os.path.isdir(new):
        raise UsageError(f"{new} is not a folder; give the folder the media moved to")
    same = None
    for other_id, root in catalog.db.execute("SELECT id, root FROM sources").fetchall():
        if other_id == sid:
            continue
        if root == new or (os.path.exists(root) and os.path.realpath(root) ==
                           os.path.realpath(new)):
            same = other_id
        elif _nested(new, root):
            raise UsageError(f"{new} overlaps source {root}; files would be indexed twice")
    return same


def relocate(catalog: Catalog, old: str, new: str | Path) -> RelocateReport:
    """Point a source at the folder its media moved to; every item keeps its id.

    Args:
        catalog: the project's catalog.
        old: the source (id, stored root, or a path resolving to it).
        new: the folder it moved to.

    Returns:
        A RelocateReport: how many items were found at their relative path under the new
        folder, merged from a source already there, or not found (a scan finds moved ones by
        content).

    Raises:
        UsageError: no such source, the new folder is missing, or it overlaps another source.
    """
    from curator.scan import source_root

    sid, old_root = find_source(catalog, old)
    new_root = source_root(Path(new))
    report = RelocateReport(old_root, new_root)
    target = _check_new_root(catalog, sid, new_root)
    with catalog.write() as db:
        report.items = db.execute("SELECT COUNT(*) FROM items WHERE source_id = ?",
                                  [sid]).fetchone()[0]
        if target is not None:
            report.merged_source = True
            report.merged = _merge_into(db, sid, target)
            db.execute("UPDATE items SET source_id = ? WHERE source_id = ?", [target, sid])
            db.execute("DELETE FROM sources WHERE id = ?", [sid])
            db.execute("UPDATE sources SET root = ? WHERE id = ?", [new_root, target])
            sid = target
        else:
            db.execute("UPDATE sources SET root = ? WHERE id = ?", [new_root, sid])
    paths = catalog.db.execute("SELECT path FROM items WHERE source_id = ? AND "
                               "status != 'missing'", [sid]).fetchall()
    report.found = sum(os.path.lexists(os.path.join(new_root, p)) for (p,) in paths)
    report.not_found = len(paths) - report.found
    if report.not_found:
        report.notes.append(f"{report.not_found} items are not at their old relative path; "
                            "`curator scan` finds moved files by their content")
    return report


def _item_tables(db: Any) -> list[tuple[str, list[str]]]:
    """Every table with an item_id column, and its primary-key columns."""
    out = []
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        info = db.execute(f"PRAGMA table_info({name})").fetchall()
        if name != "items" and any(col[1] == "item_id" for col in info):
            out.append((name, [col[1] for col in info if col[5]]))
    return out


def _pairs(db: Any, old_sid: int, new_sid: int) -> list[tuple[int, int]]:
    """(old item, duplicate in the new source) pairs: the same relative path (a changed content
    makes a new version), else the same content hash when it is unique on both sides."""
    old = {path: (iid, digest) for iid, path, digest in db.execute(
        "SELECT id, path, content_hash FROM items WHERE source_id = ?", [old_sid])}
    new = {path: (iid, digest) for iid, path, digest in db.execute(
        "SELECT id, path, content_hash FROM items WHERE source_id = ?", [new_sid])}
    pairs, used_old, used_new = [], set(), set()
    for path, (nid, _digest) in new.items():
        if path in old:
            oid = old[path][0]
            pairs.append((oid, nid))
            used_old.add(oid)
            used_new.add(nid)
    by_hash_old: dict[str, list[int]] = {}
    for oid, digest in old.values():
        if digest and oid not in used_old:
            by_hash_old.setdefault(digest, []).append(oid)
    by_hash_new: dict[str, list[int]] = {}
    for nid, digest in new.values():
        if digest and nid not in used_new:
            by_hash_new.setdefault(digest, []).append(nid)
    for digest, nids in by_hash_new.items():
        oids = by_hash_old.get(digest, [])
        if len(nids) == 1 and len(oids) == 1:
            pairs.append((oids[0], nids[0]))
    return pairs


def _merge_into(db: Any, old_sid: int, new_sid: int) -> int:
    """Give each old item its duplicate's location and drop the duplicate; returns the count."""
    from curator.scan import PROBE_COLUMNS

    pairs = _pairs(db, old_sid, new_sid)
    tables = _item_tables(db)
    columns = ("path", "size", "mtime", "mtime_ns", *PROBE_COLUMNS, "last_seen")
    for oid, nid in pairs:
        for table, _key in tables:
            # The old item's own rows win (its label, its vector); the duplicate's others move.
            db.execute(f"UPDATE OR IGNORE {table} SET item_id = ? WHERE item_id = ?", [oid, nid])
            db.execute(f"DELETE FROM {table} WHERE item_id = ?", [nid])
        row = db.execute(f"SELECT {', '.join(columns)} FROM items WHERE id = ?",
                         [nid]).fetchone()
        db.execute("DELETE FROM items WHERE id = ?", [nid])
        # A changed content is a new version of the old item: later stages redo it.
        db.execute("UPDATE items SET version = version + 1 WHERE id = ? AND content_hash IS NOT ? "
                   "AND content_hash IS NOT NULL", [oid, row[columns.index("content_hash")]])
        db.execute(f"UPDATE items SET source_id = ?, {', '.join(c + ' = ?' for c in columns)} "
                   "WHERE id = ?", [new_sid, *row, oid])
    return len(pairs)


def remove(catalog: Catalog, ref: str, force: bool = False) -> SourceRemoval:
    """Forget a source and its items (their vectors, groups and current labels); the label
    history keeps its events.

    Raises:
        UsageError: no such source, or it has labelled items and `force` is not set.
    """
    sid, root = find_source(catalog, ref)
    labelled = catalog.db.execute(
        "SELECT COUNT(*) FROM item_labels WHERE item_id IN (SELECT id FROM items WHERE "
        "source_id = ?)", [sid]).fetchone()[0]
    if labelled and not force:
        raise UsageError(f"source {root} has {labelled} labelled items; removing it forgets their "
                         "labels", option="force",
                         hint="remove it anyway, or `curator sources relocate` it if it moved")
    with catalog.write() as db:
        ids = "SELECT id FROM items WHERE source_id = ?"
        for table, _key in _item_tables(db):
            if table in ("event_items", "audit_items"):
                continue  # history stays as it was
            db.execute(f"DELETE FROM {table} WHERE item_id IN ({ids})", [sid])
        n = db.execute("DELETE FROM items WHERE source_id = ?", [sid]).rowcount
        db.execute("DELETE FROM sources WHERE id = ?", [sid])
    _refresh_stores(catalog)
    log.info("removed source %s (%d items) at %s", root, n, utcnow())
    return SourceRemoval(root, n, labelled)


def _refresh_stores(catalog: Catalog) -> None:
    """Bring every space's compact store and index in line with the catalog after a removal."""
    from curator.embed import compact_space
    from curator.search import sync_index

    for (space,) in catalog.db.execute("SELECT space FROM spaces").fetchall():
        compact_space(catalog, space)
        sync_index(catalog, space)
