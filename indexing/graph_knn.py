"""Row-level neighbours for graph-merge grouping: a k-NN graph between micro-clusters and a vote.

The boundary graph of `graph_merge` links two micro-clusters by the rows whose two nearest
micro-centroids they are. That sees a row's position relative to ~25-row cells only. Here every
row's k nearest rows are found (an inverted file whose lists are the micro-clusters themselves,
so it costs a few cells' rows per query, not a flat scan), and:

* `knn_graph`: edge a-b counts the neighbour pairs (i in a, j in b), divided by
  sqrt(size_a * size_b), as UMAP's neighbour graph links points, aggregated to micro-clusters.
  On sibling classes whose sub-modes reach toward each other this separates what the
  two-centroid evidence merges (docs/benchmarks.md, "Clustering").
* `vote`: after the merge, each row moves to the group that holds most of its neighbours
  (itself counted once), when that group holds strictly more of them than its own: rows of a
  micro-cluster that straddled a boundary go back to their side.

Rows are added to the index and queried in key order (a permutation that follows from the row
values), so ties, and so the result, do not depend on the order of the rows.
"""

from __future__ import annotations

import numpy as np

from indexing.graph_linkage import greedy_linkage
from indexing.progress import check_cancel

KNN_NEIGHBOURS = 10  # 15 (UMAP's default) was 0.003 less accurate on the hard 50k set
KNN_PROBE = 16  # micro-clusters searched per row (8: recall@15 0.93, 16: 0.98 against exact)
VOTE_PASSES = 2
# A row whose k-th neighbour is this many times further than its neighbours' own k-th
# neighbours is an outlier in the local-outlier-factor sense (docs/benchmarks.md, "Fourth
# pass": atypical members of a class sit 1.3-2.2x out, stray rows 5-8x).
OUTLIER_REACH = 3.0


