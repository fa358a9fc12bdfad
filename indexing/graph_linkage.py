"""Dendrograms over a sparse similarity graph of micro-clusters, and where to cut them.

`average_linkage` merges the two groups whose members are most similar on average (UPGMA);
`modularity_path` scores every cut of a merge sequence by the graph's modularity, so the group
count can come from the data; `cut` and `step_for` turn a merge sequence into group roots at a
wanted count or size. Used by `indexing/graph_merge.py` (and `share_linkage` in
`indexing/graph_knn.py` produces merges in the same form).
"""

from __future__ import annotations

import heapq

import numpy as np


def average_linkage(S, nodes):
    """Average linkage (UPGMA) over a sparse similarity graph; pairs without an edge count 0.

    Args:
        S: (M, M) symmetric scipy sparse similarity between micro-clusters.
        nodes: the micro-cluster ids taking part (others are ignored).

    Returns:
        merges: list of (a, b, similarity) in merge order; a survives, b joins it. Ties break
        on the smaller ids, so the order follows from S alone. Components that never touch
        are not merged.
    """
    return greedy_linkage(S, nodes, {int(v): 1.0 for v in nodes}, _per_pair)


def _per_pair(links: float, size_a: float, size_b: float) -> float:
    return links / (size_a * size_b)


def greedy_linkage(S, nodes, size, score):
    """Join, again and again, the two groups with the highest `score(links, size_a, size_b)`,
    where links sums S over the pairs between them and a group's size is the sum of its
    members' `size`; only groups joined by an edge are candidates.

    Returns:
        merges: (a, b, score) in merge order; a survives. Ties break on the smaller ids.
    """
    keep = np.zeros(S.shape[0], dtype=bool)
    keep[nodes] = True
    coo = S.tocoo()
    sel = keep[coo.row] & keep[coo.col] & (coo.row != coo.col)
    adj: dict[int, dict[int, float]] = {int(v): {} for v in nodes}
    for r, c, v in zip(coo.row[sel].tolist(), coo.col[sel].tolist(), coo.data[sel].tolist()):
        adj[r][c] = v
    size = dict(size)
    heap = [(-score(v, size[r], size[c]), r, c) for r, nb in adj.items() for c, v in nb.items()
            if r < c]
    heapq.heapify(heap)
    merges = []
    while heap:
        neg, a, b = heapq.heappop(heap)
        if a not in adj or b not in adj[a]:
            continue  # a stale entry: one side was merged since
        if -neg != score(adj[a][b], size[a], size[b]):
            continue  # stale: the pair's score changed (a fresh entry is queued)
        if len(adj[a]) < len(adj[b]):
            a, b = b, a  # fold the smaller neighbourhood into the larger
        merges.append((a, b, -neg))
        nb_b = adj.pop(b)
        nb_a = adj[a]
        del nb_a[b]
        del nb_b[a]
        for c, v in nb_b.items():
            nb_c = adj[c]
            del nb_c[b]
            nb_a[c] = nb_a.get(c, 0.0) + v
            nb_c[a] = nb_a[c]
        size[a] += size.pop(b)
        sa = size[a]
        for c, v in nb_a.items():
            x, y = (a, c) if a < c else (c, a)
            heapq.heappush(heap, (-score(v, sa, size[c]), x, y))
    return merges


def modularity_path(S, nodes, merges, resolution):
    """Modularity of the partition after each merge (index i = after i merges)."""
    keep = np.zeros(S.shape[0], dtype=bool)
    keep[nodes] = True
    coo = S.tocoo()
    sel = keep[coo.row] & keep[coo.col] & (coo.row != coo.col)
    deg = np.bincount(coo.row[sel], weights=coo.data[sel], minlength=S.shape[0])
    two_m = float(deg.sum())
    if two_m <= 0:
        return np.zeros(len(merges) + 1)
    # The edge weight between two current groups is needed at each merge: keep the group of
    # every node and sum edges between groups lazily through a dict of dicts.
    edges: dict[int, dict[int, float]] = {int(v): {} for v in nodes}
    for r, c, v in zip(coo.row[sel].tolist(), coo.col[sel].tolist(), coo.data[sel].tolist()):
        edges[r][c] = v
    tot = {int(v): float(deg[v]) for v in nodes}
    q = [-resolution * sum((t / two_m) ** 2 for t in tot.values())]
    for a, b, _ in merges:
        w_ab = edges[a].get(b, 0.0)
        q.append(q[-1] + 2 * w_ab / two_m - 2 * resolution * tot[a] * tot[b] / two_m**2)
        nb_b = edges.pop(b)
        nb_a = edges[a]
        nb_a.pop(b, None)
        nb_b.pop(a, None)
        for c, v in nb_b.items():
            nb_c = edges[c]
            nb_c.pop(b, None)
            nb_a[c] = nb_a.get(c, 0.0) + v
            nb_c[a] = nb_a[c]
        tot[a] += tot.pop(b)
    return np.asarray(q)


def cut(merges, nodes, steps):
    """Micro-cluster -> root id after the first `steps` merges (union-find replay)."""
    parent = {int(v): int(v) for v in nodes}

    def find(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for a, b, _ in merges[:steps]:
        parent[find(b)] = find(a)
    return {v: find(v) for v in parent}


def step_for(merges, nodes, size, target, min_rows, fragment_rows=0):
    """The fewest merges after which at most `target` groups hold >= min_rows rows each, and
    no later cut holds more.

    Smaller groups are left to the noise group, so the decisions go to groups worth one.
    A group that is still one micro-cluster and holds fewer than `fragment_rows` rows does
    not count either (a fragment the linkage never joined; it is folded in afterwards).
    Counted that way, the first cuts can hold few groups worth a decision (most micro-clusters
    are fragments when they are small), so the cut is found from the coarse end: one merge
    after the last cut that holds more than `target`.
    """
    rows = {int(v): float(size[v]) for v in nodes}
    single = {int(v) for v in nodes}

    def worth(v):
        return rows[v] >= min_rows and not (v in single and rows[v] < fragment_rows)

    big = sum(1 for v in rows if worth(v))
    counts = [big]
    for a, b, _ in merges:
        big -= worth(a) + worth(b)
        rows[a] += rows.pop(b)
        single.discard(a)
        single.discard(b)
        big += worth(a)
        counts.append(big)
    counts = np.asarray(counts)
    over = np.flatnonzero(counts > target)
    if over.size:
        return int(over[-1]) + 1
    return int(np.argmax(counts))

