"""Search and the map: a FAISS index per embedding space kept in step with the catalog, and 2-D maps.

The index lives beside the space's vectors (`index.faiss` + its JSON sidecar) with a record of the
(item id, content version) pairs it holds, so bringing it up to date after a rescan or a re-embed
adds new items, replaces re-embedded ones and removes missing ones, instead of rebuilding.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from curator.catalog import Catalog
from curator.errors import CuratorError, UsageError
from indexing.progress import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

MAPS_DIR = "maps"


def _space_row(catalog: Catalog, space: str) -> dict[str, Any]:
    rows = list(catalog.db.query("SELECT * FROM spaces WHERE space = ?", [space]))
    if not rows:
        raise UsageError(f"no embedding space {space!r}; run `curator embed` first")
    return dict(rows[0])


def _current_versions(catalog: Catalog, space: str) -> tuple[np.ndarray, np.ndarray]:
    rows = catalog.db.execute(
        "SELECT e.item_id, e.item_version FROM embeddings e JOIN items i ON i.id = e.item_id "
        "WHERE e.space = ? AND i.status = 'ok' AND e.item_version = i.version ORDER BY e.item_id",
        [space]).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    versions = np.array([r[1] for r in rows], dtype=np.int64)
    return ids, versions


def sync_index(catalog: Catalog, space: str, progress: Optional[Progress] = None) -> dict[str, int]:
    """Bring the space's index in line with the catalog: add new, replace re-embedded, drop missing.

    Returns:
        Counts: added, updated, removed, total.
    """
    from curator.embed import compact_space, space_store
    from indexing.vector_index import IndexFileError, VectorIndex

    progress = progress or no_progress
    row = _space_row(catalog, space)
    folder = catalog.root / row["folder"]
    index_path = folder / "index.faiss"
    synced_path = folder / "index-items.npy"
    ids, versions = _current_versions(catalog, space)
    store = space_store(catalog, space)
    store_ids = np.load(store.ids_path, mmap_mode="r") if store.exists() else np.empty(0, np.int64)
    if len(store_ids) != len(ids) or not np.array_equal(np.asarray(store_ids), ids):
        compact_space(catalog, space)
    index = None
    synced = np.empty((0, 2), dtype=np.int64)
    if index_path.exists() and synced_path.exists():
        try:
            index = VectorIndex.load(index_path)
            synced = np.load(synced_path)
        except (IndexFileError, OSError, ValueError) as exc:
            log.warning("index %s unreadable (%s); rebuilding it", index_path, exc)
            index = None
    store_ids, vectors = store.load()
    counts = {"added": 0, "updated": 0, "removed": 0}
    big_change = index is None or len(ids) > 2 * max(len(synced), 1) or (
        index is not None and index.info.kind == "flat" and len(ids) > 100_000)
    if big_change:
        progress(ProgressEvent(f"index {space}", 0, len(ids), "items"))
        index = VectorIndex.build(store_ids, vectors, space=space, progress=progress) if len(
            ids) else None
        counts["added"] = len(ids)
    else:
        old = dict(zip(synced[:, 0].tolist(), synced[:, 1].tolist())) if len(synced) else {}
        now = dict(zip(ids.tolist(), versions.tolist()))
        gone = np.array([i for i in old if i not in now], dtype=np.int64)
        new = np.array([i for i in now if i not in old], dtype=np.int64)
        changed = np.array([i for i, v in now.items() if i in old and old[i] != v], np.int64)
        if len(gone):
            counts["removed"] = index.remove(gone)
        for kind, chosen in (("added", new), ("updated", changed)):
            if len(chosen):
                pos = np.searchsorted(store_ids, chosen)
                X = np.asarray(vectors[pos], dtype=np.float32)
                index.upsert(chosen, X)
                counts[kind] = len(chosen)
    if index is not None:
        index.save(index_path)
        tmp = synced_path.with_name("index-items.tmp.npy")
        np.save(tmp, np.stack([ids, versions], axis=1) if len(ids) else np.empty((0, 2), np.int64))
        os.replace(tmp, synced_path)
    counts["total"] = int(len(ids))
    return counts


def load_index(catalog: Catalog, space: str) -> Any:
    """The space's index, brought up to date first."""
    from indexing.vector_index import VectorIndex

    if getattr(catalog, "readonly", False):  # hostile: a read-only project searches in memory
        return _read_only_index(catalog, space)
    sync_index(catalog, space)
    row = _space_row(catalog, space)
    path = catalog.root / row["folder"] / "index.faiss"
    if not path.exists():
        raise UsageError(f"space {space} has no vectors to search")
    return VectorIndex.load(path)


