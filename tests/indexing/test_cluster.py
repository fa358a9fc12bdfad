"""Tests for the grouping engine (indexing.cluster): recovery, determinism, edge cases, stats."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from indexing import cluster_methods, cluster_steps
from indexing.cluster import (
    InvalidEmbeddings,
    cluster_embeddings,
    default_n_groups,
    group_statistics,
    split_group,
)
from indexing.progress import Cancelled, CancelToken


def blobs(n_blobs=8, per=60, d=32, spread=0.15, seed=0):
    """Well-separated clusters on the sphere: random unit centres plus small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_blobs, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_blobs), per)
    X = centres[y] + spread * rng.standard_normal((y.size, d)).astype(np.float32) / np.sqrt(d)
    perm = rng.permutation(y.size)
    return X[perm].astype(np.float32), y[perm].astype(np.int32)


def test_default_n_groups_bounds():
    assert default_n_groups(0) == 0
    assert default_n_groups(1) == 1
    assert default_n_groups(7) == 7  # never more than n
    assert default_n_groups(100) == 10  # at least 10
    assert default_n_groups(30_000) == 100  # about n / 300
    assert default_n_groups(1_000_000) == 3333
    assert default_n_groups(10_000_000) == 5000  # at most 5000


def test_planted_clusters_recovered():
    X, y = blobs()
    r = cluster_embeddings(X, 8, seed=0)
    assert r.n_groups == 8
    assert r.labels.dtype == np.int32 and r.labels.shape == (X.shape[0],)
    assert adjusted_rand_score(y, r.labels) > 0.9
    assert r.centroids.shape == (8, X.shape[1]) and r.centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(r.centroids, axis=1), 1.0, rtol=1e-5)
    assert r.method == "graph" and r.params["method"] == "graph"
    assert r.params["seed"] == 0 and "total" in r.params["timings"]


def test_result_statistics_are_consistent():
    X, _ = blobs(n_blobs=5, per=40)
    r = cluster_embeddings(X, 5, seed=1, n_repr=4)
    s = r.stats
    assert s.size.dtype == np.int64 and s.size.sum() == X.shape[0]
    np.testing.assert_array_equal(s.size, np.bincount(r.labels, minlength=r.n_groups))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    for g in range(r.n_groups):
        members = np.flatnonzero(r.labels == g)
        cos = Xn[members] @ r.centroids[g]
        assert s.cohesion[g] == pytest.approx(cos.mean(), abs=1e-5)
        rep, bnd = s.representatives[g], s.boundary[g]
        assert len(rep) == len(bnd) == 4
        assert set(rep) <= set(members) and set(bnd) <= set(members)
        # Representatives are the nearest members, best first; boundary the farthest, worst first.
        rep_cos, bnd_cos = Xn[rep] @ r.centroids[g], Xn[bnd] @ r.centroids[g]
        assert np.all(np.diff(rep_cos) <= 1e-6) and np.all(np.diff(bnd_cos) >= -1e-6)
        assert rep_cos[0] == pytest.approx(cos.max(), abs=1e-5)
        assert bnd_cos[0] == pytest.approx(cos.min(), abs=1e-5)
    assert r.topics.shape == (r.n_groups,) and r.topics.dtype == np.int32
    assert r.topics.min() == 0 and r.topics.max() == r.topic_centroids.shape[0] - 1
    np.testing.assert_allclose(np.linalg.norm(r.topic_centroids, axis=1), 1.0, rtol=1e-5)


def test_same_seed_same_result():
    X, _ = blobs(n_blobs=12, per=50, spread=0.6, seed=3)
    a = cluster_embeddings(X, 10, seed=7)
    b = cluster_embeddings(X, 10, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.stats.impurity, b.stats.impurity)


def test_fewer_items_than_groups():
    X, _ = blobs(n_blobs=5, per=1)
    r = cluster_embeddings(X, 20)
    assert 1 <= r.n_groups <= 5
    assert set(np.unique(r.labels)) == set(range(r.n_groups))
    assert np.all(np.isfinite(r.centroids))


