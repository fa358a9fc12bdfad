"""The open_clip embedder: images and video frames through the image tower, text through the text
tower.

Where the model's files come from is `clip_source`; building the model from them (weights,
tokenizer) and fitting video frames is `clip_model`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from indexing.embedders.base import Decoded, Embedder, EmbedderUnavailable, EmbedResult
from indexing.embedders.clip_model import (
    apply_state_dict,
    fit_frames,
    frames_array,
    make_tokenizer,
    quiet_random_init,
)
from indexing.embedders.clip_source import ClipSource, broken_torch_message, resolve_clip_source
from indexing.embedders.defaults import DEFAULT_MODELS
from indexing.embedders.weights import (
    autocast,
    load_state_dict_file,
    read_open_clip_config,
    resolve_device,
    resolve_precision,
    weight_dtype,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_MODELS["image"]  # named once, in embedders.defaults
# open_clip's resize_mode → DecodeSpec.resize_mode.
RESIZE_MODES = {"shortest": "crop", "squash": "squash", "longest": "pad"}
_RESIZE_WORDS = {"crop": "shortest + center crop", "squash": "squash", "pad": "longest + pad"}


def _import_open_clip() -> tuple[Any, Any]:
    """open_clip and torch, or EmbedderUnavailable saying what to install or fix."""
    try:
        import open_clip
        import torch
    except ImportError as exc:
        raise EmbedderUnavailable(
            f"open_clip needs torch and open-clip-torch ({exc}); `pip install open-clip-torch`"
        ) from exc
    except (RuntimeError, OSError) as exc:
        raise EmbedderUnavailable(broken_torch_message("open_clip", exc)) from exc
    return open_clip, torch


def _build_model(open_clip: Any, source: ClipSource, what: str) -> Any:
    """The model on the CPU in eval mode, its weights loaded from the source's file."""
    state_dict = load_state_dict_file(source.weights)
    extra: dict[str, Any] = {}
    if source.text_cfg is not None:
        extra["text_cfg"] = source.text_cfg
    target = source.arch if source.arch is not None else f"local-dir:{source.config_dir}"
    try:
        with quiet_random_init():
            model = open_clip.create_model(
                target,
                pretrained=None,
                load_weights=False,
                device="cpu",
                force_quick_gelu=source.quick_gelu,
                force_preprocess_cfg=source.preprocess or None,
                pretrained_image=False,
                pretrained_text=False,
                **extra,
            )
    except ImportError as exc:
        raise EmbedderUnavailable(f"{what} needs a package that is missing: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise EmbedderUnavailable(f"{what}: cannot build the model ({exc})") from exc
    apply_state_dict(model, state_dict, what, source.weights)
    del state_dict
    model.eval()
    return model


class OpenClipEmbedder(Embedder):
    """An open_clip model: images and video frames in, text queries in the same space.

    Build it with `create`; the constructor takes a resolved ClipSource.
    """

    name = "open_clip"
    modalities = frozenset({"image", "video"})
    has_text = True

    def __init__(
        self,
        source: ClipSource,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 64,
        video_frames: int = 8,
    ) -> None:
        open_clip, torch = _import_open_clip()
        self.source = source
        self.model_string = source.model_string
        self.space = source.space
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = max(1, int(batch_size))
        self.video_frames = max(1, int(video_frames))
        what = f"open_clip model {source.model_string}"

        model = _build_model(open_clip, source, what)
        self._reparameterize(model)
        self.model = model.to(self.device)
        self.dtype = weight_dtype(self.device, self.precision) or torch.float32
        if self.dtype != torch.float32:
            # Real half precision: the weights themselves (memory halved), not only autocast.
            self.model = self.model.to(self.dtype)
        self._torch = torch
        self._packed_text: Any = None  # PackedTextTower, made on the first text query
        self._packed_tried = False
        self._read_text_side(open_clip, source)
        self._read_preprocess(open_clip.get_model_preprocess_cfg(model), what, torch)
        log.info("loaded %s from %s on %s (%s)", what, source.weights, self.device, self.precision)

    def _read_text_side(self, open_clip: Any, source: ClipSource) -> None:
        """The embedding width and the tokenizer, from the model's config."""
        if source.arch is not None:
            model_cfg = open_clip.get_model_config(source.arch)
        else:
            model_cfg = read_open_clip_config(source.config_dir)["model_cfg"]
        self.dim = int(model_cfg["embed_dim"])
        text_cfg = source.text_cfg if source.text_cfg is not None else model_cfg.get("text_cfg", {})
        self.tokenizer = make_tokenizer(source.model_string, source.arch, text_cfg)

    def _read_preprocess(self, pp: dict[str, Any], what: str, torch: Any) -> None:
        """Input size, resize mode, padding and normalisation, from open_clip's preprocess cfg."""
        size = pp.get("size", 224)
        self.input_size: tuple[int, int] = (
            (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        )
        self.image_size = max(self.input_size)
        self.interpolation = str(pp.get("interpolation", "bicubic"))
        clip_mode = str(pp.get("resize_mode", "shortest"))
        if clip_mode not in RESIZE_MODES:
            log.warning("%s: unknown resize_mode %r; cropping instead", what, clip_mode)
        self.resize_mode = RESIZE_MODES.get(clip_mode, "crop")
        # open_clip pads "longest" letterboxes with fill_color before normalising.
        fill = pp.get("fill_color", 0)
        self.pad_rgb = (
            tuple(int(fill) for _ in range(3)) if isinstance(fill, (int, float)) else tuple(fill)
        )
        self.mean = tuple(float(v) for v in pp.get("mean", (0.0, 0.0, 0.0)))
        self.std = tuple(float(v) for v in pp.get("std", (1.0, 1.0, 1.0)))
        self._mean_t = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std_t = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self.preprocess = (
            f"resize {self.image_size} {self.interpolation} {_RESIZE_WORDS[self.resize_mode]}, "
            f"mean={_fmt(self.mean)}, std={_fmt(self.std)}"
        )

    @staticmethod
    def _reparameterize(model: Any) -> None:
        # MobileCLIP's FastViT towers fuse their training-time branches for inference (same
        # outputs, faster); other models have nothing to fuse.
        if not any(hasattr(m, "reparameterize") for m in model.modules()):
            return
        try:
            from timm.utils.model import reparameterize_model

            reparameterize_model(model, inplace=True)
        except (ImportError, AttributeError, RuntimeError) as exc:
            log.debug("no reparameterisation: %s", exc)

    def describe(self) -> dict[str, Any]:
        """What made the vectors, plus the weights file, its hash and the precision."""
        info = super().describe()
        info.update(
            weights=self.source.weights.name,
            weights_sha256=self.source.weights_sha256,
            precision=self.precision,
        )
        return info

    def decoder(self) -> Callable[..., Decoded]:
        """A MediaDecoder that crops/squashes/pads to this model's input size; on a CUDA device
        JPEGs travel encoded and are decoded there in batches (`gpu_decoder`)."""
        from indexing.gpu_decode import gpu_jpeg_available

        if gpu_jpeg_available(self.device):
            return self.gpu_decoder()
        return self.cpu_decoder()

    def cpu_decoder(self) -> Callable[..., Decoded]:
        """Every file decoded on the CPU, to this model's input size."""
        from indexing.decode import DecodeSpec, MediaDecoder

        return MediaDecoder(
            DecodeSpec(
                image_size=self.image_size,
                resize_mode=self.resize_mode,
                video_frames=self.video_frames,
                pad_rgb=self.pad_rgb,
            )
        )

    def gpu_decoder(self) -> Callable[..., Decoded]:
        """Plain JPEGs as encoded bytes for `embed_batch` to decode on the device; the rest on
        the CPU. Used where the model runs on a GPU (also by Ray's GPU actors)."""
        from indexing.gpu_decode import EncodedJpegDecoder

        return EncodedJpegDecoder(self.cpu_decoder())

    def _decode_encoded(self, batch: Sequence[Decoded]) -> dict[int, Any]:
        """Encoded JPEGs of the batch decoded (batched) on the model's device, as uint8
        (1, 3, H, W) by position; one the device cannot decode is decoded on the CPU instead."""
        from indexing.gpu_decode import decode_jpeg_batch, decode_jpeg_cpu, is_encoded

        positions = [i for i, item in enumerate(batch) if is_encoded(item)]
        if not positions:
            return {}
        torch = self._torch
        device = self.device if self.device.startswith("cuda") else "cpu"
        images = decode_jpeg_batch([batch[i].data for i in positions], device)
        out: dict[int, Any] = {}
        for pos, image in zip(positions, images):
            if image is None:
                array = decode_jpeg_cpu(batch[pos].data, self.image_size, self.resize_mode,
                                        self.pad_rgb)
                image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
            out[pos] = image[None]
        return out

    def _encode_pixels(self, frames: Any) -> Any:
        """uint8 (N, 3, H, W) on cpu → L2-normalised float32 (N, dim) on cpu, in batches."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            pin = self.device.startswith("cuda") and frames.device.type == "cpu"
            for start in range(0, frames.shape[0], self.batch_size):
                x = frames[start : start + self.batch_size]
                if pin:  # page-locked memory makes the copy asynchronous
                    x = x.pin_memory()
                x = x.to(self.device, non_blocking=True)
                x = ((x.float() - self._mean_t) / self._std_t).to(self.dtype)
                with autocast(self.device, self.precision):
                    feats = self.model.encode_image(x)
                out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros((0, self.dim))

    def embed_batch(self, batch: Sequence[Decoded]) -> EmbedResult:
        """Embed images (H, W, 3) and videos (F, H, W, 3), uint8.

        A video's vector is the normalised mean of its frame vectors; the frame vectors are
        kept in `EmbedResult.frames` under the item's position in `batch`.

        Raises:
            ValueError: an item without data or of a modality this model does not take.
        """
        torch = self._torch
        pieces, counts = [], []
        on_device = self._decode_encoded(batch)
        for pos, item in enumerate(batch):
            if item.modality not in self.modalities:
                raise ValueError(
                    f"item {item.item_id}: open_clip embeds {sorted(self.modalities)}, not "
                    f"{item.modality!r}"
                )
            if pos in on_device:
                frames = on_device[pos]
            else:
                pixels = np.ascontiguousarray(frames_array(item))
                frames = torch.from_numpy(pixels).permute(0, 3, 1, 2)
            if tuple(frames.shape[-2:]) != self.input_size:
                frames = fit_frames(
                    frames, self.input_size, self.resize_mode, self.interpolation, self.pad_rgb
                )
            pieces.append(frames)
            counts.append(frames.shape[0])
        if not pieces:
            return EmbedResult(vectors=np.zeros((0, self.dim), dtype=np.float32))
        if on_device:  # some inputs were decoded on the device: gather everything there
            pieces = [p.to(self.device, non_blocking=True) for p in pieces]
        vecs = self._encode_pixels(torch.cat(pieces)).numpy().astype(np.float32, copy=False)
        vectors = np.empty((len(batch), self.dim), dtype=np.float32)
        frames_out: dict[int, np.ndarray] = {}
        start = 0
        for pos, (item, n) in enumerate(zip(batch, counts)):
            part = vecs[start : start + n]
            start += n
            if item.modality == "video":
                frames_out[pos] = part.copy()
                vectors[pos] = _normalise(part.mean(axis=0))
            else:
                vectors[pos] = part[0]
        return EmbedResult(vectors=vectors, frames=frames_out)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text queries into the image space: L2-normalised float32 (n, dim)."""
        torch = self._torch
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        encode = self._text_encoder()
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
                with autocast(self.device, self.precision):
                    feats = encode(tokens)
                out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def _text_encoder(self) -> Callable[[Any], Any]:
        """Tokens → text features: on a float32 CPU model the tower with packed weights
        (`clip_text`, made on the first text, ~150 MB more for ViT-B-32), else the plain one."""
        if not self._packed_tried:
            from indexing.embedders.clip_text import PackedTextTower

            if self.device == "cpu" and self.dtype == self._torch.float32:
                self._packed_text = PackedTextTower.build(self.model)
            self._packed_tried = True
        if self._packed_text is not None:
            return self._packed_text
        return lambda tokens: encode_text_trimmed(self.model, tokens)


def encode_text_trimmed(model: Any, tokens: Any) -> Any:
    """`model.encode_text(tokens)` without the padding after the last end-of-text token.

    open_clip's CLIP text tower runs every text at its full context (77 tokens for CLIP) under a
    causal mask and keeps only the end-of-text position. Under that mask no position sees a
    later one, so the padding after it changes nothing but costs most of the work: a query of
    a few words has ~10 tokens. Cut at the batch's last end-of-text token, the same features
    come out (up to float rounding) for a fraction of the work. Other towers (Hugging Face
    text models, unmasked or differently pooled ones) run as they are.
    """
    import torch
    from open_clip.model import CLIP
    from open_clip.transformer import text_global_pool

    pool = getattr(model, "text_pool_type", None)
    mask = getattr(model, "attn_mask", None)
    if (type(model).encode_text is not CLIP.encode_text or mask is None or pool != "argmax"
            or tokens.ndim != 2 or not tokens.shape[0]):
        return model.encode_text(tokens)
    end = int(tokens.argmax(dim=-1).max()) + 1  # the end-of-text token has the highest id
    if end >= tokens.shape[1]:
        return model.encode_text(tokens)
    tokens = tokens[:, :end]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:end].to(cast_dtype)
    x = model.transformer(x, attn_mask=mask[:end, :end])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, pool)
    if model.text_projection is not None:
        x = (model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear)
             else x @ model.text_projection)
    return x