def _read_only_index(catalog: Catalog, space: str) -> Any:
    """The saved index when there is one, else one built in memory from the store; nothing is
    written (the project is read-only)."""
    from curator.embed import space_store
    from indexing.vector_index import IndexFileError, VectorIndex

    path = catalog.root / _space_row(catalog, space)["folder"] / "index.faiss"
    if path.exists():
        try:
            return VectorIndex.load(path)
        except (IndexFileError, OSError, ValueError) as exc:
            log.warning("index %s unreadable (%s); searching the stored vectors", path, exc)
    store = space_store(catalog, space)
    if not store.exists():
        raise UsageError(f"space {space} has no vectors to search")
    ids, vectors = store.load()
    return VectorIndex.build(ids, vectors, space=space)


def make_embedder(catalog: Catalog, space: str, offline: Optional[bool] = None) -> Any:
    """Rebuild the embedder that made a space, from the options recorded with it."""
    from indexing.embedders import EmbedderUnavailable, create_embedder

    row = _space_row(catalog, space)
    options = json.loads(row.get("options") or "{}")
    name = options.pop("name", row["embedder"])
    if name != "classic":
        options.setdefault("model", row["model"])
    try:
        embedder = create_embedder(name, offline=offline, **options)
    except EmbedderUnavailable as exc:
        raise CuratorError(f"cannot load the model of space {space}: {exc}") from exc
    if embedder.space != space:
        raise CuratorError(f"the model now gives space {embedder.space}, not {space}; "
                           "re-embed or restore the original weights")
    return embedder


def search(
    catalog: Catalog,
    *,
    text: Optional[str] = None,
    like: Optional[int] = None,
    file: Optional[str] = None,
    k: int = 50,
    modality: Optional[str] = None,
    space: Optional[str] = None,
    offline: Optional[bool] = None,
) -> list[dict[str, Any]]:
    """Search by text (through the space's text tower), by example item, or by a file.

    Returns:
        Hits best first: item_id, path, score (cosine), modality, space.
    """
    if sum(x is not None for x in (text, like, file)) != 1:
        raise UsageError("give exactly one of --text, --like, --file")
    if k < 1:
        raise UsageError("--k must be at least 1")
    spaces = [dict(r) for r in catalog.db.query("SELECT * FROM spaces ORDER BY space")]
    if space:
        spaces = [s for s in spaces if s["space"] == space]
        if not spaces:
            raise UsageError(f"no embedding space {space!r}")
    if modality:
        spaces = [s for s in spaces if modality in json.loads(s["modalities"])]
    if not spaces:
        raise UsageError("no embedding space to search; run `curator embed` first"
                         + (f" (none holds {modality})" if modality else ""))
    queries: list[tuple[str, np.ndarray, set[int]]] = []
    if like is not None:
        from curator.embed import space_store

        if catalog.db.execute("SELECT 1 FROM items WHERE id = ?", [like]).fetchone() is None:
            raise UsageError(f"no item with id {like}")
        for s in spaces:
            found, X = space_store(catalog, s["space"]).lookup(np.array([like]))
            if len(found):
                queries.append((s["space"], X[0], {like}))
        if not queries:
            raise UsageError(f"item {like} has no vector yet; run `curator embed`")
    elif text is not None:
        if not text.strip():
            raise UsageError("--text is empty")
        reasons = []
        for s in spaces:
            if s["embedder"] == "classic":
                reasons.append(f"{s['space']} (classic) has no text tower")
                continue
            embedder = make_embedder(catalog, s["space"], offline)
            if not embedder.has_text:
                reasons.append(f"{s['space']} has no text tower")
                continue
            queries.append((s["space"], embedder.embed_text([text])[0], set()))
        if not queries:
            raise UsageError("text search needs a model with a text tower (CLIP or CLAP): "
                             + "; ".join(reasons) + ". Search with --like ITEM_ID instead")
    else:
        path = Path(file)  # type: ignore[arg-type]
        if not path.is_file():
            raise UsageError(f"--file {file}: no such file")
        from indexing.media import probe_file

        info = probe_file(str(path))
        if info.error or info.modality is None:
            raise UsageError(f"--file {file}: {info.error or 'not an image, audio or video file'}")
        for s in spaces:
            if info.modality not in json.loads(s["modalities"]):
                continue
            embedder = make_embedder(catalog, s["space"], offline)
            decoded = embedder.decoder()(-1, str(path), info.modality, False)
            if decoded.error:
                raise UsageError(f"--file {file}: {decoded.error}")
            queries.append((s["space"], embedder.embed_batch([decoded]).vectors[0], set()))
        if not queries:
            raise UsageError(f"no embedding space holds {info.modality} items")
    hits: list[dict[str, Any]] = []
    for space_name, q, exclude in queries:
        index = load_index(catalog, space_name)
        want = k + len(exclude)
        if modality:
            want = min(len(index), want * 4)
        scores, ids = index.search(np.asarray(q, np.float32)[None, :], k=max(1, want))
        for score, item_id in zip(scores[0].tolist(), ids[0].tolist()):
            if item_id < 0 or item_id in exclude:
                continue
            hits.append({"item_id": int(item_id), "score": float(score), "space": space_name})
    if hits:
        info = {r[0]: r[1:] for r in catalog.db.execute(
            f"SELECT items.id, sources.root, items.path, items.modality FROM items JOIN sources "
            f"ON sources.id = items.source_id WHERE items.id IN ({','.join('?' * len(hits))})",
            [h["item_id"] for h in hits])}
        for h in hits:
            root, rel, mod = info[h["item_id"]]
            h.update(path=os.path.join(root, rel), modality=mod)
        if modality:
            hits = [h for h in hits if h["modality"] == modality]
    hits.sort(key=lambda h: -h["score"])
    return hits[:k]


