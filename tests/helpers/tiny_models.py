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
