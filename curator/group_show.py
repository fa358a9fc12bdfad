"""What is in a group, in words: members with path, modality, label and similarity; topic names.

A topic name is the most common words of the members' folder and file names ("birds chirp"),
and, where the group's embedding space has a text tower (CLIP, CLAP), the taxonomy label whose
text vector lies nearest the group's centroid, so `curator queue` and `curator group show` say
what a group holds instead of a number. With random (test) weights that match is arbitrary; only
real weights make it meaningful.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog

# Words that name nothing: media extensions and camera/recorder file-name boilerplate.
_STOP = frozenset([
    "jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "heic", "wav", "flac", "mp3",
    "ogg", "m4a", "aac", "opus", "mp4", "mov", "mkv", "avi", "webm", "img", "dsc", "dscn",
    "pxl", "vid", "rec", "audio", "video", "image", "images", "photo", "photos", "clip",
    "clips", "file", "files", "new", "copy", "final", "the", "and", "of", "for", "with", "from",
    "data", "dataset", "sample", "samples"
])
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_SAMPLE = 200  # members read to name a topic
# How a text tower reads a label name (the zero-shot prompts of the CLIP and CLAP papers).
TEXT_PROMPTS = {"image": "a photo of {}.", "video": "a video of {}.", "audio": "the sound of {}."}

log = logging.getLogger(__name__)


def topic_words(paths: Sequence[str], n: int = 3) -> str:
    """The `n` most common words of these relative paths (folders and file names)."""
    counts: Counter[str] = Counter()
    for path in paths:
        words = {w.casefold() for w in _WORD.findall(path.replace("_", " "))}
        counts.update(w for w in words if w not in _STOP)
    return " ".join(w for w, _ in counts.most_common(n))


def _sample_ids(catalog: Catalog, run_id: int, group_id: int, limit: int) -> list[int]:
    return [r[0] for r in catalog.db.execute(
        "SELECT item_id FROM assignments WHERE run_id = ? AND group_id = ? LIMIT ?",
        [run_id, group_id, limit])]


def _rows(catalog: Catalog, ids: Sequence[int]) -> dict[int, tuple]:
    """id -> (path, modality, state, label name) for some items."""
    out: dict[int, tuple] = {}
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for r in catalog.db.execute(
                "SELECT i.id, i.path, i.modality, il.state, l.name FROM items i "
                "LEFT JOIN item_labels il ON il.item_id = i.id LEFT JOIN labels l "
                f"ON l.id = il.label_id WHERE i.id IN ({','.join('?' * len(chunk))})", chunk):
            out[r[0]] = r[1:]
    return out


@dataclass(frozen=True)
class TextMatch:
    """The taxonomy label whose text vector is nearest a group's centroid.

    Attributes:
        name: the label's name.
        score: cosine between the label's text vector and the group's centroid.
        margin: how much higher than the second-best label's (0 with one label).
    """

    name: str
    score: float
    margin: float


def taxonomy_matches(catalog: Catalog, run_id: int, group_ids: Sequence[int],
                     cache: Any = None) -> dict[int, TextMatch]:
    """The best-matching taxonomy name of each group whose space has a text tower.

    Each live label's name goes through the space's text tower in its modality's prompt ("a photo
    of {name}."); the group's centroid is the mean of (a sample of) its members' unit vectors.
    Groups of spaces without a text tower, or whose model cannot load here, get no entry.

    Args:
        catalog: the project's catalog.
        run_id: the clustering run.
        group_ids: the groups to name.
        cache: a `curator.search.SearchCache` holding the loaded models (one is made if None).
    """
    from curator.embed import space_has_text, space_store

    names = [r[0] for r in catalog.db.execute(
        "SELECT name FROM labels WHERE removed_at IS NULL ORDER BY name")]
    if not names or not group_ids:
        return {}
    spaces: dict[str, list[int]] = {}
    marks = ",".join("?" * len(group_ids))
    for g, space in catalog.db.execute(
            f"SELECT group_id, space FROM groups WHERE run_id = ? AND group_id IN ({marks})",
            [run_id, *[int(g) for g in group_ids]]):
        spaces.setdefault(space, []).append(int(g))
    out: dict[int, TextMatch] = {}
    for space, gids in spaces.items():
        if not space_has_text(catalog, space):  # no text tower, or a plug-in not installed here
            continue
        T = _label_vectors(catalog, space, names, cache)
        if T is None:
            continue
        store = space_store(catalog, space)
        for g in gids:
            _, X = store.lookup(np.asarray(_sample_ids(catalog, run_id, g, _SAMPLE), np.int64))
            if not len(X):
                continue
            c = _unit(np.asarray(X, np.float32)).mean(axis=0)
            scores = T @ (c / max(float(np.linalg.norm(c)), 1e-12))
            order = np.argsort(-scores)
            second = float(scores[order[1]]) if len(order) > 1 else float(scores[order[0]])
            out[g] = TextMatch(names[int(order[0])], float(scores[order[0]]),
                               float(scores[order[0]]) - second)
    return out


def _label_vectors(catalog: Catalog, space: str, names: list[str],
                   cache: Any) -> Optional[np.ndarray]:
    """Unit text vectors of the label names in the space's prompt, or None without a model."""
    if cache is None:
        from curator.search import SearchCache

        cache = SearchCache(catalog)
    row = catalog.db.execute("SELECT modalities FROM spaces WHERE space = ?", [space]).fetchone()
    modalities = json.loads(row[0]) if row else []
    modality = next((m for m in ("image", "video", "audio") if m in modalities), "image")
    try:
        embedder, _ = cache.embedder(space, None)
        if not getattr(embedder, "has_text", False):
            return None
        prompts = [TEXT_PROMPTS[modality].format(n.replace("_", " ")) for n in names]
        return _unit(np.asarray(cache.embed_text(space, prompts, None), np.float32))
    except Exception as exc:  # noqa: BLE001 - a model that cannot load only loses the names
        log.info("no taxonomy topic names for %s: %s", space, exc)
        return None


