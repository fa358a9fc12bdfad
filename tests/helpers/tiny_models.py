"""Pieces of the tiny, randomly initialised models that the tests, `bench/gpu_bench.py` and the
full bundle's smoke run build for themselves (no real weights can be downloaded here). Plain
functions with no pytest, so a build venv can import them."""

from __future__ import annotations

from pathlib import Path


def roberta_tokenizer(folder: Path, max_length: int) -> int:
    """Save a byte-level BPE tokenizer with RoBERTa's special tokens and no merges (what a CLAP
    text tower reads) to `folder`, built offline; its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
        sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
        model_max_length=max_length,
    ).save_pretrained(str(folder))
    return len(vocab)


# A one-layer ViT and text tower; vocab 49408 matches open_clip's bundled BPE tokenizer.
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def tiny_clip_weights(folder: Path, arch: str, seed: int) -> str:
    """Register `arch` (TINY_CLIP_CFG) with open_clip, build it with random weights for `seed`
    and save them in `folder` as safetensors; the file's path."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg_dir = folder / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / f"{arch}.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_dir)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    path = folder / "tiny.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              str(path))
    return str(path)
