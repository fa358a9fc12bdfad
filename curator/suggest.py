"""Label suggestions for undecided groups: a k-NN vote of labelled items and a zero-shot match,
with a confidence calibrated on the decisions already made.

For each group of a clustering run, up to `MEMBERS` of its items (a fixed random sample; fewer
when there are many groups, see `QUERY_BUDGET`) look up
their `K` nearest labelled items in the same embedding space (an exact search over the labelled
items only, so a vote exists as soon as one group is decided). Each neighbour votes for its label
with weight exp(-(gap in cosine to the nearest neighbour) / KERNEL_WIDTH); the vote is refreshed
on every call, so it follows the decisions.
Where the space's model has a text tower (CLIP for images and video, CLAP for audio), the
taxonomy's names and descriptions are embedded as text and matched against the group's centroid;
a softmax at CLIP's logit scale turns the cosines into a distribution over labels.

The two distributions are mixed, the k-NN vote weighing more as decisions accumulate
(w = d / (d + 5) for d decided groups), and the top label's share is the raw score.

Calibration (Platt scaling with a prior): the raw score r becomes P(right) = sigmoid(a*r + b).
(a, b) are fitted by maximum a-posteriori logistic regression on the groups already decided, each
scored as if undecided (its own items are left out of its vote) and counted right when the curator
gave it the suggested label (a group called noise or mixed counts wrong). A Gaussian prior centred
on a = 6, b = -3 (r = 0.5 maps to 50%, r = 0.9 to 92%) with the weight of `PRIOR_DECISIONS`
decisions keeps the first few decisions from swinging it; with none the prior alone applies.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curator.catalog import Catalog
from curator.errors import UsageError

log = logging.getLogger(__name__)

MEMBERS = 16
"""Items of a group that look up labelled neighbours (a fixed random sample of larger groups)."""

QUERY_BUDGET = 24_000
"""Most member look-ups per call: with many groups, fewer members each (at least 4), so a
refresh stays within seconds at 3,000 groups."""

CALIBRATION_GROUPS = 400
"""Most decided groups re-scored (a fixed random sample) to fit the calibration."""

K = 10
"""Labelled neighbours per member."""

KERNEL_WIDTH = 0.05
"""A neighbour's vote is exp(-(gap in cosine to the member's nearest labelled item) / this)."""

LABELLED_CAP = 50_000
"""Most labelled items searched per space (a fixed random sample beyond), bounding the cost."""

PRIOR = (6.0, -3.0)
PRIOR_DECISIONS = 10.0
LOGIT_SCALE = 100.0  # CLIP's learned temperature, used for both CLIP and CLAP text matches
ZERO_SHOT_TEMPLATES = {"image": "a photo of {}.", "video": "a video of {}.",
                       "audio": "the sound of {}."}


@dataclass(frozen=True)
class Suggestion:
    """A suggested label for one group.

    Attributes:
        group_id, run_id: the group.
        label: the suggested label's full name.
        confidence: calibrated probability that the label is right for the group.
        raw: the top label's share of the mixed vote (what calibration maps).
        source: "knn", "zero-shot" or "both".
    """

    run_id: int
    group_id: int
    label: str
    confidence: float
    raw: float
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Space:
    """Labelled items of one space: their vectors (a flat index), label rows and groups."""

    index: Any
    item_ids: np.ndarray
    label_rows: np.ndarray  # position in the label list per labelled item
    groups: np.ndarray  # group of each labelled item in the run (-1 when none)


def suggest(catalog: Catalog, run_id: int, group_ids: list[int] | None = None,
            cache: Any = None, text_model: bool = True) -> dict[int, Suggestion]:
    """Suggestions for the undecided groups of a run (or for the given groups).

    Args:
        catalog: the project's catalog.
        run_id: the clustering run.
        group_ids: only these groups (default: every undecided active group).
        cache: a `SearchCache` for warm text models (optional).
        text_model: use the zero-shot match where the model has a text tower.

    Returns:
        group id -> Suggestion; groups with no possible suggestion (no labels yet) are absent.
    """
    labels = _taxonomy(catalog)
    if not labels:
        return {}
    groups = _groups(catalog, run_id)
    scored = _raw_scores(catalog, run_id, groups, labels, cache, text_model)
    decided = [g for g in groups.values() if g["status"] != "undecided" and g["gid"] in scored]
    a, b = calibrate([scored[g["gid"]][1] for g in decided],
                     [scored[g["gid"]][0] == g["label_id"] for g in decided])
    wanted = group_ids if group_ids is not None else [
        g["gid"] for g in groups.values() if g["status"] == "undecided"]
    out = {}
    for gid in wanted:
        if gid not in scored:
            continue
        label_id, raw, source = scored[gid]
        out[gid] = Suggestion(run_id, gid, labels[label_id]["path"],
                              round(float(_sigmoid(a * raw + b)), 4), round(raw, 4), source)
    return out


def calibrate(raw: list[float], right: list[bool]) -> tuple[float, float]:
    """(a, b) of P(right) = sigmoid(a * raw + b): MAP logistic fit under the prior.

    Args:
        raw: raw scores of past suggestions.
        right: whether each was the label the curator chose.
    """
    x = np.asarray(raw, np.float64)
    y = np.asarray(right, np.float64)
    theta = np.array(PRIOR, np.float64)
    prior = np.array(PRIOR, np.float64)
    # Prior precision: the curvature PRIOR_DECISIONS decisions spread over [0, 1] would give.
    lam = PRIOR_DECISIONS * 0.25 * np.array([1.0 / 3.0, 1.0])
    def loss(t: np.ndarray) -> float:
        z = t[0] * x + t[1]
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(lam * (t - prior) ** 2))

    for _ in range(50):  # damped Newton on a 2-parameter convex problem
        p = _sigmoid(theta[0] * x + theta[1])
        grad = np.array([np.sum((p - y) * x), np.sum(p - y)]) + lam * (theta - prior)
        w = p * (1 - p)
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        hess += np.diag(lam)
        step = np.linalg.solve(hess, grad)
        now, scale = loss(theta), 1.0
        while scale > 1e-4 and loss(theta - scale * step) > now:
            scale /= 2
        theta -= scale * step
        if np.abs(scale * step).max() < 1e-7:
            break
    return float(theta[0]), float(theta[1])


def _sigmoid(z: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


# --- inputs ----------------------------------------------------------------------------------


def _taxonomy(catalog: Catalog) -> dict[int, dict[str, str]]:
    from curator.labels import labels as live_labels

    return {lab.id: {"path": lab.path, "name": lab.name, "description": lab.description or ""}
            for lab in live_labels(catalog, with_counts=False)}


def _groups(catalog: Catalog, run_id: int) -> dict[int, dict[str, Any]]:
    rows = catalog.db.execute(
        "SELECT group_id, space, status, label_id FROM groups WHERE run_id = ? AND "
        "state = 'active'", [run_id]).fetchall()
    return {r[0]: {"gid": r[0], "space": r[1], "status": r[2], "label_id": r[3]} for r in rows}


def _assignments(catalog: Catalog, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(catalog.db.execute(
        "SELECT a.item_id, a.group_id FROM assignments a JOIN groups g ON g.run_id = a.run_id "
        "AND g.group_id = a.group_id WHERE a.run_id = ? AND g.state = 'active' "
        "ORDER BY a.item_id", [run_id]).fetchall(), np.int64).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy()


def _labelled(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(catalog.db.execute(
        "SELECT item_id, label_id FROM item_labels WHERE state = 'labelled' AND label_id IS NOT "
        "NULL ORDER BY item_id").fetchall(), np.int64).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy()


def _members_sample(item_ids: np.ndarray, group_of: np.ndarray, per_group: int = MEMBERS,
                    seed: int = 0) -> dict[int, np.ndarray]:
    """Up to `per_group` items per group, a fixed random sample independent of call order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(item_ids))
    shuffled_groups = group_of[order]
    sort = np.argsort(shuffled_groups, kind="stable")
    g_sorted = shuffled_groups[sort]
    ids_sorted = item_ids[order][sort]
    bounds = np.flatnonzero(np.diff(g_sorted)) + 1
    out = {}
    for part_g, part_ids in zip(np.split(g_sorted, bounds), np.split(ids_sorted, bounds)):
        if len(part_g):
            out[int(part_g[0])] = np.sort(part_ids[:per_group])
    return out