def test_one_item():
    x = np.array([[3.0, 4.0, 0.0]], dtype=np.float32)
    r = cluster_embeddings(x)
    assert r.n_groups == 1
    np.testing.assert_array_equal(r.labels, [0])
    np.testing.assert_allclose(r.centroids[0], [0.6, 0.8, 0.0], rtol=1e-6)
    assert r.stats.size.tolist() == [1]
    assert r.stats.representatives[0].tolist() == [0]


def test_identical_vectors():
    X = np.tile(np.array([[0.2, -0.5, 1.0, 0.3]], dtype=np.float32), (50, 1))
    r = cluster_embeddings(X, 5)
    assert 1 <= r.n_groups <= 5
    assert np.all(np.isfinite(r.centroids)) and np.all(np.isfinite(r.stats.cohesion))
    assert np.all(r.stats.size > 0)  # empty groups are dropped, not reported
    assert r.stats.cohesion == pytest.approx(1.0, abs=1e-5)
    assert np.all(r.stats.impurity == 0)


@pytest.mark.parametrize(
    "bad, reason", [(np.nan, "not finite"), (np.inf, "not finite"), (0.0, "zero")]
)
def test_bad_rows_named(bad, reason):
    X, _ = blobs(n_blobs=3, per=20)
    X[7] = bad if bad == 0.0 else X[7]
    if bad != 0.0:
        X[7, 3] = bad
    X[12] = X[7]
    with pytest.raises(ValueError, match=r"rows 7, 12") as info:
        cluster_embeddings(X, 3)
    assert isinstance(info.value, InvalidEmbeddings)
    assert info.value.reason == reason
    assert info.value.rows.tolist() == [7, 12]


def test_bad_rows_found_past_the_first_chunk(monkeypatch):
    monkeypatch.setattr(cluster_steps, "CHUNK_ROWS", 16)
    X, _ = blobs(n_blobs=3, per=20)
    X[50] = 0.0
    with pytest.raises(InvalidEmbeddings, match="rows 50"):
        cluster_embeddings(X, 3)


