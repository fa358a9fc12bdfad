"""Embedders: the registry, model specs resolved by value, and the built-in models.

The names below load `indexing.embedders.base` (and NumPy) on first use, so that importing
`indexing.embedders.defaults` stays light for the command line's start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

_FROM_BASE = (
    "Capabilities",
    "Decoded",
    "Embedder",
    "EmbedderSpec",
    "EmbedderUnavailable",
    "EmbedResult",
    "available_embedders",
    "capabilities",
    "create_embedder",
    "from_saved",
    "register_embedder",
    "resolve",
)

__all__ = ["DEFAULT_MODELS", "FAMILY", *_FROM_BASE]

from indexing.embedders.defaults import DEFAULT_MODELS, FAMILY  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module("indexing.embedders.base"), name)
    raise AttributeError(f"module 'indexing.embedders' has no attribute {name!r}")
