"""Embedders: the registry and the built-in models (open_clip, CLAP, classic)."""

from indexing.embedders.base import (
    Decoded,
    Embedder,
    EmbedderUnavailable,
    EmbedResult,
    available_embedders,
    create_embedder,
    register_embedder,
)

__all__ = [
    "Decoded",
    "Embedder",
    "EmbedderUnavailable",
    "EmbedResult",
    "available_embedders",
    "create_embedder",
    "register_embedder",
]
