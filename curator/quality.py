"""Label quality from neighbours: suspect labels, and label propagation to unlabelled items.

Both read vectors per embedding space (`embed.vectors`) and the current labels; every label
propagation changes goes through `labels.apply_event`, so it is one event in the history and
undoable. Spot-check audits live in `curator.audit`.

Neighbour votes are weighted by cosine similarity (negative similarities count as 0). Only items
whose status is `ok` take part, as queries and as neighbours. An item that lives in several spaces
is judged in each; the strongest finding (highest suspect score, most confident proposal) wins.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog
from curator.embed import spaces as space_rows
from curator.embed import vectors
from curator.errors import UsageError
from curator.items import abs_paths, ok_ids
from curator.labels import apply_event, find_label, label_paths
from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

log = logging.getLogger(__name__)

QUERY_CHUNK = 4096
"""Query rows converted to float32 and searched at a time: memory stays flat, cancel stays
prompt."""

_NOISE = 0  # label code of a neighbour marked noise or mixed: a vote for "no single label"
_UNLABELLED = -1  # label code of a neighbour with no current value: no vote at all


# --- shared plumbing --------------------------------------------------------------------------


def _label_codes(catalog: Catalog) -> dict[int, int]:
    """Item id -> label id (labelled), _NOISE (noise or mixed); items with no value are absent."""
    return {r[0]: (r[2] if r[1] == "labelled" else _NOISE) for r in catalog.db.execute(
        "SELECT item_id, state, label_id FROM item_labels")}


def _space_vectors(catalog: Catalog, space: str) -> tuple[np.ndarray, Any]:
    """(sorted ids, float16 memory-mapped vectors) of a space; callers pick rows of ok items."""
    ids, X = vectors(catalog, space)
    return np.asarray(ids, dtype=np.int64), X


def _rows_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row positions (ascending) of the ids in `wanted` that are present in sorted `ids`."""
    return np.flatnonzero(np.isin(ids, wanted))


def _subset(X: Any, rows: np.ndarray) -> Any:
    # All rows: hand over the memory map itself; the index reads it in chunks.
    if len(rows) == X.shape[0]:
        return X
    return np.asarray(X[rows])


def _build_index(ids: np.ndarray, X: Any, space: str, cancel: Optional[Callable[[], bool]]) -> Any:
    from indexing.vector_index import VectorIndex

    return VectorIndex.build(ids, X, space=space, cancel=cancel)


def _search_chunks(index: Any, X: Any, rows: np.ndarray, k: int, stage: str, progress: Progress,
                   cancel: Optional[Callable[[], bool]], done: int, total: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Search the rows of X chunk by chunk: yields (row positions, scores, neighbour ids)."""
    for start in range(0, len(rows), QUERY_CHUNK):
        check_cancel(cancel)
        chunk = rows[start:start + QUERY_CHUNK]
        Q = np.asarray(X[chunk], dtype=np.float32)
        scores, nbrs = index.search(Q, k)
        yield chunk, scores, nbrs
        progress(ProgressEvent(stage, done + start + len(chunk), total, "items"))


def _drop_self(self_ids: np.ndarray, scores: np.ndarray, nbrs: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k neighbours of each row other than the row's own item (-1 padded)."""
    keep = (nbrs != self_ids[:, None]) & (nbrs >= 0)
    # A stable sort moves kept entries to the front in their original (best-first) order.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out_ids = np.take_along_axis(nbrs, order, axis=1)
    out_scores = np.take_along_axis(scores, order, axis=1)
    valid = np.take_along_axis(keep, order, axis=1)
    out_ids = np.where(valid, out_ids, -1)
    out_scores = np.where(valid, out_scores, 0.0).astype(np.float32)
    if out_ids.shape[1] < k:  # fewer results than k: pad
        pad = k - out_ids.shape[1]
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)))
    return out_scores, out_ids