# --- the 2-D map ------------------------------------------------------------------------------


def compute_maps(catalog: Catalog, spaces: list[str], sample_size: int = 50_000, seed: int = 0,
                 progress: Optional[Progress] = None,
                 cancel: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
    """2-D coordinates for every item of each space, stored as arrays keyed by item id."""
    from curator.groups import ok_vectors
    from curator.stores import space_slug
    from indexing.map2d import compute_map

    out = {}
    for space in spaces:
        ids, X = ok_vectors(catalog, space)
        if len(ids) == 0:
            continue
        result = compute_map(X, sample_size=sample_size, seed=seed, progress=progress,
                             cancel=cancel)
        folder = catalog.root / MAPS_DIR / space_slug(space)
        folder.mkdir(parents=True, exist_ok=True)
        tmp_c, tmp_i = folder / "coords.tmp.npy", folder / "ids.tmp.npy"
        np.save(tmp_c, np.asarray(result.coords, np.float32))
        np.save(tmp_i, np.asarray(ids, np.int64))
        os.replace(tmp_c, folder / "coords.npy")
        os.replace(tmp_i, folder / "ids.npy")
        (folder / "map.json").write_text(json.dumps({"space": space, "n": int(len(ids)),
                                                     "params": _plain(result.params)}))
        out[space] = {"items": int(len(ids)), "sampled": int(len(result.sample_idx))}
    return out


def _plain(value: Any) -> Any:
    from curator.groups import _jsonable

    return _jsonable(value)


def load_map(catalog: Catalog, space: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, coords (n, 2)) of one space, or of all spaces laid side by side."""
    from curator.stores import space_slug

    spaces = [space] if space else [r[0] for r in catalog.db.execute(
        "SELECT space FROM spaces ORDER BY space")]
    all_ids, all_xy = [], []
    shift = 0.0
    for s in spaces:
        folder = catalog.root / MAPS_DIR / space_slug(s)
        if not (folder / "coords.npy").exists():
            continue
        ids = np.load(folder / "ids.npy", mmap_mode="r")
        xy = np.load(folder / "coords.npy", mmap_mode="r")
        if len(spaces) > 1:
            xy = np.asarray(xy) + np.array([shift, 0.0], np.float32)
            lo, hi = (float(xy[:, 0].min()), float(xy[:, 0].max())) if len(xy) else (0.0, 0.0)
            shift = hi + 0.25 * max(hi - lo, 1.0)
        all_ids.append(ids)
        all_xy.append(xy)
    if not all_ids:
        raise UsageError(f"{catalog.root} has no map yet; run `curator map` first")
    if len(all_ids) == 1:
        return all_ids[0], all_xy[0]
    return np.concatenate(all_ids), np.concatenate(all_xy).astype(np.float32)
