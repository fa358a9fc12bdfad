"""The warm k-NN state of label suggestions: refreshed with only the changed labels, it gives
the same suggestions as a state built afresh, through decisions, relabels, noise and undo."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.suggest import build_project
from bench.synth import make_synthetic
from curator.project import Project
from curator.suggest import suggest


@pytest.fixture
def vectors_project(tmp_path):
    X, y, _ = make_synthetic(900, 32, 6, seed=3, spec="hard")
    build_project(tmp_path / "proj", X, n_groups=30)
    with Project.open(tmp_path / "proj") as proj:
        proj.set_annotator("ana")
        for c in range(6):
            proj.add_label(f"class-{c}")
        yield proj, np.asarray(y)


def _majority(proj, gid, y):
    top = Counter(y[np.asarray(proj.group(gid).items) - 1].tolist()).most_common(1)[0][0]
    return f"class-{max(top, 0)}"


def _same_as_fresh(proj):
    run = proj.current_run()
    warm = proj.suggestions(run)
    fresh = suggest(proj.catalog, run, cache=None)
    assert warm.keys() == fresh.keys()
    for gid, s in warm.items():
        assert (s.label, s.source) == (fresh[gid].label, fresh[gid].source), gid
        assert s.confidence == pytest.approx(fresh[gid].confidence, abs=1e-3)
        assert s.raw == pytest.approx(fresh[gid].raw, abs=1e-3)
    return warm


def test_refreshed_state_matches_a_fresh_one_through_edits_and_undo(vectors_project):
    proj, y = vectors_project
    run = proj.current_run()
    groups = [g.group_id for g in proj.groups(run)]
    proj.label_group(groups[0], _majority(proj, groups[0], y))
    first = _same_as_fresh(proj)
    assert first and all(s.source == "knn" for s in first.values())
    state = proj.search_cache().suggest_states[(run, "synthetic:suggest")]
    searched = state.n_srch
    for gid in groups[1:6]:
        proj.label_group(gid, _majority(proj, gid, y))
        _same_as_fresh(proj)
    # The same state, grown by the decided items only (every item is searched at this size).
    assert proj.search_cache().suggest_states[(run, "synthetic:suggest")] is state
    assert state.n_srch == searched + sum(len(proj.group(g).items) for g in groups[1:6])
    proj.label_group(groups[2], "class-5" if _majority(proj, groups[2], y) != "class-5"
                     else "class-4")  # relabel: no search, a different vote
    _same_as_fresh(proj)
    proj.label_group(groups[3], action="noise")  # its items leave the labelled set
    _same_as_fresh(proj)
    assert state.n_srch < searched + sum(len(proj.group(g).items) for g in groups[1:6])
    proj.undo()
    proj.undo()
    after_undo = _same_as_fresh(proj)
    assert groups[2] not in after_undo and groups[3] not in after_undo  # decided again
    proj.redo()
    _same_as_fresh(proj)


def test_beyond_the_cap_a_fixed_share_is_searched_and_the_state_rebuilt(vectors_project,
                                                                       monkeypatch):
    import curator.suggest as suggest_mod
    import curator.suggest_votes as votes_mod

    monkeypatch.setattr(votes_mod, "LABELLED_CAP", 40)
    monkeypatch.setattr(suggest_mod, "LABELLED_CAP", 40)
    proj, y = vectors_project
    run = proj.current_run()
    key = (run, "synthetic:suggest")
    groups = [g.group_id for g in proj.groups(run)]
    proj.label_group(groups[0], _majority(proj, groups[0], y))
    proj.suggestions(run)
    first = proj.search_cache().suggest_states[key]
    labelled = len(proj.group(groups[0]).items)
    assert first.rate == pytest.approx(min(1.0, 40 / labelled))
    # Decide groups until the labelled items pass twice the cap (the queue's first groups may
    # be small ones).
    for gid in groups[1:-2]:
        proj.label_group(gid, _majority(proj, gid, y))
        shown = proj.suggestions(run)
        state = proj.search_cache().suggest_states[key]
        assert state.n_srch <= 2 * 40 + len(proj.group(gid).items)  # rebuilt past twice the cap
        assert shown and all(s.source == "knn" for s in shown.values())
        if state is not first:
            break
    assert state is not first and state.rate < first.rate
    # At one share, the same items are searched whether updated or built afresh.
    ids = np.sort(state.srch_ids[: state.n_srch])
    fresh_share = votes_mod.sampled(ids, state.rate)
    assert fresh_share.all()


def test_a_later_process_starts_from_the_saved_state(vectors_project, monkeypatch, caplog):
    import curator.suggest as suggest_mod
    from curator.suggest_votes import state_path

    proj, y = vectors_project
    run = proj.current_run()
    groups = [g.group_id for g in proj.groups(run)]
    for gid in groups[:4]:
        proj.label_group(gid, _majority(proj, gid, y))
    first = _same_as_fresh(proj)
    saved = state_path(proj.root, run, "synthetic:suggest")
    assert saved.is_file()
    stamp = saved.stat().st_mtime_ns
    proj.label_group(groups[4], _majority(proj, groups[4], y))  # after the save: folded in
    built = []
    real_build = suggest_mod._build_state
    monkeypatch.setattr(suggest_mod, "_build_state",
                        lambda *a, **kw: built.append(a) or real_build(*a, **kw))
    with Project.open(proj.root) as later:  # a new process: nothing in memory
        shown = later.suggestions(run)
        assert not built and shown.keys() == first.keys() - {groups[4]}
        assert saved.stat().st_mtime_ns != stamp  # saved again with the decision folded in
        _same_as_fresh(later)  # (`suggest` without a cache builds its own: one build)
        assert len(built) == 1
    saved.write_bytes(b"not a saved state")
    with Project.open(proj.root) as later, caplog.at_level("WARNING"):
        later.suggestions(run)
        assert len(built) == 2 and "ignoring the saved suggestion state" in caplog.text
        _same_as_fresh(later)


def test_splits_and_merges_are_followed_without_a_full_search(vectors_project, monkeypatch):
    import curator.suggest as suggest_mod

    monkeypatch.setattr(suggest_mod, "QUERY_BUDGET", 150)  # 5 sampled members of ~30 per group
    proj, y = vectors_project
    run = proj.current_run()
    groups = [g.group_id for g in proj.groups(run)]
    for gid in groups[:5]:
        proj.label_group(gid, _majority(proj, gid, y))
    _same_as_fresh(proj)
    state = proj.search_cache().suggest_states[(run, "synthetic:suggest")]
    assert state.per_group == 5
    built = []
    real_build = suggest_mod._build_state
    monkeypatch.setattr(suggest_mod, "_build_state",
                        lambda *a, **kw: built.append(a) or real_build(*a, **kw))
    children = proj.split(groups[10], k=3)
    shown = proj.suggestions(run)
    assert not built and set(children) <= shown.keys() and groups[10] not in shown
    assert proj.search_cache().suggest_states[(run, "synthetic:suggest")] is state
    _same_as_fresh(proj)  # same members sampled, same neighbours, as a fresh build
    merged = proj.merge([children[0], groups[12], groups[2]])  # a decided group among them
    proj.label_group(groups[13], _majority(proj, groups[13], y))
    assert merged in _same_as_fresh(proj) or merged not in proj.suggestions(run)
    proj.undo()
    proj.undo()
    _same_as_fresh(proj)
    proj.redo()
    _same_as_fresh(proj)
    assert len(built) == 4  # only the fresh builds of the comparisons
    assert proj.search_cache().suggest_states[(run, "synthetic:suggest")] is state
