"""Building an open_clip model from local files: weights, tokenizer, and video frames to its input.

Weights load by state dict (safetensors, or torch with `weights_only`), without open_clip's
"random init" notice; video frames are fitted to the model's input size and stacked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexing.embedders.base import Decoded, EmbedderUnavailable


class _DropRandomInitNotice(logging.Filter):
    """open_clip logs "initialized randomly" before we load the weights ourselves; drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("initialized randomly" in msg or "initialized partially" in msg)


@contextlib.contextmanager
def quiet_random_init() -> Iterator[None]:
    """Hide open_clip's "random init" notice while weights are about to be loaded."""
    root = logging.getLogger()
    flt = _DropRandomInitNotice()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def apply_state_dict(model: Any, state_dict: dict[str, Any], what: str, path: Path) -> None:
    """Load a state_dict strictly, with the same key fixes open_clip's load_checkpoint applies."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import (
        convert_to_custom_text_state_dict,
        resize_pos_embed,
        resize_text_pos_embed,
    )

    state_dict = convert_state_dict(model, state_dict)
    if "positional_embedding" in state_dict and not hasattr(model, "positional_embedding"):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    for key in ("logit_scale", "logit_bias"):
        param = getattr(model, key, None)
        if key in state_dict and param is not None and param.ndim != state_dict[key].ndim:
            state_dict[key] = state_dict[key].reshape(param.shape)
    if "logit_bias" not in state_dict and getattr(model, "logit_bias", None) is not None:
        import torch

        state_dict["logit_bias"] = torch.zeros_like(model.logit_bias)
    state_dict.pop("text.transformer.embeddings.position_ids", None)
    try:
        resize_pos_embed(state_dict, model)
        resize_text_pos_embed(state_dict, model)
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, AssertionError, KeyError, ValueError) as exc:
        text = str(exc) or type(exc).__name__
        raise EmbedderUnavailable(
            f"{what}: the weights in {path} do not fit this architecture "
            f"({text[:400]}{'...' if len(text) > 400 else ''})"
        ) from exc


def make_tokenizer(model_string: str, arch: str | None, text_cfg: dict[str, Any]) -> Any:
    """open_clip's tokenizer for the model, built from the (localised) text config."""
    from open_clip import get_tokenizer
    from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer, SimpleTokenizer

    context_length = text_cfg.get("context_length", DEFAULT_CONTEXT_LENGTH)
    kwargs = dict(text_cfg.get("tokenizer_kwargs", {}))
    try:
        if text_cfg.get("hf_tokenizer_name"):
            return HFTokenizer(
                text_cfg["hf_tokenizer_name"],
                context_length=context_length,
                tokenizer_mode=text_cfg.get("tokenizer_mode"),
                **kwargs,
            )
        if arch is not None:
            return get_tokenizer(arch)
        return SimpleTokenizer(context_length=context_length, **kwargs)
    except (OSError, ValueError) as exc:
        raise EmbedderUnavailable(f"open_clip model {model_string}: cannot load its tokenizer "
                                  f"({exc})") from exc


def fit_frames(
    frames: Any,
    size: tuple[int, int],
    mode: str,
    interpolation: str,
    pad_rgb: Sequence[int] = (0, 0, 0),
) -> Any:
    """Resize uint8 frames (N, 3, h, w) to the model input `size`, as the decoder would have."""
    import torch
    import torch.nn.functional as F

    h, w = frames.shape[-2:]
    th, tw = size
    interp = interpolation if interpolation in ("bicubic", "bilinear", "nearest") else "bicubic"
    kw = {"antialias": True, "align_corners": False} if interp != "nearest" else {}
    x = frames.float()
    if mode == "squash":
        x = F.interpolate(x, size=(th, tw), mode=interp, **kw)
    else:
        scale = max(th / h, tw / w) if mode == "crop" else min(th / h, tw / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode=interp, **kw)
        if mode == "crop":
            top, left = max(0, (nh - th) // 2), max(0, (nw - tw) // 2)
            x = x[..., top : top + th, left : left + tw]
        pad_h, pad_w = th - x.shape[-2], tw - x.shape[-1]
        if pad_h > 0 or pad_w > 0:
            canvas = torch.tensor(pad_rgb, dtype=x.dtype, device=x.device).view(1, 3, 1, 1).expand(
                x.shape[0], 3, th, tw)
            canvas = canvas.clone()
            top, left = pad_h // 2, pad_w // 2
            canvas[..., top : top + x.shape[-2], left : left + x.shape[-1]] = x
            x = canvas
    return x.round().clamp(0, 255).to(torch.uint8)


def frames_array(item: Decoded) -> np.ndarray:
    """The item's pixels as uint8 (F, H, W, 3)."""
    data = item.data
    if data is None:
        raise ValueError(
            f"item {item.item_id} has no decoded data ({item.error or 'no error given'}); "
            "leave failed decodes out of embed_batch"
        )
    data = np.asarray(data)
    if not data.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
        data = data.copy()
    if data.dtype != np.uint8:
        raise ValueError(f"item {item.item_id}: pixels must be uint8, got {data.dtype}")
    if item.modality == "image":
        data = data[None]
    if data.ndim == 3:  # grey frames (F, H, W)
        data = data[..., None]
    if data.ndim != 4 or data.shape[0] == 0:
        raise ValueError(f"item {item.item_id}: cannot read {item.modality} pixels of shape "
                         f"{data.shape}")
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    elif data.shape[-1] == 4:
        data = data[..., :3]
    elif data.shape[-1] != 3:
        raise ValueError(f"item {item.item_id}: expected RGB pixels, got shape {data.shape}")
    return data
