"""Clustering runs: groups and topics per embedding space, stored by run; split and merge
within a run; the review queue over them.

Labels belong to items and groups belong to a run, so re-clustering never touches a label. One
`cluster` run covers every space (CLIP for images and video, CLAP for audio, ...), and its group
ids are unique within the run: `--group 17` means group 17 of the run, whatever its space.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypedDict

import numpy as np

from curator.catalog import Catalog, utcnow
from curator.errors import CuratorError, UsageError
from indexing.progress import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

CLUSTERS_DIR = "clusters"


@dataclass(frozen=True)
class Group:
    """One group of a clustering run, with its statistics and decision state."""

    run_id: int
    group_id: int
    space: str
    size: int
    cohesion: float
    impurity: float
    topic: int
    state: str  # active, split, merged
    parent: Optional[int]
    status: str  # undecided, labelled, noise, mixed
    label: Optional[str]
    labelled: int  # members that carry a current decision (any source)
    decision: Any = None  # curator.decisions.GroupDecision: shares behind `status`

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["decision"] = None if self.decision is None else self.decision.to_json()
        return out


def ok_vectors(catalog: Catalog, space: str) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) of a space restricted to items that are ok now."""
    from curator.embed import vectors
    from curator.items import ok_ids

    ids, X = vectors(catalog, space)
    keep = np.isin(ids, ok_ids(catalog))
    if keep.all():
        return np.asarray(ids), X
    return np.asarray(ids)[keep], X[keep]


class SpaceClustering(TypedDict):
    """What a clustering run did in one embedding space."""

    items: int
    groups: int
    method: str
    noise: int
    first_group: int
    low_density_groups: list[int]  # groups of outliers: one "noise" decision each


def cluster_run(
    catalog: Catalog,
    run_id: int,
    spaces: Sequence[str],
    n_groups: Optional[int] = None,
    method: str = "auto",
    seed: int = 0,
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
    undecided_only: bool = False,
) -> dict[str, SpaceClustering]:
    """Cluster every space and store the groups and assignments of this run.

    With `undecided_only`, items that already carry a decision are left out of the run.

    Returns:
        Per-space counts, by space name.
    """
    from indexing.cluster import InvalidEmbeddings, cluster_embeddings

    progress = progress or no_progress
    out: dict[str, SpaceClustering] = {}
    offset = 0
    folder = catalog.root / CLUSTERS_DIR / f"run{run_id:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    for space in spaces:
        all_ids, all_X = ok_vectors(catalog, space)
        if undecided_only:
            from curator.decisions import undecided_mask

            keep = undecided_mask(catalog, all_ids)
            all_ids, all_X = all_ids[keep], all_X[keep]
        for part, rows in _parts(catalog, space, all_ids):
            ids = all_ids[rows] if rows is not None else all_ids
            X = all_X[rows] if rows is not None else all_X
            if len(ids) == 0:
                continue
            name = f"{space} {part}".strip()
            try:
                result = cluster_embeddings(
                    X, n_groups=n_groups, method=method, seed=seed,
                    progress=lambda e, s=name: progress(ProgressEvent(
                        f"cluster {s}: {e.stage}", e.done, e.total, e.unit, e.message)),
                    cancel=cancel,
                )
            except InvalidEmbeddings as exc:
                bad = [int(ids[r]) for r in exc.rows[:5]]
                raise CuratorError(
                    f"space {space}: item {bad[0]} has "
                    + ("an all-zero" if exc.reason == "zero" else "a NaN or infinite") + " vector"
                    + (f" (also items {', '.join(map(str, bad[1:]))})" if len(bad) > 1 else "")
                    + "; re-embed it or check the file", hint="`curator embed` re-embeds it"
                ) from exc
            n = _store_result(catalog, run_id, space, part, ids, result, offset, folder)
            labels = np.asarray(result.labels)
            low = np.flatnonzero(getattr(result, "low_density", np.zeros(0, bool)))
            out[name] = {"items": int(len(ids)), "groups": n, "method": result.method,
                         "noise": int((labels < 0).sum()), "first_group": offset,
                         # Groups of low-density items (outliers): one "noise" decision each.
                         "low_density_groups": [offset + int(g) for g in low]}
            offset += n
    return out