def test_empty_and_misshapen_input():
    with pytest.raises(ValueError, match="0 rows"):
        cluster_embeddings(np.zeros((0, 8), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        cluster_embeddings(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="unknown clustering method"):
        cluster_embeddings(blobs()[0], 4, method="spectral")


def test_cancel_after_first_progress_event(monkeypatch):
    monkeypatch.setattr(cluster_steps, "CHUNK_ROWS", 32)  # several chunks, so a check comes after
    X, _ = blobs()
    token = CancelToken()
    events = []

    def progress(event):
        events.append(event)
        token.cancel()

    with pytest.raises(Cancelled):
        cluster_embeddings(X, 8, progress=progress, cancel=token)
    assert len(events) >= 1


def test_progress_reports_stages_and_chunks(monkeypatch):
    monkeypatch.setattr(cluster_steps, "CHUNK_ROWS", 100)
    X, _ = blobs()  # 480 rows: 5 chunks
    events = []
    cluster_embeddings(X, 8, method="kmeans", progress=events.append)
    stages = [e.stage for e in events]
    for stage in ("train", "assign", "centroids", "statistics", "topics"):
        assert stage in stages
    assigned = [e.done for e in events if e.stage == "assign"]
    assert assigned == [100, 200, 300, 400, 480]
    assert all(e.total == 480 for e in events if e.stage == "assign")


def _mixed_groups(seed=0, d=48):
    """10 pure groups (anisotropic blobs) and one group holding two distinct blobs."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for g in range(12):
        c = rng.standard_normal(d)
        c /= np.linalg.norm(c)
        axes = rng.standard_normal((4, d)) / np.sqrt(d)
        pts = (
            c
            + 0.5 * rng.standard_normal((80, 4)) @ axes
            + 0.08 * rng.standard_normal((80, d)) / np.sqrt(d)
        )
        rows.append(pts)
        labels.append(np.full(80, min(g, 10)))  # blobs 10 and 11 share group 10
    X = np.concatenate(rows).astype(np.float32)
    return X, np.concatenate(labels).astype(np.int32)


def test_impurity_ranks_planted_mixed_group_first():
    X, labels = _mixed_groups()
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    centroids = np.stack([Xn[labels == g].mean(0) for g in range(11)])
    stats = group_statistics(X, labels, centroids)
    assert int(np.argmax(stats.impurity)) == 10
    assert stats.impurity[10] > 1.5 * np.sort(stats.impurity)[-2]
    assert np.all((stats.impurity >= 0) & (stats.impurity <= 1))


def test_split_group_separates_two_modes():
    X, labels = _mixed_groups(seed=1)
    mixed = X[labels == 10]
    truth = np.repeat([0, 1], 80)
    sub = split_group(mixed, 2, seed=0)
    assert sub.dtype == np.int32 and set(sub) == {0, 1}
    assert adjusted_rand_score(truth, sub) == pytest.approx(1.0)
    np.testing.assert_array_equal(sub, split_group(mixed, 2, seed=0))
    assert split_group(mixed[:3], 10).max() <= 2  # k clipped to the rows
    np.testing.assert_array_equal(split_group(mixed[:5], 1), 0)


def test_pca_reduction_keeps_planted_clusters():
    X, y = blobs(n_blobs=6, per=50, d=64)
    r = cluster_embeddings(X, 6, pca_dim=16)
    assert r.params["pca_dim"] == 16
    assert r.centroids.shape[1] == 64  # reported in the original space
    assert adjusted_rand_score(y, r.labels) > 0.9


def test_float16_and_memmap_input(tmp_path):
    X, y = blobs()
    path = tmp_path / "emb.npy"
    np.save(path, X.astype(np.float16))
    mm = np.load(path, mmap_mode="r")
    assert isinstance(mm, np.memmap) and mm.dtype == np.float16
    r = cluster_embeddings(mm, 8)
    assert adjusted_rand_score(y, r.labels) > 0.9
    assert r.centroids.dtype == np.float32


def _near_blobs_and_strays(n_blobs, per, d, n_strays, seed=0):
    """Blobs around one shared direction (so they merge late) and isolated stray rows."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(d)
    centres = base + 0.6 * rng.standard_normal((n_blobs, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_blobs), per)
    X = centres[y] + 0.1 * rng.standard_normal((y.size, d)) / np.sqrt(d)
    strays = rng.standard_normal((n_strays, d))
    return np.concatenate([X, strays]).astype(np.float32), y.astype(np.int32)


def test_hdbscan_small_set_without_umap_marks_noise():
    X, y = _near_blobs_and_strays(2, 15, 16, 3)
    r = cluster_embeddings(X, 2, method="hdbscan")
    assert r.method == "hdbscan" and r.params["umap"] is None
    assert r.n_groups == 2
    np.testing.assert_array_equal(r.labels[-3:], -1)
    assert adjusted_rand_score(y, r.labels[:-3]) == pytest.approx(1.0)
    assert r.stats.size.sum() == np.sum(r.labels >= 0)


@pytest.mark.slow
def test_hdbscan_marks_noise():
    X, y = _near_blobs_and_strays(4, 60, 32, 12)
    r = cluster_embeddings(X, 4, method="hdbscan", seed=0)
    assert r.params["umap"] is not None
    assert r.n_groups == 4 and r.centroids.shape == (4, 32)
    np.testing.assert_array_equal(r.labels[-12:], -1)  # the strays are noise
    core = r.labels[:-12]
    assert np.all(core >= 0)
    assert adjusted_rand_score(y, core) == pytest.approx(1.0)
    assert np.all(np.isfinite(r.centroids))


def test_hdbscan_refuses_large_inputs(monkeypatch):
    monkeypatch.setattr(cluster_methods, "HDBSCAN_MAX_ROWS", 100)
    X, _ = blobs()
    with pytest.raises(ValueError, match="at most 100 items"):
        cluster_embeddings(X, 8, method="hdbscan")
