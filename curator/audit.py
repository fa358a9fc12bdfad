"""Spot-check audits: a stratified random sample of labelled items, verdicts, estimated accuracy.

An audit draws labelled items stratified by (label, source of the event that set it), records a
reviewer's verdict on each, and estimates accuracy per label, per source and overall with 95%
Wilson intervals. A correction is a manual label event (`labels.apply_event`), undoable.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.errors import UsageError
from curator.items import abs_paths
from curator.labels import apply_event, find_label, label_paths

log = logging.getLogger(__name__)

VERDICTS = ("correct", "wrong", "unsure")
Z95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""


def allocate(sizes: dict[Any, int], n: int) -> dict[Any, int]:
    """Sample sizes per stratum: proportional to size, at least min(2, size) each.

    Proportional shares n * N_h / N are rounded down and the seats left over go to the largest
    remainders (ties: larger stratum, then key order), so they add up to n; then every stratum is
    raised to min(2, N_h), which may take the total above n. With n >= N every item is drawn.

    Args:
        sizes: stratum key -> population size (keys must sort).
        n: wanted sample size.

    Returns:
        stratum key -> sample size (never above the stratum's size).
    """
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    quota = {h: n * size / total for h, size in sizes.items()}
    alloc = {h: math.floor(q) for h, q in quota.items()}
    left = n - sum(alloc.values())
    order = sorted(sizes, key=lambda h: (-(quota[h] - alloc[h]), -sizes[h], h))
    for h in order[:left]:
        alloc[h] += 1
    return {h: min(sizes[h], max(alloc[h], min(2, sizes[h]))) for h in sizes}


def _current_sources(catalog: Catalog) -> dict[int, tuple[int, str]]:
    """Item id -> (label id, source) of every ok labelled item.

    The source is that of the event that put the current value there. An undo restores the
    value an older event had set, so for an item whose current event is an undo the source is
    that older event's (followed through chains of undos).
    """
    db = catalog.db
    rows = db.execute(
        "SELECT il.item_id, il.label_id, e.action, e.source, e.target FROM item_labels il "
        "JOIN events e ON e.id = il.event_id JOIN items i ON i.id = il.item_id "
        "WHERE il.state = 'labelled' AND i.status = 'ok'").fetchall()
    out: dict[int, tuple[int, str]] = {}
    pending: dict[int, tuple[int, int]] = {}  # item -> (label id, undone target event)
    for item, label_id, action, source, target in rows:
        if action == "undo" and target is not None:
            pending[item] = (label_id, target)
        out[item] = (label_id, source)
    for _ in range(50):  # undo chains are short; this bounds a corrupt cycle
        if not pending:
            break
        next_pending: dict[int, tuple[int, int]] = {}
        by_target: dict[int, list[int]] = defaultdict(list)
        for item, (_, target) in pending.items():
            by_target[target].append(item)
        for target, items in by_target.items():
            before = dict(db.execute(
                "SELECT item_id, before_event FROM event_items WHERE event_id = ?",
                [target]).fetchall())
            for item in items:
                origin = before.get(item)
                if origin is None:
                    continue
                ev = db.execute("SELECT action, source, target FROM events WHERE id = ?",
                                [origin]).fetchone()
                if ev is None:
                    continue
                out[item] = (out[item][0], ev[1])
                if ev[0] == "undo" and ev[2] is not None:
                    next_pending[item] = (out[item][0], ev[2])
        pending = next_pending
    return out


def _stratum(label_id: int, source: str) -> str:
    return f"{label_id}|{source}"


def start_audit(catalog: Catalog, n: int = 100, seed: int = 0, annotator: str = "") -> int:
    """Draw a random spot-check sample of labelled items, stratified by label and label source.

    Strata are (current label, source of the event that set it: group, manual, propagated or
    imported); sample sizes come from `allocate`. Within a stratum items are drawn uniformly
    without replacement; the review order is shuffled across strata so that a partly reviewed
    audit still covers them all. The same labels and seed give the same sample.

    Args:
        catalog: the project's catalog.
        n: wanted sample size (small strata may take it slightly above n, see `allocate`).
        seed: random seed.
        annotator: who started the audit.

    Returns:
        The audit id.

    Raises:
        UsageError: n < 1, or no labelled items to audit.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"the audit sample size must be at least 1, not {n!r}")
    population = _current_sources(catalog)
    if not population:
        raise UsageError("no labelled items to audit yet", hint="label some with `curator label`")
    members: dict[str, list[int]] = defaultdict(list)
    for item, (label_id, source) in sorted(population.items()):
        members[_stratum(label_id, source)].append(item)
    sizes = {h: len(v) for h, v in members.items()}
    alloc = allocate(sizes, int(n))
    rng = np.random.default_rng(seed)
    drawn: list[tuple[int, str, int]] = []
    for h in sorted(members):
        pool = np.array(members[h], dtype=np.int64)
        label_id = int(h.split("|", 1)[0])
        for item in np.sort(rng.choice(pool, size=alloc[h], replace=False)):
            drawn.append((int(item), h, label_id))
    order = [drawn[i][0] for i in rng.permutation(len(drawn))]
    names = label_paths(catalog)
    strata = {h: {"label_id": int(h.split("|", 1)[0]), "label": names.get(int(h.split("|")[0])),
                  "source": h.split("|", 1)[1], "population": sizes[h], "sample": alloc[h]}
              for h in sorted(members)}
    params = {"n": int(n), "population": len(population), "strata": strata, "order": order}
    with catalog.write() as db:
        cur = db.execute("INSERT INTO audits (created_at, annotator, seed, params) "
                         "VALUES (?, ?, ?, ?)",
                         [utcnow(), annotator or "unknown", int(seed), json.dumps(params)])
        audit_id = int(cur.lastrowid)
        db.conn.executemany(
            "INSERT INTO audit_items (audit_id, item_id, stratum, label_id) VALUES (?, ?, ?, ?)",
            [(audit_id, item, h, label_id) for item, h, label_id in drawn])
    log.info("audit %d: %d items from %d strata", audit_id, len(drawn), len(strata))
    return audit_id


