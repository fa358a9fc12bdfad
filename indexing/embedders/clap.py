"""The CLAP embedder (transformers): audio windows through the audio tower, text through the text
tower."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexing.embedders.base import Decoded, Embedder, EmbedderUnavailable, EmbedResult
from indexing.embedders.defaults import DEFAULT_MODELS
from indexing.embedders.weights import (
    HF_MODEL_WEIGHTS,
    autocast,
    blob_sha256,
    file_sha256,
    find_cached_hf_model,
    hf_cache_dir,
    missing_weights_message,
    resolve_device,
    resolve_precision,
    weight_dtype,
    why_no_download,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_MODELS["audio"]  # named once, in embedders.defaults
_HUB_FILES = ("config.json", "preprocessor_config.json")


@dataclass(frozen=True)
class ClapSource:
    """Where a CLAP model comes from, resolved before anything loads.

    Attributes:
        model_string: what was asked for (a hub repo id, or the folder path as given).
        space: the embedding space id.
        location: what `from_pretrained` gets (a folder path or the repo id).
        local_files_only: True when everything is in the cache (no network is touched).
        cache_dir: the hub cache folder passed to `from_pretrained`.
        weights: the local weights file when known (for the record), else None.
        weights_sha256: its SHA-256 when known cheaply.
    """

    model_string: str
    space: str
    location: str
    local_files_only: bool
    cache_dir: Path | None
    weights: Path | None = None
    weights_sha256: str | None = None


def _pickle_error() -> type[Exception]:
    import pickle

    return pickle.UnpicklingError


def _weights_in(folder: Path) -> Path | None:
    return next((folder / n for n in HF_MODEL_WEIGHTS if (folder / n).is_file()), None)


def resolve_clap_source(
    model: str = DEFAULT_MODEL,
    cache_dir: os.PathLike | str | None = None,
    offline: bool | None = None,
) -> ClapSource:
    """Find a CLAP model: a local folder, or a hub repo in the cache (or downloadable now).

    Args:
        model: a folder saved with `save_pretrained` (config, weights, feature extractor,
            tokenizer) or a hub repo id such as "laion/clap-htsat-unfused".
        cache_dir: the hub cache folder; default the HF cache (HF_HOME).
        offline: True/False to force; None reads CURATOR_OFFLINE / HF_HUB_OFFLINE.

    Raises:
        EmbedderUnavailable: the folder is incomplete, or the repo is not cached and cannot be
            downloaded now (offline asked for, or the Hub unreachable within 2 s).
    """
    model = (model or DEFAULT_MODEL).strip()
    hub = Path(cache_dir).expanduser() if cache_dir else hf_cache_dir()
    folder = Path(model).expanduser()
    if folder.is_dir():
        weights = _weights_in(folder)
        if not (folder / "config.json").is_file() or weights is None:
            raise EmbedderUnavailable(
                f"CLAP folder {folder} needs config.json and model weights "
                f"({', '.join(HF_MODEL_WEIGHTS)}); "
                "save the model there with save_pretrained, or name a hub repo such as "
                f"`--audio-model {DEFAULT_MODEL}`, or use `--audio-model classic`"
            )
        # A folder has no stable name across machines: name the space by the weights instead.
        sha = file_sha256(weights)
        return ClapSource(
            model_string=model,
            space=f"clap:{folder.resolve().name}@weights:{sha[:8]}",
            location=str(folder),
            local_files_only=True,
            cache_dir=None,
            weights=weights,
            weights_sha256=sha,
        )
    if model.count("/") != 1 or model.startswith(("/", ".", "~")):
        raise EmbedderUnavailable(
            f"CLAP model {model!r} is neither a folder nor a hub repo id (org/name): give "
            f"`--audio-model {DEFAULT_MODEL}` (or a folder), or `--audio-model classic`"
        )
    snap = find_cached_hf_model(model, hub, required=_HUB_FILES, any_of=HF_MODEL_WEIGHTS)
    if snap is not None:
        weights = _weights_in(snap)
        return ClapSource(
            model_string=model,
            space=f"clap:{model}",
            location=model,
            local_files_only=True,
            cache_dir=hub,
            weights=weights,
            weights_sha256=blob_sha256(weights) if weights else None,
        )
    reason = why_no_download(offline)
    if reason:
        raise EmbedderUnavailable(
            missing_weights_message(
                f"CLAP model {model}", reason, hub, [(model, "")], weights_flag=False,
                classic_flag="--audio-model classic",
            )
        )
    return ClapSource(
        model_string=model,
        space=f"clap:{model}",
        location=model,
        local_files_only=False,
        cache_dir=hub,
    )


def _without_zero_tail(window: np.ndarray) -> np.ndarray:
    """The window up to its last non-zero sample (a silent window is kept whole)."""
    nonzero = np.flatnonzero(window)
    if nonzero.size == 0:
        return window
    return window[: int(nonzero[-1]) + 1]


def _features(output: Any) -> Any:
    """The embedding tensor from get_*_features: a tensor (transformers 4) or a ModelOutput (5)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled
    if isinstance(output, (tuple, list)) and len(output) > 1:
        return output[1]
    raise TypeError(f"unexpected CLAP features output {type(output).__name__}")


