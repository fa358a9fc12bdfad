"""Query vectors, one function per kind of query: by text, by an item, by a media file.

Each returns `Query` rows (one per embedding space that can answer), which `curator.search.engine`
searches and merges.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curator.catalog import Catalog
from curator.embed import space_spec
from curator.errors import CuratorError, UsageError

TEXT_PROBE_FACTOR = 4
"""Text queries scan 4x the default inverted lists: recall@50 of random-direction queries at 1M
rose from 0.83 to (see docs/benchmarks.md) for ~4x the (millisecond) search cost."""


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run one query's forward pass on the calling thread alone: a batch of one cannot use more,
    and waking torch's thread team for it costs 5x on a busy machine (260 ms against 52 ms)."""
    torch = sys.modules.get("torch")  # only when a model already imported it
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Query:
    """One query vector in one space, and the items it must not return (the example item)."""

    space: str
    vector: np.ndarray
    exclude: frozenset[int] = field(default_factory=frozenset)
    # Inverted lists scanned, as a multiple of the index's default. A text vector lies apart from
    # the media vectors (CLIP's modality gap), so its neighbours spread over more lists.
    probe_factor: int = 1


def spaces_for(catalog: Catalog, space: str | None, modality: str | None) -> list[dict]:
    """The spaces a query may search, narrowed to one space or to those holding a modality."""
    spaces = [dict(r) for r in catalog.db.query("SELECT * FROM spaces ORDER BY space")]
    if space:
        spaces = [s for s in spaces if s["space"] == space]
        if not spaces:
            raise UsageError(f"no embedding space {space!r}")
    if modality:
        spaces = [s for s in spaces if modality in json.loads(s["modalities"])]
    if not spaces:
        raise UsageError("no embedding space to search"
                         + (f" (none holds {modality})" if modality else ""),
                         hint="run `curator embed` first")
    return spaces


def make_embedder(catalog: Catalog, space: str, offline: bool | None = None) -> Any:
    """Rebuild the embedder that made a space, from the options recorded with it."""
    from indexing.embedders import EmbedderUnavailable

    try:
        embedder = space_spec(catalog, space).create(offline=offline)
    except EmbedderUnavailable as exc:
        raise CuratorError(f"cannot load the model of space {space}: {exc}") from exc
    if embedder.space != space:
        raise CuratorError(f"the model now gives space {embedder.space}, not {space}; "
                           "re-embed or restore the original weights")
    return embedder


def like_queries(catalog: Catalog, spaces: list[dict], item_id: int,
                 cache: Any = None) -> list[Query]:
    """The stored vector of an item, in each space that holds it."""
    from curator.embed import space_store

    if catalog.db.execute("SELECT 1 FROM items WHERE id = ?", [item_id]).fetchone() is None:
        raise UsageError(f"no item with id {item_id}")
    out = []
    for s in spaces:
        if cache is not None:
            ids, vectors = cache.vectors(s["space"])
            pos = int(np.searchsorted(ids, item_id)) if len(ids) else 0
            if pos < len(ids) and ids[pos] == item_id:
                vector = np.asarray(vectors[pos], np.float32)
                out.append(Query(s["space"], vector, frozenset({int(item_id)})))
            continue
        found, X = space_store(catalog, s["space"]).lookup(np.array([item_id]))
        if len(found):
            out.append(Query(s["space"], X[0], frozenset({int(item_id)})))
    if not out:
        raise UsageError(f"item {item_id} has no vector yet", hint="run `curator embed`")
    return out


def text_queries(catalog: Catalog, spaces: list[dict], text: str, cache: Any,
                 offline: bool | None) -> list[Query]:
    """The text through each space's text tower (CLIP, CLAP); spaces without one are skipped."""
    if not text.strip():
        raise UsageError("the text query is empty", hint="give words to search for", option="text")
    out, reasons = [], []
    for s in spaces:
        if not space_spec(catalog, s["space"]).capabilities.has_text:
            reasons.append(f"{s['space']} ({s['embedder']}) has no text tower")
            continue
        embedder, _ = cache.embedder(s["space"], offline)
        if not embedder.has_text:
            reasons.append(f"{s['space']} has no text tower")
            continue
        out.append(Query(s["space"], cache.embed_text(s["space"], [text], offline)[0],
                         probe_factor=TEXT_PROBE_FACTOR))
    if not out:
        raise UsageError("text search needs a model with a text tower (CLIP or CLAP): "
                         + "; ".join(reasons) + "; search by example instead",
                         hint="give an item to search like", option="like")
    return out


def file_queries(catalog: Catalog, spaces: list[dict], file: str, cache: Any,
                 offline: bool | None) -> list[Query]:
    """A media file embedded by each space that takes its modality."""
    from indexing.media import probe_file

    path = Path(file)
    if not path.is_file():
        raise UsageError(f"{file}: no such file")
    info = probe_file(str(path))
    if info.error or info.modality is None:
        raise UsageError(f"{file}: {info.error or 'not an image, audio or video file'}")
    out = []
    for s in spaces:
        if info.modality not in json.loads(s["modalities"]):
            continue
        embedder, lock = cache.embedder(s["space"], offline)
        decoded = embedder.decoder()(-1, str(path), info.modality, False)
        if decoded.error:
            raise UsageError(f"{file}: {decoded.error}")
        with lock, single_torch_thread():
            vector = embedder.embed_batch([decoded]).vectors[0]
        out.append(Query(s["space"], vector))
    if not out:
        raise UsageError(f"no embedding space holds {info.modality} items")
    return out