def _parts(catalog: Catalog, space: str,
           ids: np.ndarray) -> list[tuple[str, Optional[np.ndarray]]]:
    """How a space is clustered: whole, or per modality where its modalities are not comparable.

    CLIP puts images and video frames in one comparable space (a joint space); `classic` only
    shares a space id across modalities, so its audio, image and video vectors are clustered
    apart. The embedder's capability says which.
    """
    from curator.embed import space_spec

    row = catalog.db.execute("SELECT modalities FROM spaces WHERE space = ?",
                             [space]).fetchone()
    modalities = json.loads(row[0]) if row else []
    if not row or len(modalities) < 2 or space_spec(catalog, space).capabilities.joint_space:
        return [("", None)]
    by_id = dict(catalog.db.execute("SELECT id, modality FROM items WHERE status = 'ok'"))
    kinds = np.array([by_id.get(int(i), "") for i in ids])
    return [(m, np.flatnonzero(kinds == m)) for m in sorted(set(kinds.tolist())) if m]


def _store_result(catalog: Catalog, run_id: int, space: str, part: str, ids: np.ndarray,
                  result: Any, offset: int, folder: Path) -> int:
    labels = np.asarray(result.labels, dtype=np.int64)
    stats = result.stats
    n = len(stats.size)
    group_rows = []
    for g in range(n):
        reps = [int(ids[i]) for i in stats.representatives[g]]
        bounds = [int(ids[i]) for i in stats.boundary[g]]
        group_rows.append((
            run_id, offset + g, space, int(stats.size[g]), float(stats.cohesion[g]),
            float(stats.impurity[g]), offset + int(result.topics[g]) if len(result.topics) else 0,
            json.dumps(reps), json.dumps(bounds), "active", None, utcnow(),
        ))
    assigned = np.where(labels >= 0, labels + offset, -1)
    np.save(folder / f"centroids-{offset}.npy", np.asarray(result.centroids, np.float32))
    with catalog.write() as db:
        db.conn.executemany(
            "INSERT INTO groups (run_id, group_id, space, size, cohesion, impurity, topic, "
            "representatives, boundary, state, parent, created_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            group_rows,
        )
        db.conn.executemany(
            "INSERT INTO assignments (run_id, item_id, group_id) VALUES (?, ?, ?)",
            zip([run_id] * len(ids), ids.tolist(), assigned.tolist()),
        )
        db.execute(
            "INSERT INTO clusterings (run_id, space, part, method, n_groups, n_items, "
            "group_offset, params, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, space, part, result.method, n, int(len(ids)), offset,
             json.dumps(_jsonable(result.params), sort_keys=True), utcnow()],
        )
    return n


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def latest_run_id(catalog: Catalog) -> Optional[int]:
    """The newest clustering run that finished, or None when none did."""
    row = catalog.db.execute(
        "SELECT MAX(c.run_id) FROM clusterings c JOIN runs r ON r.id = c.run_id "
        "WHERE r.status = 'ok'").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def current_run(catalog: Catalog, run_id: Optional[int] = None) -> int:
    """The clustering run to address: the given one, or the newest finished one.

    Raises:
        UsageError: the given run is no clustering run, or none has finished yet.
    """
    if run_id is not None:
        row = catalog.db.execute(
            "SELECT 1 FROM clusterings WHERE run_id = ? LIMIT 1", [run_id]).fetchone()
        if row is None:
            raise UsageError(f"run {run_id} is not a clustering run",
                             hint="`curator runs` lists the clustering runs")
        return run_id
    latest = latest_run_id(catalog)
    if latest is None:
        raise UsageError(f"{catalog.root} has no groups yet",
                         hint="run `curator cluster` (or `curator index`) first")
    return latest


def group_members(catalog: Catalog, run_id: int, group_id: int) -> np.ndarray:
    """Item ids of a group (sorted)."""
    _check_group(catalog, run_id, group_id)
    rows = catalog.db.execute(
        "SELECT item_id FROM assignments WHERE run_id = ? AND group_id = ? ORDER BY item_id",
        [run_id, group_id]).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def _check_group(catalog: Catalog, run_id: int, group_id: int) -> tuple:
    row = catalog.db.execute(
        "SELECT space, state FROM groups WHERE run_id = ? AND group_id = ?",
        [run_id, group_id]).fetchone()
    if row is None:
        raise UsageError(f"no group {group_id} in clustering run {run_id}",
                         hint="see `curator queue`")
    return row


