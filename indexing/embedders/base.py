"""The Embedder interface and the registry that names every embedder, built-in or plug-in."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from indexing.embedders.defaults import FAMILY


class EmbedderUnavailable(RuntimeError):
    """The embedder cannot run here (weights absent, package missing); the message says what to
    do."""


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
        joint_space: whether vectors of different modalities in its space are comparable (CLIP:
            an image and a video frame are; classic only shares a space id across modalities).
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
    joint_space: bool = True
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


@dataclass(frozen=True)
class Capabilities:
    """What an embedder can do, known without loading it.

    Attributes:
        joint_space: vectors of all its modalities are comparable (one space to cluster and search).
        has_text: it has a text tower, so text queries work.
        modalities: the modalities it embeds.
        needs_weights: it loads model weights (and torch); False for a computed embedder.
    """

    joint_space: bool = True
    has_text: bool = False
    modalities: frozenset = frozenset({"image", "video", "audio"})
    needs_weights: bool = True


_REGISTRY: dict[str, tuple[str, Capabilities]] = {
    # Built-ins register the same way a plug-in does: a name, "module:factory", capabilities.
    "classic": ("indexing.embedders.classic:create",
                Capabilities(joint_space=False, has_text=False, needs_weights=False)),
    "open_clip": ("indexing.embedders.clip:create",
                  Capabilities(joint_space=True, has_text=True,
                               modalities=frozenset({"image", "video"}))),
    "clap": ("indexing.embedders.clap:create",
             Capabilities(joint_space=True, has_text=True, modalities=frozenset({"audio"}))),
}


def register_embedder(name: str, factory: str,
                      capabilities: Capabilities = Capabilities()) -> None:
    """Register an embedder factory under `name` as a "package.module:function" string."""
    _REGISTRY[name] = (factory, capabilities)


def available_embedders() -> list[str]:
    """The registered embedder names."""
    return sorted(_REGISTRY)


def capabilities(name: str) -> Capabilities:
    """The capabilities an embedder was registered with.

    Raises:
        KeyError: no embedder of that name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown embedder {name!r}; known: {', '.join(available_embedders())}")
    return _REGISTRY[name][1]


def create_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder registered as `name` with its options (model, weights, device, ...).

    Raises:
        KeyError: no embedder of that name (the message lists the known ones).
        EmbedderUnavailable: it cannot run here; the message says what to do.
    """
    capabilities(name)
    module_name, _, func = _REGISTRY[name][0].partition(":")
    factory = getattr(importlib.import_module(module_name), func)
    return factory(**options)


@dataclass(frozen=True)
class EmbedderSpec:
    """A model chosen by value: the registered embedder and what it loads, resolved once.

    Attributes:
        name: registry key ("open_clip", "clap", "classic", or a plug-in's).
        model: the model string its factory loads (None: the factory's default).
        weights: a local weights file or folder (None: the model's own).
    """

    name: str
    model: Optional[str] = None
    weights: Optional[str] = None

    @property
    def capabilities(self) -> Capabilities:
        return capabilities(self.name)

    @property
    def label(self) -> str:
        """What the user would type to choose it again."""
        return self.model or self.name

    def options(self) -> dict[str, Any]:
        """The factory's model options (those that are set)."""
        return {k: v for k, v in (("model", self.model), ("weights", self.weights))
                if v is not None}

    def to_saved(self) -> dict[str, Any]:
        """The spec as plain data, for the catalog; `from_saved` reads it back."""
        return {"name": self.name, **self.options()}

    def create(self, **runtime: Any) -> Embedder:
        """Load the embedder with runtime options (device, precision, batch_size, offline).

        Raises:
            EmbedderUnavailable: it cannot run here; the message says what to do.
        """
        return create_embedder(self.name, **self.options(), **runtime)


def resolve(spec: str | EmbedderSpec, modality: str = "image",
            weights: Optional[str] = None) -> EmbedderSpec:
    """The embedder a user's model choice names.

    A registered name alone ("classic", "open_clip") is that embedder with its default model;
    "name:model" (e.g. "open_clip:ViT-L-14/openai") names both; any other string is a model of
    the family for the modality (open_clip for images and video, CLAP for audio).

    Args:
        spec: the choice, or an already resolved spec (returned as it is).
        modality: what the model is chosen for: "image" (also video) or "audio".
        weights: a local weights file or folder for the model.

    Raises:
        ValueError: an empty choice.
    """
    if isinstance(spec, EmbedderSpec):
        return spec
    text = str(spec).strip()
    if not text:
        raise ValueError("no model given; name a model or 'classic'")
    if text in _REGISTRY:
        return EmbedderSpec(text, None, weights)
    prefix, sep, rest = text.partition(":")
    if sep and prefix in _REGISTRY and rest:
        return EmbedderSpec(prefix, rest, weights)
    return EmbedderSpec(FAMILY.get(modality, "open_clip"), text, weights)


def from_saved(saved: dict[str, Any]) -> EmbedderSpec:
    """The spec saved with `EmbedderSpec.to_saved` (the `options` of a space in the catalog)."""
    return EmbedderSpec(str(saved["name"]), saved.get("model"), saved.get("weights"))