def _audit_params(catalog: Catalog, audit_id: int) -> dict[str, Any]:
    row = catalog.db.execute("SELECT params FROM audits WHERE id = ?",
                                     [audit_id]).fetchone()
    if row is None:
        raise UsageError(f"no audit {audit_id} in {catalog.root}",
                         hint=f"start one with `curator audit {catalog.root}`",
                         option="audit_sample")
    return json.loads(row[0] or "{}")


@dataclass(frozen=True)
class AuditItem:
    """One sampled item of an audit, with its verdict once reviewed."""

    audit_id: int
    item_id: int
    path: str
    label: str  # the label under review (the item's label when it was sampled)
    source: str
    verdict: Optional[str]
    corrected_label: Optional[str]
    reviewed_at: Optional[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def audit_items(catalog: Catalog, audit_id: int, *, unreviewed: bool = False,
                limit: Optional[int] = None) -> list[AuditItem]:
    """The items of an audit in review order (all, or the unreviewed ones)."""
    params = _audit_params(catalog, audit_id)
    names = label_paths(catalog)
    rows = {r[0]: r for r in catalog.db.execute(
        "SELECT item_id, stratum, label_id, verdict, corrected_label, reviewed_at FROM audit_items"
        " WHERE audit_id = ?", [audit_id])}
    order = [i for i in params.get("order", []) if i in rows]
    order += sorted(set(rows) - set(order))
    if unreviewed:
        order = [i for i in order if rows[i][3] is None]
    if limit is not None:
        order = order[:limit]
    paths = abs_paths(catalog, order)
    return [AuditItem(audit_id, i, paths.get(i, ""), names.get(rows[i][2], "?"),
                      rows[i][1].split("|", 1)[1], rows[i][3],
                      names.get(rows[i][4]) if rows[i][4] is not None else None, rows[i][5])
            for i in order]


def next_unreviewed(catalog: Catalog, audit_id: int, limit: int = 10) -> list[AuditItem]:
    """The next items of an audit to review, in its shuffled review order.

    Args:
        catalog: the project's catalog.
        audit_id: the audit.
        limit: at most this many.

    Returns:
        Up to `limit` unreviewed items; empty when the audit is done.
    """
    return audit_items(catalog, audit_id, unreviewed=True, limit=limit)


@dataclass(frozen=True)
class Verdict:
    """A recorded verdict; `event` is the relabelling event of a correction, else None."""

    audit_id: int
    item_id: int
    verdict: str
    corrected_label: Optional[str]
    event: Optional[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def record_verdict(catalog: Catalog, audit_id: int, item_id: int, verdict: str,
                   corrected_label: Optional[str] = None, annotator: str = "") -> Verdict:
    """Record a reviewer's verdict on one audited item (a later verdict replaces an earlier one).

    A "wrong" verdict with a corrected label also applies that label to the item, as a manual
    event noted "audit A" (undoable like any other), in the same transaction as the verdict.

    Args:
        catalog: the project's catalog.
        audit_id: the audit.
        item_id: an item of its sample.
        verdict: correct, wrong or unsure.
        corrected_label: with "wrong": the right label (name or path).
        annotator: who gave the verdict (the correction's event is theirs).

    Returns:
        The verdict, with the correction's event id when one was applied.

    Raises:
        UsageError: unknown audit, an item not in its sample, a bad verdict, a correction
            without a "wrong" verdict, or an unknown label.
    """
    _audit_params(catalog, audit_id)
    if verdict not in VERDICTS:
        raise UsageError(f"unknown verdict {verdict!r}; one of {', '.join(VERDICTS)}")
    if corrected_label is not None and verdict != "wrong":
        raise UsageError("a corrected label goes with the verdict 'wrong'")
    row = catalog.db.execute("SELECT 1 FROM audit_items WHERE audit_id = ? AND item_id = ?",
                                     [audit_id, item_id]).fetchone()
    if row is None:
        raise UsageError(f"item {item_id} is not in the sample of audit {audit_id}",
                         hint=f"see audit {audit_id}'s sample with `curator audit {catalog.root}`",
                         option="audit_id")
    label_id = None
    event = None
    if corrected_label is not None:
        label_id = find_label(catalog, corrected_label).id
    with catalog.write() as db:
        if label_id is not None:
            # Joins this transaction: the verdict and the relabel land together or not at all.
            event = apply_event(catalog, "assign", [item_id], label_id=label_id,
                                source="manual", annotator=annotator, note=f"audit {audit_id}")
        db.execute("UPDATE audit_items SET verdict = ?, corrected_label = ?, reviewed_at = ? "
                   "WHERE audit_id = ? AND item_id = ?",
                   [verdict, label_id, utcnow(), audit_id, item_id])
    return Verdict(audit_id, item_id, verdict, corrected_label, event)


def wilson_interval(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion p observed on n trials (n may be fractional).

    Returns:
        (low, high) within [0, 1]; (0, 1) when n is 0.
    """
    if n <= 0:
        return (0.0, 1.0)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _estimate(strata: list[dict[str, Any]]) -> dict[str, Any]:
    """Stratified accuracy over some strata (see `audit_report`)."""
    judged = [s for s in strata if s["correct"] + s["wrong"] > 0]
    population = sum(s["population"] for s in strata)
    covered = sum(s["population"] for s in judged)
    out: dict[str, Any] = {
        "population": population, "sampled": sum(s["sampled"] for s in strata),
        "reviewed": sum(s["reviewed"] for s in strata),
        "correct": sum(s["correct"] for s in strata), "wrong": sum(s["wrong"] for s in strata),
        "unsure": sum(s["unsure"] for s in strata),
        "accuracy": None, "low": None, "high": None, "effective_n": 0.0,
        "coverage": covered / population if population else 0.0,
    }
    if not judged or covered == 0:
        return out
    p = 0.0
    inv_neff = 0.0
    for s in judged:
        w = s["population"] / covered
        m = s["correct"] + s["wrong"]
        p += w * s["correct"] / m
        inv_neff += w * w / m
    n_eff = 1.0 / inv_neff
    low, high = wilson_interval(p, n_eff)
    out.update(accuracy=p, low=low, high=high, effective_n=n_eff)
    return out


@dataclass(frozen=True)
class AuditReport:
    """Estimated accuracy from an audit's verdicts (see `audit_report` for the method).

    Each estimate (`overall` and the values of `labels` and `sources`) is a dict: population,
    sampled, reviewed, correct, wrong, unsure, accuracy, low, high (None before any verdict),
    effective_n and coverage.
    """

    audit_id: int
    created_at: str
    annotator: str
    seed: int
    population: Optional[int]
    sampled: int
    reviewed: int
    remaining: int
    overall: dict[str, Any]
    labels: dict[str, dict[str, Any]]
    sources: dict[str, dict[str, Any]]
    strata: list[dict[str, Any]]
    method: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def audit_report(catalog: Catalog, audit_id: int) -> AuditReport:
    """Estimated label accuracy from an audit's verdicts, per label, per source and overall.

    Estimate: within each stratum h (label x source) the accuracy is p_h = correct / (correct +
    wrong); "unsure" verdicts are left out. A group of strata (a label, a source, everything) is
    estimated as sum_h W_h p_h with W_h = N_h / sum N_h, N_h the stratum's population when the
    audit was drawn, over the strata that have at least one verdict (`coverage` says which share
    of the population that is). Stratified sampling over- or under-samples strata, so plain
    sample proportions would be biased; the weights undo that.

    Interval: the 95% Wilson score interval at the estimate with the Kish effective sample size
    n_eff = 1 / sum_h (W_h^2 / n_h), n_h the verdicts in stratum h; for a single stratum this is
    the ordinary Wilson interval on its counts. No finite-population correction is applied, so
    the interval is conservative for strata sampled in full.

    Args:
        catalog: the project's catalog.
        audit_id: the audit.

    Returns:
        The report: overall, per label path, per source and per stratum.
    """
    params = _audit_params(catalog, audit_id)
    head = catalog.db.execute("SELECT created_at, annotator, seed FROM audits WHERE id = ?",
                                      [audit_id]).fetchone()
    names = label_paths(catalog)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for stratum, verdict, n in catalog.db.execute(
            "SELECT stratum, COALESCE(verdict, ''), COUNT(*) FROM audit_items WHERE audit_id = ? "
            "GROUP BY 1, 2", [audit_id]):
        counts[stratum][verdict] += n
    strata = []
    for h, info in sorted(params.get("strata", {}).items()):
        c = counts.get(h, {})
        reviewed = c.get("correct", 0) + c.get("wrong", 0) + c.get("unsure", 0)
        strata.append({
            "stratum": h, "label": names.get(info["label_id"], info.get("label") or "?"),
            "source": info["source"], "population": info["population"],
            "sampled": reviewed + c.get("", 0), "reviewed": reviewed,
            "correct": c.get("correct", 0), "wrong": c.get("wrong", 0),
            "unsure": c.get("unsure", 0)})
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in strata:
        by_label[s["label"]].append(s)
        by_source[s["source"]].append(s)
    sampled = sum(s["sampled"] for s in strata)
    reviewed = sum(s["reviewed"] for s in strata)
    return AuditReport(
        audit_id=audit_id, created_at=head[0], annotator=head[1], seed=head[2],
        population=params.get("population"), sampled=sampled, reviewed=reviewed,
        remaining=sampled - reviewed,
        overall=_estimate(strata),
        labels={name: _estimate(group) for name, group in sorted(by_label.items())},
        sources={name: _estimate(group) for name, group in sorted(by_source.items())},
        strata=strata,
        method="stratified by label x source, weighted by population; 95% Wilson interval "
               "with Kish effective n; unsure verdicts excluded",
    )
