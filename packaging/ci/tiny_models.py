"""Write tiny randomly initialised CLIP and CLAP models for the full bundle's smoke run.

No real weights can be downloaded in CI, so the full bundle's CLIP and CLAP code paths (open_clip's
create_model from an `hf-hub:` config, transformers' ClapModel from a local folder, their
tokenizers) are run on models this script builds with torch, open_clip and transformers from the
bundle's build venv:

    build/package/full/venv/bin/python packaging/ci/tiny_models.py OUT

OUT/hub holds `hf-hub:curator-smoke/tiny-clip` filed the way huggingface_hub caches a download
(point HF_HUB_CACHE at it); OUT/tiny-clap is a CLAP folder made with save_pretrained. The shapes
follow tests/indexing/conftest.py, which builds the same kind of models for the test suite
(the tokenizer comes from tests/helpers/tiny_models.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

# The model shapes and the tokenizer builder are shared with the test suite (plain code).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.tiny_models import TINY_CLIP_CFG, roberta_tokenizer  # noqa: E402 - after the path

CLIP_CFG = TINY_CLIP_CFG

CLIP_REPO = "curator-smoke/tiny-clip"


def write_clip(hub: Path) -> Path:
    """A random tiny open_clip model as a cached hub repo; returns its snapshot folder."""
    import open_clip
    import torch
    from safetensors.torch import save

    cfg_dir = hub.parent / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "CuratorSmokeTiny.json").write_text(json.dumps(CLIP_CFG))
    open_clip.add_model_config(cfg_dir)
    torch.manual_seed(0)
    model = open_clip.create_model("CuratorSmokeTiny", pretrained=None)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    config = {"model_cfg": CLIP_CFG, "preprocess_cfg": {"resize_mode": "squash"}}
    return _place_in_hub(hub, CLIP_REPO, {
        "open_clip_config.json": json.dumps(config).encode(),
        "open_clip_model.safetensors": save(state),
    })


def _place_in_hub(hub: Path, repo_id: str, files: dict[str, bytes],
                  revision: str = "a" * 40) -> Path:
    """File blobs and snapshot links as huggingface_hub lays out a downloaded repo."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs" / "main").write_text(revision)
    return snap


def write_clap(folder: Path) -> Path:
    """A random tiny CLAP model (2 HTSAT stages of 1 block, 1-layer text) with its processor."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = roberta_tokenizer(folder, max_length=32)
    config = ClapConfig(
        text_config={"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 64,
                     "max_position_embeddings": 40},
        audio_config={"window_size": 4, "num_mel_bins": 16, "spec_size": 64, "patch_size": 4,
                      "patch_stride": (4, 4), "hidden_size": 32, "depths": [1, 1],
                      "num_attention_heads": [2, 2], "patch_embeds_hidden_size": 16,
                      "num_classes": 10},
        projection_dim=16,
    )
    torch.manual_seed(0)
    ClapModel(config).eval().save_pretrained(str(folder))
    ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, max_length_s=1,
                         fft_window_size=512, frequency_max=8000, truncation="rand_trunc",
                         padding="repeatpad").save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write hub/ and tiny-clap/ into")
    out = parser.parse_args().out
    snap = write_clip(out / "hub")
    clap = write_clap(out / "tiny-clap")
    print(f"hf-hub:{CLIP_REPO} in {out / 'hub'} ({snap.name[:8]}); CLAP folder {clap}")


if __name__ == "__main__":
    main()
