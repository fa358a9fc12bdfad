"""Tests for indexing.map2d: UMAP on a sample, the rest placed among their sample neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from indexing import map2d
from indexing.map2d import compute_map
from indexing.progress import Cancelled, CancelToken


def _clusters(n_per: int, n_clusters: int, d: int, seed: int, spread: float = 0.15):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d))
    labels = np.repeat(np.arange(n_clusters), n_per)
    X = centres[labels] + spread * rng.standard_normal((labels.size, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    order = rng.permutation(labels.size)
    return X[order].astype(np.float32), labels[order]


def _nearest_label_agreement(coords, labels, queries, pool):
    d = ((coords[queries, None, :] - coords[None, pool, :]) ** 2).sum(-1)
    d[queries[:, None] == pool[None, :]] = np.inf
    return float(np.mean(labels[pool][d.argmin(axis=1)] == labels[queries]))


@pytest.fixture(scope="module")
def clustered_map():
    X, labels = _clusters(60, 4, 24, seed=0)
    result = compute_map(X, sample_size=120, seed=3, n_neighbors=10, n_epochs=100)
    return X, labels, result


def test_map_shape_range_and_sample(clustered_map):
    _, _, result = clustered_map
    assert result.coords.shape == (240, 2) and result.coords.dtype == np.float32
    assert np.isfinite(result.coords).all()
    assert result.coords.min() >= -1.0 and result.coords.max() <= 1.0
    assert np.isclose(np.abs(result.coords).max(), 1.0)  # fills the box along its long side
    assert result.sample_idx.size == 120
    assert np.all(np.diff(result.sample_idx) > 0) and result.sample_idx.max() < 240
    assert result.params["method"] == "umap" and result.params["sample_size"] == 120


def test_planted_clusters_stay_together_for_sampled_and_placed_points(clustered_map):
    X, labels, result = clustered_map
    coords = result.coords
    sample = result.sample_idx
    placed = np.setdiff1d(np.arange(len(X)), sample)
    assert placed.size == 120
    # Each placed point lands next to sample points of its own cluster...
    assert _nearest_label_agreement(coords, labels, placed, sample) >= 0.95
    # ...and sampled points sit with their own cluster too.
    assert _nearest_label_agreement(coords, labels, sample, sample) >= 0.95
    # Clusters are separate blobs: within-cluster spread well below between-centre distances.
    centres = np.stack([coords[labels == c].mean(axis=0) for c in range(4)])
    spread = max(np.linalg.norm(coords[labels == c] - centres[c], axis=1).mean() for c in range(4))
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(4, 1)]
    assert gaps.min() > 2 * spread


def test_map_is_deterministic_for_a_seed(clustered_map):
    X, _, first = clustered_map
    again = compute_map(X, sample_size=120, seed=3, n_neighbors=10, n_epochs=100)
    np.testing.assert_array_equal(first.coords, again.coords)
    np.testing.assert_array_equal(first.sample_idx, again.sample_idx)


def test_duplicates_do_not_stack_exactly():
    X, _ = _clusters(30, 2, 16, seed=1)
    X = np.vstack([X] + [X[:1]] * 6)  # six extra copies of row 0
    result = compute_map(X, sample_size=25, seed=0, n_neighbors=8, n_epochs=50)
    copies = [r for r in [0] + list(range(60, 66)) if r not in set(result.sample_idx.tolist())]
    assert len(copies) >= 2  # copies that were placed, not fitted by UMAP
    pts = result.coords[copies]
    assert not np.any(np.all(pts[:, None] == pts[None], axis=-1)[np.triu_indices(len(copies), 1)])
    # ...but they sit almost on top of each other.
    assert np.abs(pts - pts.mean(axis=0)).max() < 0.05


def test_ivf_sample_graph_path(monkeypatch):
    monkeypatch.setattr(map2d, "EXACT_GRAPH_MAX", 50)  # force the IVF neighbour index
    X, labels = _clusters(50, 3, 16, seed=2)
    result = compute_map(X, sample_size=100, seed=0, n_neighbors=8, n_epochs=50)
    assert result.params["sample_index_nlist"] > 1
    placed = np.setdiff1d(np.arange(len(X)), result.sample_idx)
    assert _nearest_label_agreement(result.coords, labels, placed, result.sample_idx) >= 0.9


def test_tiny_inputs_use_pca_fallback():
    one = compute_map(np.ones((1, 8), np.float32))
    assert one.coords.shape == (1, 2) and np.isfinite(one.coords).all()
    five = compute_map(np.random.default_rng(0).standard_normal((5, 8)).astype(np.float16))
    assert five.coords.shape == (5, 2) and np.isfinite(five.coords).all()
    assert five.params["method"] == "pca"
    assert len({tuple(p) for p in five.coords.tolist()}) == 5  # distinct points stay distinct
    empty = compute_map(np.zeros((0, 8), np.float32))
    assert empty.coords.shape == (0, 2)


def test_bad_input_and_cancel():
    X = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)
    X[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compute_map(X)
    with pytest.raises(ValueError, match="2-D"):
        compute_map(np.zeros(5))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        compute_map(np.ones((30, 8), np.float32), cancel=token)
