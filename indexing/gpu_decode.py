"""JPEG decoding on the GPU: workers ship the encoded bytes, the model's device decodes them.

On a GPU a CLIP model embeds thousands of images a second while a CPU core decodes one to two
hundred JPEGs, so for JPEGs the decode worker only reads the file, checks that the GPU decoder can
take it as it is (plain RGB or grey, upright) and makes the thumbnail from a 1/8-scale DCT draft;
`decode_jpeg_batch` then decodes the whole batch on the device with nvJPEG
(`torchvision.io.decode_jpeg`). Every other file, and any JPEG the GPU cannot decode, takes the
CPU path unchanged.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexing.embedders.base import Decoded

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112


def is_encoded(item: Decoded) -> bool:
    """Whether the item carries encoded JPEG bytes (1-D uint8) rather than pixels."""
    return item.data is not None and np.asarray(item.data).ndim == 1


def gpu_jpeg_available(device: str) -> bool:
    """Whether `decode_jpeg` can run on `device` here (torchvision with nvJPEG on a CUDA device)."""
    if not str(device).startswith("cuda"):
        return False
    try:
        import torch
        from torchvision.io import decode_jpeg  # noqa: F401 - the availability check itself
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class EncodedJpegDecoder:
    """Picklable decode callable for a model on a GPU: JPEG bytes for plain JPEGs, else `fallback`.

    Args:
        fallback: the embedder's CPU decoder (a MediaDecoder), used for every other file.
        thumbnail_size: the longest side of the thumbnail made from the DCT draft.
    """

    def __init__(self, fallback: Any, thumbnail_size: int = 256) -> None:
        self.fallback = fallback
        self.thumbnail_size = thumbnail_size

    def __repr__(self) -> str:
        return f"EncodedJpegDecoder({self.fallback!r})"

    def __call__(self, item_id: int, path: str, modality: str, thumbnail: bool = True) -> Decoded:
        if modality != "image":
            return self.fallback(item_id, path, modality, thumbnail)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
            thumb = _plain_jpeg_thumbnail(raw, self.thumbnail_size if thumbnail else 0)
        except (OSError, ValueError, SyntaxError):
            thumb = None
            raw = b""
        if thumb is None:  # not a JPEG the GPU decoder takes as it is: decode on the CPU
            return self.fallback(item_id, path, modality, thumbnail)
        return Decoded(item_id, "image", data=np.frombuffer(raw, dtype=np.uint8),
                       thumbnail=thumb or None)


def _plain_jpeg_thumbnail(raw: bytes, size: int) -> bytes | None:
    """The thumbnail (b"" when size is 0) if `raw` is an upright RGB or grey JPEG, else None."""
    if not raw.startswith(JPEG_MAGIC):
        return None
    from PIL import Image

    from indexing.decode_image import thumbnail_jpeg

    with Image.open(io.BytesIO(raw)) as img:
        if img.format != "JPEG" or img.mode not in ("RGB", "L"):
            return None  # CMYK and YCCK need the CPU path's colour conversion
        if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            return None  # nvJPEG does not rotate; the CPU path applies the EXIF orientation
        if size <= 0:
            return b""
        img.draft("RGB", (size, size))
        return thumbnail_jpeg(img.convert("RGB"), size)


def decode_jpeg_batch(blobs: Sequence[np.ndarray], device: str) -> list[Any]:
    """Decode encoded JPEGs on `device` in one batched call.

    Args:
        blobs: 1-D uint8 arrays, each one JPEG file.
        device: "cuda", "cuda:N" (nvJPEG) or "cpu" (libjpeg-turbo; for tests and fallback).

    Returns:
        Per blob a uint8 tensor (3, H, W) on `device`, or None where it cannot be decoded there
        (the caller decodes those on the CPU).
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        # torchvision 0.29 announces that TorchCodec will take over image decoding; its
        # decode_jpeg (nvJPEG) is what runs here until then.
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.from_numpy(np.array(b, dtype=np.uint8, copy=True)) for b in blobs]
    if not tensors:
        return []
    try:
        return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
    except RuntimeError as exc:
        log.debug("batched JPEG decode on %s failed (%s); decoding one by one", device, exc)
    out: list[Any] = []
    for t in tensors:
        try:
            out.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            out.append(None)
    return out


def decode_jpeg_cpu(blob: np.ndarray, size: int, resize_mode: str, pad_rgb: Sequence[int]) -> Any:
    """The CPU path's model array for one encoded JPEG (what the decode worker would have made)."""
    from indexing.decode_image import load_image

    array, _ = load_image(io.BytesIO(np.asarray(blob, np.uint8).tobytes()), size, resize_mode,
                          0, tuple(pad_rgb))
    return array
