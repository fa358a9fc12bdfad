"""Tests for indexing.vector_index: a FAISS index keyed by catalog ids, on small real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexing.progress import Cancelled, CancelToken
from indexing.vector_index import IndexFileError, IndexInfo, VectorIndex


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, d: int, n_centres: int, seed: int, spread: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, d))
    rows = centres[rng.integers(0, n_centres, n)] + spread * rng.standard_normal((n, d))
    return _unit(rows)


@pytest.fixture
def small():
    rng = np.random.default_rng(1)
    X = _unit(rng.standard_normal((300, 32)))
    ids = 1000 + 7 * np.arange(300, dtype=np.int64)  # catalog ids, never 0..n-1
    ids[1] = 5003
    return ids, X


def test_search_returns_catalog_ids_not_positions(small):
    ids, X = small
    index = VectorIndex.build(ids, X, space="test:v1")
    scores, found = index.search(X[:5], k=3)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    assert found.shape == (5, 3)
    assert list(found[:, 0]) == list(ids[:5])
    assert found[1, 0] == 5003
    assert set(found.ravel()) <= set(ids.tolist())
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert index.info.kind == "flat" and index.info.space == "test:v1" and index.info.count == 300
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


def test_planted_neighbour_is_found(small):
    ids, X = small
    rng = np.random.default_rng(2)
    query = _unit(rng.standard_normal((1, 32)))
    planted = _unit(query + 0.05 * rng.standard_normal((1, 32)))
    index = VectorIndex.build(np.append(ids, 777_777), np.vstack([X, planted]))
    scores, found = index.search(query * 3.0, k=5)  # queries are normalised, scale is irrelevant
    assert found[0, 0] == 777_777
    assert 0.95 < scores[0, 0] <= 1.0 + 1e-5


def test_fewer_than_k_pads_with_minus_one_and_minus_inf(small):
    ids, X = small
    index = VectorIndex.build(ids[:4], X[:4])
    scores, found = index.search(X[0], k=10)
    assert found.shape == (1, 10)
    assert set(found[0, :4]) == set(ids[:4])
    assert np.all(found[0, 4:] == -1) and np.all(np.isneginf(scores[0, 4:]))


def test_nan_query_and_bad_shapes_raise(small):
    ids, X = small
    index = VectorIndex.build(ids, X)
    q = X[:1].copy()
    q[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.search(q)
    with pytest.raises(ValueError, match="shape"):
        index.search(np.ones((1, 5), np.float32))
    with pytest.raises(ValueError, match="duplicates"):
        VectorIndex.build(np.array([1, 1]), X[:2])
    with pytest.raises(ValueError, match="ids for"):
        VectorIndex.build(ids[:3], X[:4])
    bad = X[:2].copy()
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        index.add(np.array([1, 2]), bad)
    assert len(index) == 300


def test_add_upsert_remove_keep_index_consistent(small):
    ids, X = small
    index = VectorIndex.build(ids[:200], X[:200])
    index.add(ids[200:], X[200:].astype(np.float16))
    assert len(index) == 300
    with pytest.raises(ValueError, match="upsert"):
        index.add(ids[:1], X[:1])

    gone = ids[10:20]
    assert index.remove(np.append(gone, 99_999_999)) == 10  # the unknown id is ignored
    assert index.remove(gone) == 0
    assert len(index) == 290 and not any(int(i) in index for i in gone)
    _, found = index.search(X[:40], k=20)
    assert not np.isin(found, gone).any()

    # Re-embed ids[0] at a vector that was someone else's: it must now be found there.
    moved = X[150:151]
    index.upsert(ids[:1], moved)
    assert len(index) == 290
    _, found = index.search(moved, k=2)
    assert set(found[0]) == {ids[0], ids[150]}
    _, found = index.search(X[:1], k=1)
    assert found[0, 0] != ids[0]
    np.testing.assert_allclose(index.reconstruct(ids[:1]), moved, atol=1e-6)

    # upsert of new ids adds them; a bad upsert changes nothing.
    index.upsert(np.array([ids[10]]), X[10:11])
    assert ids[10] in index and len(index) == 291
    with pytest.raises(ValueError):
        index.upsert(ids[:2], X[:2, :5])
    assert ids[0] in index and len(index) == 291


def test_reconstruct_missing_id_raises_keyerror(small):
    ids, X = small
    index = VectorIndex.build(ids, X)
    np.testing.assert_allclose(index.reconstruct(ids[[5, 2]]), X[[5, 2]], atol=1e-6)
    with pytest.raises(KeyError):
        index.reconstruct(np.array([ids[0], 12345678]))


def test_ivf_kind_finds_planted_neighbour_with_high_recall():
    n, d = 20_000, 48
    X = _clustered(n, d, n_centres=60, seed=3)
    ids = 10_000 + 3 * np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(4)
    planted = _unit(X[123:124] + 0.02 * rng.standard_normal((1, d)))
    all_ids = np.append(ids, 1)
    all_X = np.vstack([X, planted])
    index = VectorIndex.build(all_ids, all_X, kind="ivf_fp16")
    info = index.info
    assert info.kind == "ivf_fp16" and info.nlist > 1 and 0 < info.nprobe <= info.nlist
    assert info.trained_on > 0

    _, found = index.search(planted, k=2)
    assert set(found[0]) == {1, ids[123]}

    exact = VectorIndex.build(all_ids, all_X, kind="flat")
    queries = _clustered(200, d, n_centres=60, seed=3)  # same centres (same seed), new rows
    queries = _unit(queries + 0.1 * np.random.default_rng(5).standard_normal(queries.shape))
    _, truth = exact.search(queries, k=10)
    _, approx = index.search(queries, k=10)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approx, truth)])
    assert recall >= 0.9

    # Removal and re-embedding stay consistent in the IVF kind too.
    assert index.remove(ids[:100]) == 100
    _, found = index.search(X[:100], k=5)
    assert not np.isin(found, ids[:100]).any()
    index.upsert(ids[200:201], X[5000:5001])
    _, found = index.search(X[5000:5001], k=2)
    assert ids[200] in found[0]
    assert len(index) == n + 1 - 100


def test_save_load_round_trip_with_sidecar(tmp_path, small):
    ids, X = small
    index = VectorIndex.build(ids, X, space="clip:test")
    index.remove(ids[:3])
    path = tmp_path / "sub" / "vectors.faiss"
    index.save(path)
    side = path.with_suffix(".json")
    assert path.is_file() and side.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["vectors.faiss", "vectors.json"]
    meta = json.loads(side.read_text())
    assert meta["kind"] == "flat" and meta["count"] == 297 and meta["space"] == "clip:test"

    loaded = VectorIndex.load(path, gpu=False)
    assert loaded.info.count == 297 and loaded.info.space == "clip:test"
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    s1, i1 = index.search(X[:10], k=5)
    s2, i2 = loaded.search(X[:10], k=5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    assert IndexInfo.from_json(index.info.to_json()) == index.info


def test_ivf_save_load_keeps_ids_and_removal(tmp_path):
    X = _clustered(3000, 16, 10, seed=6)
    ids = 500 + 2 * np.arange(3000, dtype=np.int64)
    index = VectorIndex.build(ids, X, kind="ivf_flat")
    path = tmp_path / "v.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, gpu=False)
    assert loaded.info.kind == "ivf_flat" and loaded.info.nlist == index.info.nlist
    np.testing.assert_array_equal(loaded.ids(), np.sort(ids))
    assert loaded.remove(ids[:5]) == 5
    np.testing.assert_allclose(loaded.reconstruct(ids[5:7]), X[5:7], atol=1e-6)


def test_missing_or_corrupt_file_gives_clear_error(tmp_path, small):
    with pytest.raises(IndexFileError, match="missing.*rebuild"):
        VectorIndex.load(tmp_path / "nope.faiss")
    bad = tmp_path / "bad.faiss"
    bad.write_bytes(b"this is not a faiss index" * 10)
    with pytest.raises(IndexFileError) as err:
        VectorIndex.load(bad)
    assert "bad.faiss" in str(err.value) and "rebuild" in str(err.value)

    ids, X = small
    good = tmp_path / "good.faiss"
    VectorIndex.build(ids, X).save(good)
    good.write_bytes(good.read_bytes()[:100])  # truncated
    with pytest.raises(IndexFileError, match="good.faiss"):
        VectorIndex.load(good)


def test_stale_or_missing_sidecar_is_repaired_from_the_index(tmp_path, small):
    ids, X = small
    path = tmp_path / "v.faiss"
    VectorIndex.build(ids, X, space="s").save(path)
    path.with_suffix(".json").write_text('{"kind": "flat", "dim": 32, "count": 5, "space": "s"}')
    assert VectorIndex.load(path).info.count == 300
    path.with_suffix(".json").unlink()
    loaded = VectorIndex.load(path)
    assert loaded.info.count == 300 and loaded.info.kind == "flat"


def test_range_search_threshold(small):
    ids, X = small
    index = VectorIndex.build(ids, X)
    threshold = 0.3
    results = index.range_search(X[:6], threshold)
    sims = X[:6] @ X.T
    for q, (found, scores) in enumerate(results):
        expected = set(ids[sims[q] >= threshold].tolist())
        assert set(found.tolist()) == expected
        assert np.all(scores >= threshold) and np.all(np.diff(scores) <= 1e-6)
        assert found[0] == ids[q]


def test_build_cancel_and_progress(small):
    ids, X = small
    events = []
    VectorIndex.build(ids, X, progress=events.append)
    assert events and events[-1].stage == "add" and events[-1].done == 300
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        VectorIndex.build(ids, X, cancel=token)


def test_unknown_kind_and_info_json_errors(small):
    ids, X = small
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex.build(ids, X, kind="hnsw")
    with pytest.raises(ValueError):
        IndexInfo.from_json("{not json")
    with pytest.raises(ValueError, match="kind"):
        IndexInfo.from_json('{"dim": 3}')


# PQ codes are lossy by design (here 8 sub-quantizers of 5 bits), so an item is only sure to be
# among its own top 50; the other kinds find it in their top 5.
@pytest.mark.parametrize(("kind", "k"), [("ivf_flat", 5), ("ivf_fp16", 5), ("ivf_sq8", 5),
                                         ("ivf_pq", 50)])
def test_every_ivf_kind_searches_and_reloads(tmp_path, kind, k):
    X = _clustered(3000, 64, 12, seed=8, spread=0.3)
    ids = 70_000 + np.arange(3000, dtype=np.int64)
    index = VectorIndex.build(ids, X, kind=kind, nprobe=8)
    _, found = index.search(X[:100], k=k)
    assert np.mean(np.any(found == ids[:100, None], axis=1)) >= 0.9
    path = tmp_path / f"{kind}.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, gpu=False)
    assert loaded.info.kind == kind and loaded.info.nprobe == 8 and len(loaded) == 3000
    np.testing.assert_array_equal(loaded.search(X[:5], k=5)[1], index.search(X[:5], k=5)[1])


def test_auto_kind_is_exact_for_small_collections(small):
    ids, X = small
    assert VectorIndex.build(ids, X, kind="auto").info.kind == "flat"
