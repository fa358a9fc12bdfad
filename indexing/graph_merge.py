"""Graph-merge grouping: over-segment with k-means, merge micro-clusters along their density graph.

Plain k-means cuts the space into cells of equal-ish volume, so a class shaped like a banana or
made of several sub-modes is cut across, and two sibling classes that touch share cells. Here
the rows are first cut into many small micro-clusters (FAISS spherical k-means, two-level above
a few thousand micro-clusters so the cost stays that of an ordinary k-means), and every row's
two nearest micro-centroids are found in the same pass. A row whose nearest and second-nearest
micro-clusters are a and b is evidence that a and b touch where the data is dense: the count
of such rows, divided by sqrt(size_a * size_b), is the weight of edge a-b. Micro-clusters are
then merged by average linkage over that sparse graph (the two groups whose micro-clusters
touch most, on average, join first), so groups follow the manifold, and a thin bridge between
two dense regions is crossed last. Cutting the dendrogram at a wanted group count costs
nothing; with no count, the cut maximises the graph's modularity (resolution `granularity`).

Up to KNN_MAX_ROWS rows the evidence is finer (indexing/graph_knn.py): every row's 10 nearest
rows are found through an inverted file over the micro-clusters, micro-clusters are linked by
MUTUAL neighbour pairs (one-sided links across sparse bridges drop out), merged by the share of
the smaller group's links that go to the other (so the pieces of a big class gather before two
small sibling classes join), and after the cut each row joins the group most of its neighbours
are in. Above it (1M rows) the two-nearest-centroid graph and average linkage keep the cost flat.

Micro-clusters whose members sit far from their centroid (cohesion far below the typical one)
are low-density: the rows of a junk cloud, or stray members of a class. They are merged into
one "noise" group, so one decision settles them, and `low_density` flags it.

Every step is order-free: samples are chosen and ordered by a hash of each row's values, so
the result does not depend on the order of the rows (nor on item ids), and the same rows and
seed give the same labels.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from indexing.graph_knn import (
    knn_graph,
    knn_rows,
    outlying_rows,
    partition_modularity,
    share_linkage,
    vote_groups,
)
from indexing.graph_linkage import average_linkage, cut, modularity_path, step_for
from indexing.progress import check_cancel

log = logging.getLogger(__name__)

POINTS_PER_MICRO = 25  # rows per micro-cluster with no group count (before the caps below)
# With a group count, micro-clusters are as fine as MICRO_PER_GROUP allows, down to this many
# rows: on digits (1,797 rows) 25-row micro-clusters left 4 per group at 18 groups, and how
# k-means happened to cut them decided which classes met (accuracy over 4 seeds at 10-24
# groups 0.9415, with 5 rows 0.9439; hard 50k 0.9681 -> 0.9685; docs/benchmarks.md).
POINTS_PER_MICRO_COUNTED = 5
MICRO_PER_GROUP = (3, 16)  # micro-clusters per wanted group: at least, at most
MICRO_MAX = 16_000  # the graph and the linkage stay in seconds at 1M rows
MICRO_MIN = 8
FLAT_MAX_WORK = 5e8  # rows x micro-clusters above which the two-level path is used: at 200k
# rows x 4,800 micro-clusters it cost 0.002 of accuracy for a third of the CPU; the flat path
# at 1M x 16,000 was > 4x the 90 s target
TRAIN_POINTS_PER_MICRO = 24
MICRO_ITERATIONS = 8
COARSE_POINTS_PER_CELL = 64
NEIGHBOURS = 2  # nearest micro-centroids found per row: its own, then the one it touches most
NEIGHBOUR_WEIGHTS = (1.0,)  # edge weight a row gives its 2nd nearest (3rd, ... with more)
REACH_QUANTILE = 0.1  # a row touches micro-cluster b when inside b's 90% member radius
REACH_RATIO = 2.0
IVF_PROBE = 4  # coarse cells searched for a row's two nearest micro-centroids
NOISE_SIGMAS = 4.0  # micro-cluster cohesion this many robust sigmas under the median: noise
NOISE_MIN_SIGMA = 0.01
NOISE_ISOLATED_SIZE = 10  # micro-clusters under this size that touch no other are noise
KNN_MAX_ROWS = 300_000  # up to here micro-clusters are linked by row neighbours (graph_knn);
# above, by the rows' two nearest micro-centroids, which costs no extra search
# With a group count, a group that is one micro-cluster the linkage never joined, smaller
# than this share of the mean group and than the median micro-cluster, is a fragment: it
# joins the group it shares most links with, and its decision goes to a real split.
FRAGMENT_SHARE = 0.1
VOTE_RETRIES = 8  # other cuts tried when the vote empties groups
# With a group count and up to RESTART_MAX_ROWS rows (a run costs well under a second
# there), the grouping runs RESTARTS times from different seeds and keeps the partition with
# the highest modularity on the rows' mutual-neighbour graph, as k-means keeps its best of
# n_init: on digits the modularity of 8 seeds' partitions tracked their accuracy (correlation
# 0.87-0.96 at 11-14 groups), where how k-means cut the micro-clusters decided the result.
RESTARTS = 3
RESTART_MAX_ROWS = 10_000
AUTO_RANGE = (1 / 2000, 1 / 50)  # automatic group count stays within n * these bounds


def row_keys(X: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """A pseudo-random uint64 per row that depends only on the row's values, not its position.

    Two fixed random projections of the row (a per-row pairwise float32 sum, so the value does
    not depend on how rows are chunked) are mixed with a 64-bit finaliser (splitmix64). Equal
    rows get equal keys, which is harmless: they are interchangeable.
    """
    n, d = X.shape
    R = np.random.default_rng(0x5EED).standard_normal((2, d)).astype(np.float32)
    keys = np.empty(n, dtype=np.uint64)
    for a in range(0, n, chunk):
        rows = np.asarray(X[a : a + chunk], dtype=np.float32)
        p0 = (rows * R[0]).sum(axis=1, dtype=np.float32)
        p1 = (rows * R[1]).sum(axis=1, dtype=np.float32)
        bits = (p0.view(np.uint32).astype(np.uint64) << np.uint64(32)) | p1.view(np.uint32).astype(
            np.uint64
        )
        keys[a : a + chunk] = _splitmix64(bits)
    return keys


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def keyed_sample(keys: np.ndarray, m: int, seed: int) -> np.ndarray:
    """Row indices of an order-free pseudo-random sample of m rows, ordered by key.

    The rows with the smallest seeded keys form the sample, so which rows are drawn, and the
    order in which a trainer sees them, follow from the row values and the seed only.
    """
    salted = _splitmix64(keys ^ np.uint64(seed % (2**63)))
    n = keys.size
    if m >= n:
        return np.argsort(salted, kind="stable")
    part = np.argpartition(salted, m - 1)[:m]
    return part[np.argsort(salted[part], kind="stable")]


def micro_count(n: int, n_groups: int | None) -> int:
    """How many micro-clusters to cut n rows into, for a wanted group count (None = automatic)."""
    m = round(n / POINTS_PER_MICRO)
    if n_groups is not None:
        m = round(n / POINTS_PER_MICRO_COUNTED)
        lo, hi = MICRO_PER_GROUP
        m = min(max(m, lo * n_groups), hi * n_groups)
    return int(max(min(MICRO_MIN, n), min(m, MICRO_MAX, n)))


def micro_clusters(Z, M, keys, seed, train_kmeans, cancel=None):
    """Cut the unit rows Z into about M micro-clusters; returns (centroids, coarse or None).

    Up to FLAT_MAX_WORK (rows x M) one spherical k-means trains on a keyed sample. Above it, a
    coarse k-means into ~sqrt(M) cells runs first and each cell is cut into micro-clusters in
    proportion to its rows, so training costs about what one k-means into sqrt(M) groups does;
    `coarse` then holds the cell centroids for the search.
    """
    n = Z.shape[0]
    if n * M <= FLAT_MAX_WORK:
        take = keyed_sample(keys, min(n, M * TRAIN_POINTS_PER_MICRO), seed)
        return train_kmeans(Z[take], M, seed=seed, niter=MICRO_ITERATIONS), None
    K1 = max(2, round(math.sqrt(M)))
    take = keyed_sample(keys, min(n, K1 * COARSE_POINTS_PER_CELL), seed)
    coarse = train_kmeans(Z[take], K1, seed=seed, niter=MICRO_ITERATIONS)
    take = keyed_sample(keys, min(n, M * TRAIN_POINTS_PER_MICRO), seed + 1)
    cell = _nearest(Z[take], coarse)
    parts = []
    counts = np.bincount(cell, minlength=K1)
    want = np.maximum(1, np.round(M * counts / max(1, take.size))).astype(int)
    for c in range(K1):
        check_cancel(cancel)
        rows = take[cell == c]  # still in key order
        if rows.size == 0:
            continue
        k = int(min(want[c], rows.size))
        if k == 1:
            parts.append(_unit(Z[rows].sum(axis=0, keepdims=True)))
        else:
            parts.append(train_kmeans(Z[rows], k, seed=seed, niter=MICRO_ITERATIONS))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), coarse


def nearest_two(Z, centroids, coarse=None, order=None, chunk=65536, cancel=None):
    """Each row's nearest and second-nearest centroid (ids, cosines), read in chunks.

    With `coarse` cell centroids the search is an inverted file over them (IVF_PROBE cells per
    row), exact enough for a graph and far cheaper than a flat search at a million rows.
    With `order` (a permutation) rows are searched in chunks of that order, so each query
    batch, and so every floating-point result, is the same whatever the row order of Z.
    """
    import faiss

    n, d = Z.shape
    M = centroids.shape[0]
    k = min(NEIGHBOURS, M)
    if coarse is None:
        index = faiss.IndexFlatIP(d)
    else:
        quantizer = faiss.IndexFlatIP(d)
        quantizer.add(np.ascontiguousarray(coarse, dtype=np.float32))
        # (the IVF holds a reference to its quantizer: faiss adds it in the constructor)
        index = faiss.IndexIVFFlat(quantizer, d, coarse.shape[0], faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(IVF_PROBE, coarse.shape[0])
        index.is_trained = True
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    ids = np.full((n, NEIGHBOURS), -1, dtype=np.int64)
    sims = np.full((n, NEIGHBOURS), -np.inf, dtype=np.float32)
    for a in range(0, n, chunk):
        check_cancel(cancel)
        at = slice(a, a + chunk) if order is None else order[a : a + chunk]
        rows = np.ascontiguousarray(Z[at], dtype=np.float32)
        D, I = index.search(rows, k)
        ids[at, :k] = I
        sims[at, :k] = D
    return ids, sims


def _nearest(Z, centroids):
    import faiss

    index = faiss.IndexFlatIP(Z.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index.search(np.ascontiguousarray(Z, dtype=np.float32), 1)[1][:, 0]


def boundary_graph(ids, sims, M):
    """Sparse symmetric weights between micro-clusters from the rows' two nearest ones.

    A row of a whose second-nearest centroid is b counts for edge a-b when it lies within b's
    reach: as close to b's centroid as the closest (1 - REACH_QUANTILE) of b's own members,
    or not much farther from b than from a (cosine distance at most REACH_RATIO times).
    w(a, b) = (such rows) / sqrt(size_a * size_b), the share of the two clusters' rows that lie
    where they touch: high inside one dense region, low across a sparse gap, zero between two
    regions that do not touch at all.
    """
    from scipy import sparse

    first = ids[:, 0]
    size = np.bincount(first[first >= 0], minlength=M).astype(np.float64)
    reach = _member_quantile(first, sims[:, 0], M, REACH_QUANTILE)
    W = sparse.csr_matrix((M, M))
    for j, weight in enumerate(NEIGHBOUR_WEIGHTS[: ids.shape[1] - 1], start=1):
        ok = (ids[:, 0] >= 0) & (ids[:, j] >= 0) & (ids[:, 0] != ids[:, j])
        s1, sj = sims[ok, 0], sims[ok, j]
        ok[ok] = (sj >= reach[ids[ok, j]]) | (1.0 - sj <= REACH_RATIO * (1.0 - s1))
        a, b = ids[ok, 0], ids[ok, j]
        W = W + sparse.coo_matrix((np.full(a.size, weight), (a, b)), shape=(M, M)).tocsr()
    W = (W + W.T).tocoo()
    scale = np.sqrt(np.maximum(size[W.row], 1) * np.maximum(size[W.col], 1))
    S = sparse.csr_matrix((W.data / scale, (W.row, W.col)), shape=(M, M))
    return S, size


def _member_quantile(first, sim, M, q):
    """Per micro-cluster, the q-quantile of its members' cosines to it (+inf when empty)."""
    order = np.lexsort((sim, first))
    size = np.bincount(first, minlength=M)
    starts = np.cumsum(size) - size
    pos = starts + np.floor(q * np.maximum(size - 1, 0)).astype(np.int64)
    out = np.full(M, np.inf, dtype=np.float32)
    has = size > 0
    out[has] = sim[order[pos[has]]]
    return out


