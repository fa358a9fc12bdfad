"""Train/val/test splits as data: one stored assignment per project, reused by every export.

A split assignment is computed once (ratios, seed, stratified by label, duplicate-aware) and stored
in the catalog (`split_assignments`, `item_splits`). Every export of every format reads the same
assignment, so an item sits in the same split in imagefolder, parquet and COCO. Items that get a
label later are added to it by `extend`, which fills each label's splits towards the ratios
without moving any item already assigned. Only `assign` (a re-split) or `clear` change assigned
items.

Items with a decision (labelled, noise, mixed) take part; unlabelled items have no split until
they are labelled. Exact and near copies (`curator.dedup.duplicate_groups`) are one unit: they
share a split, and duplicate groups are spread over the splits like any other unit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.errors import UsageError

# Stratum keys for items without a label; label ids are positive.
NOISE, MIXED, UNLABELLED = -1, -2, -3
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class SplitAssignment:
    """The project's current split assignment."""

    id: int
    fractions: dict[str, float]
    seed: int
    created_at: str
    annotator: str

    @property
    def names(self) -> list[str]:
        return list(self.fractions)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "fractions": self.fractions, "seed": self.seed,
                "created_at": self.created_at, "annotator": self.annotator}


@dataclass(frozen=True)
class SplitTable:
    """Counts of one assignment: split -> label path (or noise/mixed) -> items."""

    assignment: Optional[SplitAssignment]
    counts: dict[str, dict[str, int]]
    unassigned: int  # decided items without a split yet (assigned at the next export)

    def to_json(self) -> dict[str, Any]:
        return {"assignment": self.assignment.to_json() if self.assignment else None,
                "counts": self.counts, "unassigned": self.unassigned}


def parse_split(spec: Optional[str | dict[str, float]]) -> Optional[dict[str, float]]:
    """Parse `train=0.8,val=0.1,test=0.1` strictly.

    Returns:
        Split name -> fraction in the order given, or None when `spec` is empty.

    Raises:
        UsageError: a malformed part, an unsafe or repeated name, a fraction that is not a
            positive number, or fractions that do not sum to 1 (within 1e-6).
    """
    if spec is None or spec == "" or spec == {}:
        return None
    if isinstance(spec, dict):
        parts = [(str(k), v) for k, v in spec.items()]
    else:
        parts = []
        for part in str(spec).split(","):
            if part.count("=") != 1:
                raise UsageError(f"split part {part.strip()!r} must look like name=fraction "
                                 "(e.g. train=0.8,val=0.1,test=0.1)")
            name, value = part.split("=")
            parts.append((name.strip(), value.strip()))
    out: dict[str, float] = {}
    for name, value in parts:
        if not _SPLIT_NAME.match(name):
            raise UsageError(f"split name {name!r} must be letters, digits, - or _ "
                             "(at most 32, starting with a letter or digit)")
        if name.casefold() in {n.casefold() for n in out}:
            raise UsageError(f"split {name!r} is given twice")
        try:
            fraction = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"split {name!r} has fraction {value!r}; give a number such as "
                             "0.8") from None
        if not math.isfinite(fraction) or fraction <= 0:
            raise UsageError(f"split {name!r} needs a positive fraction, not {value!r}")
        out[name] = fraction
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"split fractions sum to {total:g}, not 1 "
                         f"({', '.join(f'{k}={v:g}' for k, v in out.items())})")
    return out


# --- the allocation (pure) --------------------------------------------------------------------


