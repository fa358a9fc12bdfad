"""Duplicates and outliers: exact (content hash) and near (cosine) duplicate groups, keepers,
outlier scores."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

log = logging.getLogger(__name__)

QUERY_CHUNK = 2048
"""Rows range-searched per FAISS call: bounds the result buffer even inside a dense clique."""

SCORE_CHUNK = 65_536
"""Rows scored per matrix product in `outlier_scores` and hashed per step in row collapsing."""

LARGE_GROUP = 200_000
"""A search block beyond this many rows is quadratic work; it is logged so a slow run is
explained."""


# ---------------------------------------------------------------------- exact duplicates


def exact_duplicate_groups(hashes: Sequence[str | None]) -> list[np.ndarray]:
    """Rows that share a content hash.

    Args:
        hashes: one content hash per row; None (or "") means unknown and is ignored.

    Returns:
        Groups of 2 or more row indices (int64, ascending), ordered by their first row.
    """
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h is None or h == "":
            continue
        rows[h].append(i)
    groups = [np.asarray(v, dtype=np.int64) for v in rows.values() if len(v) >= 2]
    groups.sort(key=lambda g: int(g[0]))
    return groups


# ---------------------------------------------------------------------- near duplicates


def _unit(block: np.ndarray, what: str = "vectors") -> np.ndarray:
    x = np.array(block, dtype=np.float32, copy=True)
    if x.size and not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"{what} row {bad} of this block contains NaN or infinity; "
                         "re-embed that item")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _identical_representatives(X: np.ndarray) -> np.ndarray:
    """Collapse bitwise-identical rows, which would otherwise pair with every copy (k² pairs).

    Returns:
        (n,) int64: for each row, the first row with the same bytes (itself when unique).
    """
    n, d = X.shape
    # A polynomial hash of each row's float32 words in wrapping uint64 arithmetic: exact, cheap,
    # independent of the row's position (unlike a BLAS projection); collisions are verified.
    coeff = (np.random.default_rng(12345).integers(1, 2**31, size=d, dtype=np.uint64)
             | np.uint64(1))
    keys = np.empty(n, dtype=np.uint64)
    step = 8192
    for a in range(0, n, step):
        words = np.ascontiguousarray(X[a:a + step], dtype=np.float32).view(np.uint32)
        keys[a:a + step] = (words.astype(np.uint64) * coeff).sum(axis=1, dtype=np.uint64)
    rep = np.arange(n, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, n])
    for s, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        members = np.sort(order[s:s + size])
        block = np.ascontiguousarray(X[members], dtype=np.float32).view(np.uint32)
        while members.size:  # equal keys with different bytes are a collision, not a copy
            same = np.all(block == block[0], axis=1)
            rep[members[same]] = members[0]
            members, block = members[~same], block[~same]
    return rep


class _Components:
    """Connected components over edges that arrive in chunks, in bounded memory.

    Each chunk's edges are reduced to a spanning star per component (node -> smallest node)
    before being kept, so a dense clique costs O(its size), not O(size²).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._a: list[np.ndarray] = []
        self._b: list[np.ndarray] = []

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.size == 0:
            return
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
        k = nodes.size
        ia, ib = inverse[:a.size], inverse[a.size:]
        graph = coo_matrix((np.ones(a.size, np.int8), (ia, ib)), shape=(k, k))
        _, lab = connected_components(graph, directed=False)
        root = np.full(lab.max() + 1, k, dtype=np.int64)
        np.minimum.at(root, lab, np.arange(k))
        self._a.append(nodes)
        self._b.append(nodes[root[lab]])

    def groups(self) -> np.ndarray:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        if not self._a:
            return np.arange(self.n, dtype=np.int64)
        a = np.concatenate(self._a)
        b = np.concatenate(self._b)
        graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(self.n, self.n))
        _, lab = connected_components(graph, directed=False)
        return lab.astype(np.int64)