def _small_members(roots, size, min_rows):
    """Micro-clusters whose group holds fewer than min_rows rows."""
    mass: dict[int, float] = {}
    for v, r in roots.items():
        mass[r] = mass.get(r, 0.0) + size[v]
    return [v for v, r in roots.items() if mass[r] < min_rows]


def join_components(roots, centroids, size, target):
    """Merge the smallest groups into their most similar group until `target` remain.

    Used when the graph falls apart into more components than groups are wanted (well-separated
    data): a group joins the group whose size-weighted mean centroid is nearest by cosine.
    """
    groups: dict[int, list[int]] = {}
    for v, r in roots.items():
        groups.setdefault(r, []).append(v)
    while len(groups) > target:
        keys = sorted(groups)
        sums = np.stack([(centroids[groups[k]] * size[groups[k], None]).sum(axis=0) for k in keys])
        cents = _unit(sums)
        mass = np.array([size[groups[k]].sum() for k in keys])
        small = int(np.lexsort((np.array(keys), mass))[0])
        sims = cents @ cents[small]
        sims[small] = -np.inf
        into = int(np.argmax(sims))
        groups[keys[into]].extend(groups.pop(keys[small]))
    return {v: r for r, members in groups.items() for v in members}


def low_density_micro(sims, first, size):
    """Micro-clusters whose cohesion (mean cosine of members to centroid) is far below typical."""
    M = size.size
    coh = np.bincount(first, weights=sims.astype(np.float64), minlength=M) / np.maximum(size, 1)
    real = size >= 2
    if real.sum() < 8:
        return np.zeros(M, dtype=bool), coh
    med = float(np.median(coh[real]))
    sigma = max(1.4826 * float(np.median(np.abs(coh[real] - med))), NOISE_MIN_SIGMA)
    low = coh < med - NOISE_SIGMAS * sigma
    return low, coh


