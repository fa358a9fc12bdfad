"""Tests for the row-neighbour steps of graph-merge grouping (indexing.graph_knn)."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.graph_knn import (
    knn_graph,
    knn_rows,
    outlying_rows,
    partition_modularity,
    share_linkage,
    vote,
    vote_groups,
)


def unit(A):
    A = np.asarray(A, dtype=np.float32)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def test_knn_rows_match_exact_search_and_leave_the_row_out():
    rng = np.random.default_rng(0)
    Z = unit(rng.standard_normal((400, 8)))
    centroids = unit(Z[:20])  # every row's own list is searched: 20 lists, probe 16
    order = np.argsort(rng.random(400))
    nbrs = knn_rows(Z, centroids, order, k=5)
    sims = Z @ Z.T
    np.fill_diagonal(sims, -np.inf)
    exact = np.argsort(-sims, axis=1)[:, :5]
    assert not np.any(nbrs == np.arange(400)[:, None])
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(nbrs, exact)])
    assert recall > 0.9


def test_knn_rows_do_not_depend_on_row_order():
    rng = np.random.default_rng(1)
    Z = unit(rng.standard_normal((300, 6)))
    centroids = unit(Z[::15])
    keys = rng.permutation(300)  # any order-free key: the same for a row wherever it sits
    a = knn_rows(Z, centroids, np.argsort(keys), k=4)
    perm = rng.permutation(300)
    inv = np.argsort(perm)
    b = knn_rows(Z[perm], centroids, np.argsort(keys[perm]), k=4)
    # Row perm[i] of the first run is row i of the second; neighbour ids map through inv.
    np.testing.assert_array_equal(inv[a[perm]], b)


def test_mutual_graph_drops_a_one_sided_bridge():
    # Micro-clusters 0 and 1 are dense; row 6 (in micro 2) points at them, nobody points back.
    first = np.array([0, 0, 0, 1, 1, 1, 2])
    nbrs = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4], [0, 3]])
    S, W, size = knn_graph(first, nbrs, 3)
    assert W.nnz == 0 and S.nnz == 0  # no mutual pair crosses a micro-cluster boundary
    nbrs[0] = [1, 3]
    nbrs[3] = [4, 0]  # rows 0 and 3 now pick each other: one mutual pair links 0 and 1
    S, W, size = knn_graph(first, nbrs, 3)
    assert W[0, 1] == W[1, 0] == 1 and W[0, 2] == 0
    np.testing.assert_allclose(S[0, 1], 1 / 3)
    np.testing.assert_array_equal(size, [3, 3, 1])


def test_share_linkage_gathers_a_big_class_before_joining_small_siblings():
    from scipy import sparse

    from indexing.graph_merge import average_linkage

    # Micro-cluster 0 holds 300 rows of a big class, 1 a 25-row fragment of it (10 links);
    # 2 and 3 are two small sibling classes of 25 rows that touch by 6 links.
    W = np.zeros((4, 4))
    for a, b, w in [(0, 1, 10), (2, 3, 6), (1, 2, 1)]:
        W[a, b] = W[b, a] = w
    mass = np.array([300, 25, 25, 25], dtype=float)
    merges = share_linkage(sparse.csr_matrix(W), np.arange(4), mass)
    assert {merges[0][0], merges[0][1]} == {0, 1}  # 10/25 of the fragment's rows' links
    # Average linkage over the size-normalised graph joins the siblings first (6/25 against
    # 10/sqrt(300*25)): that is the error this linkage removes.
    scale = np.sqrt(np.outer(mass, mass))
    avg = average_linkage(sparse.csr_matrix(W / scale), np.arange(4))
    assert {avg[0][0], avg[0][1]} == {2, 3}


def test_vote_moves_a_straddling_row_and_keeps_a_stray_in_noise():
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 2])
    # Row 6 is labelled 0 but all its neighbours are in group 1; row 7 (noise, group 2) has
    # group-0 rows as nearest neighbours but none of them has it as a neighbour.
    nbrs = np.array(
        [[1, 2], [0, 2], [0, 1], [4, 5], [3, 6], [3, 4], [3, 4], [0, 1]]
    )
    out = vote(labels, nbrs, stay=[2])
    assert out[6] == 1
    assert out[7] == 2
    np.testing.assert_array_equal(out[:6], labels[:6])
    # Without the noise rule the stray would follow its one-sided neighbours.
    assert vote(labels, nbrs)[7] == 0


def _edge_row_and_stray(seed=0):
    """A loose group, one row on its far edge, and a stray far from a tight group."""
    rng = np.random.default_rng(seed)
    d = 16
    a, b = np.eye(d)[0], np.eye(d)[1]
    loose = a + 0.25 * rng.standard_normal((40, d)) / np.sqrt(d)
    tight = b + 0.02 * rng.standard_normal((40, d)) / np.sqrt(d)
    edge = a + 0.6 * rng.standard_normal((1, d)) / np.sqrt(d)  # atypical, still near a
    stray = 0.7 * b + 0.7 * np.eye(d)[2]  # 45 degrees off the tight group
    Z = unit(np.concatenate([loose, tight, edge, stray[None]]))
    labels = np.array([0] * 40 + [1] * 40 + [2, 2])  # 2 = noise
    return Z, labels


def test_outlying_rows_flags_a_stray_but_not_an_atypical_member():
    Z, _ = _edge_row_and_stray()
    nbrs = knn_rows(Z, Z[[0, 40]], np.arange(Z.shape[0]), k=5)
    far = outlying_rows(Z, nbrs)
    assert far.dtype == bool and far.shape == (Z.shape[0],)
    assert far[81] and not far[80]
    assert not far[:80].any()  # no member of either group is an outlier


def test_vote_lets_a_non_outlying_noise_row_join_and_keeps_the_stray():
    Z, labels = _edge_row_and_stray()
    nbrs = knn_rows(Z, Z[[0, 40]], np.arange(Z.shape[0]), k=5)
    out = vote(labels, nbrs, stay=[2], outlying=outlying_rows(Z, nbrs))
    assert out[80] == 0  # the atypical member joined the group its neighbours are in
    assert out[81] == 2  # the stray stayed in noise
    # With every noise row counting mutual neighbours only, the edge row stays in noise too.
    assert vote(labels, nbrs, stay=[2])[80] == 2
    np.testing.assert_array_equal(out[:80], labels[:80])


def test_vote_groups_sends_emptied_groups_to_noise_and_renumbers():
    labels = np.array([0] * 6 + [1] * 6 + [2, 3])  # 3 = noise
    nbrs = np.array([[1, 2]] * 6 + [[7, 8]] * 6 + [[0, 1], [0, 12]])
    out, low = vote_groups(labels, [3], nbrs, min_rows=2)
    assert out.max() + 1 == len(np.unique(out))  # no gaps in the numbering
    assert out[12] == out[0]  # row 12 joined group 0 (both its neighbours are there)
    assert low == [int(out[13])]  # the noise group kept its stray and is still flagged


def test_partition_modularity_is_highest_along_the_dense_groups():
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((3, 16)))
    y = np.repeat(np.arange(3), 60)
    Z = unit(centres[y] + 0.1 * rng.standard_normal((180, 16)))
    nbrs = knn_rows(Z, Z[::6], np.arange(180), k=8)
    right = partition_modularity(y, nbrs)
    two_joined = partition_modularity(np.minimum(y, 1), nbrs)
    shuffled = partition_modularity(rng.permutation(y), nbrs)
    assert right > two_joined > shuffled
    assert right == pytest.approx(2 / 3, abs=0.05)  # three equal groups, no link across