def split(catalog: Catalog, run_id: int, group_id: int, k: int = 2, seed: int = 0,
          partition: Optional[dict[int, int]] = None) -> list[int]:
    """Re-cluster one group into k sub-groups of the same run; returns the new group ids.

    `partition` (item id -> part) replaces the re-clustering: a split carried over from an
    older run divides the group the way the user divided it there.
    """
    from indexing.cluster import group_statistics, split_group

    space, state = _check_group(catalog, run_id, group_id)
    if state != "active":
        raise UsageError(f"group {group_id} was already {state}; pick an active group")
    members = group_members(catalog, run_id, group_id)
    if len(members) < 2:
        raise UsageError(f"group {group_id} has {len(members)} item(s); nothing to split")
    from curator.embed import space_store

    found, X = space_store(catalog, space).lookup(members)
    if len(found) != len(members):
        members = found
    k = max(2, min(int(k), len(members)))
    if partition is not None:
        sub = np.array([partition.get(int(m), -1) for m in members], dtype=np.int64)
    else:
        sub = np.asarray(split_group(X, k, seed=seed), dtype=np.int64)
    parts = [int(p) for p in np.unique(sub)]
    centroids = np.stack([_unit(X[sub == p].mean(axis=0)) for p in parts])
    relabel = np.searchsorted(np.array(parts), sub)
    stats = group_statistics(X, relabel.astype(np.int32), centroids.astype(np.float32))
    topic = catalog.db.execute("SELECT topic FROM groups WHERE run_id = ? AND group_id = ?",
                               [run_id, group_id]).fetchone()[0]
    with catalog.write() as db:
        first = db.execute("SELECT MAX(group_id) + 1 FROM groups WHERE run_id = ?",
                           [run_id]).fetchone()[0]
        new_ids = [first + i for i in range(len(parts))]
        for i, gid in enumerate(new_ids):
            reps = [int(members[j]) for j in stats.representatives[i]]
            bounds = [int(members[j]) for j in stats.boundary[i]]
            db.execute(
                "INSERT INTO groups (run_id, group_id, space, size, cohesion, impurity, topic, "
                "representatives, boundary, state, parent, created_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                [run_id, gid, space, int(stats.size[i]), float(stats.cohesion[i]),
                 float(stats.impurity[i]), topic, json.dumps(reps), json.dumps(bounds),
                 group_id, utcnow()],
            )
        db.conn.executemany(
            "UPDATE assignments SET group_id = ? WHERE run_id = ? AND item_id = ?",
            [(new_ids[r], run_id, int(m)) for m, r in zip(members.tolist(), relabel.tolist())],
        )
        db.execute("UPDATE groups SET state = 'split' WHERE run_id = ? AND group_id = ?",
                   [run_id, group_id])
    return new_ids


def merge(catalog: Catalog, run_id: int, group_ids: Sequence[int]) -> int:
    """Join groups of one space into a new group of the same run; returns its id."""
    from indexing.cluster import group_statistics

    if len(set(group_ids)) < 2:
        raise UsageError("merge needs at least two different groups")
    spaces = set()
    for gid in group_ids:
        space, state = _check_group(catalog, run_id, gid)
        if state != "active":
            raise UsageError(f"group {gid} was already {state}; pick active groups")
        spaces.add(space)
    if len(spaces) > 1:
        raise UsageError("groups from different embedding spaces cannot be merged")
    space = spaces.pop()
    members = np.concatenate([group_members(catalog, run_id, g) for g in group_ids])
    from curator.embed import space_store

    found, X = space_store(catalog, space).lookup(np.sort(members))
    centroid = _unit(X.mean(axis=0))[None, :].astype(np.float32)
    stats = group_statistics(X, np.zeros(len(found), np.int32), centroid)
    marks = ",".join("?" * len(group_ids))
    with catalog.write() as db:
        new_id = db.execute("SELECT MAX(group_id) + 1 FROM groups WHERE run_id = ?",
                            [run_id]).fetchone()[0]
        topic = db.execute(f"SELECT topic FROM groups WHERE run_id = ? AND group_id IN ({marks}) "
                           "ORDER BY size DESC LIMIT 1", [run_id, *group_ids]).fetchone()[0]
        db.execute(
            "INSERT INTO groups (run_id, group_id, space, size, cohesion, impurity, topic, "
            "representatives, boundary, state, parent, created_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', NULL, ?)",
            [run_id, new_id, space, int(len(found)), float(stats.cohesion[0]),
             float(stats.impurity[0]), topic,
             json.dumps([int(found[j]) for j in stats.representatives[0]]),
             json.dumps([int(found[j]) for j in stats.boundary[0]]), utcnow()],
        )
        db.execute(f"UPDATE assignments SET group_id = ? WHERE run_id = ? AND group_id IN "
                   f"({marks})",
                   [new_id, run_id, *group_ids])
        db.execute(f"UPDATE groups SET state = 'merged', parent = ? WHERE run_id = ? AND "
                   f"group_id IN ({marks})", [new_id, run_id, *group_ids])
    return int(new_id)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def centroids_path(catalog: Catalog, run_id: int) -> Path:
    return catalog.root / CLUSTERS_DIR / f"run{run_id:06d}"