def _group_plan(X: np.ndarray, labels: np.ndarray, centroids: np.ndarray | None,
                neighbour_groups: int) -> tuple[list[np.ndarray], list[list[int]]]:
    """Members of each search group and, per group, the groups its rows are compared with."""
    n = X.shape[0]
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"group_labels must be {n} integers (one per row), got {labels.shape} "
                         f"{labels.dtype}")
    labels = labels.astype(np.int64)
    if centroids is None:
        ids = np.unique(labels[labels >= 0])
        from scipy.sparse import coo_matrix

        cents = np.zeros((int(ids.max()) + 1 if ids.size else 0, X.shape[1]), np.float32)
        for a in range(0, n, SCORE_CHUNK):
            lab = labels[a:a + SCORE_CHUNK]
            ok = np.flatnonzero(lab >= 0)
            # Sum rows per label as a sparse one-hot product (np.add.at on rows is very slow).
            onehot = coo_matrix((np.ones(ok.size, np.float32), (lab[ok], ok)),
                                shape=(cents.shape[0], lab.size)).tocsr()
            cents += onehot @ _unit(X[a:a + SCORE_CHUNK])
        centroids = cents  # a sum points the same way as the mean; _unit normalises below
    else:
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != X.shape[1]:
            raise ValueError(f"centroids must have shape (groups, {X.shape[1]}), "
                             f"got {centroids.shape}")
        if labels.size and labels.max() >= centroids.shape[0]:
            raise ValueError(f"group label {int(labels.max())} has no centroid "
                             f"({centroids.shape[0]} given)")
    C = _unit(centroids, "centroids") if centroids.size else centroids
    G = C.shape[0]
    search_label = labels.copy()
    noise = np.flatnonzero(labels < 0)
    if noise.size:
        if G:
            # Unlabelled rows join the group whose centroid is nearest, so they are compared with
            # their likely duplicates without one huge quadratic "noise" block.
            for a in range(0, noise.size, SCORE_CHUNK):
                rows = noise[a:a + SCORE_CHUNK]
                search_label[rows] = np.argmax(_unit(X[rows]) @ C.T, axis=1)
        else:
            search_label[noise] = 0
            G = 1
    order = np.argsort(search_label, kind="stable")
    bounds = np.searchsorted(search_label[order], np.arange(G + 1))
    members = [order[bounds[g]:bounds[g + 1]] for g in range(G)]
    k = int(max(0, min(neighbour_groups, G - 1)))
    if k and C.shape[0] == G:
        sims = C @ C.T
        np.fill_diagonal(sims, -np.inf)
        empty = np.array([m.size == 0 for m in members])
        sims[:, empty] = -np.inf
        near = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        near_sets = [set(near[g].tolist()) for g in range(G)]
        # Compare g with h once: from g when h > g, or when only g lists h as a neighbour.
        partners = [sorted(h for h in near_sets[g] if h > g or g not in near_sets[h])
                    for g in range(G)]
    else:
        partners = [[] for _ in range(G)]
    return members, partners


