"""The 2-D map of every item: coordinates per embedding space, stored as arrays keyed by item id."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np

from curator.catalog import Catalog
from curator.errors import UsageError
from curator.search.index_files import tmp_name
from indexing.progress import Progress

MAPS_DIR = "maps"


class SpaceMap(TypedDict):
    """What a map run did in one embedding space: items placed, of which fitted (sampled)."""

    items: int
    sampled: int


def compute_maps(catalog: Catalog, spaces: list[str], sample_size: int = 50_000, seed: int = 0,
                 progress: Progress | None = None,
                 cancel: Callable[[], bool] | None = None) -> dict[str, SpaceMap]:
    """2-D coordinates for every item of each space, stored as arrays keyed by item id."""
    from curator.groups import ok_vectors
    from curator.stores import space_slug
    from indexing.map2d import compute_map

    out: dict[str, SpaceMap] = {}
    for space in spaces:
        ids, X = ok_vectors(catalog, space)
        if len(ids) == 0:
            continue
        result = compute_map(X, sample_size=sample_size, seed=seed, progress=progress,
                             cancel=cancel)
        folder = catalog.root / MAPS_DIR / space_slug(space)
        folder.mkdir(parents=True, exist_ok=True)
        # Names unique to this process and thread, renamed into place: two map runs never
        # write into each other's files, and a reader sees a whole file.
        tmp_c, tmp_i = tmp_name(folder / "coords.npy"), tmp_name(folder / "ids.npy")
        try:
            with open(tmp_c, "wb") as fh:
                np.save(fh, np.asarray(result.coords, np.float32))
            with open(tmp_i, "wb") as fh:
                np.save(fh, np.asarray(ids, np.int64))
            os.replace(tmp_c, folder / "coords.npy")
            os.replace(tmp_i, folder / "ids.npy")
        finally:
            tmp_c.unlink(missing_ok=True)
            tmp_i.unlink(missing_ok=True)
        (folder / "map.json").write_text(json.dumps({"space": space, "n": len(ids),
                                                     "params": _plain(result.params)}))
        out[space] = {"items": len(ids), "sampled": len(result.sample_idx)}
    return out


def _plain(value: Any) -> Any:
    from curator.groups import _jsonable

    return _jsonable(value)


def load_map(catalog: Catalog, space: str | None = None) -> tuple[np.ndarray, np.ndarray]:
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
        raise UsageError(f"{catalog.root} has no map yet", hint="run `curator map` first")
    if len(all_ids) == 1:
        return all_ids[0], all_xy[0]
    return np.concatenate(all_ids), np.concatenate(all_xy).astype(np.float32)
