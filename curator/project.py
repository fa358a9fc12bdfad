"""The Project facade: every operation on a project folder, called alike by the CLI and the GUI."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from curator.catalog import Catalog, RunRecord, utcnow
from curator.errors import CuratorError, UsageError
from curator.scan import ScanOptions, ScanReport, scan_catalog, source_root
from indexing.progress import Cancelled, Progress

log = logging.getLogger(__name__)


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


class Project:
    """A project folder: its catalog and the stores beside it.

    Use `Project.create` or `Project.open`; close it (or use it as a context manager) when done.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.root = catalog.root

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path | str, sources: list[Path | str] = ()) -> "Project":
        """Make a project folder (or add sources to an existing one).

        Raises:
            UsageError: a source is missing, not a folder, or nested in another source.
        """
        root = Path(root)
        roots = [_checked_source(s) for s in sources]
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} is a file; choose a folder for the project")
        if root.exists() and (root / "catalog.db").exists():
            project = cls.open(root)
        else:
            if root.exists() and any(root.iterdir()):
                raise UsageError(
                    f"{root} is a folder that is not empty and not a Curator project; "
                    "choose a new or empty folder"
                )
            project = cls(Catalog.create(root))
        try:
            project.add_sources(roots)
        except BaseException:
            project.close()
            raise
        return project

    @classmethod
    def open(cls, root: Path | str) -> "Project":
        """Open a project folder, migrating an older catalog schema.

        Raises:
            NotAProjectError: the folder is not a Curator project.
        """
        return cls(Catalog.open(Path(root)))

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- sources ----------------------------------------------------------------------------

    def sources(self) -> list[Source]:
        return [
            Source(r["id"], r["root"], r["added_at"])
            for r in self.catalog.db.query("SELECT * FROM sources ORDER BY id")
        ]

    def add_sources(self, roots: list[str]) -> list[Source]:
        """Add media folders; an already known one is left as it is."""
        existing = {s.root for s in self.sources()}
        added = []
        for root in roots:
            if root in existing:
                continue
            for other in existing:
                if _nested(root, other):
                    raise UsageError(
                        f"source {root} overlaps source {other}; files would be indexed twice"
                    )
            with self.catalog.write() as db:
                cursor = db.execute(
                    "INSERT INTO sources (root, added_at) VALUES (?, ?)", [root, utcnow()]
                )
            existing.add(root)
            added.append(Source(int(cursor.lastrowid), root, utcnow()))
        return added

    # --- scanning ---------------------------------------------------------------------------

    def scan(
        self,
        options: ScanOptions = ScanOptions(),
        progress: Optional[Progress] = None,
        cancel: Optional[Callable[[], bool]] = None,
    ) -> ScanReport:
        """Walk every source and bring the catalog up to date; recorded as a `scan` run."""
        if not self.sources():
            raise UsageError(f"{self.root} has no source folders; add one with `curator init "
                             f"{self.root} --source FOLDER`")
        self.catalog.mark_interrupted_runs()
        params = {
            "include": list(options.include),
            "exclude": list(options.exclude),
            "hidden": options.hidden,
            "workers": options.workers,
        }
        run_id = self.catalog.start_run("scan", params)
        try:
            report = scan_catalog(self.catalog, options, progress, cancel, run_id=run_id)
        except Cancelled:
            self.catalog.end_run(run_id, "cancelled", {})
            raise
        except BaseException as exc:
            self.catalog.end_run(run_id, "failed", {}, error=str(exc)[:500])
            raise
        self.catalog.end_run(
            run_id, "cancelled" if report.cancelled else "ok", report.counts()
        )
        return report

    # --- queries ----------------------------------------------------------------------------

    def status(self, max_errors: int = 1000) -> ProjectStatus:
        db = self.catalog.db
        counts: dict[str, dict[str, int]] = {}
        sizes: dict[str, int] = {}
        total = 0
        for modality, status, n, size in db.execute(
            "SELECT COALESCE(modality, 'unknown'), status, COUNT(*), COALESCE(SUM(size), 0) "
            "FROM items GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            counts.setdefault(modality, {})[status] = n
            if status == "ok":
                sizes[modality] = sizes.get(modality, 0) + size
            total += n
        errors = [
            dict(row)
            for row in db.query(
                "SELECT items.id, sources.root AS source, items.path, items.modality, items.error "
                "FROM items JOIN sources ON sources.id = items.source_id "
                "WHERE items.status = 'error' ORDER BY items.source_id, items.path LIMIT ?",
                [max_errors],
            )
        ]
        scans = self.catalog.runs("scan", limit=1)
        return ProjectStatus(
            root=str(self.root),
            sources=self.sources(),
            counts=counts,
            sizes=sizes,
            total=total,
            errors=errors,
            last_scan=scans[0] if scans else None,
        )

    def items(self, status: Optional[str] = None, modality: Optional[str] = None,
              limit: Optional[int] = None) -> list[dict[str, Any]]:
        """Items with their absolute path, filtered by status and modality."""
        sql = ("SELECT items.*, sources.root AS source_root FROM items "
               "JOIN sources ON sources.id = items.source_id WHERE 1 = 1")
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
        rows = []
        for row in self.catalog.db.query(sql, args):
            row = dict(row)
            row["abs_path"] = os.path.join(row["source_root"], row["path"])
            rows.append(row)
        return rows

    def item(self, item_id: int) -> dict[str, Any]:
        rows = list(self.catalog.db.query(
            "SELECT items.*, sources.root AS source_root FROM items "
            "JOIN sources ON sources.id = items.source_id WHERE items.id = ?", [item_id]))
        if not rows:
            raise UsageError(f"no item with id {item_id} in {self.root}")
        row = dict(rows[0])
        row["abs_path"] = os.path.join(row["source_root"], row["path"])
        return row

    def runs(self, kind: Optional[str] = None, limit: int = 50) -> list[RunRecord]:
        return self.catalog.runs(kind, limit)


def _checked_source(path: Path | str) -> str:
    root = source_root(Path(path))
    if not os.path.exists(root):
        raise UsageError(f"source folder {path} does not exist; check the path")
    if not os.path.isdir(root):
        raise UsageError(f"source {path} is a file; give the folder that holds the media")
    return root


def _nested(a: str, b: str) -> bool:
    a = os.path.join(a, "")
    b = os.path.join(b, "")
    return a.startswith(b) or b.startswith(a)


__all__ = ["Project", "ProjectStatus", "Source", "ScanOptions", "ScanReport", "CuratorError"]
