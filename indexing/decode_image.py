"""Still images decoded near a model's input size (JPEG draft, EXIF turn, RGB), and thumbnails."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

from indexing.decode_base import MEAN_GREY, RESIZE_MODES

if TYPE_CHECKING:  # Pillow is imported inside functions so that importing this module stays cheap.
    from PIL import Image as PILImage

# ----------------------------------------------------------------------------------------- images


def load_image(
    path, size: int, resize_mode: str = "crop", thumbnail_size: int = 256, pad_rgb=MEAN_GREY
) -> tuple[np.ndarray, PILImage.Image]:

    """Read an image once: the model array and a small image for the thumbnail.

    EXIF orientation is applied; alpha is composited on white; 16-bit and float images are scaled
    to 8 bits; CMYK, palette and grey modes become RGB; animated images give their first frame.
    JPEGs are decoded with DCT scaling (`Image.draft`) near the size needed.

    Args:
        path: the image file.
        size: the model array is `size` square.
        resize_mode: "crop", "squash" or "pad" (see DecodeSpec).
        thumbnail_size: the returned PIL image is shrunk to this longest side (0: no thumbnail
            needed; the returned image is then the model image).
        pad_rgb: letterbox colour for "pad".

    Returns:
        (uint8 array (size, size, 3) RGB, a small RGB PIL image for `thumbnail_jpeg`).
    """
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            _draft(img, size, resize_mode, thumbnail_size)
        rgb = _to_rgb(img)  # may be `img` itself, which closes with the file: make new images here
        small = _shrink(rgb, thumbnail_size, copy=rgb is img) if thumbnail_size > 0 else None
        # Resampling dominates the cost: scale the model image from the thumbnail when that still
        # has twice the model size on the sides that matter.
        side = max if resize_mode == "pad" else min
        source = small if small is not None and side(small.size) >= 2 * size else rgb
        fitted = _fit_square(source, size, resize_mode, pad_rgb)
    return np.asarray(fitted, dtype=np.uint8), (small if small is not None else fitted)


def _draft(img: PILImage.Image, size: int, resize_mode: str, thumbnail_size: int) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while keeping what the outputs need.

    The model array wants about twice its size before the bicubic downscale (crop and squash on
    the short side, pad on the long side); the thumbnail wants its longest side.
    """
    w, h = img.size
    need = 2 * size
    scale = (min(w, h) if resize_mode in ("crop", "squash") else max(w, h)) / need
    if thumbnail_size > 0:
        scale = min(scale, max(w, h) / thumbnail_size)
    if scale >= 2:
        img.draft("RGB", (math.ceil(w / scale), math.ceil(h / scale)))


def _shrink(img: PILImage.Image, size: int, copy: bool) -> PILImage.Image:
    """A new image with its longest side at most `size` (aspect kept).

    Bilinear with box pre-reduction: for a thumbnail it looks the same as bicubic and costs less.
    """
    from PIL import Image

    w, h = img.size
    if max(w, h) <= size:
        return img.copy() if copy else img
    scale = size / max(w, h)
    dims = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(dims, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _to_rgb(img: PILImage.Image) -> PILImage.Image:
    """Orientation-corrected RGB copy of the current frame of `img`."""
    from PIL import Image, ImageOps

    ImageOps.exif_transpose(img, in_place=True)  # loads the pixels; no copy when upright
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = Image.fromarray(_to_uint8(np.asarray(img), mode), "L")
        mode = "L"
    if mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
        img = img.convert(mode)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, L, 1: Pillow's converters
    return img


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16-bit, 32-bit or float grey image to 8 bits by its nominal range."""
    if mode == "F":
        arr = np.nan_to_num(arr.astype(np.float32))
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.round(arr * 255.0).astype(np.uint8)
        return np.round((arr - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
    arr = arr.astype(np.int64)
    hi = int(arr.max()) if arr.size else 0
    if mode == "I" and hi <= 255:
        return np.clip(arr, 0, 255).astype(np.uint8)  # 8-bit data stored in a 32-bit image
    if mode.startswith("I;16") or hi <= 65535:
        return ((np.clip(arr, 0, 65535) + 128) // 257).astype(np.uint8)
    return np.round(np.clip(arr, 0, None) * (255.0 / hi)).astype(np.uint8)


def _fit_square(img: PILImage.Image, size: int, mode: str, pad_rgb=MEAN_GREY) -> PILImage.Image:
    """Resize an RGB image to `size` square by crop, squash or letterbox (bicubic)."""
    from PIL import Image

    w, h = img.size
    if mode == "squash":
        return img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    if mode == "crop":
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        return img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)
    if mode == "pad":
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (size, size), tuple(pad_rgb))
        canvas.paste(
            img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=2.0),
            ((size - nw) // 2, (size - nh) // 2),
        )
        return canvas
    raise ValueError(f"resize_mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")


def square_array(arr: np.ndarray, size: int, mode: str, pad_rgb=MEAN_GREY) -> np.ndarray:
    """Centre-crop or letterbox an (H, W, 3) array already scaled for `mode` to (size, size, 3)."""
    h, w = arr.shape[:2]
    if mode == "crop":
        y, x = (h - size) // 2, (w - size) // 2
        return np.ascontiguousarray(arr[y : y + size, x : x + size])
    if mode == "pad":
        out = np.empty((size, size, 3), np.uint8)
        out[...] = np.asarray(pad_rgb, np.uint8)
        y, x = (size - h) // 2, (size - w) // 2
        out[y : y + h, x : x + w] = arr
        return out
    return arr


def scaled_dims(w: float, h: float, size: int, mode: str) -> tuple[int, int]:
    """Target (width, height) before crop/letterbox: short side = size (crop), long side (pad)."""
    if mode == "squash":
        return size, size
    scale = size / (min(w, h) if mode == "crop" else max(w, h))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    if mode == "crop":
        tw, th = max(tw, size), max(th, size)
    else:
        tw, th = min(tw, size), min(th, size)
    return tw, th


def thumbnail_jpeg(img: PILImage.Image, size: int = 256, quality: int = 85) -> bytes:
    """JPEG bytes of `img` with its longest side at most `size` (aspect kept).

    Args:
        img: any PIL image (converted to RGB).
        size: the longest side bound.
        quality: JPEG quality.

    Returns:
        The JPEG file as bytes.
    """
    from PIL import Image

    thumb = img if img.mode == "RGB" else img.convert("RGB")
    if max(thumb.size) > size:
        thumb = thumb.copy()
        thumb.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