# --- the review queue -------------------------------------------------------------------------

ORDERS = {
    "impurity": "g.impurity DESC, g.size DESC",
    "size": "g.size DESC, g.group_id",
    "unlabeled": "(g.status = 'undecided') DESC, g.size DESC",
    "id": "g.group_id",
    "cohesion": "g.cohesion ASC",
}
"""Queue orders by name: the SQL that sorts groups that way."""


def list_groups(catalog: Catalog, run_id: int, order: str = "impurity",
                status: Optional[str] = None, label_id: Optional[int] = None,
                spaces: Optional[Sequence[str]] = None,
                include_inactive: bool = False,
                group_ids: Optional[Sequence[int]] = None) -> list[Group]:
    """The groups of a clustering run, ordered and filtered (the review queue's rows).

    Args:
        catalog: the project's catalog.
        run_id: the clustering run.
        order: a key of `ORDERS`.
        status: only groups with this decision status.
        label_id: only groups decided with this label.
        spaces: only groups of these embedding spaces.
        include_inactive: also groups that were split or merged away.
        group_ids: only these groups (gui: the app refreshes the one row a decision changed).

    Raises:
        UsageError: an unknown order.
    """
    if order not in ORDERS:
        raise UsageError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")
    sql = ("SELECT g.run_id, g.group_id, g.space, g.size, g.cohesion, g.impurity, g.topic, "
           "g.state, g.parent, g.status FROM groups g WHERE g.run_id = ?")
    args: list[Any] = [run_id]
    if not include_inactive:
        sql += " AND g.state = 'active'"
    if spaces is not None:
        sql += f" AND g.space IN ({','.join('?' * len(spaces)) or 'NULL'})"
        args.extend(spaces)
    wanted = None if group_ids is None else sorted({int(g) for g in group_ids})
    if wanted is not None:
        sql += f" AND g.group_id IN ({','.join('?' * len(wanted)) or 'NULL'})"
        args.extend(wanted)
    sql += " ORDER BY " + ORDERS[order]
    rows = catalog.db.execute(sql, args).fetchall()
    # triage: status, label and labelled count derive from the members' current labels; each
    # row becomes one Group, once (3,000 of them at a million items).
    from curator.decisions import GroupDecision, filter_groups, group_decisions

    explicit = {r[1] for r in rows if r[9] != "undecided"}  # decided as a whole on this run
    decisions = group_decisions(catalog, run_id, wanted, explicit=explicit)
    names = dict(catalog.db.execute("SELECT id, name FROM labels").fetchall())
    groups = []
    for r in rows:
        d = decisions.get(r[1]) or GroupDecision(r[1], r[3], explicit=r[1] in explicit)
        groups.append(Group(r[0], r[1], r[2], r[3], r[4] or 0.0, r[5] or 0.0, r[6] or 0, r[7],
                            r[8], d.status, names.get(d.label_id) if d.label_id else None,
                            d.decided, d))
    return filter_groups(groups, order, status, label_id)


@dataclass(frozen=True)
class Queue:
    """The review queue of a clustering run and how far the review has come."""

    run_id: int
    groups_total: int
    groups_decided: int
    items_total: int
    items_labelled: int
    groups: list[Group]  # the groups to review, in queue order

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "groups"},
                "groups": [g.to_json() for g in self.groups]}


def queue(catalog: Catalog, run_id: int, order: str = "impurity") -> Queue:
    """Undecided groups first in the given order (order "unlabeled": every group), with progress."""
    from curator.decisions import OPEN_STATUSES

    groups = list_groups(catalog, run_id, order=order)
    undecided = [g for g in groups if g.status in OPEN_STATUSES]
    items_total = catalog.db.execute(
        "SELECT COALESCE(SUM(n_items), 0) FROM clusterings WHERE run_id = ?",
        [run_id]).fetchone()[0]
    # Decided members of the run's groups, from the tallies the statuses came from: the same
    # items as `items_total`, and no scan of a million current labels.
    labelled = sum(g.labelled for g in groups)
    return Queue(run_id=run_id, groups_total=len(groups),
                 groups_decided=len(groups) - len(undecided), items_total=items_total,
                 items_labelled=labelled, groups=groups if order == "unlabeled" else undecided)


