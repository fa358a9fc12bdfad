"""The Project facade: every operation on a project folder, called alike by the CLI and the GUI."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from curator.catalog import Catalog, RunRecord, utcnow
from curator.errors import CuratorError, UsageError
from curator.scan import ScanOptions, ScanReport, scan_catalog, source_root
from indexing.progress import Cancelled, Progress

if TYPE_CHECKING:
    from curator.distributed import RayOptions
    from curator.embed import EmbedReport
    from curator.groups import Group

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

    # --- embedding --------------------------------------------------------------------------

    def embed(
        self,
        model: str = "ViT-B-32/laion2b_s34b_b79k",
        audio_model: str = "laion/clap-htsat-unfused",
        *,
        weights: Optional[str] = None,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 64,
        workers: Optional[int] = None,
        offline: Optional[bool] = None,
        thumbnails: bool = True,
        ray: Optional["RayOptions"] = None,
        progress: Optional[Progress] = None,
        cancel: Optional[Callable[[], bool]] = None,
    ) -> "EmbedReport":
        """Embed every ok item not yet embedded (or stale) by the chosen models; a recorded run.

        `model` embeds images and video frames (an open_clip model string, or "classic"),
        `audio_model` embeds audio (a CLAP model, or "classic"). A model whose weights are not
        here is reported in `report.unavailable` and the others still run. With `ray`
        (curator.distributed.RayOptions) the models run on a Ray cluster; this process still
        writes the shards and the catalog.

        Raises:
            CuratorError: no model could be loaded at all (the message says what to do).
        """
        from curator.embed import EmbedReport, compact_space, embed_space
        from indexing.embedders import EmbedderUnavailable, create_embedder

        if weights:
            # Stored resolved: a later text search from another folder must find the same file.
            weights = str(Path(weights).expanduser().resolve())
        plan: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
        if model == "classic" and audio_model == "classic":
            plan.append(("classic", {}, ("image", "video", "audio")))
        else:
            if model == "classic":
                plan.append(("classic", {}, ("image", "video")))
            else:
                plan.append(("open_clip", {"model": model, "weights": weights}, ("image", "video")))
            if audio_model == "classic":
                plan.append(("classic", {}, ("audio",)))
            else:
                plan.append(("clap", {"model": audio_model}, ("audio",)))
        present = {m for m, n in self.catalog.db.execute(
            "SELECT modality, COUNT(*) FROM items WHERE status = 'ok' GROUP BY modality")}
        params = {"model": model, "audio_model": audio_model, "weights": weights,
                  "device": device, "precision": precision, "batch_size": batch_size,
                  "workers": workers}
        if ray is not None:
            params["ray"] = {"address": ray.address, "path_map": [list(p) for p in ray.path_map]}
        self.catalog.mark_interrupted_runs()
        run_id = self.catalog.start_run("embed", params)
        report = EmbedReport(run_id=run_id)
        started = time.monotonic()
        status = "failed"
        try:
            for name, options, modalities in plan:
                wanted = [m for m in modalities if m in present]
                if not wanted:
                    continue
                factory = {"precision": precision, "batch_size": batch_size,
                           "offline": offline, **options}
                try:
                    # On Ray the driver's copy only names the space and decodes nothing itself.
                    embedder = create_embedder(name, device="cpu" if ray else device, **factory)
                except EmbedderUnavailable as exc:
                    report.unavailable.append(f"{', '.join(wanted)}: {exc}")
                    continue
                embedder.modalities = frozenset(wanted)
                space_options = {"name": name, **{k: v for k, v in options.items()
                                                  if v is not None}}
                if ray is not None:
                    from curator.distributed import embed_space_ray

                    counts = embed_space_ray(
                        self.catalog, embedder, run_id, (name, {"device": device, **factory}),
                        ray, batch_size=batch_size, progress=progress, cancel=cancel,
                        thumbnails=thumbnails, options=space_options)
                else:
                    counts = embed_space(self.catalog, embedder, run_id, batch_size=batch_size,
                                         workers=workers, progress=progress, cancel=cancel,
                                         thumbnails=thumbnails, options=space_options)
                counts.update(model=embedder.model_string, embedder=embedder.name,
                              device=counts.get("actors", {}).get("device")
                              or str(getattr(embedder, "device", "cpu")),
                              precision=str(getattr(embedder, "precision", "fp32")),
                              modalities=wanted, dim=embedder.dim)
                report.spaces[embedder.space] = counts
                report.embedded += counts["embedded"]
                report.errors += counts["errors"]
                compact_space(self.catalog, embedder.space)
                from curator.search import sync_index

                sync_index(self.catalog, embedder.space)
                if counts["cancelled"]:
                    report.cancelled = True
                    break
            report.seconds = time.monotonic() - started
            if report.unavailable and not report.spaces:
                raise CuratorError("no model could be loaded: " + " | ".join(report.unavailable))
            status = "cancelled" if report.cancelled else "ok"
        finally:
            report.seconds = time.monotonic() - started
            self.catalog.end_run(run_id, status, {**report.counts(),
                                                  "unavailable": report.unavailable})
        return report

    def spaces(self) -> list[dict[str, Any]]:
        """The embedding spaces of this project with their vector counts."""
        rows = [dict(r) for r in self.catalog.db.query("SELECT * FROM spaces ORDER BY space")]
        for row in rows:
            row["count"] = self.catalog.db.execute(
                "SELECT COUNT(*) FROM embeddings WHERE space = ?", [row["space"]]).fetchone()[0]
        return rows

    def vectors(self, space: str) -> tuple[Any, Any]:
        """(item ids, float16 vectors) of a space, memory-mapped, sorted by item id."""
        from curator.embed import compact_space, space_store

        store = space_store(self.catalog, space)
        if not store.exists():
            compact_space(self.catalog, space)
        return store.load()

    def thumbnail(self, item_id: int) -> Optional[bytes]:
        """An item's JPEG thumbnail, or None; constant time."""
        from curator.embed import THUMBS_DIR
        from curator.stores import ThumbnailStore

        return ThumbnailStore(self.root / THUMBS_DIR).get(item_id)

    # --- grouping ---------------------------------------------------------------------------

    def cluster(
        self,
        n_groups: Optional[int] = None,
        method: str = "auto",
        seed: int = 0,
        spaces: Optional[list[str]] = None,
        progress: Optional[Progress] = None,
        cancel: Optional[Callable[[], bool]] = None,
    ) -> tuple[int, dict[str, Any]]:
        """Cluster every embedding space (or the given ones) into groups; a recorded run.

        Returns:
            (run id, per-space counts). Labels are untouched: they belong to items.
        """
        from curator.groups import cluster_run

        known = [row["space"] for row in self.spaces()]
        spaces = spaces or known
        for space in spaces:
            if space not in known:
                raise UsageError(f"no embedding space {space!r}; known: {', '.join(known) or 'none'}"
                                 " (run `curator embed` first)")
        if not spaces:
            raise UsageError(f"{self.root} has no vectors yet; run `curator embed` first")
        params = {"n_groups": n_groups, "method": method, "seed": seed, "spaces": spaces}
        with self.catalog.recorded_run("cluster", params) as run:
            run.counts = cluster_run(self.catalog, run.id, spaces, n_groups, method, seed,
                                     progress, cancel)
        return run.id, run.counts

    def current_run(self, run_id: Optional[int] = None) -> int:
        from curator.groups import current_run

        return current_run(self.catalog, run_id)

    def groups(self, run_id: Optional[int] = None, order: str = "impurity",
               status: Optional[str] = None, label: Optional[str] = None,
               modality: Optional[str] = None, include_inactive: bool = False) -> list["Group"]:
        """The groups of a clustering run, ordered and filtered (the review queue's rows)."""
        from curator.groups import Group

        run_id = self.current_run(run_id)
        sql = ("SELECT g.run_id, g.group_id, g.space, g.size, g.cohesion, g.impurity, g.topic, "
               "g.state, g.parent, g.status, l.name FROM groups g LEFT JOIN labels l ON "
               "l.id = g.label_id WHERE g.run_id = ?")
        args: list[Any] = [run_id]
        if not include_inactive:
            sql += " AND g.state = 'active'"
        if status:
            sql += " AND g.status = ?"
            args.append(status)
        if label:
            from curator.labels import find_label

            sql += " AND g.label_id = ?"
            args.append(find_label(self.catalog, label).id)
        if modality:
            spaces = [r["space"] for r in self.spaces() if modality in r["modalities"]]
            sql += f" AND g.space IN ({','.join('?' * len(spaces)) or 'NULL'})"
            args.extend(spaces)
        orders = {
            "impurity": "g.impurity DESC, g.size DESC",
            "size": "g.size DESC, g.group_id",
            "unlabeled": "(g.status = 'undecided') DESC, g.size DESC",
            "id": "g.group_id",
            "cohesion": "g.cohesion ASC",
        }
        if order not in orders:
            raise UsageError(f"unknown order {order!r}; one of {', '.join(orders)}")
        sql += " ORDER BY " + orders[order]
        return [Group(r[0], r[1], r[2], r[3], r[4] or 0.0, r[5] or 0.0, r[6] or 0, r[7], r[8],
                      r[9], r[10], 0) for r in self.catalog.db.execute(sql, args)]

    def queue(self, order: str = "impurity", run_id: Optional[int] = None) -> dict[str, Any]:
        """Undecided groups first in the given order, with progress (groups and items)."""
        run_id = self.current_run(run_id)
        groups = self.groups(run_id, order=order)
        undecided = [g for g in groups if g.status == "undecided"]
        if order == "unlabeled":
            undecided = groups
        items_total = self.catalog.db.execute(
            "SELECT COALESCE(SUM(n_items), 0) FROM clusterings WHERE run_id = ?",
            [run_id]).fetchone()[0]
        labelled = self.catalog.db.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0]
        return {
            "run_id": run_id,
            "groups_total": len(groups),
            "groups_decided": len(groups) - sum(1 for g in groups if g.status == "undecided"),
            "items_total": items_total,
            "items_labelled": labelled,
            "groups": undecided if order != "unlabeled" else groups,
        }

    def group(self, group_id: int, run_id: Optional[int] = None) -> dict[str, Any]:
        """One group with its members, representatives first, and boundary items marked."""
        import json as _json

        from curator.groups import group_members

        run_id = self.current_run(run_id)
        members = group_members(self.catalog, run_id, group_id)
        row = self.catalog.db.execute(
            "SELECT g.space, g.size, g.cohesion, g.impurity, g.topic, g.state, g.status, l.name, "
            "g.representatives, g.boundary, g.parent FROM groups g LEFT JOIN labels l "
            "ON l.id = g.label_id WHERE g.run_id = ? AND g.group_id = ?",
            [run_id, group_id]).fetchone()
        member_set = set(members.tolist())
        reps = [i for i in _json.loads(row[8]) if i in member_set]
        boundary = [i for i in _json.loads(row[9]) if i in member_set]
        rep_set = set(reps)
        rest = [i for i in members.tolist() if i not in rep_set]
        return {"run_id": run_id, "group_id": group_id, "space": row[0], "size": len(members),
                "cohesion": row[2], "impurity": row[3], "topic": row[4], "state": row[5],
                "status": row[6], "label": row[7], "parent": row[10],
                "items": reps + rest, "representatives": reps, "boundary": boundary}

    def item_facets(self, item_ids: Any, run_id: Optional[int] = None) -> dict[str, Any]:
        """Per-item group, topic, label id and label state, aligned with `item_ids` (for colouring
        a million map points in one call). Missing values are -1; state is 0 none, 1 labelled,
        2 noise, 3 mixed."""
        import numpy as np

        ids = np.asarray(item_ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]

        def place(pairs: list[tuple], dtype: Any) -> Any:
            out = np.full(len(ids), -1, dtype=dtype)
            if not pairs or not len(ids):
                return out
            arr = np.array(pairs, dtype=np.int64)
            pos = np.searchsorted(sorted_ids, arr[:, 0])
            ok = pos < len(sorted_ids)
            ok[ok] = sorted_ids[pos[ok]] == arr[ok, 0]
            out[order[pos[ok]]] = arr[ok, 1]
            return out

        db = self.catalog.db
        try:
            run = self.current_run(run_id)
        except UsageError:
            run = None
        group = np.full(len(ids), -1, np.int64)
        topic = np.full(len(ids), -1, np.int64)
        if run is not None:
            group = place(db.execute("SELECT item_id, group_id FROM assignments WHERE run_id = ?",
                                     [run]).fetchall(), np.int64)
            topics = dict(db.execute("SELECT group_id, topic FROM groups WHERE run_id = ?",
                                     [run]).fetchall())
            if topics:
                lut = np.full(max(topics) + 2, -1, np.int64)
                for g, t in topics.items():
                    lut[g] = -1 if t is None else t
                topic = np.where(group >= 0, lut[np.clip(group, 0, len(lut) - 1)], -1)
        rows = db.execute("SELECT item_id, COALESCE(label_id, -1), CASE state WHEN 'labelled' "
                          "THEN 1 WHEN 'noise' THEN 2 ELSE 3 END FROM item_labels").fetchall()
        label = place([(r[0], r[1]) for r in rows], np.int64)
        state = place([(r[0], r[2]) for r in rows], np.int64)
        state[state < 0] = 0
        return {"group": group, "topic": topic, "label": label, "state": state.astype(np.int8)}

    def split(self, group_id: int, k: int = 2, run_id: Optional[int] = None,
              seed: int = 0) -> list[int]:
        from curator.groups import split

        if not 2 <= k <= 8:
            raise UsageError("--k must be between 2 and 8")
        return split(self.catalog, self.current_run(run_id), group_id, k, seed)

    def merge(self, group_ids: list[int], run_id: Optional[int] = None) -> int:
        from curator.groups import merge

        return merge(self.catalog, self.current_run(run_id), group_ids)

    # --- search and map ---------------------------------------------------------------------

    def sync_indexes(self, progress: Optional[Progress] = None) -> dict[str, Any]:
        """Bring every space's FAISS index up to date with the catalog (incremental)."""
        from curator.search import sync_index

        return {row["space"]: sync_index(self.catalog, row["space"], progress)
                for row in self.spaces()}

    def search(self, text: Optional[str] = None, like: Optional[int] = None,
               file: Optional[str] = None, k: int = 50, modality: Optional[str] = None,
               space: Optional[str] = None, offline: Optional[bool] = None) -> list[dict[str, Any]]:
        """Items nearest a text query, an item, or a file: item_id, path, score, modality, space."""
        from curator.search import search

        return search(self.catalog, text=text, like=like, file=file, k=k, modality=modality,
                      space=space, offline=offline)

    def compute_map(self, sample_size: int = 50_000, seed: int = 0,
                    progress: Optional[Progress] = None,
                    cancel: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
        """2-D coordinates for every item of every space; a recorded run."""
        from curator.search import compute_maps

        spaces = [r["space"] for r in self.spaces()]
        if not spaces:
            raise UsageError(f"{self.root} has no vectors yet; run `curator embed` first")
        with self.catalog.recorded_run("map", {"sample_size": sample_size, "seed": seed}) as run:
            run.counts = compute_maps(self.catalog, spaces, sample_size, seed, progress, cancel)
        return run.counts

    def map(self, space: Optional[str] = None) -> tuple[Any, Any]:
        """(item ids, coords (n, 2)) of the map; all spaces side by side when none is named."""
        from curator.search import load_map

        return load_map(self.catalog, space)

    # --- labels -----------------------------------------------------------------------------

    @property
    def annotator(self) -> str:
        from curator.settings import load_settings

        return self._annotator or load_settings().annotator_name

    _annotator: str = ""

    def set_annotator(self, name: Optional[str]) -> None:
        self._annotator = name or ""

    def labels(self) -> list[Any]:
        from curator.labels import labels

        return labels(self.catalog)

    def add_label(self, name: str, parent: Optional[str] = None, colour: Optional[str] = None,
                  hotkey: Optional[str] = None, description: str = "") -> Any:
        from curator.labels import add_label

        return add_label(self.catalog, name, parent, colour, hotkey, description, self.annotator)

    def update_label(self, name: str, **changes: Any) -> Any:
        from curator.labels import update_label

        return update_label(self.catalog, name, annotator=self.annotator, **changes)

    def merge_labels(self, sources: list[str], into: str) -> dict[str, Any]:
        from curator.labels import merge_labels

        return merge_labels(self.catalog, sources, into, self.annotator)

    def remove_label(self, name: str, force: bool = False) -> dict[str, Any]:
        from curator.labels import remove_label

        return remove_label(self.catalog, name, force, self.annotator)

    def import_taxonomy(self, entries: list[dict[str, Any]]) -> list[Any]:
        from curator.labels import import_taxonomy

        return import_taxonomy(self.catalog, entries, self.annotator)

    def export_taxonomy(self) -> list[dict[str, Any]]:
        from curator.labels import export_taxonomy

        return export_taxonomy(self.catalog)

    def label_group(self, group_id: int, label: Optional[str] = None, *,
                    action: str = "assign", exclude: Sequence[int] = (),
                    run_id: Optional[int] = None, note: str = "") -> int:
        """Decide a whole group at once (minus exclusions): one event, undone as one."""
        from curator.groups import group_members
        from curator.labels import apply_event, find_label

        run_id = self.current_run(run_id)
        members = group_members(self.catalog, run_id, group_id)
        excluded = {int(i) for i in exclude}
        unknown = excluded - set(members.tolist())
        if unknown:
            raise UsageError(f"item {sorted(unknown)[0]} is not in group {group_id}")
        items = [int(i) for i in members if int(i) not in excluded]
        label_id = find_label(self.catalog, label).id if action == "assign" else None
        if action == "assign" and label is None:
            raise UsageError("give --label NAME (or --noise / --mixed)")
        return apply_event(self.catalog, action, items, label_id=label_id, source="group",
                           annotator=self.annotator, run_id=run_id, group_id=group_id, note=note,
                           details={"excluded": sorted(excluded)} if excluded else None)

    def label_items(self, item_ids: Sequence[int], label: Optional[str] = None, *,
                    action: str = "assign", source: str = "manual", note: str = "",
                    per_item: Optional[dict[int, str]] = None) -> int:
        """Label items one by one or in bulk (one event)."""
        from curator.labels import apply_event, find_label

        label_id = find_label(self.catalog, label).id if (action == "assign" and label) else None
        per_item_ids = None
        if per_item:
            names = {name: find_label(self.catalog, name).id for name in set(per_item.values())}
            per_item_ids = {int(i): names[n] for i, n in per_item.items()}
        if action == "assign" and label_id is None and not per_item_ids:
            raise UsageError("give --label NAME (or --noise / --mixed)")
        return apply_event(self.catalog, action, list(item_ids), label_id=label_id,
                           per_item_labels=per_item_ids, source=source, annotator=self.annotator,
                           note=note)

    def resolve_items(self, refs: Sequence[str]) -> list[int]:
        """Item ids from ids, paths relative to a source, or absolute paths."""
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
                for row in self.catalog.db.execute(
                        "SELECT items.id, items.path, sources.root FROM items JOIN sources "
                        "ON sources.id = items.source_id"):
                    by_path[row[1]] = row[0]
                    by_path[os.path.join(row[2], row[1])] = row[0]
            if ref not in by_path:
                raise UsageError(f"no item with path {ref!r} in {self.root}")
            ids.append(by_path[ref])
        return ids

    def undo(self, event_id: Optional[int] = None) -> dict[str, Any]:
        from curator.labels import undo

        return undo(self.catalog, self.annotator, event_id)

    def redo(self) -> dict[str, Any]:
        from curator.labels import redo

        return redo(self.catalog, self.annotator)

    def history(self, item_id: Optional[int] = None, limit: int = 100) -> list[Any]:
        from curator.labels import history

        if item_id is not None:
            self.item(item_id)
        return history(self.catalog, item_id, limit)

    # --- label quality ----------------------------------------------------------------------

    def suspects(self, k: int = 10, min_disagreement: float = 0.6, limit: Optional[int] = None,
                 progress=None, cancel=None) -> list[Any]:
        """Labelled items whose nearest labelled neighbours mostly carry another label."""
        from curator.quality import suspects

        return suspects(self, k, min_disagreement, limit, progress, cancel)


    def start_audit(self, n: int = 100, seed: int = 0) -> int:
        """Draw a stratified (label x source) random sample of labelled items to spot-check."""
        from curator.quality import start_audit

        return start_audit(self, n, seed)


    def record_verdict(self, audit_id: int, item_id: int, verdict: str,
                       corrected_label: Optional[str] = None) -> dict[str, Any]:
        """Record correct / wrong / unsure on an audited item; a correction relabels it (undoable)."""
        from curator.quality import record_verdict

        return record_verdict(self, audit_id, item_id, verdict, corrected_label)


    def next_unreviewed(self, audit_id: int, limit: int = 10) -> list[Any]:
        """The next items of an audit to review."""
        from curator.quality import next_unreviewed

        return next_unreviewed(self, audit_id, limit)


    def audit_report(self, audit_id: int) -> dict[str, Any]:
        """Estimated accuracy per label, per source and overall, with 95% Wilson intervals."""
        from curator.quality import audit_report

        return audit_report(self, audit_id)


    def propagate(self, min_confidence: float = 0.8, k: int = 10, apply: bool = True,
                  progress=None, cancel=None) -> Any:
        """Label unlabelled items from labelled neighbours, as one undoable `propagated` event."""
        from curator.quality import propagate

        return propagate(self, min_confidence, k, apply, progress, cancel)

    # --- export, duplicates, report -------------------------------------------------------

    def export(self, fmt: str, out: Path | str, split: Optional[str] = None, seed: int = 0,
               only_labeled: bool = False, mode: str = "copy",
               progress: Optional[Progress] = None,
               cancel: Optional[Callable[[], bool]] = None) -> Any:
        """Export items and labels in a format (atomically, with a manifest); see curator.export."""
        from curator.export import export

        return export(self, fmt, out, split=split, seed=seed, only_labeled=only_labeled,
                      mode=mode, progress=progress, cancel=cancel)

    def find_duplicates(self, threshold: float = 0.95, rule: str = "resolution",
                        preferred_source: Optional[str] = None, outliers: int = 100,
                        progress: Optional[Progress] = None,
                        cancel: Optional[Callable[[], bool]] = None) -> Any:
        """Exact and near duplicate groups with a suggested keeper, and ranked outliers."""
        from curator.dedup import find_duplicates

        return find_duplicates(self, threshold, rule, preferred_source, progress, cancel,
                               outliers=outliers)

    def duplicates(self) -> Any:
        """The latest duplicate search, or None when none ran."""
        from curator.dedup import load_duplicates

        return load_duplicates(self)

    def report(self) -> dict[str, Any]:
        """Coverage of the labels: by label, source folder, modality and label source."""
        from curator.report import build_report

        return build_report(self)

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
