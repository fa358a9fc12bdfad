"""Duplicates and outliers of a project: exact and near-duplicate groups with a suggested keeper.

Exact duplicates share a content hash; near duplicates are items whose vectors in one embedding
space are at least `threshold` apart in cosine similarity, searched within and between nearby
groups of the current clustering so the search scales to a million items. The latest result is
kept in `<project>/dedup/latest.json` (written atomically); export reads it so that every copy
of an item lands in the same split. Nothing here removes a file: the user decides.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.embed import spaces as embedding_spaces
from curator.errors import CuratorError, UsageError
from curator.groups import current_run
from curator.items import sources
from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

log = logging.getLogger(__name__)

DEDUP_DIR = "dedup"
LATEST = "latest.json"
RULES = ("resolution", "longest", "oldest", "source")
_FORMAT = 1
_CHUNK = 900


@dataclass(frozen=True)
class DuplicateGroup:
    """Items that are copies of one another; `keeper` is the one the rule suggests keeping."""

    kind: str  # exact or near
    items: tuple[int, ...]
    keeper: int
    space: Optional[str] = None  # the embedding space a near group was found in
    content_hash: Optional[str] = None  # the shared hash of an exact group

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": list(self.items), "keeper": self.keeper,
                "space": self.space, "content_hash": self.content_hash}


@dataclass(frozen=True)
class Outlier:
    """An item far from every group centre of its space; higher scores are further out."""

    item_id: int
    score: float
    space: str
    group_id: Optional[int]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DedupReport:
    """One duplicate search: its parameters, the groups found, and the ranked outliers."""

    created: str
    params: dict[str, Any]
    exact: tuple[DuplicateGroup, ...]
    near: tuple[DuplicateGroup, ...]
    outliers: tuple[Outlier, ...] = ()
    cluster_run: Optional[int] = None
    run_id: Optional[int] = None
    seconds: float = 0.0
    spaces: dict[str, int] = field(default_factory=dict)  # space -> items searched

    @property
    def groups(self) -> tuple[DuplicateGroup, ...]:
        return self.exact + self.near

    def summary(self) -> dict[str, Any]:
        """Counts: groups, items in them, and items that could go (all but the keepers)."""
        merged = merge_groups([g.items for g in self.groups])
        return {
            "exact_groups": len(self.exact),
            "exact_items": sum(len(g.items) for g in self.exact),
            "near_groups": len(self.near),
            "near_items": sum(len(g.items) for g in self.near),
            "items_in_groups": sum(len(g) for g in merged),
            "removable": sum(len(g) - 1 for g in merged),
            "outliers": len(self.outliers),
        }

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "created": self.created, "params": self.params,
                "cluster_run": self.cluster_run, "run_id": self.run_id,
                "seconds": round(self.seconds, 3), "spaces": self.spaces,
                "summary": self.summary(),
                "exact": [g.to_json() for g in self.exact],
                "near": [g.to_json() for g in self.near],
                "outliers": [o.to_json() for o in self.outliers]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DedupReport:
        def group(d: dict[str, Any]) -> DuplicateGroup:
            return DuplicateGroup(d["kind"], tuple(int(i) for i in d["items"]), int(d["keeper"]),
                                  d.get("space"), d.get("content_hash"))

        return cls(
            created=data["created"], params=dict(data.get("params") or {}),
            exact=tuple(group(d) for d in data.get("exact", [])),
            near=tuple(group(d) for d in data.get("near", [])),
            outliers=tuple(Outlier(int(o["item_id"]), float(o["score"]), o["space"],
                                   o.get("group_id")) for o in data.get("outliers", [])),
            cluster_run=data.get("cluster_run"), run_id=data.get("run_id"),
            seconds=float(data.get("seconds") or 0.0), spaces=dict(data.get("spaces") or {}))


# --- groups -----------------------------------------------------------------------------------


def merge_groups(groups: Sequence[Sequence[int]]) -> list[list[int]]:
    """Join groups that share an item (union-find); each result sorted, ordered by first id."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for group in groups:
        members = [int(i) for i in group]
        if len(members) < 2:
            continue
        for i in members:
            parent.setdefault(i, i)
        root = find(members[0])
        for i in members[1:]:
            other = find(i)
            if other != root:
                if other < root:
                    root, other = other, root
                parent[other] = root
    joined: dict[int, list[int]] = {}
    for i in parent:
        joined.setdefault(find(i), []).append(i)
    return sorted((sorted(g) for g in joined.values() if len(g) > 1), key=lambda g: g[0])


