"""Embedder specs by value: resolved once, capabilities known without loading, saved as data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from indexing.embedders import (
    DEFAULT_MODELS,
    Capabilities,
    EmbedderSpec,
    capabilities,
    from_saved,
    register_embedder,
    resolve,
)


def test_a_model_string_resolves_to_its_family_by_modality():
    assert resolve(DEFAULT_MODELS["image"]) == EmbedderSpec("open_clip", DEFAULT_MODELS["image"])
    assert resolve(DEFAULT_MODELS["audio"], "audio") == EmbedderSpec("clap",
                                                                     DEFAULT_MODELS["audio"])
    assert resolve("classic") == resolve("classic", "audio") == EmbedderSpec("classic")
    assert resolve("open_clip:hf-hub:org/repo") == EmbedderSpec("open_clip", "hf-hub:org/repo")
    assert resolve("hf-hub:org/repo") == EmbedderSpec("open_clip", "hf-hub:org/repo")
    spec = resolve("ViT-B-32", weights="/w.safetensors")
    assert spec.weights == "/w.safetensors" and resolve(spec) is spec
    with pytest.raises(ValueError):
        resolve("  ")


def test_capabilities_replace_name_checks():
    assert not capabilities("classic").joint_space and not capabilities("classic").has_text
    assert capabilities("open_clip").has_text and capabilities("open_clip").joint_space
    assert not capabilities("classic").needs_weights and capabilities("clap").needs_weights
    assert resolve("laion/x", "audio").capabilities.modalities == frozenset({"audio"})
    with pytest.raises(KeyError, match="known"):
        capabilities("nothing")


def test_a_spec_round_trips_through_plain_data():
    spec = EmbedderSpec("open_clip", "ViT-B-32/x", "/w.pt")
    assert spec.to_saved() == {"name": "open_clip", "model": "ViT-B-32/x", "weights": "/w.pt"}
    assert from_saved(spec.to_saved()) == spec
    assert from_saved({"name": "classic"}) == EmbedderSpec("classic")
    assert EmbedderSpec("classic").label == "classic" and spec.label == "ViT-B-32/x"


def test_the_classic_embedder_matches_its_registered_capabilities():
    embedder = EmbedderSpec("classic").create(device="cpu")
    caps = capabilities("classic")
    assert embedder.joint_space == caps.joint_space and embedder.has_text == caps.has_text
    assert embedder.modalities == caps.modalities


def test_a_plugin_registers_with_its_capabilities():
    from indexing.embedders import base

    register_embedder("test_plugin", "indexing.embedders.classic:create",
                      Capabilities(joint_space=True, has_text=False))
    try:
        spec = resolve("test_plugin")
        assert spec.capabilities.joint_space and spec.create().name == "classic"
    finally:
        base._REGISTRY.pop("test_plugin")


def test_default_models_load_nothing_heavy():
    code = ("import sys; from indexing.embedders.defaults import DEFAULT_MODELS; "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
