"""The classic embedder on the deterministic sample corpus: each class is its own neighbourhood."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from curator import sample_corpus, sample_plan
from indexing.embedders.classic import create


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Decode and embed the 120-item sample corpus once: {modality: (vectors, labels)}, errors."""
    root = tmp_path_factory.mktemp("corpus")
    summary = sample_corpus.write_sample_corpus(root, items=120, seed=0)
    embedder = create()
    decode = embedder.decoder()
    groups: dict[str, list] = {}
    broken: dict[str, str] = {}
    with open(summary.ground_truth, newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            item = decode(i, str(root / row["path"]), row["modality"])
            if row["class"] == sample_plan.BROKEN_CLASS:
                broken[row["path"]] = item.error
                continue
            assert item.error is None, (row["path"], item.error)
            groups.setdefault(row["modality"], []).append((item, row["class"]))
    result = {}
    for modality, pairs in groups.items():
        vectors = embedder.embed_batch([item for item, _ in pairs]).vectors
        result[modality] = (vectors, [label for _, label in pairs])
    return result, broken


def _loo_accuracy(vectors: np.ndarray, labels: list[str]) -> float:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.mean([labels[j] == labels[i] for i, j in enumerate(sims.argmax(axis=1))]))


@pytest.mark.parametrize("modality", ["image", "audio", "video"])
def test_leave_one_out_nearest_neighbour_finds_the_class(embedded, modality):
    result, _ = embedded
    vectors, labels = result[modality]
    assert len(set(labels)) == len(sample_plan.CLASSES[modality])
    assert _loo_accuracy(vectors, labels) >= 0.9


def test_broken_media_give_errors(embedded):
    _, broken = embedded
    for path in (
        "broken/empty.jpg",
        "broken/truncated.jpg",
        "broken/truncated.png",
        "broken/notes.jpg",
        "broken/no_video.mp4",
    ):
        assert broken[path], path


@pytest.mark.parametrize("modality", ["image", "audio", "video"])
def test_calibrated_duplicate_threshold_finds_no_false_duplicates(embedded, modality):
    """The sample corpus holds no duplicates: the calibrated threshold of each modality finds
    none, yet a planted copy (the same vector, slightly perturbed) is still found."""
    from indexing.dedup import calibrated_threshold, near_duplicate_groups

    result, _ = embedded
    vectors = np.asarray(result[modality][0], dtype=np.float32)
    threshold = calibrated_threshold(vectors)
    assert 0.95 <= threshold < 1.0
    assert near_duplicate_groups(vectors, threshold=threshold) == []
    rng = np.random.default_rng(0)
    copy = vectors[3] + rng.normal(0, 1e-4, vectors.shape[1]).astype(np.float32) * \
        np.linalg.norm(vectors[3])
    planted = np.vstack([vectors, copy[None, :]])
    groups = near_duplicate_groups(planted, threshold=calibrated_threshold(planted))
    assert [sorted(g.tolist()) for g in groups] == [[3, len(vectors)]]