def exact_groups(db: Any) -> list[tuple[str, list[int]]]:
    """(content hash, item ids) for every hash shared by two or more ok items."""
    rows = db.execute(
        "SELECT content_hash, id FROM items WHERE status = 'ok' AND content_hash IN "
        "(SELECT content_hash FROM items WHERE status = 'ok' AND content_hash IS NOT NULL "
        " GROUP BY content_hash HAVING COUNT(*) > 1) ORDER BY content_hash, id")
    out: list[tuple[str, list[int]]] = []
    for digest, item_id in rows:
        if out and out[-1][0] == digest:
            out[-1][1].append(item_id)
        else:
            out.append((digest, [item_id]))
    return out


def duplicate_groups(catalog: Catalog, db: Any = None) -> list[list[int]]:
    """Exact and near duplicate groups joined (union-find), for keeping copies in one split.

    Exact groups are computed now from the catalog; near groups come from the latest
    `find_duplicates` result when there is one.

    Args:
        catalog: the project's catalog.
        db: a connection to read through (export passes its read snapshot).
    """
    db = db if db is not None else catalog.db
    groups: list[Sequence[int]] = [ids for _, ids in exact_groups(db)]
    latest = load_duplicates(catalog)
    if latest is not None:
        groups.extend(g.items for g in latest.near)
    return merge_groups(groups)


# --- the search -------------------------------------------------------------------------------


def find_duplicates(
    catalog: Catalog,
    threshold: Optional[float] = None,
    rule: str = "resolution",
    preferred_source: Optional[str] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
    outliers: int = 100,
) -> DedupReport:
    """Find exact and near duplicates and rank outliers; store the result as the latest.

    Args:
        catalog: the project's catalog.
        threshold: cosine similarity at or above which two items are near duplicates; None
            calibrates one per embedding space and modality from the space's own
            nearest-neighbour distances (`indexing.dedup.calibrated_threshold`, never below
            DEFAULT_FLOOR).
        rule: which copy to suggest keeping: resolution (most pixels), longest (duration),
            oldest (file modification time), or source (a copy under `preferred_source`);
            ties go to the larger file, then the smaller path.
        preferred_source: a source folder, or a folder inside one, that the `source` rule
            prefers.
        outliers: how many outliers to keep (needs a clustering).

    Returns:
        The DedupReport, also written to `<project>/dedup/latest.json`.

    Raises:
        UsageError: a bad threshold, rule or source.
    """
    from indexing.dedup import choose_keeper

    started = time.monotonic()
    progress = progress or no_progress
    if threshold is not None and (not isinstance(threshold, (int, float))
                                  or not 0.0 < float(threshold) <= 1.0):
        raise UsageError(f"the similarity threshold must be a number in (0, 1], not "
                         f"{threshold!r}", hint="0.95 suits most spaces", option="threshold")
    if rule not in RULES:
        raise UsageError(f"unknown keeper rule {rule!r}; one of {', '.join(RULES)}")
    if rule == "source":
        if not preferred_source:
            raise UsageError("the source rule needs a preferred source folder (one of the "
                             "sources)", hint="name the source whose copies are kept",
                             option="preferred_source")
        preferred_source = _match_source(catalog, preferred_source)
    elif preferred_source:
        preferred_source = _match_source(catalog, preferred_source)
    params = {"threshold": None if threshold is None else float(threshold), "rule": rule,
              "preferred_source": preferred_source, "outliers": outliers, "thresholds": {}}
    with catalog.recorded_run("dedup", params) as run:
        db = catalog.db
        progress(ProgressEvent("exact duplicates", 0, None, "groups"))
        exact_found = exact_groups(db)
        check_cancel(cancel)
        cluster_run = _cluster_run(catalog)
        near_found: list[tuple[str, list[int]]] = []
        ranked: list[Outlier] = []
        spaces: dict[str, int] = {}
        for space in [row["space"] for row in embedding_spaces(catalog)]:
            found, outl, n = _search_space(catalog, space, threshold, cluster_run,
                                           outliers, progress, cancel, params["thresholds"])
            near_found.extend((space, g) for g in found)
            ranked.extend(outl)
            spaces[space] = n
        # A near group that only repeats one exact group adds nothing.
        exact_sets = {frozenset(ids) for _, ids in exact_found}
        near_found = [(s, g) for s, g in near_found if not any(
            frozenset(g) <= e for e in exact_sets)]
        meta = _keeper_meta(db, {i for _, g in exact_found + near_found for i in g})

        def keeper(ids: list[int]) -> int:
            rows = [meta[i] for i in ids]
            return int(ids[choose_keeper(np.arange(len(ids)), rows, rule=rule,
                                         preferred_source=preferred_source)])

        exact = tuple(DuplicateGroup("exact", tuple(ids), keeper(ids), None, digest)
                      for digest, ids in exact_found)
        near = tuple(DuplicateGroup("near", tuple(sorted(g)), keeper(sorted(g)), space)
                     for space, g in sorted(near_found, key=lambda sg: (-len(sg[1]),
                                                                         min(sg[1]))))
        ranked.sort(key=lambda o: (-o.score, o.item_id))
        report = DedupReport(created=utcnow(), params=params, exact=exact, near=near,
                             outliers=tuple(ranked[:outliers]), cluster_run=cluster_run,
                             run_id=run.id, seconds=round(time.monotonic() - started, 3),
                             spaces=spaces)
        _store(catalog, report)
        run.counts = report.summary()
    return report