def near_duplicate_groups(
    X: np.ndarray,
    threshold: float = 0.95,
    group_labels: np.ndarray | None = None,
    centroids: np.ndarray | None = None,
    neighbour_groups: int = 3,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[np.ndarray]:
    """Groups of rows whose cosine similarity chains together at or above `threshold`.

    Pairs are found by exact FAISS range search. With `group_labels` (clusters), each group's
    rows are compared only with its own group and its `neighbour_groups` nearest groups (by
    centroid cosine), which keeps a million rows tractable; unlabelled rows (label < 0) are
    compared as members of their nearest centroid's group. Without labels every row is compared
    with every other (fine for small collections). Bitwise-identical rows are collapsed first.
    Pairs are merged into connected components (a chain a~b~c is one group).

    Args:
        X: (n, d) embeddings (normalised here; a memory-mapped array is read per group).
        threshold: cosine similarity floor for a duplicate pair.
        group_labels: optional (n,) int cluster labels, -1 for unclustered.
        centroids: optional (groups, d) centroids indexed by label; computed from X if omitted.
        neighbour_groups: nearest other groups each group is compared with.
        progress: receives "duplicates" events (groups done of total).
        cancel: checked between query chunks; raises Cancelled.

    Returns:
        Groups of 2 or more row indices (int64, ascending), ordered by their first row;
        the same input gives the same groups.
    """
    import faiss

    progress = progress or no_progress
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {X.shape}")
    n = X.shape[0]
    if n < 2:
        return []
    # Step just below the threshold: faiss keeps inner products strictly above the radius.
    radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    rep = _identical_representatives(X)
    comps = _Components(n)
    dup = np.flatnonzero(rep != np.arange(n))
    comps.add(dup, rep[dup])

    if group_labels is None:
        members, partners = [np.arange(n, dtype=np.int64)], [[]]
    else:
        members, partners = _group_plan(X, group_labels, centroids, neighbour_groups)
    is_rep = rep == np.arange(n)
    members = [m[is_rep[m]] for m in members]
    total = len(members)
    progress(ProgressEvent("duplicates", 0, total, "groups"))
    for g, rows in enumerate(members):
        check_cancel(cancel)
        if rows.size == 0:
            continue
        cand = np.concatenate([rows] + [members[h] for h in partners[g]])
        if cand.size < 2:
            continue
        if cand.size > LARGE_GROUP:
            log.info("near-duplicate search compares %d rows with %d: this block is slow",
                     rows.size, cand.size)
        base = _unit(X[cand]) if cand.size <= LARGE_GROUP else _unit_chunks(X, cand)
        index = faiss.IndexFlatIP(X.shape[1])
        index.add(base)
        for a in range(0, rows.size, QUERY_CHUNK):
            check_cancel(cancel)
            q = base[a:a + QUERY_CHUNK]  # rows come first in cand, so these are their vectors
            lims, D, I = index.range_search(q, radius)
            counts = np.diff(np.asarray(lims, dtype=np.int64))
            src = np.repeat(np.arange(a, a + q.shape[0]), counts)
            keep = (np.asarray(D) >= np.float32(threshold)) & (src != I)
            comps.add(cand[src[keep]], cand[np.asarray(I)[keep]])
        progress(ProgressEvent("duplicates", g + 1, total, "groups"))

    lab = comps.groups()
    order = np.argsort(lab, kind="stable")
    starts = np.flatnonzero(np.r_[True, lab[order][1:] != lab[order][:-1]])
    sizes = np.diff(np.r_[starts, n])
    groups = [np.sort(order[s:s + z]).astype(np.int64)
              for s, z in zip(starts, sizes) if z >= 2]
    groups.sort(key=lambda grp: int(grp[0]))
    return groups


def _unit_chunks(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.empty((rows.size, X.shape[1]), np.float32)
    for a in range(0, rows.size, SCORE_CHUNK):
        out[a:a + SCORE_CHUNK] = _unit(X[rows[a:a + SCORE_CHUNK]])
    return out


# ---------------------------------------------------------------------- keepers


def _num(meta: Mapping, key: str, default: float) -> float:
    value = meta.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/\\")
    return path == prefix or path.startswith((prefix + "/", prefix + "\\"))


def _source_rank(meta: Mapping, preferred: str | None) -> tuple:
    path = str(meta.get("path") or "")
    matches = meta.get("source") == preferred or (bool(preferred) and _under(path, preferred))
    return (0 if matches else 1,)


KEEPER_RULES: dict[str, Callable[[Mapping, str | None], tuple]] = {
    "resolution": lambda m, _: (-_num(m, "width", 0) * _num(m, "height", 0),),
    "longest": lambda m, _: (-_num(m, "duration", 0),),
    "oldest": lambda m, _: (_num(m, "mtime", math.inf),),
    "source": _source_rank,
}
"""Keeper rules by name: each maps an item's metadata to a sort key, smaller is kept."""


def choose_keeper(
    group_rows: Sequence[int],
    meta: Sequence[Mapping] | Mapping[int, Mapping],
    rule: str = "resolution",
    preferred_source: str | None = None,
) -> int:
    """The row to keep from a duplicate group.

    Rules: "resolution" keeps the largest width*height; "longest" the longest duration;
    "oldest" the smallest mtime; "source" an item whose "source" equals `preferred_source` or
    whose "path" lies under it. Missing values rank last. Ties go to the larger file ("size"),
    then the smaller path (string order), then the smaller row.

    Args:
        group_rows: row indices of the group.
        meta: per-item dicts with any of "width", "height", "duration", "mtime", "size",
            "path", "source": either a sequence parallel to `group_rows` or a mapping from row
            index to dict.
        rule: a name in KEEPER_RULES.
        preferred_source: the source (or folder) the "source" rule prefers.

    Returns:
        One of `group_rows`.

    Raises:
        ValueError: empty group, unknown rule, "source" without `preferred_source`, or meta
            that does not cover the group.
    """
    rows = [int(r) for r in group_rows]
    if not rows:
        raise ValueError("choose_keeper needs a group with at least one row")
    if rule not in KEEPER_RULES:
        raise ValueError(f"unknown keeper rule {rule!r}; choose one of {sorted(KEEPER_RULES)}")
    if rule == "source" and not preferred_source:
        raise ValueError('keeper rule "source" needs preferred_source (a source name or folder)')
    if isinstance(meta, Mapping):
        missing = [r for r in rows if r not in meta]
        if missing:
            raise ValueError(f"no metadata for row {missing[0]} of the group")
        items = [meta[r] for r in rows]
    else:
        if len(meta) != len(rows):
            raise ValueError(f"{len(meta)} metadata entries for a group of {len(rows)}; "
                             "pass one per group row, in the same order")
        items = list(meta)
    key_of = KEEPER_RULES[rule]

    def key(pair: tuple[int, Mapping]) -> tuple:
        row, m = pair
        return key_of(m, preferred_source) + (-_num(m, "size", 0), str(m.get("path") or ""), row)

    return min(zip(rows, items), key=key)[0]


# ---------------------------------------------------------------------- outliers


def outlier_scores(X: np.ndarray, centroids: np.ndarray,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """How far each row lies from the groups: higher is more outlying.

    Without labels a row's score is 1 − its highest cosine to any centroid (far from every
    group). With labels a clustered row is scored against its own group's centroid
    (1 − cosine to it: an atypical member), and an unclustered row (label < 0) against all.

    Args:
        X: (n, d) embeddings.
        centroids: (groups, d) group centroids (normalised here).
        labels: optional (n,) int group of each row, indexing `centroids`; -1 for none.

    Returns:
        (n,) float32 scores in [0, 2].

    Raises:
        ValueError: shape mismatch, NaN rows, a label without a centroid, no centroids.
    """
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    C = np.asarray(centroids, dtype=np.float32)
    if X.ndim != 2 or C.ndim != 2 or C.shape[1] != X.shape[1]:
        raise ValueError(f"vectors {X.shape} and centroids {C.shape} must be 2-D with the same "
                         "dimension")
    if C.shape[0] == 0:
        raise ValueError("outlier_scores needs at least one centroid; cluster first")
    C = _unit(C, "centroids")
    n = X.shape[0]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {n} integers, got {labels.shape} {labels.dtype}")
        if labels.size and labels.max() >= C.shape[0]:
            raise ValueError(f"label {int(labels.max())} has no centroid ({C.shape[0]} given)")
    scores = np.empty(n, dtype=np.float32)
    for a in range(0, n, SCORE_CHUNK):
        sims = _unit(X[a:a + SCORE_CHUNK]) @ C.T
        best = sims.max(axis=1)
        if labels is not None:
            lab = labels[a:a + SCORE_CHUNK]
            own = lab >= 0
            best[own] = sims[np.flatnonzero(own), lab[own]]
        scores[a:a + SCORE_CHUNK] = 1.0 - best
    return np.clip(scores, 0.0, 2.0)


def rank_outliers(scores: np.ndarray, top: int | None = 100) -> np.ndarray:
    """Rows by outlier score, highest first (ties by row; NaN scores left out).

    Args:
        scores: (n,) scores from `outlier_scores`.
        top: how many rows to return (None: all).

    Returns:
        int64 row indices.
    """
    s = np.asarray(scores, dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(s))
    order = rows[np.lexsort((rows, -s[rows]))]
    return order if top is None else order[:max(0, int(top))]


MIN_CALIBRATION_ROWS = 8


def calibrated_threshold(X: np.ndarray, floor: float = 0.95, ratio: float = 10.0,
                         queries: int = 1000, seed: int = 0) -> float:
    """A near-duplicate threshold for one embedding space, from its own neighbour distances.

    A fixed cosine threshold means different things in different spaces: short chirps in a
    hand-made feature space are all within 0.97 of one another, while distinct photos in a CLIP
    space sit near 0.85. Here a copy must be `ratio` times closer (in cosine distance) than the
    median nearest neighbour of a sample of the space's own items, and never below `floor`.
    With fewer than MIN_CALIBRATION_ROWS rows the spacing cannot be measured: `floor` is used.

    Args:
        X: the rows of one space and modality (any norm; compared by cosine).
        floor: the lowest threshold returned.
        ratio: how many times closer than a typical nearest neighbour a copy must be.
        queries: rows sampled to measure the nearest-neighbour distances (against all rows).

    Returns:
        The cosine similarity at or above which two rows count as near duplicates.
    """
    n = len(X)
    if n < MIN_CALIBRATION_ROWS:
        # Too few rows to tell the spacing of distinct items from that of copies.
        return float(floor)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, size=min(queries, n), replace=False))
    q = _unit_chunks(X, picked)
    best = np.full(len(picked), -1.0, dtype=np.float32)
    for start in range(0, n, 65_536):
        rows = np.arange(start, min(n, start + 65_536))
        sims = q @ _unit_chunks(X, rows).T
        mine = (picked[:, None] == rows[None, :])
        sims[mine] = -1.0  # an item is not its own neighbour
        best = np.maximum(best, sims.max(axis=1))
    distance = 1.0 - best
    # Rows with an identical twin are copies themselves: they say nothing about the spacing.
    typical = float(np.median(distance[distance > 1e-6])) if (distance > 1e-6).any() else 0.0
    return float(min(0.9999, max(floor, 1.0 - typical / ratio)))
