"""The open_clip embedder: images and video frames through the image tower, text through the text
tower."""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexing.embedders.base import Decoded, Embedder, EmbedderUnavailable, EmbedResult
from indexing.embedders.defaults import DEFAULT_MODELS
from indexing.embedders.weights import (
    OPEN_CLIP_CONFIG,
    OPEN_CLIP_WEIGHTS,
    autocast,
    blob_sha256,
    cached_hf_file,
    clip_weight_candidates,
    file_sha256,
    find_cached_clip_file,
    find_cached_hf_model,
    hf_cache_dir,
    load_state_dict_file,
    missing_weights_message,
    read_open_clip_config,
    resolve_device,
    resolve_precision,
    url_cache_dir,
    weight_dtype,
    why_no_download,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_MODELS["image"]  # named once, in embedders.defaults
HF_HUB_PREFIX = "hf-hub:"
# open_clip's resize_mode → DecodeSpec.resize_mode.
RESIZE_MODES = {"shortest": "crop", "squash": "squash", "longest": "pad"}
_RESIZE_WORDS = {"crop": "shortest + center crop", "squash": "squash", "pad": "longest + pad"}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


@dataclass(frozen=True)
class ClipSource:
    """Where one open_clip model comes from, resolved to local files before anything loads.

    Attributes:
        model_string: the canonical model string ("ARCH/tag", "hf-hub:org/repo" or "ARCH").
        space: the embedding space id (includes a weights hash for a local checkpoint).
        arch: built-in architecture name, or None for an "hf-hub:" model.
        config_dir: the folder holding open_clip_config.json for an "hf-hub:" model.
        weights: the local weights file.
        weights_sha256: its SHA-256 when known without reading it (hub blob) or computed.
        preprocess: preprocessing overrides from the pretrained tag (mean, std, ...).
        quick_gelu: whether the weights were trained with QuickGELU.
        text_cfg: the text tower config with Hub references replaced by local folders, or None
            when nothing needed replacing.
    """

    model_string: str
    space: str
    arch: str | None
    config_dir: Path | None
    weights: Path
    weights_sha256: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool = False
    text_cfg: dict[str, Any] | None = None


def parse_model_string(model: str) -> tuple[str, str, str]:
    """Split a model string into (kind, arch or repo, tag).

    Args:
        model: "ARCH/TAG" (also "ARCH:TAG"), "hf-hub:org/repo" or "ARCH".

    Returns:
        ("hub", "org/repo", ""), ("tag", ARCH, TAG) or ("arch", ARCH, "").
    """
    model = (model or "").strip()
    if model.startswith(HF_HUB_PREFIX):
        return "hub", model[len(HF_HUB_PREFIX):].strip("/"), ""
    for sep in ("/", ":"):
        if sep in model:
            arch, _, tag = model.partition(sep)
            return "tag", arch, tag
    return "arch", model, ""


def _check_arch(arch: str) -> None:
    import open_clip

    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()"
        raise EmbedderUnavailable(f"open_clip has no architecture {arch!r}{hint}")


def _check_tag(arch: str, tag: str) -> str:
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    if not get_pretrained_cfg(arch, tag):
        tags = list_pretrained_tags_by_model(arch)
        hint = (
            f"its tags: {', '.join(tags)}"
            if tags
            else "it has no pretrained tags; pass --weights FILE"
        )
        raise EmbedderUnavailable(f"open_clip has no pretrained weights {arch}/{tag}; {hint}")
    return tag.lower().replace("-", "_")  # open_clip's own tag normalisation


class _Downloads:
    """Decides once, lazily, whether downloading is allowed (the probe costs up to 2 s)."""

    def __init__(self, offline: bool | None) -> None:
        self._offline = offline
        self._reason: str | None = None
        self._checked = False

    def blocked(self) -> str | None:
        if not self._checked:
            self._reason = why_no_download(self._offline)
            self._checked = True
        return self._reason


def _hf_download(repo_id: str, names: Sequence[str], cache_dir: Path, what: str) -> Path:
    """Download the first of `names` that the repo has into the hub cache."""
    from huggingface_hub import hf_hub_download

    last: Exception | None = None
    for name in names:
        try:
            return Path(hf_hub_download(repo_id=repo_id, filename=name, cache_dir=str(cache_dir)))
        except Exception as exc:  # noqa: BLE001 - a missing alternative is expected; try the next
            last = exc
    raise EmbedderUnavailable(
        f"{what}: downloading {repo_id} ({' or '.join(names)}) failed: {last}. "
        "Pass a local checkpoint with `--weights FILE`, or use `--model classic`."
    )


def _localise_text_cfg(
    text_cfg: dict[str, Any], hub: Path, downloads: _Downloads, what: str
) -> dict[str, Any] | None:
    """Point an HF text tower / tokenizer at its cached folder so it loads without network."""
    names = {k: text_cfg.get(k) for k in ("hf_model_name", "hf_tokenizer_name") if text_cfg.get(k)}
    if not names:
        return None
    local = deepcopy(text_cfg)
    missing = []
    for key, repo in names.items():
        if Path(repo).expanduser().is_dir():
            continue
        if key == "hf_model_name":
            snap = find_cached_hf_model(repo, hub, required=("config.json",))
        else:
            snap = find_cached_hf_model(repo, hub, required=(), any_of=TOKENIZER_FILES)
        if snap is not None:
            local[key] = str(snap)
        elif repo not in missing:
            missing.append(repo)
    if "hf_model_name" in local:
        local["hf_model_pretrained"] = False  # the CLIP checkpoint carries the text tower weights
    if missing:
        reason = downloads.blocked()
        if reason:
            raise EmbedderUnavailable(
                missing_weights_message(what, reason, hub, [(r, "") for r in missing])
            )
    return local


def _hub_files(
    repo: str, need_weights: bool, hub: Path, downloads: _Downloads, what: str
) -> tuple[Path, Path | None]:
    """(open_clip_config.json, weights file or None) of an "hf-hub:" repo, cached or fetched."""
    cfg_file = cached_hf_file(repo, OPEN_CLIP_CONFIG, hub)
    found = None
    if need_weights:
        found = next(
            (f for f in (cached_hf_file(repo, n, hub) for n in OPEN_CLIP_WEIGHTS) if f), None
        )
    if cfg_file is not None and (found is not None or not need_weights):
        return cfg_file, found
    reason = downloads.blocked()
    if reason:
        wanted = [(repo, OPEN_CLIP_CONFIG)] if cfg_file is None else []
        if need_weights and found is None:
            wanted.append((repo, OPEN_CLIP_WEIGHTS[0]))
        raise EmbedderUnavailable(missing_weights_message(what, reason, hub, wanted))
    if cfg_file is None:
        cfg_file = _hf_download(repo, [OPEN_CLIP_CONFIG], hub, what)
    if need_weights and found is None:
        found = _hf_download(repo, OPEN_CLIP_WEIGHTS, hub, what)
    return cfg_file, found


def _tag_file(
    arch: str, tag: str, cache_dir: Path | None, hub: Path, downloads: _Downloads, what: str
) -> Path:
    """The weights file of a pretrained tag: where open_clip would find it, else fetched."""
    found = find_cached_clip_file(arch, tag, cache_dir)
    if found is not None:
        return found
    repo_id, names, url = clip_weight_candidates(arch, tag)
    reason = downloads.blocked()
    if reason:
        wanted = [(repo_id, names[-1])] if repo_id else []
        raise EmbedderUnavailable(missing_weights_message(what, reason, hub, wanted))
    if repo_id:
        return _hf_download(repo_id, names, hub, what)
    from open_clip.pretrained import download_pretrained_from_url

    try:
        return Path(download_pretrained_from_url(url, cache_dir=str(url_cache_dir(cache_dir))))
    except Exception as exc:
        raise EmbedderUnavailable(f"{what}: downloading {url} failed: {exc}") from exc


def resolve_clip_source(
    model: str = DEFAULT_MODEL,
    weights: os.PathLike | str | None = None,
    cache_dir: os.PathLike | str | None = None,
    offline: bool | None = None,
) -> ClipSource:
    """Find (or, when allowed and needed, download) the files an open_clip model needs.

    Nothing is fetched when the weights are in the cache; when they are not and downloading
    is impossible (offline asked for, or the Hub unreachable within 2 s), this fails at once.

    Args:
        model: "ARCH/TAG", "hf-hub:org/repo", or "ARCH" together with `weights`.
        weights: a local checkpoint (.safetensors or a torch state_dict file).
        cache_dir: open_clip's cache_dir (hub cache and URL cache); default the HF cache.
        offline: True/False to force; None reads CURATOR_OFFLINE / HF_HUB_OFFLINE.

    Raises:
        EmbedderUnavailable: unknown model, or weights absent and not downloadable.
    """
    kind, name, tag = parse_model_string(model)
    if not name:
        raise EmbedderUnavailable(f"empty open_clip model string; try {DEFAULT_MODEL!r}")
    user_cache = Path(cache_dir).expanduser() if cache_dir else None
    hub = user_cache or hf_cache_dir()
    downloads = _Downloads(offline)
    local_file = Path(weights).expanduser() if weights else None
    if local_file is not None and not local_file.is_file():
        raise EmbedderUnavailable(f"weights file {local_file} does not exist; check the --weights "
                                  "path")

    arch: str | None = None
    config_dir: Path | None = None
    preprocess: dict[str, Any] = {}
    quick_gelu = False
    found: Path | None = None
    if kind == "hub":
        canonical = HF_HUB_PREFIX + name
        what = f"open_clip model {canonical}"
        cfg_file, found = _hub_files(name, local_file is None, hub, downloads, what)
        config_dir = cfg_file.parent
        model_cfg = read_open_clip_config(config_dir).get("model_cfg")
        if not isinstance(model_cfg, dict):
            raise EmbedderUnavailable(
                f"{what}: {cfg_file} has no model_cfg; it is not an open_clip repo"
            )
    else:
        try:
            import open_clip
            from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model
        except ImportError as exc:  # the lite desktop build has no torch or open_clip
            raise EmbedderUnavailable(
                f"open_clip model {name}: open-clip-torch is not installed here ({exc}); "
                "`pip install open-clip-torch`, or use the full build, or the classic embedder"
            ) from exc

        arch = name
        _check_arch(arch)
        if kind == "tag":
            tag = _check_tag(arch, tag)
            canonical = f"{arch}/{tag}"
            tag_cfg = get_pretrained_cfg(arch, tag)
            keys = ("mean", "std", "interpolation", "resize_mode")
            preprocess = {k: tag_cfg[k] for k in keys if k in tag_cfg}
            quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        elif local_file is None:
            tags = list_pretrained_tags_by_model(arch)
            hint = f"e.g. {arch}/{tags[0]}" if tags else "there are no pretrained tags for it"
            raise EmbedderUnavailable(
                f"open_clip model {arch!r} names no weights: add a pretrained tag ({hint}) "
                "or pass a local checkpoint with `--weights FILE`"
            )
        else:
            canonical = arch
        what = f"open_clip model {canonical}"
        if kind == "tag" and local_file is None:
            found = _tag_file(arch, tag, user_cache, hub, downloads, what)
        model_cfg = open_clip.get_model_config(arch)

    text_cfg = _localise_text_cfg(model_cfg.get("text_cfg", {}), hub, downloads, what)
    if local_file is not None:
        sha = file_sha256(local_file)
        space, weights_file = f"clip:{canonical}@weights:{sha[:8]}", local_file
    else:
        assert found is not None
        sha, space, weights_file = blob_sha256(found), f"clip:{canonical}", found
    return ClipSource(
        model_string=canonical,
        space=space,
        arch=arch,
        config_dir=config_dir,
        weights=weights_file,
        weights_sha256=sha,
        preprocess=preprocess,
        quick_gelu=quick_gelu,
        text_cfg=text_cfg,
    )


class _DropRandomInitNotice(logging.Filter):
    """open_clip logs "initialized randomly" before we load the weights ourselves; drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("initialized randomly" in msg or "initialized partially" in msg)


@contextlib.contextmanager
def _quiet_random_init() -> Iterator[None]:
    root = logging.getLogger()
    flt = _DropRandomInitNotice()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _apply_state_dict(model: Any, state_dict: dict[str, Any], what: str, path: Path) -> None:
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


def _make_tokenizer(model_string: str, arch: str | None, text_cfg: dict[str, Any]) -> Any:
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


def _fit_frames(
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


def _frames_array(item: Decoded) -> np.ndarray:
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
        try:
            import open_clip
            import torch
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"open_clip needs torch and open-clip-torch ({exc}); `pip install open-clip-torch`"
            ) from exc

        self.source = source
        self.model_string = source.model_string
        self.space = source.space
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = max(1, int(batch_size))
        self.video_frames = max(1, int(video_frames))
        what = f"open_clip model {source.model_string}"

        state_dict = load_state_dict_file(source.weights)
        extra: dict[str, Any] = {}
        if source.text_cfg is not None:
            extra["text_cfg"] = source.text_cfg
        target = source.arch if source.arch is not None else f"local-dir:{source.config_dir}"
        try:
            with _quiet_random_init():
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
        _apply_state_dict(model, state_dict, what, source.weights)
        del state_dict
        model.eval()
        self._reparameterize(model)
        self.model = model.to(self.device)
        self.dtype = weight_dtype(self.device, self.precision) or torch.float32
        if self.dtype != torch.float32:
            # Real half precision: the weights themselves (memory halved), not only autocast.
            self.model = self.model.to(self.dtype)
        self._torch = torch

        if source.arch is not None:
            model_cfg = open_clip.get_model_config(source.arch)
        else:
            model_cfg = read_open_clip_config(source.config_dir)["model_cfg"]
        self.dim = int(model_cfg["embed_dim"])
        text_cfg = source.text_cfg if source.text_cfg is not None else model_cfg.get("text_cfg", {})
        self.tokenizer = _make_tokenizer(source.model_string, source.arch, text_cfg)

        pp = open_clip.get_model_preprocess_cfg(model)
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
        log.info("loaded %s from %s on %s (%s)", what, source.weights, self.device, self.precision)

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
                pixels = np.ascontiguousarray(_frames_array(item))
                frames = torch.from_numpy(pixels).permute(0, 3, 1, 2)
            if tuple(frames.shape[-2:]) != self.input_size:
                frames = _fit_frames(
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
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
                with autocast(self.device, self.precision):
                    feats = self.model.encode_text(tokens)
                out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)


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