def knn_rows(Z, centroids, order, k=KNN_NEIGHBOURS, chunk=16384, cancel=None):
    """(n, k) int64 nearest rows of every row (itself left out; -1 where fewer were found)."""
    import faiss

    n, d = Z.shape
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    index = faiss.IndexIVFFlat(quantizer, d, centroids.shape[0], faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    index.nprobe = min(KNN_PROBE, centroids.shape[0])
    for a in range(0, n, chunk):
        rows = order[a : a + chunk]
        index.add_with_ids(np.ascontiguousarray(Z[rows], dtype=np.float32), rows.astype(np.int64))
    out = np.full((n, k), -1, dtype=np.int64)
    for a in range(0, n, chunk):
        check_cancel(cancel)
        rows = order[a : a + chunk]
        _, I = index.search(np.ascontiguousarray(Z[rows], dtype=np.float32), k + 1)
        # Drop the row itself (usually first, but a duplicate row may come before it).
        own = rows[:, None] == I
        has_own = own.any(axis=1)
        drop = np.where(has_own, np.argmax(own, axis=1), k)
        keep = np.arange(k + 1)[None, :] != drop[:, None]
        out[rows] = I[keep].reshape(rows.size, k)
    return out


def knn_graph(first, nbrs, M):
    """Micro-cluster graphs from MUTUAL row neighbours: (S, W, size).

    A pair of rows counts when each is among the other's k nearest. A row on a sparse bridge
    (part-way between two classes) has the dense side among its neighbours, but the dense
    side's rows have closer neighbours of their own, so bridges drop out while the inside of a
    class keeps its links. W holds the raw pair counts between micro-clusters (for
    `share_linkage`), S the same divided by sqrt(size_a * size_b) (for the noise test and
    the modularity cut).
    """
    from scipy import sparse

    n, k = nbrs.shape
    size = np.bincount(first, minlength=M).astype(np.float64)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    flat = nbrs.ravel()
    ok = flat >= 0
    A = sparse.csr_matrix((np.ones(int(ok.sum())), (rows[ok], flat[ok])), shape=(n, n))
    A = A.multiply(A.T).tocoo()  # mutual pairs, both directions
    a, b = first[A.row], first[A.col]
    ok = a != b
    W = sparse.coo_matrix((np.ones(int(ok.sum())), (a[ok], b[ok])), shape=(M, M)).tocsr()
    W = W.tocoo()
    scale = np.sqrt(np.maximum(size[W.row], 1) * np.maximum(size[W.col], 1))
    S = sparse.csr_matrix((W.data / scale, (W.row, W.col)), shape=(M, M))
    return S, W.tocsr(), size


def share_linkage(W, nodes, mass):
    """Agglomeration where two groups join when one sends a large share of its links to the other.

    The score of groups a, b is W(a, b) / min(mass_a, mass_b): the mutual-neighbour pairs
    between them per row of the smaller one. Average linkage divides by both sizes, so a big
    class cut into pieces (many links, but spread over many pairs) stayed apart while small
    sibling classes that touch were merged; here the pieces of one class join first, and a
    small class joins a neighbour only when much of it lies against it.

    Args:
        W: (M, M) symmetric scipy sparse raw link counts between micro-clusters.
        nodes: the micro-cluster ids taking part.
        mass: rows per micro-cluster (indexed by id).

    Returns:
        merges: (a, b, score) in merge order; a survives. Ties break on the smaller ids.
    """
    rows = {int(v): float(max(mass[v], 1.0)) for v in nodes}
    return greedy_linkage(W, nodes, rows, _share)


def _share(links: float, rows_a: float, rows_b: float) -> float:
    return links / min(rows_a, rows_b)


def outlying_rows(Z, nbrs, ratio=OUTLIER_REACH, chunk=16384):
    """Bool per row: its reach (distance to its k-th nearest row) exceeds `ratio` times the
    median reach of its neighbours, as a local outlier factor does. A row far out on the edge
    of one group, whose neighbours are nearly as spread as it is, is not outlying; a stray
    whose nearest rows sit in a tight group far away is."""
    n, k = nbrs.shape
    reach = np.zeros(n, dtype=np.float64)
    for a in range(0, n, chunk):
        nb = nbrs[a : a + chunk]
        sims = np.einsum("id,ikd->ik", np.asarray(Z[a : a + chunk], dtype=np.float32),
                         np.asarray(Z)[np.maximum(nb, 0)])
        sims = np.where(nb >= 0, sims, np.inf).min(axis=1)  # the furthest of its neighbours
        reach[a : a + chunk] = np.sqrt(np.clip(2.0 - 2.0 * np.where(np.isinf(sims), -1.0, sims),
                                               0.0, 4.0))
    around = np.where(nbrs >= 0, reach[np.maximum(nbrs, 0)], np.nan)
    with np.errstate(all="ignore"):
        typical = np.nanmedian(around, axis=1) if n else reach
    return ~(reach <= ratio * np.nan_to_num(typical, nan=0.0))


def vote(labels, nbrs, passes=VOTE_PASSES, stay=(), outlying=None):
    """Labels after `passes` rounds of: each row joins the group most of its neighbours are in.

    A row moves only when another group holds strictly more of its neighbours (itself counted)
    than its own group; ties go to the smaller group id. Rows of the groups in `stay` (the
    noise group) count only their MUTUAL neighbours: a stray's nearest rows are in real groups
    however far it is, but it is nobody's neighbour, so it stays; a row of a class that landed
    in the noise group has mutual neighbours in its class and joins it.
    Returns the new labels (a copy).
    """
    lab = np.asarray(labels, dtype=np.int64).copy()
    n, k = nbrs.shape
    G = int(lab.max()) + 1 if lab.size else 0
    if n == 0 or G < 2:
        return lab.astype(np.int32)
    rows = np.repeat(np.arange(n, dtype=np.int64), k + 1)
    fixed = np.isin(lab, np.asarray(list(stay), dtype=np.int64))
    if outlying is not None:
        fixed &= np.asarray(outlying, dtype=bool)
    usable = nbrs >= 0
    if fixed.any():
        back = np.where(usable, nbrs, 0)
        mutual = (nbrs[back] == np.arange(n)[:, None, None]).any(axis=2) & usable
        usable = np.where(fixed[:, None], mutual, usable)
    for _ in range(passes):
        cand = np.concatenate([lab[:, None], np.where(usable, lab[np.maximum(nbrs, 0)], -1)],
                              axis=1).ravel()
        ok = cand >= 0
        pair, count = np.unique(rows[ok] * G + cand[ok], return_counts=True)
        row_of, lab_of = pair // G, pair % G
        # Best group per row: the most votes, then the smallest id.
        best = np.lexsort((lab_of, -count, row_of))
        first_of_row = np.r_[True, row_of[best][1:] != row_of[best][:-1]]
        top = best[first_of_row]
        own = np.zeros(n, dtype=np.int64)
        own_hit = lab_of == lab[row_of]
        own[row_of[own_hit]] = count[own_hit]
        new = lab.copy()
        better = count[top] > own[row_of[top]]
        new[row_of[top][better]] = lab_of[top][better]
        if np.array_equal(new, lab):
            break
        lab = new
    return lab.astype(np.int32)


def vote_groups(labels, low_groups, nbrs, min_rows, outlying=None):
    """Labels after the neighbour vote; groups it left under min_rows rows join the noise
    group (or become it); renumbered without emptied groups, order kept."""
    voted = vote(labels, nbrs, stay=low_groups, outlying=outlying).astype(np.int64)
    G = int(labels.max()) + 1
    counts = np.bincount(voted, minlength=G)
    noise_id = low_groups[0] if low_groups else None
    tiny = np.flatnonzero((counts > 0) & (counts < min_rows))
    tiny = tiny[tiny != noise_id] if noise_id is not None else tiny
    if tiny.size:
        if noise_id is None:
            noise_id = G  # a new noise group, numbered last like the usual one
            low_groups = [G]
        voted[np.isin(voted, tiny)] = noise_id
    used = np.unique(voted)
    lookup = np.full(max(G, int(voted.max()) + 1), -1, dtype=np.int64)
    lookup[used] = np.arange(used.size)
    return lookup[voted].astype(np.int32), [int(lookup[g]) for g in low_groups if lookup[g] >= 0]


def partition_modularity(labels, nbrs):
    """Modularity (resolution 1) of a labelling on the graph of MUTUAL row neighbours: the
    share of mutual pairs inside groups, less what random pairing with the same degrees
    would put there. Higher = groups that cut fewer dense links."""
    from scipy import sparse

    n, k = nbrs.shape
    lab = np.asarray(labels, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    flat = nbrs.ravel()
    ok = flat >= 0
    A = sparse.csr_matrix((np.ones(int(ok.sum())), (rows[ok], flat[ok])), shape=(n, n))
    A = A.multiply(A.T).tocoo()
    two_m = float(A.nnz)
    if two_m == 0:
        return 0.0
    inside = float(np.sum(lab[A.row] == lab[A.col]))
    deg = np.bincount(A.row, minlength=n).astype(np.float64)
    tot = np.bincount(lab, weights=deg, minlength=int(lab.max()) + 1)
    return inside / two_m - float(np.sum((tot / two_m) ** 2))