# --- scores ----------------------------------------------------------------------------------


def _raw_scores(catalog: Catalog, run_id: int, groups: dict[int, dict], labels: dict[int, dict],
                cache: Any, text_model: bool) -> dict[int, tuple[int, float, str]]:
    """group id -> (label id, raw score, source), for undecided and decided groups alike."""
    from curator.embed import space_store

    label_ids = np.array(sorted(labels), np.int64)
    item_ids, group_of = _assignments(catalog, run_id)
    lab_items, lab_labels = _labelled(catalog)
    keep = np.isin(lab_labels, label_ids)
    lab_items, lab_labels = lab_items[keep], lab_labels[keep]
    decided_ids = sorted(gid for gid, g in groups.items() if g["status"] != "undecided")
    weight = len(decided_ids) / (len(decided_ids) + 5.0)
    if len(decided_ids) > CALIBRATION_GROUPS:
        keep_ids = set(np.random.default_rng(0).choice(decided_ids, CALIBRATION_GROUPS,
                                                       replace=False).tolist())
        groups = {gid: g for gid, g in groups.items()
                  if g["status"] == "undecided" or gid in keep_ids}
    per_group = int(np.clip(QUERY_BUDGET // max(1, len(groups)), 4, MEMBERS))
    samples = _members_sample(item_ids, group_of, per_group)
    out: dict[int, tuple[int, float, str]] = {}
    for space in sorted({g["space"] for g in groups.values()}):
        gids = [gid for gid, g in groups.items() if g["space"] == space and gid in samples]
        if not gids:
            continue
        store = space_store(catalog, space)
        if not store.exists():
            continue
        knn = _knn_votes(store, gids, samples, item_ids, group_of, lab_items, lab_labels,
                         label_ids)
        zero = _zero_shot(catalog, space, store, gids, samples, labels, label_ids, cache) if (
            text_model) else None
        for row, gid in enumerate(gids):
            has_knn = knn is not None and knn[row].sum() > 0
            if has_knn and zero is not None:
                dist, source = weight * knn[row] + (1 - weight) * zero[row], "both"
            elif has_knn:
                dist, source = knn[row], "knn"
            elif zero is not None:
                dist, source = zero[row], "zero-shot"
            else:
                continue
            best = int(np.argmax(dist))
            out[gid] = (int(label_ids[best]), float(dist[best]), source)
    return out


def _knn_votes(store: Any, gids: list[int], samples: dict[int, np.ndarray],
               item_ids: np.ndarray, group_of: np.ndarray, lab_items: np.ndarray,
               lab_labels: np.ndarray, label_ids: np.ndarray) -> np.ndarray | None:
    """(groups, labels) vote shares from the labelled neighbours of each group's sampled members;
    a group's own members never vote for it (so decided groups are scored as if undecided)."""
    import faiss

    found, X = store.lookup(lab_items)
    if not len(found):
        return None
    rows = np.searchsorted(lab_items, found)
    labels_of = np.searchsorted(label_ids, lab_labels[rows])
    if len(found) > LABELLED_CAP:
        pick = np.sort(np.random.default_rng(0).choice(len(found), LABELLED_CAP, replace=False))
        found, X, labels_of = found[pick], X[pick], labels_of[pick]
    pos = np.clip(np.searchsorted(item_ids, found), 0, max(len(item_ids) - 1, 0))
    groups_of_lab = np.where(item_ids[pos] == found, group_of[pos], -1) if len(item_ids) else (
        np.full(len(found), -1))
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(_unit_rows(X))
    queries = [samples[g] for g in gids]
    q_ids = np.concatenate(queries)
    q_found, Q = store.lookup(q_ids)
    q_group = np.repeat(np.array(gids), [len(q) for q in queries])
    q_group = q_group[np.isin(q_ids, q_found)]
    # Ask for more than K: the group's own labelled members are dropped afterwards.
    kk = int(min(len(found), K + max(len(q) for q in queries) * 4))
    sims, nbrs = index.search(_unit_rows(Q), kk)
    votes = np.zeros((len(gids), len(label_ids)), np.float64)
    row_of = {g: r for r, g in enumerate(gids)}
    for qi in range(len(Q)):
        g = int(q_group[qi])
        ok = nbrs[qi] >= 0
        ok[ok] &= groups_of_lab[nbrs[qi][ok]] != g
        nbr, sim = nbrs[qi][ok][:K], sims[qi][ok][:K]
        if len(sim):
            # Nearer neighbours count for much more: a kernel on the gap to the nearest one.
            np.add.at(votes[row_of[g]], labels_of[nbr], np.exp((sim - sim[0]) / KERNEL_WIDTH))
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)


def _zero_shot(catalog: Catalog, space: str, store: Any, gids: list[int],
               samples: dict[int, np.ndarray], labels: dict[int, dict], label_ids: np.ndarray,
               cache: Any) -> np.ndarray | None:
    """(groups, labels) softmax of the taxonomy's text vectors against each group's centroid."""
    import json

    from curator.embed import space_spec

    row = catalog.db.execute("SELECT embedder, modalities FROM spaces WHERE space = ?",
                             [space]).fetchone()
    if row is None or not space_spec(catalog, space).capabilities.has_text:
        return None
    if cache is None:
        from curator.search import SearchCache

        cache = SearchCache(catalog)
    try:
        embedder, lock = cache.embedder(space, None)
    except Exception as exc:  # noqa: BLE001 - a missing model only loses the zero-shot half
        log.warning("no zero-shot suggestions for %s: %s", space, exc)
        return None
    if not getattr(embedder, "has_text", False):
        return None
    modality = next((m for m in ("image", "video", "audio") if m in json.loads(row[1])), "image")
    texts = [_prompt(labels[int(i)], modality) for i in label_ids]
    with lock:
        T = _unit_rows(np.asarray(embedder.embed_text(texts), np.float32))
    cents = []
    for g in gids:
        _, X = store.lookup(samples[g])
        c = _unit_rows(X).mean(axis=0) if len(X) else np.zeros(T.shape[1], np.float32)
        cents.append(c / max(float(np.linalg.norm(c)), 1e-12))
    logits = LOGIT_SCALE * (np.asarray(cents, np.float32) @ T.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _prompt(label: dict[str, str], modality: str) -> str:
    text = ZERO_SHOT_TEMPLATES[modality].format(label["name"].replace("_", " "))
    return f"{text} {label['description']}".strip() if label["description"] else text


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, np.float32)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, n, out=np.zeros_like(X), where=n > 0)


# --- acceptance ------------------------------------------------------------------------------


def accept(catalog: Catalog, run_id: int, suggestions: list[Suggestion], annotator: str,
           note: str = "") -> int | None:
    """Give each group its suggested label, as one event (one undo puts them all back).

    Returns:
        The event id, or None when there was nothing to accept.
    """
    from curator.labels import apply_event, find_label

    if not suggestions:
        return None
    per_item: dict[int, int] = {}
    group_labels: dict[int, int] = {}
    for s in suggestions:
        label_id = find_label(catalog, s.label).id
        group_labels[s.group_id] = label_id
        for item in catalog.db.execute(
                "SELECT item_id FROM assignments WHERE run_id = ? AND group_id = ?",
                [run_id, s.group_id]).fetchall():
            per_item[int(item[0])] = label_id
    if not per_item:
        raise UsageError("the suggested groups have no items")
    return apply_event(catalog, "assign", list(per_item), per_item_labels=per_item,
                       source="group", annotator=annotator, run_id=run_id,
                       note=note or f"accepted {len(group_labels)} suggestions",
                       group_labels=group_labels)
