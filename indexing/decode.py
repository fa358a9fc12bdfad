"""Media decoding near a model's input size, and the thumbnails made in the same pass.

This module holds what an embedder asks for (`DecodeSpec`) and the picklable decoder workers run
(`MediaDecoder`); the work per modality is in `decode_image`, `decode_video`, `decode_audio` and
`mel`, with the shared error and resize modes in `decode_base`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from indexing.decode_audio import load_audio_windows
from indexing.decode_base import MEAN_GREY, RESIZE_MODES, one_line
from indexing.decode_image import load_image, thumbnail_jpeg
from indexing.decode_video import decode_video
from indexing.embedders.base import Decoded
from indexing.mel import spectrogram_jpeg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeSpec:
    """How to decode media for one model.

    Attributes:
        image_size: images and video frames come out `image_size` square.
        resize_mode: "crop" (short side to `image_size`, centre crop), "squash" (both sides to
            `image_size`) or "pad" (keep aspect, letterbox with `pad_rgb`).
        video_frames: frames sampled uniformly over a video's duration.
        audio_rate: audio is mono float32 resampled to this rate.
        audio_window_s: audio is cut in windows of this length (the last one zero-padded).
        audio_max_windows: long clips give this many windows spread uniformly over the duration.
        thumbnail_size: longest side of the JPEG thumbnails.
        pad_rgb: the letterbox colour for "pad".
    """

    image_size: int = 224
    resize_mode: str = "crop"
    video_frames: int = 8
    audio_rate: int = 48000
    audio_window_s: float = 10.0
    audio_max_windows: int = 8
    thumbnail_size: int = 256
    pad_rgb: tuple = MEAN_GREY

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}"
            )
        if self.image_size < 1 or self.video_frames < 1 or self.audio_max_windows < 1:
            raise ValueError("image_size, video_frames and audio_max_windows must be at least 1")
        if self.audio_rate < 1000 or self.audio_window_s <= 0:
            raise ValueError("audio_rate must be >= 1000 Hz and audio_window_s positive")

    @property
    def window_samples(self) -> int:
        """Samples in one audio window."""
        return round(self.audio_rate * self.audio_window_s)


class MediaDecoder:
    """The picklable decode callable run in worker processes (see `Embedder.decoder`)."""

    def __init__(self, spec: DecodeSpec):
        self.spec = spec

    def __repr__(self) -> str:
        return f"MediaDecoder({self.spec!r})"

    def __call__(self, item_id: int, path: str, modality: str, thumbnail: bool = True) -> Decoded:
        """Decode one file; never raises for a bad file.

        Args:
            item_id: catalog id, passed through.
            path: the media file.
            modality: "image", "video" or "audio".
            thumbnail: also make the JPEG thumbnail in the same pass.

        Returns:
            Decoded with `data` (image uint8 (S, S, 3); video uint8 (F, S, S, 3); audio float32
            (W, window_samples)) and `thumbnail`, or with `error` set to a one-line reason.
        """
        decode = _MODALITY_DECODERS.get(modality)
        if decode is None:
            return Decoded(item_id, modality, error=f"unknown modality {modality!r}")
        try:
            data, thumb = decode(self.spec, str(path), thumbnail)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the job; report it
            reason = f"cannot decode {modality}: {one_line(exc)}"
            log.debug("cannot decode %s %s: %s", modality, path, reason)
            return Decoded(item_id, modality, error=reason)
        return Decoded(item_id, modality, data=data, thumbnail=thumb)


# ------------------------------------------------------------------------------- per-modality items


def _decode_image_item(spec: DecodeSpec, path: str, thumbnail: bool):
    array, small = load_image(
        path,
        spec.image_size,
        spec.resize_mode,
        spec.thumbnail_size if thumbnail else 0,
        spec.pad_rgb,
    )
    return array, (thumbnail_jpeg(small, spec.thumbnail_size) if thumbnail else None)


def _decode_video_item(spec: DecodeSpec, path: str, thumbnail: bool):
    frames, thumb = decode_video(
        path,
        spec.video_frames,
        spec.image_size,
        spec.resize_mode,
        spec.thumbnail_size if thumbnail else 0,
        spec.pad_rgb,
    )
    return frames, (
        thumbnail_jpeg(thumb, spec.thumbnail_size) if thumbnail and thumb is not None else None
    )


def _decode_audio_item(spec: DecodeSpec, path: str, thumbnail: bool):
    windows = load_audio_windows(path, spec.audio_rate, spec.audio_window_s, spec.audio_max_windows)
    thumb = (
        spectrogram_jpeg(windows[0], spec.audio_rate, spec.thumbnail_size) if thumbnail else None
    )
    return windows, thumb


_MODALITY_DECODERS: dict[str, Callable] = {
    "image": _decode_image_item,
    "video": _decode_video_item,
    "audio": _decode_audio_item,
}