class ClapEmbedder(Embedder):
    """A CLAP model: audio in (windows pooled per item), text queries in the same space.

    Build it with `create`; the constructor takes a resolved ClapSource.
    """

    name = "clap"
    modalities = frozenset({"audio"})
    has_text = True

    def __init__(
        self,
        source: ClapSource,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 32,
        audio_max_windows: int = 8,
    ) -> None:
        try:
            import torch
            import transformers
            from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel
        except ImportError as exc:
            raise EmbedderUnavailable(f"CLAP needs torch and transformers ({exc}); `pip install "
                                      "transformers`") from exc

        self.source = source
        self.model_string = source.model_string
        self.space = source.space
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = max(1, int(batch_size))
        self.audio_max_windows = max(1, int(audio_max_windows))
        what = f"CLAP model {source.model_string}"

        common: dict[str, Any] = {"local_files_only": source.local_files_only}
        if source.cache_dir is not None:
            common["cache_dir"] = str(source.cache_dir)
        # transformers 5 loads in the checkpoint's dtype by default ("auto"); ask for fp32 and let
        # autocast lower the precision. transformers 4 names the argument torch_dtype.
        dtype_arg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        try:
            model, info = ClapModel.from_pretrained(
                source.location, output_loading_info=True, **{dtype_arg: torch.float32}, **common
            )
            self.extractor = ClapFeatureExtractor.from_pretrained(source.location, **common)
            self.tokenizer = AutoTokenizer.from_pretrained(source.location, **common)
        except (OSError, ValueError, TypeError, RuntimeError, EOFError, _pickle_error()) as exc:
            # An unsafe pickle is refused by torch's weights_only loader: one line, not a trace.
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise EmbedderUnavailable(
                f"{what}: cannot load it from {source.location} ({detail})") from exc
        if getattr(model.config, "model_type", "") != "clap":
            raise EmbedderUnavailable(f"{what} is a {model.config.model_type!r} model, not CLAP")
        params = dict(model.named_parameters())
        missing = sorted(k for k in info.get("missing_keys", ()) if k in params)
        if missing or info.get("mismatched_keys"):
            # A model with parameters left at random init would give plausible-looking but
            # meaningless vectors: refuse it.
            bad = missing or [str(k) for k in info["mismatched_keys"]]
            raise EmbedderUnavailable(
                f"{what}: the checkpoint lacks or mismatches {len(bad)} parameters "
                f"(e.g. {', '.join(bad[:3])}); it is not a complete CLAP checkpoint"
            )
        self.model = model.eval().to(self.device)
        self.dtype = weight_dtype(self.device, self.precision) or torch.float32
        if self.dtype != torch.float32:  # real half precision, not only autocast
            self.model = self.model.to(self.dtype)
        self._torch = torch

        fe = self.extractor
        self.sampling_rate = int(fe.sampling_rate)
        self.window_samples = int(fe.nb_max_samples)
        self.window_s = self.window_samples / self.sampling_rate
        self.dim = int(model.config.projection_dim)
        text_cfg = model.config.text_config
        # RoBERTa positions start after the padding index, so the usable length is shorter.
        limit = int(text_cfg.max_position_embeddings) - int(text_cfg.pad_token_id or 0) - 1
        tok_max = getattr(self.tokenizer, "model_max_length", limit) or limit
        self.max_text_tokens = max(2, min(limit, int(tok_max) if tok_max < 1e6 else limit))
        self.preprocess = (
            f"mono {self.sampling_rate} Hz, windows of {self.window_s:g} s (up to "
            f"{self.audio_max_windows}), "
            f"log-mel {fe.feature_size} bins hop {fe.hop_length}, truncation {fe.truncation}, "
            f"padding {fe.padding}; item = normalised mean of window vectors"
        )
        log.info("loaded %s from %s on %s (%s)", what, source.location, self.device, self.precision)

    def describe(self) -> dict[str, Any]:
        """What made the vectors, plus the weights file, its hash and the precision."""
        info = super().describe()
        info.update(
            weights=self.source.weights.name if self.source.weights else None,
            weights_sha256=self.source.weights_sha256,
            precision=self.precision,
        )
        return info

    def decoder(self) -> Callable[..., Decoded]:
        """A MediaDecoder giving mono windows at the feature extractor's rate and length."""
        from indexing.decode import DecodeSpec, MediaDecoder

        return MediaDecoder(
            DecodeSpec(
                audio_rate=self.sampling_rate,
                audio_window_s=self.window_s,
                audio_max_windows=self.audio_max_windows,
            )
        )

    def _windows(self, item: Decoded) -> list[np.ndarray]:
        if item.modality not in self.modalities:
            raise ValueError(f"item {item.item_id}: CLAP embeds audio, not {item.modality!r}")
        if item.data is None:
            raise ValueError(
                f"item {item.item_id} has no decoded data ({item.error or 'no error given'}); "
                "leave failed decodes out of embed_batch"
            )
        data = np.asarray(item.data, dtype=np.float32)
        if data.ndim == 1:
            data = data[None]
        if data.ndim != 2:
            raise ValueError(f"item {item.item_id}: audio must be (windows, samples), got "
                             f"{data.shape}")
        # Longer windows would be cropped at a random place by the extractor: cut them here.
        windows = [w[: self.window_samples] for w in data if w.size > 0]
        if not windows:
            raise ValueError(f"item {item.item_id}: no audio samples")
        # The decoder zero-pads a clip's last window to full length; hand the extractor the real
        # samples so it pads as the model was trained (repeatpad for laion/clap-htsat-unfused:
        # a 1 s clip repeated, not followed by 9 s of exact zeros).
        windows[-1] = _without_zero_tail(windows[-1])
        return windows

    def _encode_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                chunk = windows[start : start + self.batch_size]
                feats = self.extractor(chunk, sampling_rate=self.sampling_rate, return_tensors="pt")
                # The extractor marks one random clip "longer" when none is (a training trick);
                # no window here is longer than the model's length, so say so for every one.
                is_longer = torch.zeros((len(chunk), 1), dtype=torch.bool, device=self.device)
                x = feats["input_features"].to(self.device, dtype=self.dtype)
                with autocast(self.device, self.precision):
                    emb = _features(
                        self.model.get_audio_features(input_features=x, is_longer=is_longer)
                    )
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def embed_batch(self, batch: Sequence[Decoded]) -> EmbedResult:
        """Embed audio items given as float32 windows (W, samples) at `sampling_rate`.

        Each window is embedded and L2-normalised; an item's vector is the normalised mean of
        its windows.

        Raises:
            ValueError: an item without samples or of another modality.
        """
        per_item = [self._windows(item) for item in batch]
        if not per_item:
            return EmbedResult(vectors=np.zeros((0, self.dim), dtype=np.float32))
        vecs = self._encode_windows([w for ws in per_item for w in ws])
        vectors = np.empty((len(batch), self.dim), dtype=np.float32)
        start = 0
        for pos, ws in enumerate(per_item):
            mean = vecs[start : start + len(ws)].mean(axis=0)
            start += len(ws)
            norm = float(np.linalg.norm(mean))
            vectors[pos] = mean / norm if norm > 0 else mean
        return EmbedResult(vectors=vectors)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text queries into the audio space: L2-normalised float32 (n, dim)."""
        torch = self._torch
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_text_tokens,
                    return_tensors="pt",
                )
                with autocast(self.device, self.precision):
                    emb = _features(
                        self.model.get_text_features(
                            input_ids=tokens["input_ids"].to(self.device),
                            attention_mask=tokens["attention_mask"].to(self.device),
                        )
                    )
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)


def create(
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    precision: str = "fp32",
    cache_dir: os.PathLike | str | None = None,
    offline: bool | None = None,
    batch_size: int = 32,
    audio_max_windows: int = 8,
    **ignored: Any,
) -> ClapEmbedder:
    """Build the CLAP embedder (registry entry "clap").

    Args:
        model: a hub repo id (default "laion/clap-htsat-unfused") or a local folder made with
            save_pretrained (config, weights, preprocessor_config.json, tokenizer).
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N" or "mps".
        precision: "fp32", "fp16" or "bf16" (autocast; fp16 on cpu falls back to fp32).
        cache_dir: the hub cache folder; default the Hugging Face cache (HF_HOME).
        offline: True/False to force; None reads CURATOR_OFFLINE / HF_HUB_OFFLINE.
        batch_size: audio windows per forward pass.
        audio_max_windows: most windows the decoder takes from one long clip.
        **ignored: options meant for other embedders (e.g. `weights`).

    Raises:
        EmbedderUnavailable: the model is absent and cannot be downloaded, or incomplete.
    """
    if ignored.get("weights"):
        raise EmbedderUnavailable(
            "CLAP takes its weights from a model folder: pass the folder as the model "
            "(--audio-model PATH); --weights is for open_clip"
        )
    if ignored:
        log.debug("clap ignores options %s", sorted(ignored))
    source = resolve_clap_source(model, cache_dir, offline)
    return ClapEmbedder(source, device, precision, batch_size, audio_max_windows)
