"""Tiny randomly initialised open_clip and CLAP models, built and saved by the tests, and a fake HF
cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.tiny_models import roberta_tokenizer

TINY_CLIP_ARCH = "CuratorTiny-ViT"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    # vocab 49408 matches open_clip's bundled BPE tokenizer.
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@dataclass(frozen=True)
class TinyClip:
    """A registered tiny open_clip architecture and one random checkpoint saved three ways.

    Attributes:
        arch: the architecture name registered with open_clip.
        config: its model config (as in open_clip_config.json's "model_cfg").
        safetensors: the state_dict as .safetensors.
        pt: the same weights as a torch file {"state_dict": {"module.<key>": ...}} (DDP style).
        plain_pt: the same weights as a plain torch state_dict.
        other_safetensors: a checkpoint of the same architecture with other random weights.
        image_size: model input size.
        dim: embedding dimension.
    """

    arch: str
    config: dict
    safetensors: Path
    pt: Path
    plain_pt: Path
    other_safetensors: Path
    image_size: int = 32
    dim: int = 32


def _contiguous(state_dict):
    return {k: v.detach().clone().contiguous() for k, v in state_dict.items()}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> TinyClip:
    """Register CuratorTiny-ViT with open_clip and save a random checkpoint of it."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("tiny_clip")
    cfg_dir = root / "configs"
    cfg_dir.mkdir()
    (cfg_dir / f"{TINY_CLIP_ARCH}.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_dir)

    paths = {}
    for seed, name in ((0, "tiny"), (1, "other")):
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_CLIP_ARCH, pretrained=None)
        state = _contiguous(model.state_dict())
        paths[name] = root / f"{name}.safetensors"
        save_file(state, str(paths[name]))
        if name == "tiny":
            torch.save(
                {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3},
                root / "tiny.pt",
            )
            torch.save(state, root / "tiny_plain.pt")
    return TinyClip(
        arch=TINY_CLIP_ARCH,
        config=json.loads(json.dumps(TINY_CLIP_CFG)),
        safetensors=paths["tiny"],
        pt=root / "tiny.pt",
        plain_pt=root / "tiny_plain.pt",
        other_safetensors=paths["other"],
    )


@dataclass(frozen=True)
class TinyClap:
    """A tiny random CLAP model saved with save_pretrained (model, feature extractor, tokenizer).

    Attributes:
        folder: the saved folder (config.json, model.safetensors, preprocessor_config.json,
            tokenizer.json, tokenizer_config.json).
        sampling_rate: the feature extractor's rate (16 kHz, not CLAP's 48 kHz, to keep it small).
        window_s: its max length in seconds.
        dim: projection dimension.
    """

    folder: Path
    sampling_rate: int = 16000
    window_s: float = 1.0
    dim: int = 16


@pytest.fixture(scope="session")
def tiny_clap(tmp_path_factory) -> TinyClap:
    """Build and save a tiny random CLAP model (HTSAT 2 stages of 1 block, 1-layer text)."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    folder = tmp_path_factory.mktemp("tiny_clap")
    vocab_size = roberta_tokenizer(folder, max_length=32)
    config = ClapConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 40,
        },
        audio_config={
            "window_size": 4,
            "num_mel_bins": 16,
            "spec_size": 64,
            "patch_size": 4,
            "patch_stride": (4, 4),
            "hidden_size": 32,  # patch_embeds_hidden_size * 2 ** (stages - 1)
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "patch_embeds_hidden_size": 16,
            "num_classes": 10,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    ClapModel(config).eval().save_pretrained(str(folder))
    ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        max_length_s=1,
        fft_window_size=512,
        frequency_max=8000,
        truncation="rand_trunc",
        padding="repeatpad",
    ).save_pretrained(str(folder))
    return TinyClap(folder=folder)


@pytest.fixture(scope="session")
def tiny_hf_tokenizer(tmp_path_factory) -> Path:
    """A folder holding a tiny RoBERTa-style tokenizer (tokenizer.json, tokenizer_config.json)."""
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    roberta_tokenizer(folder, max_length=32)
    return folder


FileSource = Path | bytes


def place_in_hf_cache(
    cache: Path, repo_id: str, files: Mapping[str, FileSource], revision: str = "a" * 40
) -> Path:
    """Write files where huggingface_hub keeps a downloaded repo.

    Layout: models--org--name/blobs/<sha256>, snapshots/<revision>/<file> → ../../blobs/<sha256>
    (a relative symlink, as huggingface_hub makes), refs/main holding the revision.

    Args:
        cache: the hub cache folder (HF_HOME/hub).
        repo_id: "org/name".
        files: file name in the repo → a file to copy or its bytes.
        revision: the commit hash to file them under.

    Returns:
        The snapshot folder.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(repo / "blobs" / digest, link.parent), link)
    (repo / "refs" / "main").write_text(revision)
    return snap


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Callable[..., Path]:
    """An empty, offline Hugging Face cache (HF_HOME in tmp_path, HF_HUB_OFFLINE=1).

    Returns a function `place(repo_id, files, revision=...)` that files a repo into it (see
    `place_in_hf_cache`); its `.hub` attribute is the hub folder.
    """
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = home / "hub"
    hub.mkdir(parents=True)

    def place(repo_id: str, files: Mapping[str, FileSource], revision: str = "a" * 40) -> Path:
        return place_in_hf_cache(hub, repo_id, files, revision)

    place.hub = hub  # type: ignore[attr-defined]
    return place
