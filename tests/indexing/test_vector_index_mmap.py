"""Indexes opened memory-mapped for searching (the read path of `curator search`): the flat kind
is mapped too, answers like a loaded copy, refuses changes and outlives its file being replaced."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.vector_index import VectorIndex


def _unit(n, d, seed):
    X = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "ivf_flat"])
def test_mapped_index_searches_like_a_loaded_one_and_refuses_changes(tmp_path, kind):
    X = _unit(2000, 32, 0)
    ids = 10 + 3 * np.arange(len(X), dtype=np.int64)
    path = tmp_path / "index.faiss"
    VectorIndex.build(ids, X, kind=kind).save(path)
    loaded = VectorIndex.load(path, gpu=False)
    mapped = VectorIndex.load(path, gpu=False, mmap=True)
    assert mapped.info.kind == kind and len(mapped) == len(X)
    s1, i1 = loaded.search(X[:20], k=7)
    s2, i2 = mapped.search(X[:20], k=7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    assert i2[0, 0] == ids[0]
    with pytest.raises(ValueError, match="memory-mapped"):
        mapped.add(np.array([1], np.int64), X[:1])
    # A writer replaces the file by rename: the mapped reader keeps answering from the old one.
    VectorIndex.build(ids[:100], X[:100], kind="flat").save(path)
    s3, i3 = mapped.search(X[:20], k=7)
    np.testing.assert_array_equal(i3, i2)
    assert len(VectorIndex.load(path, gpu=False, mmap=True)) == 100