def _match_source(catalog: Catalog, folder: str) -> str:
    """A source root, or a folder inside one, as the absolute path the keeper rule compares."""
    roots = [s.root for s in sources(catalog)]
    if folder in roots:
        return folder
    wanted = os.path.abspath(os.path.expanduser(folder))
    for root in roots:
        for form in (wanted, os.path.realpath(wanted)):
            if form == root or form.startswith(os.path.join(root, "")):
                return form
    raise UsageError(f"{folder} is not a source of this project or a folder inside one; "
                     f"sources: {', '.join(roots)}")


def _cluster_run(catalog: Catalog) -> Optional[int]:
    try:
        return current_run(catalog)
    except UsageError:
        return None


DEFAULT_FLOOR = 0.95


def _search_space(catalog: Catalog, space: str, threshold: Optional[float],
                  cluster_run: Optional[int], top: int, progress: Progress,
                  cancel: Optional[Callable[[], bool]], used: dict[str, float]
                  ) -> tuple[list[list[int]], list[Outlier], int]:
    """Near-duplicate groups (as item ids) and outliers of one space, searched per modality
    (a copy is of the same kind; each modality gets its own calibrated threshold)."""
    from curator.groups import ok_vectors
    from indexing.dedup import (
        calibrated_threshold,
        near_duplicate_groups,
        outlier_scores,
        rank_outliers,
    )

    ids, X = ok_vectors(catalog, space)
    if len(ids) < 2:
        return [], [], len(ids)
    labels = centroids = None
    group_ids: Optional[np.ndarray] = None
    if cluster_run is not None:
        labels, centroids, group_ids = _space_clustering(catalog, space, cluster_run, ids, X)

    def report(event: ProgressEvent) -> None:
        progress(ProgressEvent(f"near duplicates {space}: {event.stage}", event.done, event.total,
                               event.unit, event.message))

    modality = dict(catalog.db.execute(
        "SELECT id, modality FROM items WHERE status = 'ok'"))
    kinds = np.array([modality.get(int(i), "") for i in ids])
    found = []
    for kind in sorted(set(kinds.tolist())):
        part = np.flatnonzero(kinds == kind)
        if len(part) < 2:
            continue
        t = threshold if threshold is not None else calibrated_threshold(X[part],
                                                                         DEFAULT_FLOOR)
        used[f"{space}/{kind}"] = round(float(t), 5)
        rows = near_duplicate_groups(X[part], threshold=float(t),
                                     group_labels=None if labels is None else labels[part],
                                     centroids=centroids, progress=report, cancel=cancel)
        found.extend([int(i) for i in ids[part[np.asarray(r, dtype=np.int64)]]] for r in rows)
    ranked: list[Outlier] = []
    if centroids is not None and top > 0:
        check_cancel(cancel)
        scores = np.asarray(outlier_scores(X, centroids, labels))
        for r in rank_outliers(scores, top):
            r = int(r)
            gid = None if labels[r] < 0 else int(group_ids[labels[r]])
            ranked.append(Outlier(int(ids[r]), float(scores[r]), space, gid))
    return found, ranked, len(ids)


