"""The big search of label suggestions through cells: near the exact one on clustered data, the
same suggestions on a small project, exact below its threshold."""

from __future__ import annotations

import numpy as np
import pytest

from bench.suggest import build_project
from bench.synth import make_synthetic
from curator import suggest_search
from curator.project import Project
from curator.suggest import suggest


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    X, _, _ = make_synthetic(n, d, 40, seed=seed, spec="hard")
    return np.ascontiguousarray(X, np.float32)


def test_cells_find_the_exact_neighbours_of_almost_every_query():
    X = _clustered(6000, 32, seed=1)
    Q, items = X[:800], X[800:]
    exact_s, exact_p = suggest_search.exact(Q, items, 20)
    s, p = suggest_search.by_cells(Q, items, 20)
    assert s.shape == p.shape == (800, 20)
    # Best first, and each sim is the real inner product of the position it names.
    assert np.all(np.diff(s, axis=1) <= 0)
    np.testing.assert_allclose(s, np.einsum("qd,qkd->qk", Q, items[p]), atol=1e-5)
    assert np.mean(p[:, 0] == exact_p[:, 0]) >= 0.99
    recall = np.mean([len(np.intersect1d(a[:10], b[:10])) / 10 for a, b in zip(p, exact_p)])
    assert recall >= 0.97
    # Probing every cell is the exact search.
    s_all, p_all = suggest_search.by_cells(Q, items, 20, n_probes=10_000)
    np.testing.assert_array_equal(p_all, exact_p)
    np.testing.assert_allclose(s_all, exact_s, atol=1e-5)
    # Deterministic for a seed.
    np.testing.assert_array_equal(suggest_search.by_cells(Q, items, 20)[1], p)


def test_small_searches_stay_exact_and_pad_missing_neighbours():
    X = _clustered(600, 16, seed=2)
    s, p = suggest_search.search(X[:50], X[50:55], 8)
    assert (p[:, 5:] == -1).all() and np.isneginf(s[:, 5:]).all()
    exact_s, exact_p = suggest_search.exact(X[:50], X[50:], 8)
    np.testing.assert_array_equal(suggest_search.search(X[:50], X[50:], 8)[1], exact_p)


@pytest.fixture
def decided_project(tmp_path):
    X, y, _ = make_synthetic(3000, 32, 8, seed=5, spec="hard")
    build_project(tmp_path / "proj", X, n_groups=60)
    y = np.asarray(y)
    with Project.open(tmp_path / "proj") as proj:
        proj.set_annotator("ana")
        for c in range(8):
            proj.add_label(f"class-{c}")
        # The largest groups first: the labelled items must outnumber the cells' minimum
        # (`64 * MIN_PROBES`) for a search through cells to be possible at all.
        groups = sorted(proj.groups(proj.current_run()), key=lambda g: (-g.size, g.group_id))
        for g in [g.group_id for g in groups][:20]:
            top = np.bincount(np.maximum(y[np.asarray(proj.group(g).items) - 1], 0)).argmax()
            proj.label_group(g, f"class-{top}")
        yield proj


def test_suggestions_through_cells_match_the_exact_ones(decided_project, monkeypatch):
    proj = decided_project
    run = proj.current_run()
    exact = suggest(proj.catalog, run, cache=None)
    calls = []
    cells = suggest_search.by_cells

    def spy(*args, **kwargs):
        calls.append(len(args[0]))
        return cells(*args, **kwargs)

    monkeypatch.setattr(suggest_search, "EXACT_PAIRS", 0)
    monkeypatch.setattr(suggest_search, "by_cells", spy)
    approx = suggest(proj.catalog, run, cache=None)
    labelled = proj.catalog.db.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0]
    assert labelled >= 64 * suggest_search.MIN_PROBES, labelled
    assert calls, "the build did not search through cells"
    assert exact and approx.keys() == exact.keys()
    same = sum(approx[g].label == exact[g].label for g in exact)
    assert same >= 0.95 * len(exact)
    conf = np.array([[approx[g].confidence, exact[g].confidence] for g in exact])
    assert np.abs(conf[:, 0] - conf[:, 1]).mean() < 0.05
