"""CLIP's text tower for one query on the CPU: weights packed for oneDNN, padding left out.

A text query is a handful of tokens, so each of the tower's matrix products is a skinny one
(about 10 rows against a 512 x 2048 weight): its cost is reading the weights (about 150 MB for
ViT-B-32's text tower) and the per-call overhead, not arithmetic. oneDNN reads weights it has
re-laid out once ("packed") faster than the BLAS call behind `nn.Linear` reads the plain
matrix: about a fifth less CPU time per ViT-B-32 query on this machine (see docs/benchmarks.md).
`PackedTextTower` runs open_clip's own blocks in the same order with those packed weights and
the same causal mask; the features agree with `model.encode_text` up to float rounding
(the tests compare them). A model whose text tower differs from open_clip's standard CLIP text
transformer gets None from `PackedTextTower.build`, and the caller keeps the plain path.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _standard_blocks(model: Any) -> bool:
    """Whether the text tower is open_clip's plain CLIP text transformer (what this runs)."""
    from open_clip.model import CLIP
    from open_clip.transformer import ResidualAttentionBlock, Transformer
    from torch import nn

    if type(model).encode_text is not CLIP.encode_text:
        return False
    if getattr(model, "text_pool_type", None) != "argmax" or getattr(model, "attn_mask",
                                                                      None) is None:
        return False
    transformer = getattr(model, "transformer", None)
    if (transformer is None or type(transformer).forward is not Transformer.forward
            or not getattr(transformer, "batch_first", False)):
        return False
    for block in transformer.resblocks:
        attn = getattr(block, "attn", None)
        if (type(block) is not ResidualAttentionBlock or hasattr(block, "ln_1_kv")
                or not isinstance(attn, nn.MultiheadAttention) or not attn.batch_first
                or not attn._qkv_same_embed_dim or attn.in_proj_bias is None
                or attn.bias_k is not None or attn.add_zero_attn
                or list(block.mlp._modules) != ["c_fc", "gelu", "c_proj"]
                or block.mlp.c_fc.bias is None or block.mlp.c_proj.bias is None):
            return False
    return True


class PackedTextTower:
    """open_clip's CLIP text tower with its linear weights packed for oneDNN (fp32, CPU only).

    Build it with `build`; call it with a (batch, context) token tensor for the text features,
    exactly what `model.encode_text` returns (before normalisation).
    """

    def __init__(self, model: Any, blocks: list[dict[str, Any]]) -> None:
        self.model = model
        self.blocks = blocks

    @classmethod
    def build(cls, model: Any) -> PackedTextTower | None:
        """The packed tower of a float32 CPU model, or None where it does not apply (another
        text tower, another dtype or device, or a torch without oneDNN)."""
        import torch

        try:
            if not torch.backends.mkldnn.is_available() or not _standard_blocks(model):
                return None
            weight = model.token_embedding.weight
            if weight.dtype != torch.float32 or weight.device.type != "cpu":
                return None
            pack = torch.ops.mkldnn._reorder_linear_weight
            blocks = []
            with torch.inference_mode():
                for block in model.transformer.resblocks:
                    attn, mlp = block.attn, block.mlp
                    blocks.append({
                        "block": block, "heads": attn.num_heads,
                        "qkv": (pack(attn.in_proj_weight.detach(), None), attn.in_proj_bias),
                        "out": (pack(attn.out_proj.weight.detach(), None), attn.out_proj.bias),
                        "fc": (pack(mlp.c_fc.weight.detach(), None), mlp.c_fc.bias),
                        "proj": (pack(mlp.c_proj.weight.detach(), None), mlp.c_proj.bias),
                    })
            tower = cls(model, blocks)
            if not tower._agrees():
                log.debug("text tower not packed: its features differ from encode_text")
                return None
        except Exception as exc:  # noqa: BLE001 (only a speed-up: any failure keeps the plain tower)
            # an older or leaner torch, whose private oneDNN ops are missing or differ
            log.debug("text tower not packed: %s", exc)
            return None
        return tower

    def _agrees(self) -> bool:
        """One trial query against open_clip's own tower: the private ops this uses may change
        between torch releases, so the packed path is only kept when it gives the same
        features."""
        import torch

        model = self.model
        context = int(model.positional_embedding.shape[0])
        vocab = int(model.token_embedding.num_embeddings)
        tokens = torch.zeros((1, context), dtype=torch.long)
        tokens[0, :4] = torch.tensor([3, 5, 9, vocab - 1])  # the highest id ends the text
        with torch.inference_mode():
            want = model.encode_text(tokens)
            got = self(tokens)
        return bool(got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4))

    def __call__(self, tokens: Any) -> Any:
        """Text features of `tokens` (batch, context), cut after the batch's last end-of-text
        token (under the causal mask nothing before it sees the padding)."""
        import torch
        import torch.nn.functional as F

        model = self.model
        linear = torch.ops.mkldnn._linear_pointwise
        end = min(int(tokens.argmax(dim=-1).max()) + 1, tokens.shape[1])
        tokens = tokens[:, :end]
        x = model.token_embedding(tokens) + model.positional_embedding[:end]
        mask = model.attn_mask[:end, :end].to(x.dtype)
        batch, length, width = x.shape
        for p in self.blocks:
            block, heads = p["block"], p["heads"]
            qkv = linear(block.ln_1(x), *p["qkv"], "none", [], "")
            q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            a = a.transpose(1, 2).reshape(batch, length, width)
            x = x + block.ls_1(linear(a, *p["out"], "none", [], ""))
            h = block.mlp.gelu(linear(block.ln_2(x), *p["fc"], "none", [], ""))
            x = x + block.ls_2(linear(h, *p["proj"], "none", [], ""))
        x = model.ln_final(x)
        x = x[torch.arange(batch), tokens.argmax(dim=-1)]
        projection = model.text_projection
        if projection is None:
            return x
        if isinstance(projection, torch.nn.Linear):
            return projection(x)
        return x @ projection