def _normalise(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else v.astype(np.float32)


def _fmt(values: Sequence[float]) -> str:
    return "(" + ",".join(f"{v:.3f}" for v in values) + ")"


def create(
    model: str = DEFAULT_MODEL,
    weights: os.PathLike | str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    cache_dir: os.PathLike | str | None = None,
    offline: bool | None = None,
    batch_size: int = 64,
    video_frames: int = 8,
    **ignored: Any,
) -> OpenClipEmbedder:
    """Build the open_clip embedder (registry entry "open_clip").

    Args:
        model: "ARCH/TAG" (see open_clip.list_pretrained()), "hf-hub:org/repo", or "ARCH"
            with `weights`.
        weights: a local checkpoint (.safetensors, or a torch state_dict file); its SHA-256
            prefix becomes part of the space, so different checkpoints never mix.
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N" or "mps".
        precision: "fp32", "fp16" or "bf16": the weights are cast (fp16 on CUDA/MPS, bf16 on
            CUDA with bf16 support and on CPU) and the forward pass runs under autocast; fp16 on
            cpu falls back to fp32.
        cache_dir: open_clip's cache folder; default the Hugging Face cache (HF_HOME).
        offline: True/False to force; None reads CURATOR_OFFLINE / HF_HUB_OFFLINE.
        batch_size: images or frames per forward pass.
        video_frames: frames the decoder samples per video.
        **ignored: options meant for other embedders.

    Raises:
        EmbedderUnavailable: unknown model, weights absent and not downloadable, or a package
            missing; the message says what to do.
    """
    if ignored:
        log.debug("open_clip ignores options %s", sorted(ignored))
    source = resolve_clip_source(model or DEFAULT_MODEL, weights, cache_dir, offline)
    return OpenClipEmbedder(source, device, precision, batch_size, video_frames)
