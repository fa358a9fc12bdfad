"""Tests for indexing.dedup: exact / near duplicate groups, keeper rules and outlier scores."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.dedup import (
    choose_keeper,
    exact_duplicate_groups,
    near_duplicate_groups,
    outlier_scores,
    rank_outliers,
)
from indexing.progress import Cancelled, CancelToken


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _as_lists(groups):
    return [g.tolist() for g in groups]


def _near_copy(x, rng, noise=0.01):
    return _unit(x[None] + noise * rng.standard_normal((1, x.size)))[0]


def test_exact_groups_from_hashes():
    hashes = ["a", None, "b", "a", "", "b", "c", "a", None]
    groups = exact_duplicate_groups(hashes)
    assert _as_lists(groups) == [[0, 3, 7], [2, 5]]
    assert all(g.dtype == np.int64 for g in groups)
    assert exact_duplicate_groups([]) == [] and exact_duplicate_groups([None, None]) == []


def test_random_data_has_no_near_duplicates():
    X = _unit(np.random.default_rng(0).standard_normal((2000, 64)))
    assert near_duplicate_groups(X, threshold=0.95) == []


def test_planted_near_duplicates_are_found_exactly():
    rng = np.random.default_rng(1)
    X = _unit(rng.standard_normal((3000, 64)))
    X[10] = _near_copy(X[2500], rng)
    X[20] = _near_copy(X[1200], rng)
    X[30] = X[1200]                       # bitwise copy joins the same group
    X[40] = _near_copy(X[41], rng, 0.005)  # a chain 40 ~ 41 ~ 42
    X[42] = _near_copy(X[41], rng, 0.005)
    groups = near_duplicate_groups(X, threshold=0.95)
    assert _as_lists(groups) == [[10, 2500], [20, 30, 1200], [40, 41, 42]]
    assert _as_lists(near_duplicate_groups(X, threshold=0.95)) == _as_lists(groups)  # determinism


def test_threshold_is_inclusive_and_respected():
    a = np.array([1.0, 0.0], np.float32)
    b = np.array([0.8, 0.6], np.float32)  # cosine 0.8 with a
    c = np.array([0.0, 1.0], np.float32)
    X = np.stack([a, b, c])
    assert _as_lists(near_duplicate_groups(X, threshold=0.8)) == [[0, 1]]
    assert near_duplicate_groups(X, threshold=0.81) == []
    assert _as_lists(near_duplicate_groups(X, threshold=0.5)) == [[0, 1, 2]]  # b~c chains


def _clustered(rng, n_groups=12, per=150, d=48, spread=1.8):
    centres = _unit(rng.standard_normal((n_groups, d)))
    labels = np.repeat(np.arange(n_groups), per)
    X = _unit(centres[labels] + spread * rng.standard_normal((labels.size, d)) / np.sqrt(d))
    return X, labels, centres


def test_grouped_search_finds_duplicates_within_and_across_neighbour_groups():
    rng = np.random.default_rng(2)
    X, labels, _ = _clustered(rng)
    # Within a group.
    X[5] = _near_copy(X[100], rng)
    # Across groups: row 400 (group 2) gets a copy of row 0 (group 0) but keeps label 2.
    X[400] = _near_copy(X[0], rng)
    # An unclustered row (-1) that duplicates a row of group 7.
    X[1100] = _near_copy(X[1060], rng)
    labels = labels.copy()
    labels[1100] = -1
    full = _as_lists(near_duplicate_groups(X, threshold=0.95))
    assert [5, 100] in full and [0, 400] in full and [1060, 1100] in full

    alone = _as_lists(near_duplicate_groups(X, 0.95, group_labels=labels, neighbour_groups=0))
    assert [5, 100] in alone and [1060, 1100] in alone
    assert [0, 400] not in alone  # groups 0 and 2 are never compared

    # With every other group as a neighbour the grouped search equals the global one.
    every = near_duplicate_groups(X, 0.95, group_labels=labels, neighbour_groups=11)
    assert _as_lists(every) == full

    # Given centroids (here the true centres) work like computed ones.
    _, _, centres = _clustered(np.random.default_rng(2))
    given = near_duplicate_groups(X, 0.95, group_labels=labels, centroids=centres,
                                  neighbour_groups=0)
    assert [5, 100] in _as_lists(given) and [0, 400] not in _as_lists(given)


def test_near_duplicates_progress_and_cancel():
    X = _unit(np.random.default_rng(3).standard_normal((300, 16)))
    labels = np.arange(300) % 5
    events = []
    near_duplicate_groups(X, group_labels=labels, progress=events.append)
    assert events[-1].stage == "duplicates" and events[-1].done == events[-1].total == 5
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        near_duplicate_groups(X, cancel=token)
    with pytest.raises(ValueError, match="group_labels"):
        near_duplicate_groups(X, group_labels=np.zeros(5, int))
    assert near_duplicate_groups(X[:1]) == []


def test_keeper_rules():
    meta = [
        {"path": "/a/x.jpg", "width": 100, "height": 100, "duration": 3.0, "mtime": 50, "size": 10},
        {"path": "/b/y.jpg", "width": 200, "height": 150, "duration": 1.0, "mtime": 10, "size": 5},
        {"path": "/c/z.jpg", "width": 50, "height": 50, "duration": 9.0, "mtime": 30, "size": 7,
         "source": "camera"},
    ]
    rows = [7, 3, 9]
    assert choose_keeper(rows, meta, "resolution") == 3
    assert choose_keeper(rows, meta, "longest") == 9
    assert choose_keeper(rows, meta, "oldest") == 3
    assert choose_keeper(rows, meta, "source", preferred_source="camera") == 9
    assert choose_keeper(rows, meta, "source", preferred_source="/a") == 7  # folder prefix
    # Keyed by row works the same.
    assert choose_keeper(rows, dict(zip(rows, meta)), "longest") == 9


def test_keeper_ties_break_by_size_then_path_and_missing_values_rank_last():
    meta = [
        {"path": "/z.png", "width": 10, "height": 10, "size": 100},
        {"path": "/b.png", "width": 10, "height": 10, "size": 300},
        {"path": "/a.png", "width": 10, "height": 10, "size": 300},
        {"path": "/0.png", "size": 999},  # no resolution known
    ]
    assert choose_keeper([0, 1, 2, 3], meta, "resolution") == 2
    assert choose_keeper([0, 1, 2, 3], meta, "oldest") == 3  # no mtime anywhere: largest file
    with pytest.raises(ValueError, match="unknown keeper rule"):
        choose_keeper([0], meta[:1], "newest")
    with pytest.raises(ValueError, match="preferred_source"):
        choose_keeper([0], meta[:1], "source")
    with pytest.raises(ValueError):
        choose_keeper([], [], "resolution")
    with pytest.raises(ValueError, match="metadata"):
        choose_keeper([0, 1], meta[:1], "resolution")


def test_outliers_rank_planted_far_points_first():
    rng = np.random.default_rng(4)
    X, labels, centres = _clustered(rng, n_groups=8, per=100, d=32, spread=0.6)
    far = np.array([17, 333, 650])
    X[far] = _unit(rng.standard_normal((3, 32)))  # random directions: far from every centre
    scores = outlier_scores(X, centres)
    assert scores.shape == (800,) and scores.dtype == np.float32
    assert set(rank_outliers(scores, top=3).tolist()) == set(far.tolist())
    ranked = rank_outliers(scores, top=None)
    assert ranked.size == 800 and np.all(np.diff(scores[ranked]) <= 0)

    # With labels, a member moved onto another group's centre is an outlier of its own group
    # though it sits right on a centroid.
    X2 = X.copy()
    X2[120] = centres[5]  # row 120 is labelled group 1
    plain = outlier_scores(X2, centres)
    own = outlier_scores(X2, centres, labels)
    assert plain[120] < 1e-5
    assert rank_outliers(own, top=4).tolist().count(120) == 1
    with pytest.raises(ValueError, match="centroid"):
        outlier_scores(X, centres, np.full(800, 99))


def test_rank_outliers_ties_and_nan():
    scores = np.array([0.5, np.nan, 0.9, 0.5, 0.1])
    assert rank_outliers(scores, top=None).tolist() == [2, 0, 3, 4]
    assert rank_outliers(scores, top=2).tolist() == [2, 0]
