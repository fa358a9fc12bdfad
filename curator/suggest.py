"""Label suggestions for undecided groups: a k-NN vote of labelled items and a zero-shot match,
with a confidence calibrated on the decisions already made.

For each group of a clustering run, up to `MEMBERS` of its items (a fixed random sample; fewer
when there are many groups, see `QUERY_BUDGET`) look up
their `K` nearest labelled items in the same embedding space (a search over the labelled items
only, so a vote exists as soon as one group is decided: exact, or through cells when it is large,
`curator/suggest_search.py`). Each neighbour votes for its label
with weight exp(-(gap in cosine to the nearest neighbour) / KERNEL_WIDTH); the vote is refreshed
on every call, so it follows the decisions. Given a cache (the project's `SearchCache`), the
neighbour lists stay warm between calls and a refresh searches only the items whose labels
changed since (`curator/suggest_votes.py`).
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

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curator.catalog import Catalog
from curator.errors import UsageError
from curator.suggest_votes import (
    LABELLED_CAP,
    K,
    VoteState,
    same_base,
    state_key,
    state_path,
    unit_rows,
)

log = logging.getLogger(__name__)

MEMBERS = 16
"""Items of a group that look up labelled neighbours (a fixed random sample of larger groups)."""

QUERY_BUDGET = 24_000
"""Most member look-ups per call: with many groups, fewer members each (at least 4), so a
refresh stays within seconds at 3,000 groups."""

CALIBRATION_GROUPS = 400
"""Most decided groups re-scored (a fixed random sample) to fit the calibration."""

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
    wanted = [gid for gid in wanted if gid in scored]
    raws = np.array([scored[gid][1] for gid in wanted], np.float64)
    confidence = np.round(_sigmoid(a * raws + b), 4).tolist()
    out = {}
    for gid, conf, raw in zip(wanted, confidence, np.round(raws, 4).tolist()):
        label_id, _, source = scored[gid]
        out[gid] = Suggestion(run_id, gid, labels[label_id]["path"], conf, raw, source)
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
    """(item ids ascending, group of each) of the run's grouped items: each column read as one
    `group_concat` text parsed by NumPy (no Python object per row: ~0.3 s instead of ~2.5 s at
    1M items). Groups no longer active are the caller's to drop (it keeps the space's active
    groups)."""
    row = catalog.db.execute(
        "SELECT group_concat(item_id), group_concat(group_id) FROM assignments "
        "WHERE run_id = ? AND group_id >= 0", [run_id]).fetchone()
    items, groups = (np.fromstring(text, dtype=np.int64, sep=",") if text
                     else np.empty(0, np.int64) for text in row)
    if len(items) > 1 and not bool(np.all(items[1:] > items[:-1])):
        order = np.argsort(items, kind="stable")
        items, groups = items[order], groups[order]
    return items, groups


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
    label_ids = np.array(sorted(labels), np.int64)
    decided_ids = sorted(gid for gid, g in groups.items() if g["status"] != "undecided")
    weight = len(decided_ids) / (len(decided_ids) + 5.0)
    wanted = set(groups)
    if len(decided_ids) > CALIBRATION_GROUPS:
        keep_ids = set(np.random.default_rng(0).choice(decided_ids, CALIBRATION_GROUPS,
                                                       replace=False).tolist())
        wanted = {gid for gid, g in groups.items()
                  if g["status"] == "undecided" or gid in keep_ids}
    out: dict[int, tuple[int, float, str]] = {}
    for space in sorted({g["space"] for g in groups.values()}):
        state = _vote_state(catalog, run_id, space, groups, cache)
        if state is None:
            continue
        with state.lock:  # the app refreshes from a worker thread while others may read
            gids, knn = state.votes(label_ids)
        zero = _zero_shot(catalog, space, state, labels, label_ids, cache) if (
            text_model) else None
        has_knn = knn.sum(axis=1) > 0
        if zero is not None:
            dist = np.where(has_knn[:, None], weight * knn + (1 - weight) * zero, zero)
            sources = np.where(has_knn, "both", "zero-shot")
        else:
            dist, sources = knn, np.full(len(gids), "knn")
        best = np.argmax(dist, axis=1)
        top = dist[np.arange(len(gids)), best]
        shown = has_knn | (zero is not None)
        for gid, lab, raw, source, ok in zip(gids.tolist(), label_ids[best].tolist(),
                                             top.tolist(), sources.tolist(), shown.tolist()):
            if ok and gid in wanted:
                out[gid] = (lab, raw, source)
    return out


def _vote_state(catalog: Catalog, run_id: int, space: str, groups: dict[int, dict],
                cache: Any) -> VoteState | None:
    """The warm k-NN state of (run, space), brought up to date: kept in the cache, else the one
    saved in the project folder, else built afresh (when the run's groups or the space's
    vectors changed, or nothing was kept). Without a cache nothing is kept, read or saved."""
    from curator.embed import space_store

    store = space_store(catalog, space)
    if not store.exists():
        return None
    stat = store.ids_path.stat()
    space_groups = sorted(gid for gid, g in groups.items() if g["space"] == space)
    key = state_key(run_id, space, space_groups, (stat.st_mtime_ns, stat.st_size))
    states = getattr(cache, "suggest_states", None)
    state = states.get((run_id, space)) if states is not None else None
    saved = state_path(catalog.root, run_id, space) if states is not None else None
    if saved is not None and (state is None or not same_base(state.key, key)):
        state = VoteState.load(saved, key, store)
    if state is not None:
        try:
            with state.lock:
                # A split or a merge moved items between groups: follow it, no full search.
                if state.key != key and not state.regroup(catalog, run_id, key, space_groups,
                                                          store):
                    state = None
                else:
                    state.refresh(catalog, store)
        except ValueError as exc:  # a saved state that no longer matches its store
            log.warning("suggestion state of run %d: %s; building it again", run_id, exc)
            state = None
    if state is None or state.n_srch > 2 * LABELLED_CAP:
        # Beyond the cap, built again at a lower share of the labelled items.
        state = _build_state(catalog, run_id, space, key, store, space_groups)
        if state is None:
            return None
    if states is None:
        return state
    states[(run_id, space)] = state
    if state.dirty and not catalog.readonly:
        with state.lock, contextlib.suppress(OSError):  # a cache: unsaved only costs time
            state.save(saved)
    return state


def _build_state(catalog: Catalog, run_id: int, space: str, key: tuple, store: Any,
                 space_groups: list[int]) -> VoteState | None:
    """A state built afresh: each group's sampled members searched against every labelled
    item (the one full search)."""
    item_ids, group_of = _assignments(catalog, run_id)
    mine = np.isin(group_of, space_groups)
    item_ids, group_of = item_ids[mine], group_of[mine]
    # By the groups the run was made with, not those of now: a split or merge then changes
    # no other group's sample, and the state can follow it (`VoteState.regroup`).
    planned = _planned_groups(catalog, run_id, space) or len(space_groups)
    per_group = int(np.clip(QUERY_BUDGET // max(1, planned), 4, MEMBERS))
    samples = _members_sample(item_ids, group_of, per_group)
    if not samples:
        return None
    # Ask for more than K: the group's own labelled members are dropped at vote time.
    state = VoteState.build(catalog, key, store, item_ids, group_of, samples, K + per_group * 4)
    state.groups = np.asarray(sorted(space_groups), np.int64)
    return state


def _planned_groups(catalog: Catalog, run_id: int, space: str) -> int:
    """How many groups the clustering run made in the space (0 when it did not say)."""
    import json

    row = catalog.db.execute("SELECT counts FROM runs WHERE id = ?", [run_id]).fetchone()
    try:
        return int(json.loads(row[0])[space]["groups"])
    except (TypeError, ValueError, KeyError):
        return 0


def _zero_shot(catalog: Catalog, space: str, state: VoteState, labels: dict[int, dict],
               label_ids: np.ndarray, cache: Any) -> np.ndarray | None:
    """(groups, labels) softmax of the taxonomy's text vectors against each group's centroid
    (the mean of its sampled members), in the row order of `state.votes`."""
    import json

    from curator.embed import space_has_text

    row = catalog.db.execute("SELECT embedder, modalities FROM spaces WHERE space = ?",
                             [space]).fetchone()
    if row is None or not space_has_text(catalog, space):
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
        T = unit_rows(np.asarray(embedder.embed_text(texts), np.float32))
    with state.lock:
        _, cents = state.centroids()
    logits = LOGIT_SCALE * (cents @ T.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _prompt(label: dict[str, str], modality: str) -> str:
    text = ZERO_SHOT_TEMPLATES[modality].format(label["name"].replace("_", " "))
    return f"{text} {label['description']}".strip() if label["description"] else text


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