def graph_merge(
    Z: np.ndarray,
    keys: np.ndarray,
    n_groups: int | None,
    seed: int,
    train_kmeans,
    *,
    granularity: float = 1.0,
    noise: bool = True,
    cancel=None,
    timings: dict | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Group the unit rows Z: micro-clusters, boundary graph, average linkage, cut.

    Args:
        Z: (n, d) float32 unit rows (already reduced).
        keys: row_keys of the original rows (order-free sampling).
        n_groups: wanted groups including the noise group; None chooses from the data.
        seed: seeds the samples and k-means.
        train_kmeans: fn(rows, k, seed=, niter=) -> (k, d) unit centroids.
        granularity: with n_groups None, > 1 asks for more, finer groups, < 1 for fewer.
        noise: set low-density micro-clusters apart as one noise group.
        cancel: checked between stages.
        timings: filled with seconds per stage.

    Returns:
        (labels int32 (n,) 0..G-1, params) with params["low_density_groups"] the ids of the
        noise group(s) and params["micro_clusters"] the over-segmentation size.
    """
    runs = RESTARTS if (n_groups is not None and Z.shape[0] <= RESTART_MAX_ROWS) else 1
    best = None
    for i in range(runs):
        labels, params, nbrs = _graph_merge_once(Z, keys, n_groups, seed + i, train_kmeans,
                                                 granularity, noise, cancel, timings)
        if runs == 1 or nbrs is None:
            return labels, params
        if best is None:
            ref = nbrs  # every restart is scored on the first one's neighbour graph
        score = partition_modularity(labels, ref)
        if best is None or score > best[0]:
            best = (score, labels, {**params, "restarts": runs, "restart_seed": seed + i,
                                    "modularity": score})
    return best[1], best[2]


def _graph_merge_once(Z, keys, n_groups, seed, train_kmeans, granularity, noise, cancel,
                      timings):
    """One grouping (see `graph_merge`); also returns the rows' neighbours (None above
    KNN_MAX_ROWS)."""
    timings = {} if timings is None else timings
    n = Z.shape[0]
    t = time.perf_counter()
    M = micro_count(n, n_groups)
    centroids, coarse = micro_clusters(Z, M, keys, seed, train_kmeans, cancel)
    M = centroids.shape[0]
    timings["micro"] = time.perf_counter() - t
    t = time.perf_counter()
    ids, sims = nearest_two(Z, centroids, coarse, np.argsort(keys, kind="stable"), cancel=cancel)
    first = ids[:, 0]
    timings["search"] = time.perf_counter() - t

    t = time.perf_counter()
    nbrs = knn = None
    if n <= KNN_MAX_ROWS:
        nbrs = knn_rows(Z, centroids, np.argsort(keys, kind="stable"), cancel=cancel)
        knn = (nbrs, outlying_rows(Z, nbrs))
        S, W, size = knn_graph(first, nbrs, M)
    else:
        S, size = boundary_graph(ids, sims, M)
    timings["graph"] = time.perf_counter() - t
    t = time.perf_counter()
    low0, nodes, has_noise0 = _merge_nodes(S, sims[:, 0], first, size, M, n_groups, noise,
                                           None if knn is None else knn[1])
    merges = average_linkage(S, nodes) if nbrs is None else share_linkage(W, nodes, size)
    check_cancel(cancel)
    labels, low_groups, params_auto = _cut_and_vote(
        S, merges, nodes, size, centroids, first, low0, has_noise0, knn, n, n_groups,
        granularity, noise)
    timings["merge"] = time.perf_counter() - t

    params: dict[str, Any] = {
        "micro_clusters": int(M),
        "two_level": coarse is not None,
        "graph_edges": int(S.nnz // 2),
        "low_density_groups": low_groups,
        "noise_rows": int(np.isin(labels, low_groups).sum()),
    }
    if params_auto is not None:
        params["auto"] = params_auto
    return labels, params, nbrs


def _cut_and_vote(S, merges, nodes, size, centroids, first, low0, has_noise0, knn, n,
                  n_groups, granularity, noise):
    """(labels, noise group ids, auto params): the cut, then the neighbour vote (with knn:
    the rows' neighbours and which rows are outlying).

    The vote can empty small groups; the cut is then moved finer (or back) by the difference
    and tried again, keeping the attempt closest to n_groups without exceeding it.
    """
    extra, tried, best = 0, set(), None
    for _ in range(VOTE_RETRIES + 1):
        tried.add(extra)
        low, has_noise = low0.copy(), has_noise0
        want = None if n_groups is None else n_groups + extra
        step, target, min_rows, params_auto = _choose_cut(S, nodes, merges, size, n, want,
                                                          granularity, noise, has_noise)

        def fewer(t, min_rows=min_rows):
            """The cut at t groups, lone small micro-clusters folded in (fragments)."""
            frag = _fragment_rows(size, nodes, n, t)
            step = step_for(merges, nodes, size, t, min_rows, frag)
            return _fold_fragments(cut(merges, nodes, step), S, size, frag)

        roots = cut(merges, nodes, step) if want is None else fewer(target)
        roots, target, has_noise = _set_small_apart(roots, fewer, size, target, min_rows, low,
                                                    has_noise, want)
        if len(set(roots.values())) > target:
            roots = join_components(roots, centroids, size, target)
        labels, low_groups = _label_rows(roots, size, low, has_noise, first)
        if knn is None:
            return labels, low_groups, params_auto
        labels, low_groups = vote_groups(labels, low_groups, knn[0], min_rows if noise else 0,
                                         outlying=knn[1])
        got = int(labels.max()) + 1
        if n_groups is None:
            return labels, low_groups, params_auto
        fits = got <= n_groups
        if best is None or (fits, got if fits else -got) > (best[0], best[1]):
            best = (fits, got if fits else -got, labels, low_groups, params_auto)
        extra += n_groups - got
        if got == n_groups or extra in tried or extra < 0:
            break
    return best[2], best[3], best[4]


def _fragment_rows(size, nodes, n, target):
    """Rows under which a lone micro-cluster is a fragment, not a group (FRAGMENT_SHARE)."""
    if nodes.size == 0:
        return 0.0
    return min(FRAGMENT_SHARE * n / max(target, 1), float(np.median(size[nodes])))


def _fold_fragments(roots, S, size, frag_rows):
    """Groups that are one micro-cluster of fewer than frag_rows rows (fragments) join the
    group, not itself a fragment, they share most neighbour links with (left alone when they
    have none)."""
    count: dict[int, int] = {}
    for r in roots.values():
        count[r] = count.get(r, 0) + 1
    fragment = {v for v, r in roots.items() if count[r] == 1 and size[v] < frag_rows}
    S = S.tocsr()
    out = dict(roots)
    for v in sorted(fragment):
        lo, hi = S.indptr[v], S.indptr[v + 1]
        links: dict[int, float] = {}
        for c, w in zip(S.indices[lo:hi].tolist(), S.data[lo:hi].tolist()):
            rc = roots.get(c)
            if rc is not None and c not in fragment:
                links[rc] = links.get(rc, 0.0) + w
        if links:
            out[v] = max(sorted(links), key=lambda g: links[g])
    return out


def _merge_nodes(S, sim, first, size, M, n_groups, noise, outlying=None):
    """(low, nodes, has_noise): micro-clusters set apart as noise, and those left to merge."""
    used = size > 0
    low = (_initial_noise(S, sim, first, size, n_groups, outlying) if noise
           else np.zeros(M, bool))
    nodes = np.flatnonzero(used & ~low)
    if nodes.size == 0:  # everything is "low density": nothing stands out, keep it all
        low[:] = False
        nodes = np.flatnonzero(used)
    return low, nodes, bool((low & used).any())


def _choose_cut(S, nodes, merges, size, n, n_groups, granularity, noise, has_noise):
    """(step or None with a count, target groups, smallest group worth a decision, auto
    params or None)."""
    if n_groups is None:
        step, params_auto = _auto_step(S, nodes, merges, n, granularity)
        target = max(1, nodes.size - step)
        min_rows = min(NOISE_ISOLATED_SIZE, max(1, n // (4 * target)))
        return step, target, min_rows, params_auto
    target = max(1, n_groups - int(has_noise))  # the noise group is one of the decisions
    min_rows = min(NOISE_ISOLATED_SIZE, max(1, n // (4 * target))) if noise else 1
    return None, target, min_rows, None  # the caller cuts at target (fragments folded)


def _set_small_apart(roots, fewer, size, target, min_rows, low, has_noise, n_groups):
    """(roots, target, has_noise) once groups too small for a decision join the noise group.

    `fewer(t)` is the cut at t groups. Marks the small groups' micro-clusters in `low`.
    """
    small = _small_members(roots, size, min_rows)
    if not has_noise and size[small].sum() < max(min_rows, NOISE_ISOLATED_SIZE):
        small = []  # a few stray rows: not worth a decision, they join their nearest group
    if small and not has_noise and n_groups is not None and target > 1:
        # Small groups would form a noise group: one decision fewer for the real ones. If
        # that cut leaves nothing small, keep the first and fold its small groups in instead.
        coarser = fewer(target - 1)
        if _small_members(coarser, size, min_rows):
            roots, target = coarser, target - 1
            small = _small_members(roots, size, min_rows)
        else:
            small = []
    if small and len(small) < len(roots):
        # Groups too small to be worth a decision join the noise group.
        low[small] = True
        roots = {v: r for v, r in roots.items() if not low[v]}
        has_noise = True
    return roots, target, has_noise


def _label_rows(roots, size, low, has_noise, first):
    """(labels int32 per row, the noise group's id in a list when there is one)."""
    micro_group, G = _number_groups(roots, size)
    low_groups: list[int] = []
    if has_noise:
        micro_group[low] = G
        low_groups = [G]
        G += 1
    return micro_group[first].astype(np.int32), low_groups


def _initial_noise(S, sim, first, size, n_groups, outlying=None):
    """Micro-clusters set apart before merging: low cohesion, tiny and touching nothing, or
    (with `outlying`, a bool per row) made mostly of outlying rows."""
    used = size > 0
    low, _ = low_density_micro(sim, first, size)
    if outlying is not None:
        # A micro-cluster of one or two rows has a perfect cohesion whatever it holds: with
        # fine micro-clusters each stray is one, so the rows' own outlier test decides.
        out = np.bincount(first, weights=np.asarray(outlying, dtype=np.float64),
                          minlength=size.size)
        low |= used & (out >= 0.5 * size)
    # A stray row, or a few, that k-means gave a centroid of their own and that touch no
    # other micro-cluster: a group of them would cost a decision for almost nothing.
    degree = np.diff(S.indptr)
    low |= used & (degree == 0) & (size < NOISE_ISOLATED_SIZE)
    # Fewer than NOISE_ISOLATED_SIZE rows are not worth a decision of their own, however small
    # the data: on a few dozen items a "noise group" of three would take a real group's place.
    if size[low].sum() < NOISE_ISOLATED_SIZE:
        low[:] = False
    return low


def _auto_step(S, nodes, merges, n, granularity):
    """The merge step where modularity (resolution `granularity`) peaks, within AUTO_RANGE."""
    q = modularity_path(S, nodes, merges, granularity)
    lo = max(1, nodes.size - len(merges))  # fewest groups the graph allows
    g_lo, g_hi = max(2, round(n * AUTO_RANGE[0])), max(2, round(n * AUTO_RANGE[1]))
    steps = np.arange(len(merges) + 1)
    groups_at = nodes.size - steps
    ok = (groups_at >= max(lo, g_lo)) & (groups_at <= g_hi)
    if not ok.any():
        ok = groups_at == max(lo, min(g_hi, nodes.size))
    step = int(steps[ok][np.argmax(q[ok])])
    return step, {"modularity": float(q[step]), "resolution": granularity}


def _number_groups(roots, size):
    """Group id per micro-cluster (-1 for none): largest group first, ties by smallest id."""
    M = size.size
    used = size > 0
    root_ids = np.array(sorted(set(roots.values())))
    micro_root = np.full(M, -1, dtype=np.int64)
    for v, r in roots.items():
        micro_root[v] = r
    has = used & (micro_root >= 0)
    mass = np.bincount(micro_root[has], weights=size[has], minlength=M)[root_ids]
    first_micro = np.full(M, M, dtype=np.int64)
    np.minimum.at(first_micro, micro_root[micro_root >= 0], np.flatnonzero(micro_root >= 0))
    order = np.lexsort((first_micro[root_ids], -mass))
    group_of_root = np.full(M, -1, dtype=np.int64)
    group_of_root[root_ids[order]] = np.arange(root_ids.size)
    micro_group = np.where(micro_root >= 0, group_of_root[np.maximum(micro_root, 0)], -1)
    return micro_group, int(root_ids.size)


def _unit(A):
    A = np.asarray(A, dtype=np.float64)
    return (A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)).astype(np.float32)
