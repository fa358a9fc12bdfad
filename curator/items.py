"""Items and sources in the catalog: the one owner of the `items JOIN sources` queries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypedDict

import numpy as np

from curator.catalog import Catalog, RunRecord
from curator.connection import utcnow
from curator.errors import UsageError

_CHUNK = 900  # ids per `IN (...)`: below SQLite's default limit on bound variables


@dataclass(frozen=True)
class Source:
    """A media folder the project indexes; item paths are relative to its root."""

    id: int
    root: str
    added_at: str


@dataclass
class ProjectStatus:
    """Counts per modality and status, sizes, and the error items with their reasons."""

    root: str
    sources: list[Source]
    counts: dict[str, dict[str, int]]
    sizes: dict[str, int]
    total: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    last_scan: Optional[RunRecord] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "sources": [s.__dict__ for s in self.sources],
            "counts": self.counts,
            "sizes": self.sizes,
            "total": self.total,
            "errors": self.errors,
            "last_scan": None if self.last_scan is None else self.last_scan.__dict__,
        }


# --- sources ----------------------------------------------------------------------------------


def sources(catalog: Catalog) -> list[Source]:
    """The project's source folders, oldest first."""
    return [Source(r["id"], r["root"], r["added_at"])
            for r in catalog.db.query("SELECT * FROM sources ORDER BY id")]


def checked_source(path: Path | str) -> str:
    """A source folder's root after checking that it is an existing folder.

    Raises:
        UsageError: it does not exist or is a file.
    """
    from curator.scan import source_root

    root = source_root(Path(path))
    if not os.path.exists(root):
        raise UsageError(f"source folder {path} does not exist; check the path")
    if not os.path.isdir(root):
        raise UsageError(f"source {path} is a file; give the folder that holds the media")
    return root


def _nested(a: str, b: str) -> bool:
    # Real paths: a link to a source (or into one) is the same files, indexed twice otherwise.
    a = os.path.join(os.path.realpath(a), "")
    b = os.path.join(os.path.realpath(b), "")
    return a.startswith(b) or b.startswith(a)


def add_sources(catalog: Catalog, roots: Sequence[str]) -> list[Source]:
    """Add media folders; an already known one is left as it is.

    Raises:
        UsageError: a folder lies inside another source, or holds one.
    """
    existing = {s.root for s in sources(catalog)}
    added = []
    for root in roots:
        if root in existing:
            continue
        for other in existing:
            if _nested(root, other):
                raise UsageError(f"source {root} overlaps source {other}; files would be "
                                 "indexed twice")
        now = utcnow()
        with catalog.write() as db:
            cursor = db.execute("INSERT INTO sources (root, added_at) VALUES (?, ?)", [root, now])
        existing.add(root)
        added.append(Source(int(cursor.lastrowid), root, now))
    return added


# --- items ------------------------------------------------------------------------------------


def ok_ids(catalog: Catalog) -> np.ndarray:
    """Ids of every item whose status is ok, ascending."""
    return np.fromiter((r[0] for r in catalog.db.execute(
        "SELECT id FROM items WHERE status = 'ok' ORDER BY id")), dtype=np.int64)


def abs_paths(catalog: Catalog, item_ids: Sequence[int]) -> dict[int, str]:
    """Item id -> absolute path (source root joined with the relative path); unknown ids absent."""
    out: dict[int, str] = {}
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for item_id, path, root in catalog.db.execute(
                "SELECT items.id, items.path, sources.root FROM items JOIN sources ON "
                f"sources.id = items.source_id WHERE items.id IN ({','.join('?' * len(chunk))})",
                chunk):
            out[item_id] = os.path.join(root, path)
    return out