def _units(item_ids: np.ndarray, duplicate_groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Per item, the position of its unit's representative (union-find over duplicate groups)."""
    n = len(item_ids)
    parent = np.arange(n, dtype=np.int64)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for group in duplicate_groups:
        ids = np.asarray(group, dtype=np.int64)
        pos = np.searchsorted(item_ids, ids)
        inside = pos < n
        pos, ids = pos[inside], ids[inside]
        pos = pos[item_ids[pos] == ids]
        if len(pos) < 2:
            continue
        root = find(int(pos[0]))
        for p in pos[1:]:
            other = find(int(p))
            if other != root:
                parent[other] = root
    return np.array([find(i) for i in range(n)], dtype=np.int64) if n else parent


def allocate(
    item_ids: np.ndarray,
    strata: np.ndarray,
    duplicate_groups: Sequence[Sequence[int]],
    fractions: dict[str, float],
    seed: int | Sequence[int] = 0,
    fixed: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Give each item a split, stratified by label, keeping duplicate groups together.

    Args:
        item_ids: sorted unique item ids.
        strata: one stratum key per item (its label id; NOISE, MIXED apart).
        duplicate_groups: item ids that must share a split (overlapping groups are joined).
        fractions: split name -> target fraction, summing to 1.
        seed: the same seed gives the same assignment.
        fixed: a split index per item already assigned (-1 for none); those never move, count
            towards their stratum's targets, and pull unassigned copies of theirs along.

    Returns:
        int8 index into `list(fractions)` per item.
    """
    n = len(item_ids)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    strata = np.asarray(strata, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int8) if fixed is None else np.asarray(fixed, np.int8).copy()
    if n == 0:
        return out
    targets = np.array(list(fractions.values()), dtype=np.float64)
    unit = _units(item_ids, duplicate_groups)
    rng = np.random.default_rng(seed)
    keys, stratum = np.unique(strata, return_inverse=True)
    goal = np.bincount(stratum, minlength=len(keys))[:, None] * targets[None, :]
    have = np.zeros_like(goal)
    done = out >= 0
    np.add.at(have, (stratum[done], out[done].astype(np.int64)), 1)
    members: dict[int, list[int]] = {}
    for p in range(n):
        members.setdefault(int(unit[p]), []).append(p)
    groups = [rows for _, rows in sorted(members.items()) if len(rows) > 1]
    # Duplicate groups first, as whole units, largest first (the seed orders equal sizes); a
    # group with an assigned member follows it, any other goes to the split furthest below
    # target in the stratum most of its members are in.
    order = sorted(rng.permutation(len(groups)).tolist(), key=lambda i: -len(groups[i]))
    single = ~done
    for i in order:
        rows = np.asarray(groups[i], dtype=np.int64)
        open_rows = rows[~done[rows]]
        single[rows] = False
        if not len(open_rows):
            continue
        if done[rows].any():
            pick = int(np.bincount(out[rows[done[rows]]].astype(np.int64)).argmax())
        else:
            where, counts = np.unique(stratum[rows], return_counts=True)
            home = int(where[np.argmax(counts)])
            pick = int(np.argmax(goal[home] - have[home]))
        out[open_rows] = pick
        np.add.at(have, (stratum[open_rows], pick), 1)
    # Then the single items of each stratum fill what is left of each split's target.
    lone = np.flatnonzero(single)
    lone = lone[np.argsort(stratum[lone], kind="stable")]
    bounds = np.searchsorted(stratum[lone], np.arange(len(keys) + 1))
    for s in range(len(keys)):
        rows = lone[bounds[s]:bounds[s + 1]]
        if len(rows):
            alloc = _allocate(np.maximum(goal[s] - have[s], 0.0), len(rows), targets)
            shuffled = rows[rng.permutation(len(rows))]
            out[shuffled] = np.repeat(np.arange(len(targets), dtype=np.int8), alloc)
    return out


def assign_splits(item_ids: np.ndarray, strata: np.ndarray,
                  duplicate_groups: Sequence[Sequence[int]], fractions: dict[str, float],
                  seed: int = 0) -> np.ndarray:
    """A fresh allocation of every item (see `allocate`)."""
    return allocate(item_ids, strata, duplicate_groups, fractions, seed)


def _allocate(deficit: np.ndarray, n: int, fallback: np.ndarray) -> np.ndarray:
    """Split n items over bins in proportion to their deficits (largest remainders)."""
    weights = deficit if deficit.sum() > 0 else fallback
    exact = weights / weights.sum() * n
    alloc = np.floor(exact).astype(np.int64)
    rest = n - int(alloc.sum())
    if rest:
        # Largest remainder first; equal remainders go to the bin named first.
        order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - alloc[i]), i))
        for i in order[:rest]:
            alloc[i] += 1
    return alloc


# --- the stored assignment --------------------------------------------------------------------


def current(db: Any) -> Optional[SplitAssignment]:
    """The assignment in force, or None."""
    row = db.execute("SELECT id, fractions, seed, created_at, annotator FROM split_assignments "
                     "WHERE cleared_at IS NULL ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return SplitAssignment(int(row[0]), json.loads(row[1]), int(row[2]), row[3], row[4])


def _decided(db: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ok items with a decision, sorted by id, and each one's stratum."""
    rows = db.execute(
        "SELECT il.item_id, CASE il.state WHEN 'labelled' THEN il.label_id WHEN 'noise' THEN "
        f"{NOISE} ELSE {MIXED} END FROM item_labels il JOIN items ON items.id = il.item_id "
        "WHERE items.status = 'ok' ORDER BY il.item_id").fetchall()
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def stored(db: Any) -> tuple[np.ndarray, np.ndarray]:
    """(item ids sorted, split index) of the current assignment."""
    pairs = np.array(db.execute("SELECT item_id, split FROM item_splits ORDER BY item_id")
                     .fetchall(), dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].astype(np.int8)


def _duplicates(catalog: Catalog) -> list[list[int]]:
    from curator.dedup import duplicate_groups

    # dedup reads the project folder's stored result through `.root` and `.catalog`.
    return duplicate_groups(catalog, db=catalog.db)


def assign(catalog: Catalog, fractions: dict[str, float] | str, seed: int = 0,
           annotator: str = "", duplicate_groups: Optional[Sequence[Sequence[int]]] = None
           ) -> SplitAssignment:
    """Re-split: a new assignment over every decided item, replacing the current one."""
    parsed = parse_split(fractions) if isinstance(fractions, str) else dict(fractions)
    if not parsed:
        raise UsageError("give split fractions such as train=0.8,val=0.1,test=0.1")
    groups = _duplicates(catalog) if duplicate_groups is None else duplicate_groups
    now = utcnow()
    with catalog.write() as db:
        ids, strata = _decided(db)
        index = allocate(ids, strata, groups, parsed, seed)
        db.execute("UPDATE split_assignments SET cleared_at = ? WHERE cleared_at IS NULL", [now])
        db.execute("DELETE FROM item_splits")
        cur = db.execute("INSERT INTO split_assignments (created_at, annotator, fractions, seed) "
                         "VALUES (?, ?, ?, ?)", [now, annotator, json.dumps(parsed), seed])
        assignment_id = int(cur.lastrowid)
        db.conn.executemany(
            "INSERT INTO item_splits (item_id, assignment_id, split, assigned_at) "
            "VALUES (?, ?, ?, ?)",
            zip(ids.tolist(), [assignment_id] * len(ids), index.tolist(), [now] * len(ids)))
    found = current(catalog.db)
    assert found is not None
    return found


def extend(catalog: Catalog, duplicate_groups: Optional[Sequence[Sequence[int]]] = None) -> int:
    """Give decided items without a split one, keeping the ratios; assigned items never move.

    Returns:
        How many items were added to the assignment (0 without an assignment).
    """
    if current(catalog.db) is None:
        return 0
    groups: Optional[Sequence[Sequence[int]]] = None
    with catalog.write() as db:
        assignment = current(db)
        if assignment is None:
            return 0
        ids, strata = _decided(db)
        have_ids, have_split = stored(db)
        pos = np.minimum(np.searchsorted(have_ids, ids), max(len(have_ids) - 1, 0))
        hit = (have_ids[pos] == ids) if len(have_ids) else np.zeros(len(ids), bool)
        if hit.all():
            return 0
        fixed = np.full(len(ids), -1, dtype=np.int8)
        fixed[hit] = have_split[pos[hit]]
        if groups is None:
            groups = _duplicates(catalog) if duplicate_groups is None else duplicate_groups
        # A seed per extension: the same catalog state extends the same way.
        seed = [assignment.seed, int(hit.sum()), len(ids)]
        index = allocate(ids, strata, groups, assignment.fractions, seed=seed, fixed=fixed)
        new = ~hit
        now = utcnow()
        db.conn.executemany(
            "INSERT INTO item_splits (item_id, assignment_id, split, assigned_at) "
            "VALUES (?, ?, ?, ?)",
            zip(ids[new].tolist(), [assignment.id] * int(new.sum()), index[new].tolist(),
                [now] * int(new.sum())))
    return int(new.sum())


def clear(catalog: Catalog) -> Optional[int]:
    """Drop the current assignment (kept in history); returns its id, or None without one."""
    with catalog.write() as db:
        assignment = current(db)
        if assignment is None:
            return None
        db.execute("UPDATE split_assignments SET cleared_at = ? WHERE id = ?",
                   [utcnow(), assignment.id])
        db.execute("DELETE FROM item_splits")
    return assignment.id


def prepare(catalog: Catalog, fractions: Optional[dict[str, float]], seed: int,
            resplit: bool = False, annotator: str = "") -> Optional[SplitAssignment]:
    """The assignment an export uses: the stored one (extended), or a new one when asked.

    Raises:
        SplitMismatch: fractions or seed differ from the stored assignment and `resplit` is off.
    """
    found = current(catalog.db)
    if fractions is None:
        if found is not None and not resplit:
            extend(catalog)
        return found
    if found is None or resplit:
        return assign(catalog, fractions, seed, annotator)
    if found.fractions != fractions or found.seed != seed:
        raise SplitMismatch(found, fractions, seed)
    extend(catalog)
    return found


class SplitMismatch(UsageError):
    """An export asked for other splits than the stored assignment."""

    def __init__(self, found: SplitAssignment, fractions: dict[str, float], seed: int) -> None:
        have = ",".join(f"{k}={v:g}" for k, v in found.fractions.items())
        want = ",".join(f"{k}={v:g}" for k, v in fractions.items())
        super().__init__(f"the project already holds split assignment #{found.id} ({have}, "
                         f"seed {found.seed}); this export asked for {want}, seed {seed}. "
                         "Every export uses the stored splits until you re-split")
        self.assignment = found


def table(catalog: Catalog) -> SplitTable:
    """Counts per split x label of the current assignment."""
    db = catalog.db
    found = current(db)
    counts: dict[str, dict[str, int]] = {}
    unassigned = 0
    if found is not None:
        from curator.labels import labels as live_labels

        paths = {lab.id: lab.path for lab in live_labels(catalog, with_counts=False)}
        names = found.names
        counts = {name: {} for name in names}
        for split, state, label_id, n in db.execute(
                "SELECT s.split, il.state, il.label_id, COUNT(*) FROM item_splits s "
                "JOIN item_labels il ON il.item_id = s.item_id GROUP BY 1, 2, 3"):
            key = paths.get(label_id, f"#{label_id}") if state == "labelled" else state
            counts[names[split]][key] = counts[names[split]].get(key, 0) + n
        counts = {s: dict(sorted(c.items())) for s, c in counts.items()}
        unassigned = db.execute(
            "SELECT COUNT(*) FROM item_labels il JOIN items ON items.id = il.item_id "
            "LEFT JOIN item_splits s ON s.item_id = il.item_id "
            "WHERE items.status = 'ok' AND s.item_id IS NULL").fetchone()[0]
    return SplitTable(found, counts, unassigned)


def set_split(catalog: Catalog, item_ids: Sequence[int], split: str) -> int:
    """Move items to a split by hand (they stay there until a re-split)."""
    with catalog.write() as db:
        found = current(db)
        if found is None:
            raise UsageError("the project has no split assignment yet")
        if split not in found.fractions:
            raise UsageError(f"no split {split!r} in assignment #{found.id} "
                             f"({', '.join(found.names)})")
        index = found.names.index(split)
        now = utcnow()
        db.conn.executemany(
            "INSERT INTO item_splits (item_id, assignment_id, split, assigned_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET split = excluded.split, "
            "assigned_at = excluded.assigned_at",
            [(int(i), found.id, index, now) for i in item_ids])
    return len(item_ids)