@dataclass(frozen=True)
class GroupDetail:
    """One group with its members: representatives first, boundary items marked."""

    run_id: int
    group_id: int
    space: str
    size: int
    cohesion: float
    impurity: float
    topic: Optional[int]
    state: str
    status: str
    label: Optional[str]
    parent: Optional[int]
    items: list[int]
    representatives: list[int]
    boundary: list[int]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def group_detail(catalog: Catalog, run_id: int, group_id: int) -> GroupDetail:
    """A group's statistics and its members, representatives first.

    Raises:
        UsageError: no such group in the run.
    """
    members = group_members(catalog, run_id, group_id)
    row = catalog.db.execute(
        "SELECT g.space, g.size, g.cohesion, g.impurity, g.topic, g.state, g.status, l.name, "
        "g.representatives, g.boundary, g.parent FROM groups g LEFT JOIN labels l "
        "ON l.id = g.label_id WHERE g.run_id = ? AND g.group_id = ?",
        [run_id, group_id]).fetchone()
    member_set = set(members.tolist())
    reps = [i for i in json.loads(row[8]) if i in member_set]
    boundary = [i for i in json.loads(row[9]) if i in member_set]
    rep_set = set(reps)
    rest = [i for i in members.tolist() if i not in rep_set]
    from curator.decisions import group_status  # triage: the members' decisions, any run

    status, label, _ = group_status(catalog, run_id, group_id, row[6])
    return GroupDetail(run_id=run_id, group_id=group_id, space=row[0], size=len(members),
                       cohesion=row[2], impurity=row[3], topic=row[4], state=row[5],
                       status=status, label=label, parent=row[10], items=reps + rest,
                       representatives=reps, boundary=boundary)


@dataclass(frozen=True)
class ItemFacets:
    """Per-item values aligned with the ids asked for (-1 where missing), for colouring a map.

    `state` is 0 none, 1 labelled, 2 noise, 3 mixed.
    """

    group: np.ndarray
    topic: np.ndarray
    label: np.ndarray
    state: np.ndarray


def item_facets(catalog: Catalog, item_ids: Any, run_id: Optional[int]) -> ItemFacets:
    """Group, topic, label id and label state of many items in a few queries.

    Args:
        catalog: the project's catalog.
        item_ids: the items, in any order.
        run_id: the clustering run whose groups to report, or None for no groups.
    """
    ids = np.asarray(item_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]

    def place(pairs: list[tuple]) -> np.ndarray:
        out = np.full(len(ids), -1, dtype=np.int64)
        if not pairs or not len(ids):
            return out
        arr = np.array(pairs, dtype=np.int64)
        pos = np.searchsorted(sorted_ids, arr[:, 0])
        ok = pos < len(sorted_ids)
        ok[ok] = sorted_ids[pos[ok]] == arr[ok, 0]
        out[order[pos[ok]]] = arr[ok, 1]
        return out

    db = catalog.db
    group = np.full(len(ids), -1, np.int64)
    topic = np.full(len(ids), -1, np.int64)
    if run_id is not None:
        group = place(db.execute("SELECT item_id, group_id FROM assignments WHERE run_id = ?",
                                 [run_id]).fetchall())
        topics = dict(db.execute("SELECT group_id, topic FROM groups WHERE run_id = ?",
                                 [run_id]).fetchall())
        if topics:
            lut = np.full(max(topics) + 2, -1, np.int64)
            for g, t in topics.items():
                lut[g] = -1 if t is None else t
            topic = np.where(group >= 0, lut[np.clip(group, 0, len(lut) - 1)], -1)
    rows = db.execute("SELECT item_id, COALESCE(label_id, -1), CASE state WHEN 'labelled' "
                      "THEN 1 WHEN 'noise' THEN 2 WHEN 'mixed' THEN 3 ELSE 4 END FROM item_labels"
                      ).fetchall()
    label = place([(r[0], r[1]) for r in rows])
    state = place([(r[0], r[2]) for r in rows])
    state[state < 0] = 0
    return ItemFacets(group=group, topic=topic, label=label, state=state.astype(np.int8))
