"""Derived group status: what the members of a group already carry, in any clustering run.

Decisions belong to items (`item_labels`); a group of any run, old or new, shows the decisions
of its members: the share that carries one, the dominant label and the noise, mixed and
duplicate shares. A new clustering of a labelled project therefore opens with every decision
where it was left, and `cluster --undecided` can group only the items nobody decided yet.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog

log = logging.getLogger(__name__)

# A group counts as decided when this share of its members carries a decision, or when it was
# decided as a whole on its own run (the items excluded then stay undecided); otherwise, with
# some decided members, it is `partial`: a lasso's worth of labelled items does not decide it.
DECIDED_SHARE = 0.8
# The dominant decision names the group when it covers this share of the decided members;
# otherwise the group is `mixed` (its members carry several labels).
DOMINANT_SHARE = 0.8
STATUSES = ("undecided", "partial", "labelled", "noise", "mixed", "duplicate")
OPEN_STATUSES = ("undecided", "partial")


@dataclass(frozen=True)
class GroupDecision:
    """What the members of one group carry now."""

    group_id: int
    size: int
    decided: int = 0
    labelled: int = 0
    noise: int = 0
    mixed: int = 0
    duplicate: int = 0
    label_id: Optional[int] = None  # the most common label among the labelled members
    label_count: int = 0
    labels: int = 0  # how many different labels the members carry
    explicit: bool = False  # decided as a whole on this run (its exclusions stay undecided)

    @property
    def share(self) -> float:
        """Share of the members that carry any decision."""
        return self.decided / self.size if self.size else 0.0

    @property
    def status(self) -> str:
        """undecided, partial, labelled, noise, mixed or duplicate."""
        if self.decided == 0:
            return "undecided"
        if self.share < DECIDED_SHARE and not self.explicit:
            return "partial"
        kinds = {"labelled": self.label_count, "noise": self.noise, "duplicate": self.duplicate}
        kind, count = max(kinds.items(), key=lambda kv: kv[1])
        if count >= DOMINANT_SHARE * self.decided:
            return kind
        return "mixed"

    def summary(self, names: Optional[dict[int, str]] = None) -> str:
        """A short human line: "labelled 'cat' (48 of 50)", "partial: 12 of 50 decided"."""
        status = self.status
        label = (names or {}).get(self.label_id, str(self.label_id)) if self.label_id else None
        if status == "undecided":
            return f"undecided ({self.size} items)"
        if status == "partial":
            extra = f", mostly '{label}'" if label else ""
            return f"partial: {self.decided} of {self.size} decided{extra}"
        if status == "labelled":
            return f"labelled '{label}' ({self.label_count} of {self.size})"
        if status == "mixed":
            return (f"mixed: {self.labels} labels, {self.noise} noise, {self.mixed} mixed "
                    f"({self.decided} of {self.size} decided)")
        return f"{status} ({getattr(self, status)} of {self.size})"

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "share": round(self.share, 4), "status": self.status}


def group_decisions(catalog: Catalog, run_id: int, group_ids: Optional[Iterable[int]] = None,
                    explicit: Collection[int] = ()) -> dict[int, GroupDecision]:
    """The derived decision of every group of a run (or of the given groups).

    Read from the run's per-group summaries (`curator.tallies`), caught up with the events
    since: one row per group reaches Python, whatever the number of labels.

    Args:
        explicit: groups decided as a whole on this run (their stored status is not undecided).
    """
    from curator.tallies import group_summaries

    db = catalog.db
    wanted = None if group_ids is None else sorted({int(g) for g in group_ids})
    if wanted is None:
        sizes = db.execute("SELECT group_id, size FROM groups WHERE run_id = ?",
                           [run_id]).fetchall()
    else:
        sizes = db.execute(f"SELECT group_id, size FROM groups WHERE run_id = ? AND group_id IN "
                           f"({','.join('?' * len(wanted)) or 'NULL'})",
                           [run_id, *wanted]).fetchall()
    summaries = group_summaries(catalog, run_id, wanted)
    out = {}
    for group_id, size in sizes:
        row = summaries.get(group_id)
        if row is None:
            out[group_id] = GroupDecision(group_id, int(size), explicit=group_id in explicit)
            continue
        _, labelled, noise, mixed, duplicate, top, top_n, n_labels = row
        decided = labelled + noise + mixed + duplicate
        out[group_id] = GroupDecision(group_id, max(int(size), decided), decided, labelled,
                                      noise, mixed, duplicate, top, top_n, n_labels,
                                      group_id in explicit)
    return out


def group_status(catalog: Catalog, run_id: int, group_id: int,
                 stored_status: str = "undecided") -> tuple[str, Optional[str], GroupDecision]:
    """(derived status, dominant label name, decision) of one group."""
    d = group_decisions(catalog, run_id, [group_id]).get(group_id)
    if d is None:
        d = GroupDecision(group_id, 0)
    if stored_status != "undecided":
        d = dataclasses.replace(d, explicit=True)
    name = None
    if d.label_id is not None:
        row = catalog.db.execute("SELECT name FROM labels WHERE id = ?", [d.label_id]).fetchone()
        name = row[0] if row else None
    return d.status, name, d


def undecided_mask(catalog: Catalog, item_ids: np.ndarray) -> np.ndarray:
    """True for the items of `item_ids` that carry no decision (for `cluster --undecided`)."""
    ids = np.asarray(item_ids, dtype=np.int64)
    decided = np.fromiter((r[0] for r in catalog.db.execute(
        "SELECT item_id FROM item_labels ORDER BY item_id")), dtype=np.int64)
    return ~np.isin(ids, decided, assume_unique=False)


def queue_progress(groups: Sequence[Any]) -> tuple[int, int]:
    """(groups decided, groups total) of a listing with derived statuses."""
    return sum(1 for g in groups if g.status not in OPEN_STATUSES), len(groups)


def newer_run(catalog: Catalog, run_id: int) -> Optional[int]:
    """The newest finished clustering run when `run_id` is an older one, else None."""
    row = catalog.db.execute(
        "SELECT MAX(c.run_id) FROM clusterings c JOIN runs r ON r.id = c.run_id "
        "WHERE r.status = 'ok'").fetchone()
    newest = row[0] if row else None
    return int(newest) if newest is not None and int(newest) != int(run_id) else None


def filter_groups(groups: list[Any], order: str, status: Optional[str],
                  label_id: Optional[int]) -> list[Any]:
    """Filter a listing by derived status or dominant label; `unlabeled` puts open groups first."""
    from curator.errors import UsageError

    if status is not None:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        groups = [g for g in groups if g.status == status]
    if label_id is not None:
        groups = [g for g in groups if g.decision is not None
                  and g.decision.label_id == label_id and g.status == "labelled"]
    if order == "unlabeled":
        groups = sorted(groups, key=lambda g: (g.status not in OPEN_STATUSES, -g.size))
    return groups


def undecided_count(catalog: Catalog) -> int:
    """Ok items that carry no decision."""
    return int(catalog.db.execute(
        "SELECT COUNT(*) FROM items i WHERE i.status = 'ok' AND NOT EXISTS "
        "(SELECT 1 FROM item_labels l WHERE l.item_id = i.id)").fetchone()[0])
