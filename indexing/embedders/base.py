"""The Embedder interface and the registry that names every embedder, built-in or plug-in."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np


class EmbedderUnavailable(RuntimeError):
    """The embedder cannot run here (weights absent, package missing); the message says what to do."""


@dataclass
class Decoded:
    """One item decoded in a worker process, ready for `Embedder.embed_batch` (picklable).

    Attributes:
        item_id: the catalog id of the item (opaque to indexing; passed through).
        modality: "image", "audio" or "video".
        data: model input as NumPy: image uint8 (H, W, 3); video uint8 (F, H, W, 3);
            audio float32 (W, S) windows of mono samples at the decoder's sample rate.
        thumbnail: JPEG bytes of the item's thumbnail (256 px image, video frame, audio
            spectrogram), made in the same decode pass; None when not asked for.
        error: one-line reason when decoding failed (data is then None).
    """

    item_id: int
    modality: str
    data: Optional[np.ndarray] = None
    thumbnail: Optional[bytes] = None
    error: Optional[str] = None


@dataclass
class EmbedResult:
    """Vectors for a batch: `vectors` (n, dim) float32, L2-normalised, in input order.

    `frames` holds, for video inputs, the per-frame vectors (F, dim) float32 by position in the
    batch; other positions are absent.
    """

    vectors: np.ndarray
    frames: dict[int, np.ndarray] = field(default_factory=dict)


class Embedder:
    """A model that turns decoded media (and text, where it has a text tower) into vectors.

    Subclasses set the attributes and implement `decoder`, `embed_batch` and, where they have
    a text tower, `embed_text`. Loading happens in the constructor (or lazily on first use);
    a missing weight or package raises EmbedderUnavailable with a message naming the fix.

    Attributes:
        name: registry key ("open_clip", "clap", "classic").
        model_string: what the user asked for, e.g. "ViT-B-32/laion2b_s34b_b79k".
        space: embedding space id; items in one space are comparable, e.g.
            "clip:ViT-B-32/laion2b_s34b_b79k", "clap:laion/clap-htsat-unfused", "classic:v1".
        dim: vector dimension.
        modalities: the modalities this embedder takes.
        preprocess: a short description of the preprocessing, recorded in the catalog.
        has_text: whether `embed_text` works.
        compute_bound: whether `embed_batch` keeps a core busy (a neural network) so decoding
            should leave it one; a light embedder decodes on every core.
    """

    name: str = ""
    model_string: str = ""
    space: str = ""
    dim: int = 0
    modalities: frozenset = frozenset()
    preprocess: str = ""
    has_text: bool = False
    compute_bound: bool = True

    def decoder(self) -> Callable[..., Decoded]:
        """A picklable callable run in worker processes: `(item_id, path, modality, thumbnail)`.

        It must not need the model; it decodes near the model's input size and never raises
        for a bad file (it returns Decoded with `error`).
        """
        raise NotImplementedError

    def embed_batch(self, batch: Sequence[Decoded]) -> EmbedResult:
        """Embed decoded inputs (all without error) into L2-normalised float32 vectors."""
        raise NotImplementedError

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text queries into the same space; EmbedderUnavailable without a text tower."""
        raise EmbedderUnavailable(f"{self.name} has no text tower; search by example instead")

    def describe(self) -> dict[str, Any]:
        """What made the vectors, as recorded in the catalog."""
        return {
            "embedder": self.name,
            "model": self.model_string,
            "space": self.space,
            "dim": self.dim,
            "modalities": sorted(self.modalities),
            "preprocess": self.preprocess,
        }


_REGISTRY: dict[str, str] = {
    # Built-ins register the same way a plug-in does: a name and "module:factory".
    "classic": "indexing.embedders.classic:create",
    "open_clip": "indexing.embedders.clip:create",
    "clap": "indexing.embedders.clap:create",
}


def register_embedder(name: str, factory: str) -> None:
    """Register an embedder factory under `name` as a "package.module:function" string."""
    _REGISTRY[name] = factory


def available_embedders() -> list[str]:
    """The registered embedder names."""
    return sorted(_REGISTRY)


def create_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder registered as `name` with its options (model, weights, device, ...).

    Raises:
        KeyError: no embedder of that name (the message lists the known ones).
        EmbedderUnavailable: it cannot run here; the message says what to do.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown embedder {name!r}; known: {', '.join(available_embedders())}")
    module_name, _, func = _REGISTRY[name].partition(":")
    factory = getattr(importlib.import_module(module_name), func)
    return factory(**options)