def _lookup(codes_ids: np.ndarray, codes: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """Label code of each neighbour id (_UNLABELLED for -1 padding and ids without a value)."""
    if len(codes_ids) == 0:
        return np.full(nbrs.shape, _UNLABELLED, np.int64)
    pos = np.clip(np.searchsorted(codes_ids, nbrs), 0, len(codes_ids) - 1)
    hit = (codes_ids[pos] == nbrs) & (nbrs >= 0)
    return np.where(hit, codes[pos], _UNLABELLED)


def _vote(labels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted votes without a Python loop over rows.

    Args:
        labels: (m, k) label code of each neighbour.
        weights: (m, k) vote weight of each neighbour.

    Returns:
        (per_column (m, k): total weight of the label that column j carries, so argmax over a
        row picks the winning label at its nearest column; same (m, k, k): column j and column
        i carry the same label).
    """
    same = labels[:, :, None] == labels[:, None, :]
    per_column = (same * weights[:, None, :]).sum(axis=2)
    return per_column, same


def _check_k(k: int, least: int = 1) -> int:
    if not isinstance(k, (int, np.integer)) or k < least:
        raise UsageError(f"k must be a whole number of at least {least}, not {k!r}")
    return int(k)


def _check_share(value: float, what: str) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise UsageError(f"{what} must be between 0 and 1, not {value!r}")
    return float(value)


# --- suspects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suspect:
    """A labelled item whose nearest labelled neighbours mostly carry another label.

    Attributes:
        score: similarity-weighted share of its k neighbours whose label differs from its own.
        similarity: mean cosine similarity to the neighbours carrying the suggested label (a tie
            breaker: close disagreeing neighbours are stronger evidence).
        neighbours: the neighbours' item ids, nearest first.
    """

    item_id: int
    path: str
    label: str
    suggested: str
    score: float
    similarity: float
    neighbours: tuple[int, ...]
    space: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["neighbours"] = list(self.neighbours)
        return data


def _disagreements(self_ids: np.ndarray, sims: np.ndarray, nb: np.ndarray,
                   labelled: np.ndarray, label_of: np.ndarray, min_disagreement: float,
                   space: str) -> Iterator[tuple[int, tuple]]:
    """The items of one chunk whose neighbours disagree enough: (item, (score, similarity,
    suggested label id, neighbour ids, space))."""
    own = _lookup(labelled, label_of, self_ids[:, None])[:, 0]
    nb_labels = _lookup(labelled, label_of, nb)
    weights = np.where(nb >= 0, np.clip(sims, 0.0, None), 0.0)
    total_w = weights.sum(axis=1)
    differ = (nb_labels != own[:, None]) & (nb >= 0)
    disagree = np.where(differ, weights, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(total_w > 0, disagree / total_w, 0.0)
    per_column, same = _vote(nb_labels, np.where(differ, weights, 0.0))
    # Only a disagreeing column may win; argmax picks the nearest of tied labels.
    winner = np.where(differ, per_column, -1.0).argmax(axis=1)
    for r in np.flatnonzero((score >= min_disagreement) & (total_w > 0) & differ.any(1)):
        w = int(winner[r])
        mask = same[r, w] & (nb[r] >= 0)
        yield int(self_ids[r]), (float(score[r]), float(sims[r][mask].mean()),
                                 int(nb_labels[r, w]), tuple(int(i) for i in nb[r] if i >= 0),
                                 space)


def suspects(
    catalog: Catalog,
    k: int = 10,
    min_disagreement: float = 0.6,
    limit: Optional[int] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
) -> list[Suspect]:
    """Labelled items whose k nearest labelled neighbours (itself excluded) mostly disagree.

    Args:
        catalog: the project's catalog.
        k: labelled neighbours each item is compared with.
        min_disagreement: smallest score (weighted share of disagreeing neighbours) reported.
        limit: report at most this many (the highest scores).
        progress: receives "suspects" events (items checked of items labelled).
        cancel: checked between chunks; raises Cancelled (nothing is written either way).

    Returns:
        Suspects by score, then similarity, highest first (ties by item id).
    """
    k = _check_k(k)
    min_disagreement = _check_share(min_disagreement, "min_disagreement")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, not {limit!r}")
    progress = progress or no_progress
    ok = ok_ids(catalog)
    codes = _label_codes(catalog)
    labelled = np.array(sorted(i for i, c in codes.items() if c > 0), dtype=np.int64)
    labelled = labelled[np.isin(labelled, ok)]
    label_of = np.array([codes[int(i)] for i in labelled], dtype=np.int64)
    names = label_paths(catalog)
    best: dict[int, tuple[float, float, int, tuple[int, ...], str]] = {}
    spaces = [row["space"] for row in space_rows(catalog)]
    plans = []
    for space in spaces:
        ids, X = _space_vectors(catalog, space)
        rows = _rows_of(ids, labelled)
        if len(rows) >= 2:
            plans.append((space, ids, X, rows))
    total = sum(len(p[3]) for p in plans)
    done = 0
    progress(ProgressEvent("suspects", 0, total, "items"))
    for space, ids, X, rows in plans:
        check_cancel(cancel)
        index = _build_index(ids[rows], _subset(X, rows), space, cancel)
        kk = min(k, len(rows) - 1)
        for chunk, scores, nbrs in _search_chunks(index, X, rows, kk + 1, "suspects", progress,
                                                  cancel, done, total):
            sims, nb = _drop_self(ids[chunk], scores, nbrs, kk)
            for item, entry in _disagreements(ids[chunk], sims, nb, labelled, label_of,
                                              min_disagreement, space):
                if item not in best or entry[:2] > best[item][:2]:
                    best[item] = entry
        done += len(rows)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    if limit is not None:
        ranked = ranked[:limit]
    paths = abs_paths(catalog, [i for i, _ in ranked])
    own_of = dict(zip(labelled.tolist(), label_of.tolist()))
    return [Suspect(item, paths.get(item, ""), names.get(own_of[item], "?"),
                    names.get(e[2], "?"), e[0], e[1], e[3], e[4])
            for item, e in ranked]


# --- propagation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """A label proposed for an unlabelled item by its labelled neighbours."""

    item_id: int
    label: str
    confidence: float
    voters: int  # labelled neighbours among its k
    space: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PropagateReport:
    """What propagation proposed (and, unless a dry run, applied as one event).

    Attributes:
        proposals: items that reach `min_confidence`, by item id.
        counts: proposals per label path.
        event_id: the one `propagated` event that applied them (None for a dry run or nothing).
        considered: unlabelled ok items that have a vector.
        below_confidence: items whose best label fell short of `min_confidence`.
        too_few_voters: items with fewer than 2 labelled neighbours among their k.
    """

    proposals: tuple[Proposal, ...]
    counts: dict[str, int]
    event_id: Optional[int]
    applied: bool
    considered: int
    below_confidence: int
    too_few_voters: int
    min_confidence: float
    k: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["proposals"] = [p.to_json() for p in self.proposals]
        return data


MIN_VOTERS = 2
"""Labelled neighbours an item needs before propagation proposes anything for it."""


def _votes(self_ids: np.ndarray, sims: np.ndarray, nb: np.ndarray, code_ids: np.ndarray,
           code_vals: np.ndarray, space: str) -> Iterator[tuple[int, tuple]]:
    """Each item of one chunk with (confidence, labelled voters, winning label id, space);
    confidence is -1 when no neighbour votes."""
    nb_codes = _lookup(code_ids, code_vals, nb)
    voting = nb_codes >= 0  # labelled, noise or mixed
    weights = np.where(voting, np.clip(sims, 0.0, None), 0.0)
    per_column, _ = _vote(nb_codes, weights)
    candidate = np.where(nb_codes > 0, per_column, -1.0)
    winner = candidate.argmax(axis=1)
    win_w = np.take_along_axis(candidate, winner[:, None], axis=1)[:, 0]
    total_w = weights.sum(axis=1)
    voters = (nb_codes > 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(total_w > 0, win_w / total_w, -1.0)
    for r in range(len(self_ids)):
        yield int(self_ids[r]), (float(conf[r]), int(voters[r]), int(nb_codes[r, winner[r]]),
                                 space)


def _propagation_plans(catalog: Catalog, ok: np.ndarray, unlabelled: np.ndarray,
                       labelled: np.ndarray) -> tuple[list[tuple], set[int]]:
    """Per space with unlabelled items and enough labelled ones: (space, ids, vectors, rows of
    ok items, rows to label); and every unlabelled item that has a vector somewhere."""
    plans, considered = [], set()
    for space in [row["space"] for row in space_rows(catalog)]:
        ids, X = _space_vectors(catalog, space)
        rows = _rows_of(ids, ok)
        queries = _rows_of(ids, unlabelled)
        if len(queries) and np.isin(ids[rows], labelled).sum() >= MIN_VOTERS:
            plans.append((space, ids, X, rows, queries))
        considered.update(ids[queries].tolist())
    return plans, considered


def _apply(catalog: Catalog, proposals: tuple[Proposal, ...], annotator: str,
           note: str) -> Optional[int]:
    """Apply proposals as one `propagated` event; labels made meanwhile win (one transaction:
    only items still without a value change). Returns the event id, or None."""
    label_ids = {name: find_label(catalog, name).id for name in {p.label for p in proposals}}
    with catalog.write():
        taken = set(_label_codes(catalog))
        per_item = {p.item_id: label_ids[p.label] for p in proposals if p.item_id not in taken}
        if not per_item:
            return None
        return apply_event(catalog, "assign", list(per_item), per_item_labels=per_item,
                           source="propagated", annotator=annotator, note=note)


def propagate(
    catalog: Catalog,
    min_confidence: float = 0.8,
    k: int = 10,
    apply: bool = True,
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
    annotator: str = "",
) -> PropagateReport:
    """Propose labels for unlabelled items from their labelled neighbours; apply them as one event.

    Each unlabelled item (no current value: not labelled, noise or mixed) looks at its k nearest
    items of any kind. Labelled neighbours vote for their label and neighbours marked noise or
    mixed vote for "no single label", each with weight = cosine similarity; unlabelled neighbours
    do not vote. Confidence is the winning label's share of the votes. An item gets a proposal
    when it has at least 2 labelled neighbours and confidence >= `min_confidence`.

    Args:
        catalog: the project's catalog.
        min_confidence: smallest winning share that is proposed.
        k: neighbours looked at per item (at least 2).
        apply: False for a dry run: proposals are returned and nothing is written.
        progress: receives "propagate" events.
        cancel: checked between chunks; raises Cancelled before anything is written.
        annotator: who the `propagated` event is recorded for.

    Returns:
        The report; with apply, `event_id` is the single event with source `propagated`
        (undone as one with `labels.undo`).
    """
    k = _check_k(k, least=MIN_VOTERS)
    min_confidence = _check_share(min_confidence, "min_confidence")
    progress = progress or no_progress
    ok = ok_ids(catalog)
    codes = _label_codes(catalog)
    code_ids = np.array(sorted(codes), dtype=np.int64)
    code_vals = np.array([codes[int(i)] for i in code_ids], dtype=np.int64)
    unlabelled = ok[~np.isin(ok, code_ids)]
    names = label_paths(catalog)
    best: dict[int, tuple[float, int, int, str]] = {}
    below: set[int] = set()
    few: set[int] = set()
    plans, considered = _propagation_plans(catalog, ok, unlabelled, code_ids[code_vals > 0])
    total = sum(len(p[4]) for p in plans)
    done = 0
    progress(ProgressEvent("propagate", 0, total, "items"))
    for space, ids, X, rows, queries in plans:
        check_cancel(cancel)
        index = _build_index(ids[rows], _subset(X, rows), space, cancel)
        kk = min(k, len(rows) - 1)
        for chunk, scores, nbrs in _search_chunks(index, X, queries, kk + 1, "propagate",
                                                  progress, cancel, done, total):
            sims, nb = _drop_self(ids[chunk], scores, nbrs, kk)
            for item, entry in _votes(ids[chunk], sims, nb, code_ids, code_vals, space):
                if entry[1] < MIN_VOTERS or entry[0] < 0:
                    few.add(item)
                elif entry[0] < min_confidence:
                    below.add(item)
                elif item not in best or entry[0] > best[item][0]:
                    best[item] = entry
        done += len(queries)
    proposals = tuple(Proposal(item, names.get(e[2], "?"), e[0], e[1], e[3])
                      for item, e in sorted(best.items()))
    counts: dict[str, int] = defaultdict(int)
    for p in proposals:
        counts[p.label] += 1
    event_id = None
    if apply and proposals:
        check_cancel(cancel)
        event_id = _apply(catalog, proposals, annotator,
                          f"propagate k={k} min_confidence={min_confidence:g}")
    log.info("propagation: %d proposals of %d unlabelled items%s", len(proposals),
             len(considered), f", event {event_id}" if event_id else "")
    return PropagateReport(
        proposals=proposals, counts=dict(sorted(counts.items())), event_id=event_id,
        applied=event_id is not None, considered=len(considered),
        below_confidence=len(below - set(best)), too_few_voters=len(few - set(best) - below),
        min_confidence=min_confidence, k=k)
