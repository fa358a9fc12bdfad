"""Topic names are words: the common words of the members' paths, and, where the space has a
text tower, the taxonomy name whose text vector is nearest the group's centroid.

A tiny randomly initialised open_clip model built here proves the plumbing (which name wins is
arbitrary with random weights; only real weights make the match meaningful)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curator.project import Project
from curator.scan import ScanOptions
from tests.helpers.tiny_models import tiny_clip_weights as tiny_clip_weights_file

FOLDERS = {"red_squares": (220, 20, 20), "blue_circles": (20, 40, 220)}
NAMES = ["bird", "blue circle", "red square", "train"]


@pytest.fixture
def tiny_clip_weights(tmp_path):
    return "CuratorTopicTiny", tiny_clip_weights_file(tmp_path, "CuratorTopicTiny", seed=3)


def _project(tmp_path, media, model, weights=None):
    src = tmp_path / "media"
    for folder, colour in FOLDERS.items():
        for i in range(6):
            media.image(src / folder / f"IMG_{i:04d}.jpg", size=(40 + i, 40), color=colour,
                        seed=i)
    proj = Project.create(tmp_path / "proj", [src])
    proj.scan(ScanOptions(workers=0))
    report = proj.embed(model, "classic", weights=weights, workers=0, device="cpu")
    (space,) = report.spaces
    return proj, space


def test_text_tower_picks_the_nearest_taxonomy_name(tmp_path, media, tiny_clip_weights):
    arch, weights = tiny_clip_weights
    proj, space = _project(tmp_path, media, arch, weights)
    with proj:
        run_id, _ = proj.cluster(n_groups=2)
        groups = proj.groups(run_id)
        gids = [g.group_id for g in groups]
        assert all(f.text_match is None for f in proj.group_facts(gids, run_id).values())
        for name in NAMES:
            proj.add_label(name)
        facts = proj.group_facts(gids, run_id)
        # The same choice by hand: each name's prompt through the text tower, against the
        # normalised mean of the members' unit vectors.
        embedder, _ = proj.search_cache().embedder(space, None)
        T = np.asarray(embedder.embed_text([f"a photo of {n}." for n in NAMES]), np.float32)
        T /= np.linalg.norm(T, axis=1, keepdims=True)
        ids, X = proj.vectors(space)
        X = np.asarray(X, np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        for g in groups:
            f = facts[g.group_id]
            members = np.asarray(proj.group(g.group_id, run_id).items)
            c = X[np.searchsorted(ids, members)].mean(axis=0)
            scores = T @ (c / np.linalg.norm(c))
            assert f.text_match is not None
            assert f.text_match.name == NAMES[int(np.argmax(scores))]
            assert f.text_match.score == pytest.approx(float(scores.max()), abs=1e-4)
            assert f.text_match.margin >= 0
            # The path words still name the folder, and the row shows both.
            assert f.topic_name.split()[0] in {"red", "squares", "blue", "circles"}
            assert f.topic_text().startswith(f"'{f.text_match.name}' · ")
            assert "img" not in f.topic_name  # camera boilerplate is no topic
        assert json.dumps(facts[gids[0]].to_json())  # JSON-able with the match
        shown = proj.group_show(gids[0], run_id)
        assert shown.facts.text_match == facts[gids[0]].text_match


def test_a_space_without_text_tower_names_topics_by_path_words(tmp_path, media, capsys):
    from curator.cli import main

    proj, space = _project(tmp_path, media, "classic")
    with proj:
        run_id, _ = proj.cluster(n_groups=2)
        proj.add_label("red square")
        gids = [g.group_id for g in proj.groups(run_id)]
        facts = proj.group_facts(gids, run_id)
    assert all(f.text_match is None for f in facts.values())
    assert {f.topic_text() for f in facts.values()} <= {"red squares", "squares red",
                                                        "blue circles", "circles blue"}
    main(["queue", str(tmp_path / "proj"), "--order", "size"])
    out = capsys.readouterr().out
    assert "squares" in out and "circles" in out
    with Project.open(tmp_path / "proj") as proj:
        # A space made by a plug-in not installed here is named by its path words alone.
        proj.catalog.db.execute("UPDATE spaces SET embedder = 'absent_plugin', "
                                "options = '{\"name\": \"absent_plugin\"}'")
        again = proj.group_facts(gids, run_id)
        proj.label_group(gids[0], "red square", run_id=run_id)
    assert {g: f.topic_name for g, f in again.items()} == {
        g: f.topic_name for g, f in facts.items()}
    # ...and its queue still suggests by votes of labelled neighbours (it used to raise).
    main(["queue", str(tmp_path / "proj"), "--order", "size"])
    out = capsys.readouterr().out
    assert "1 of 2 groups decided" in out and "red square (" in out
