"""Label suggestions: the k-NN vote (classic vectors), zero-shot plumbing (a tiny random CLIP),
calibration, and accepting many suggestions as one undoable event.

A tiny random CLIP checks that the taxonomy's text reaches the group centroids and back; whether
its suggestions are *semantically* right needs real weights, which tests cannot download.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from curator.cli import main
from curator.project import Project
from curator.scan import ScanOptions
from curator.suggest import PRIOR, calibrate
from tests.helpers.projects import COLOURS, colour_folders, colour_of
from tests.helpers.tiny_models import tiny_clip_weights as tiny_clip_weights_file


def _group_colour(project, gid):
    colours = {colour_of(project, i) for i in project.group(gid).items}
    assert len(colours) == 1, colours
    return colours.pop()


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    colour_folders(media, src, 10)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.embed("classic", "classic", workers=0)
        proj.set_annotator("ana")
        for name in COLOURS:
            proj.add_label(name)
        yield proj


def test_knn_vote_suggests_the_colour_of_labelled_neighbours(project):
    run_id, _ = project.cluster(n_groups=6)
    groups = project.groups(run_id)
    assert project.suggestions(run_id) == {}  # no decision and no text tower: nothing to say
    seen = set()
    for g in groups:  # decide one group of each colour
        colour = _group_colour(project, g.group_id)
        if colour not in seen:
            project.label_group(g.group_id, colour)
            seen.add(colour)
    suggestions = project.suggestions(run_id)
    undecided = [g for g in project.groups(run_id) if g.status == "undecided"]
    assert undecided and set(suggestions) == {g.group_id for g in undecided}
    for g in undecided:
        s = suggestions[g.group_id]
        assert s.label == _group_colour(project, g.group_id)
        assert s.source == "knn" and 0.5 < s.confidence < 1.0 and s.raw > 0.8


def test_accepting_suggestions_is_one_event_and_one_undo(project, tmp_path):
    run_id, _ = project.cluster(n_groups=6)
    seen = set()
    for g in project.groups(run_id):
        colour = _group_colour(project, g.group_id)
        if colour not in seen:
            project.label_group(g.group_id, colour)
            seen.add(colour)
    undecided = [g.group_id for g in project.groups(run_id) if g.status == "undecided"]
    event, accepted = project.accept_suggestions(min_confidence=0.0)
    assert sorted(s.group_id for s in accepted) == sorted(undecided)
    assert project.history()[0].id == event
    assert all(g.status == "labelled" for g in project.groups(run_id))
    labelled = dict(project.catalog.db.execute("SELECT item_id, label_id FROM item_labels"))
    assert len(labelled) == 30
    project.undo()
    after = {g.group_id: g.status for g in project.groups(run_id)}
    assert all(after[gid] == "undecided" for gid in undecided)
    assert project.catalog.db.execute("SELECT COUNT(*) FROM item_labels").fetchone()[0] == 30 - sum(
        g.size for g in project.groups(run_id) if g.group_id in undecided)
    project.redo()
    assert all(g.status == "labelled" for g in project.groups(run_id))
    # Nothing left to accept: no event.
    assert project.accept_suggestions(min_confidence=0.0) == (None, [])


def test_cli_queue_shows_suggestions_and_label_accepts_above_a_confidence(project, capsys):
    run_id, _ = project.cluster(n_groups=6)
    first = project.groups(run_id)[0]
    colour = _group_colour(project, first.group_id)
    project.label_group(first.group_id, colour)
    root = str(project.root)
    main(["queue", root, "--json"])
    out = json.loads(capsys.readouterr().out)
    shown = [g for g in out["groups"] if g["suggestion"]]
    assert shown and all(g["suggestion"]["label"] == colour for g in shown)
    main(["queue", root])
    assert "suggestion" in capsys.readouterr().out
    main(["label", root, "--accept-suggestions", "--min-confidence", "1.0"])
    assert "nothing labelled" in capsys.readouterr().out
    main(["label", root, "--accept-suggestions", "--min-confidence", "0.0"])
    text = capsys.readouterr().out
    assert "accepted" in text and "undo" in text


def test_calibration_follows_decisions_and_keeps_a_prior():
    a0, b0 = calibrate([], [])
    assert (a0, b0) == pytest.approx(PRIOR)
    # Decisions that show high raw scores are always right and low ones always wrong sharpen it.
    raw = list(np.linspace(0.3, 1.0, 40))
    right = [r > 0.6 for r in raw]
    a, b = calibrate(raw, right)

    def p(r):
        return 1 / (1 + np.exp(-(a * r + b)))

    assert p(0.95) > 0.9 and p(0.4) < 0.3 and a > a0  # prior: 0.93 and 0.35
    # Decisions that say the scores mean nothing pull every confidence towards the base rate.
    a, b = calibrate([0.9] * 60, [True, False] * 30)
    assert 0.4 < 1 / (1 + np.exp(-(a * 0.9 + b))) < 0.65




@pytest.fixture
def tiny_clip_weights(tmp_path):
    return "CuratorSuggestTiny", tiny_clip_weights_file(tmp_path, "CuratorSuggestTiny", seed=0)


def test_zero_shot_plumbing_and_warm_text_search_with_a_tiny_clip(tmp_path, media,
                                                                  tiny_clip_weights):
    arch, weights = tiny_clip_weights
    src = tmp_path / "media"
    colour_folders(media, src, 6)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        report = proj.embed(arch, "classic", weights=weights, workers=0, device="cpu")
        (space,) = report.spaces
        for name in COLOURS:
            proj.add_label(name, description=f"things that are {name}")
        run_id, _ = proj.cluster(n_groups=3)
        suggestions = proj.suggestions(run_id)
        groups = proj.groups(run_id)
        assert set(suggestions) == {g.group_id for g in groups}
        # The same answer computed by hand: taxonomy prompts against each group's centroid.
        embedder, _ = proj.search_cache().embedder(space, None)
        names = sorted(COLOURS)
        T = embedder.embed_text([f"a photo of {n}. things that are {n}" for n in names])
        ids, X = proj.vectors(space)
        X = np.asarray(X, np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        for g in groups:
            s = suggestions[g.group_id]
            assert s.source == "zero-shot" and 0.0 < s.confidence < 1.0
            members = np.asarray(proj.group(g.group_id).items)
            c = X[np.searchsorted(ids, members)].mean(axis=0)
            assert s.label == names[int(np.argmax(T @ (c / np.linalg.norm(c))))]
        # Text search goes through the same warm model: loaded once, reused.
        hits = proj.search(text="a red square", k=5)
        assert len(hits) == 5 and proj.search_cache().embedder(space, None)[0] is embedder