def _space_clustering(catalog: Catalog, space: str, run_id: int, ids: np.ndarray,
                      X: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Local group labels per row, the centroids they index, and their run group ids.

    The run's stored centroids are used as they are; groups made later by split or merge get
    their centroid computed from their members' vectors here.
    """
    from curator.groups import centroids_path

    db = catalog.db
    row = db.execute("SELECT group_offset, n_groups FROM clusterings WHERE run_id = ? AND "
                     "space = ?", [run_id, space]).fetchone()
    if row is None:
        return np.full(len(ids), -1, np.int64), None, np.zeros(0, np.int64)
    offset, n_groups = int(row[0]), int(row[1])
    path = centroids_path(catalog, run_id) / f"centroids-{offset}.npy"
    stored = np.load(path) if path.exists() else np.zeros((0, X.shape[1]), np.float32)
    assigned = np.full(len(ids), -1, np.int64)
    pairs = np.array(db.execute("SELECT item_id, group_id FROM assignments WHERE run_id = ? "
                                "ORDER BY item_id", [run_id]).fetchall(),
                     dtype=np.int64).reshape(-1, 2)
    if len(pairs):
        pos = np.searchsorted(pairs[:, 0], ids)
        pos = np.clip(pos, 0, len(pairs) - 1)
        hit = pairs[pos, 0] == ids
        assigned[hit] = pairs[pos[hit], 1]
    labels = np.full(len(ids), -1, np.int64)
    inside = (assigned >= offset) & (assigned < offset + len(stored))
    labels[inside] = assigned[inside] - offset
    group_ids = list(range(offset, offset + len(stored)))
    extra_centroids = []
    for gid in np.unique(assigned[(assigned >= 0) & ~inside]).tolist():
        rows = np.flatnonzero(assigned == gid)
        centre = np.asarray(X[rows], dtype=np.float32).mean(axis=0)
        norm = float(np.linalg.norm(centre))
        extra_centroids.append(centre / norm if norm > 0 else centre)
        labels[rows] = len(group_ids)
        group_ids.append(gid)
    centroids = np.asarray(stored, np.float32)
    if extra_centroids:
        centroids = np.vstack([centroids, np.stack(extra_centroids).astype(np.float32)])
    if len(centroids) == 0:
        return labels, None, np.asarray(group_ids, np.int64)
    del n_groups  # the stored file is the truth for how many centroids there are
    return labels, centroids, np.asarray(group_ids, np.int64)


def _keeper_meta(db: Any, ids: set[int]) -> dict[int, dict[str, Any]]:
    """What the keeper rules look at, per item."""
    out: dict[int, dict[str, Any]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start:start + _CHUNK]
        for row in db.query(
                "SELECT items.id, items.path, sources.root AS source, items.size, items.width, "
                "items.height, items.duration, items.mtime, items.first_seen, items.modality "
                "FROM items JOIN sources ON sources.id = items.source_id "
                f"WHERE items.id IN ({','.join('?' * len(chunk))})", chunk):
            row = dict(row)
            # The rules compare absolute paths (the source rule prefers a folder prefix).
            row["rel_path"] = row["path"]
            row["path"] = os.path.join(row["source"], row["path"])
            out[row["id"]] = row
    return out


# --- storage ----------------------------------------------------------------------------------


def latest_path(catalog: Catalog) -> Path:
    return Path(catalog.root) / DEDUP_DIR / LATEST


def _store(catalog: Catalog, report: DedupReport) -> None:
    """Write latest.json atomically: a temporary file, fsynced, then renamed over the old one."""
    from curator.stores import write_text_atomic

    write_text_atomic(latest_path(catalog), json.dumps(report.to_json(), ensure_ascii=False))


def load_duplicates(catalog: Catalog) -> Optional[DedupReport]:
    """The latest duplicate search, or None when none ran.

    Raises:
        CuratorError: the stored result cannot be read (run `curator dedup` again).
    """
    path = latest_path(catalog)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return DedupReport.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CuratorError(f"{path} cannot be read ({exc}); search for duplicates again",
                           hint="run `curator dedup`") from exc


def keeper_similarities(catalog: Any, groups: Sequence[Any]) -> dict[int, float]:
    """item id -> cosine similarity to its group's keeper (1.0 for exact copies and keepers)."""
    from curator.embed import space_store

    out: dict[int, float] = {}
    for g in groups:
        items = [int(i) for i in g.items]
        if g.kind == "exact" or not g.space:
            out.update({i: 1.0 for i in items})
            continue
        found, vectors = space_store(catalog, g.space).lookup(np.asarray(sorted(items)))
        x = np.asarray(vectors, dtype=np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        rows = {int(i): r for r, i in enumerate(found)}
        if g.keeper not in rows:
            continue
        keep = x[rows[g.keeper]]
        out.update({i: round(float(x[r] @ keep), 4) for i, r in rows.items()})
    return out
