"""Shared test fixtures: isolated settings and a factory for small real media files (the factory
itself is tests/helpers/media.py, which bench scripts use too)."""

from __future__ import annotations

import os

import pytest

from tests.helpers.media import MediaFactory


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Config and caches point into a temporary folder; no test reads the user's own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CURATOR_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    for name in list(os.environ):
        if name.startswith("CURATOR_") and name != "CURATOR_CONFIG":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def media() -> MediaFactory:
    return MediaFactory()