class ItemRow(TypedDict):
    """One item as the catalog holds it (every column of `items`), with where it is on disk."""

    id: int
    source_id: int
    path: str  # relative to its source
    modality: Optional[str]
    format: Optional[str]
    size: Optional[int]
    mtime: Optional[float]
    mtime_ns: Optional[int]
    content_hash: Optional[str]
    width: Optional[int]
    height: Optional[int]
    duration: Optional[float]
    fps: Optional[float]
    sample_rate: Optional[int]
    channels: Optional[int]
    codec: Optional[str]
    status: str  # "ok", "error" or "missing"
    error: Optional[str]
    first_seen: str
    last_seen: str
    mode: Optional[str]
    frames: Optional[int]
    orientation: Optional[int]
    has_audio: Optional[int]
    version: Optional[int]
    changed_at: Optional[str]
    source_root: str
    abs_path: str


_ROWS = ("SELECT items.*, sources.root AS source_root FROM items "
         "JOIN sources ON sources.id = items.source_id")


def _with_abs_path(row: Any) -> ItemRow:
    out = dict(row)
    out["abs_path"] = os.path.join(out["source_root"], out["path"])
    return ItemRow(**out)


def items(catalog: Catalog, status: Optional[str] = None, modality: Optional[str] = None,
          limit: Optional[int] = None) -> list[ItemRow]:
    """Item rows (every column, plus `source_root` and `abs_path`), filtered, by id."""
    sql = _ROWS + " WHERE 1 = 1"
    args: list[Any] = []
    if status:
        sql += " AND items.status = ?"
        args.append(status)
    if modality:
        sql += " AND items.modality = ?"
        args.append(modality)
    sql += " ORDER BY items.id"
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    return [_with_abs_path(row) for row in catalog.db.query(sql, args)]


def item(catalog: Catalog, item_id: int) -> ItemRow:
    """One item row (see `items`).

    Raises:
        UsageError: no item has that id.
    """
    rows = list(catalog.db.query(_ROWS + " WHERE items.id = ?", [item_id]))
    if not rows:
        raise UsageError(f"no item with id {item_id} in {catalog.root}")
    return _with_abs_path(rows[0])


def resolve_items(catalog: Catalog, refs: Sequence[str]) -> list[int]:
    """Item ids from ids, paths relative to a source, or absolute paths.

    Raises:
        UsageError: a path names no item.
    """
    by_path: dict[str, int] = {}
    ids: list[int] = []
    for ref in refs:
        ref = ref.strip()
        if not ref:
            continue
        if ref.isdigit():
            ids.append(int(ref))
            continue
        if not by_path:
            for item_id, path, root in catalog.db.execute(
                    "SELECT items.id, items.path, sources.root FROM items JOIN sources "
                    "ON sources.id = items.source_id"):
                by_path[path] = item_id
                by_path[os.path.join(root, path)] = item_id
        if ref not in by_path:
            raise UsageError(f"no item with path {ref!r} in {catalog.root}")
        ids.append(by_path[ref])
    return ids


def status(catalog: Catalog, max_errors: int = 1000) -> ProjectStatus:
    """Counts per modality and status, sizes of ok items, the error items and the last scan."""
    db = catalog.db
    counts: dict[str, dict[str, int]] = {}
    sizes: dict[str, int] = {}
    total = 0
    for modality, state, n, size in db.execute(
        "SELECT COALESCE(modality, 'unknown'), status, COUNT(*), COALESCE(SUM(size), 0) "
        "FROM items GROUP BY 1, 2 ORDER BY 1, 2"
    ):
        counts.setdefault(modality, {})[state] = n
        if state == "ok":
            sizes[modality] = sizes.get(modality, 0) + size
        total += n
    errors = [dict(row) for row in db.query(
        "SELECT items.id, sources.root AS source, items.path, items.modality, items.error "
        "FROM items JOIN sources ON sources.id = items.source_id "
        "WHERE items.status = 'error' ORDER BY items.source_id, items.path LIMIT ?",
        [max_errors])]
    scans = catalog.runs("scan", limit=1)
    return ProjectStatus(root=str(catalog.root), sources=sources(catalog), counts=counts,
                         sizes=sizes, total=total, errors=errors,
                         last_scan=scans[0] if scans else None)


def present_modalities(catalog: Catalog) -> set[str]:
    """The modalities that have at least one ok item."""
    return {m for (m,) in catalog.db.execute(
        "SELECT DISTINCT modality FROM items WHERE status = 'ok'")}