def _unit(X: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, n, out=np.zeros_like(X), where=n > 0)


@dataclass(frozen=True)
class GroupFacts:
    """What a queue row says about a group: modality mix, labels its members carry, topic.

    `topic_name` is the common words of the members' paths; `text_match` the taxonomy name its
    space's text tower finds nearest (None without a text tower or a taxonomy).
    """

    group_id: int
    modalities: dict[str, int]
    labels: dict[str, int]
    topic_name: str
    text_match: Optional[TextMatch] = None

    def topic_text(self) -> str:
        """The topic in a few words: the nearest taxonomy name (quoted) and the path words."""
        parts = [f"'{self.text_match.name}'"] if self.text_match else []
        return " · ".join(parts + ([self.topic_name] if self.topic_name else []))

    def modality_text(self) -> str:
        return ", ".join(f"{m} {n}" for m, n in sorted(self.modalities.items(),
                                                         key=lambda kv: -kv[1]))

    def labels_text(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(self.labels.items(),
                                                       key=lambda kv: -kv[1])[:3])

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["text_match"] = None if self.text_match is None else dict(self.text_match.__dict__)
        return out


def group_facts(catalog: Catalog, run_id: int, group_ids: Sequence[int],
                cache: Any = None) -> dict[int, GroupFacts]:
    """Modality mix (whole group), existing labels (whole group) and topic names (a sample):
    path words, and the nearest taxonomy name where the space has a text tower.

    Args:
        cache: a `curator.search.SearchCache` whose loaded models to use (None: one is made
            when a space has a text tower and the taxonomy has labels).
    """
    matches = taxonomy_matches(catalog, run_id, group_ids, cache)
    out = {}
    for g in group_ids:
        modalities = dict(catalog.db.execute(
            "SELECT i.modality, COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
            "WHERE a.run_id = ? AND a.group_id = ? GROUP BY i.modality", [run_id, g]).fetchall())
        labels = dict(catalog.db.execute(
            "SELECT CASE il.state WHEN 'labelled' THEN l.name ELSE il.state END, COUNT(*) "
            "FROM assignments a JOIN item_labels il ON il.item_id = a.item_id LEFT JOIN labels l "
            "ON l.id = il.label_id WHERE a.run_id = ? AND a.group_id = ? GROUP BY 1",
            [run_id, g]).fetchall())
        rows = _rows(catalog, _sample_ids(catalog, run_id, g, _SAMPLE))
        out[g] = GroupFacts(g, {str(k): v for k, v in modalities.items()},
                            {str(k): v for k, v in labels.items()},
                            topic_words([r[0] for r in rows.values()]), matches.get(g))
    return out


@dataclass(frozen=True)
class Member:
    item_id: int
    path: str
    modality: str
    label: str  # label name, noise, mixed, duplicate, or '' when undecided
    similarity: Optional[float]  # cosine to the group's centroid
    representative: bool


@dataclass
class GroupShow:
    """`curator group show`: a group's facts and its members, most typical first."""

    run_id: int
    group_id: int
    space: str
    size: int
    state: str
    facts: GroupFacts
    members: list[Member] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "group_id": self.group_id, "space": self.space,
                "size": self.size, "state": self.state, **self.facts.to_json(),
                "members": [m.__dict__ for m in self.members]}


def group_show(catalog: Catalog, run_id: int, group_id: int,
               limit: Optional[int] = 50, cache: Any = None) -> GroupShow:
    """A group's members with path, modality, label and similarity to the centroid.

    Representatives come first, then the others by similarity (most typical first); `limit`
    caps the listing (None: all).

    Raises:
        UsageError: no such group in the run.
    """
    from curator.embed import space_store
    from curator.groups import group_members

    members = group_members(catalog, run_id, group_id)
    space, state, reps_json = catalog.db.execute(
        "SELECT space, state, representatives FROM groups WHERE run_id = ? AND group_id = ?",
        [run_id, group_id]).fetchone()
    sims: dict[int, float] = {}
    found, vectors = space_store(catalog, space).lookup(members)
    if len(found):
        x = np.asarray(vectors, dtype=np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        centroid = x.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        sims = dict(zip((int(i) for i in found), (float(s) for s in x @ centroid)))
    reps = [int(i) for i in json.loads(reps_json or "[]") if int(i) in sims or i in members]
    rep_set = set(reps)
    rest = sorted((int(i) for i in members if int(i) not in rep_set),
                  key=lambda i: -sims.get(i, -2.0))
    order = reps + rest
    if limit is not None:
        order = order[:limit]
    rows = _rows(catalog, order)
    listed = []
    for i in order:
        path, modality, st, name = rows.get(i, ("?", "?", None, None))
        label = name if st == "labelled" else (st or "")
        listed.append(Member(i, path, modality or "?", label or "", sims.get(i), i in rep_set))
    facts = group_facts(catalog, run_id, [group_id], cache)[group_id]
    return GroupShow(run_id, group_id, space, len(members), state, facts, listed)
