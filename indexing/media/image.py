"""Probing images with Pillow: a bomb guard before decoding, a bounded validating decode."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, BinaryIO

from indexing.media.common import (
    _MAX_CHUNKS,
    MediaInfo,
    _Match,
    _one_line,
    _Options,
    _os_error_reason,
    _ProbeFailure,
    _u16be,
    _u32be,
    _u32le,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; PIL is imported inside functions
    from PIL import Image as _PILImage

logger = logging.getLogger("indexing.media")

# Decoded-pixel budget for a full validating decode; bigger images get a streaming structural check
# instead, so a worker never holds more than this much pixel memory (JPEG always decodes at 1/8).
_FULL_DECODE_BYTES = 256 << 20
# Pillow reads a whole WebP/AVIF into memory before decoding; refuse absurd sizes before that.
_MAX_SLURP_BYTES = 256 << 20
_MAX_GIF_SCAN_BYTES = 64 << 20  # animated GIF durations are summed from an in-memory walk


# --------------------------------------------------------------------------------------------
# Images (Pillow).


@dataclass(frozen=True)
class _ImageKind:
    pil_format: str | None  # None: Pillow cannot read it here
    label: str


_IMAGE_KINDS = {
    "jpeg": _ImageKind("JPEG", "JPEG"),
    "png": _ImageKind("PNG", "PNG"),
    "gif": _ImageKind("GIF", "GIF"),
    "bmp": _ImageKind("BMP", "BMP"),
    "tiff": _ImageKind("TIFF", "TIFF"),
    "webp": _ImageKind("WEBP", "WebP"),
    "avif": _ImageKind("AVIF", "AVIF"),
    "heic": _ImageKind(None, "HEIC"),
}


def _size_text(pixels: int) -> str:
    if pixels >= 10_000_000:
        return f"{pixels / 1e6:.0f} MP"
    if pixels >= 100_000:
        return f"{pixels / 1e6:.1f} MP"
    return f"{pixels:,} pixels"


def _bomb_reason(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image is {width}×{height} = {_size_text(width * height)}, over the "
        f"{_size_text(max_pixels)} limit (decompression bomb guard)"
    )


def _webp_header_size(head: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (VP8X, VP8 or VP8L first chunk), without Pillow."""
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return (
            int.from_bytes(head[24:27], "little") + 1,
            int.from_bytes(head[27:30], "little") + 1,
        )
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(head[26:28], "little") & 0x3FFF,
            int.from_bytes(head[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return None


def _check_riff_length(head: bytes, size: int, label: str) -> None:
    declared = _u32le(head, 4) + 8
    if head[:4] == b"RIFF" and declared > 12 and size < declared:
        raise _ProbeFailure(
            f"truncated {label}: file has {size:,} of the {declared:,} bytes its header declares"
        )


class _ToDebugLog(logging.Handler):
    """Re-logs Pillow's own complaints about a damaged file at DEBUG under our logger."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.debug("Pillow: %s", record.getMessage())


@contextlib.contextmanager
def _pillow_limits(max_pixels: int | None) -> Iterator[list[warnings.WarningMessage]]:
    """Pin Pillow's bomb limit and strict truncation for this block; keep its complaints quiet.

    Pillow keeps these as module globals; we set them around our own calls only and restore them,
    so a caller that relaxed them elsewhere (e.g. LOAD_TRUNCATED_IMAGES for display) is untouched.
    Warnings are recorded (the caller reads them), log records go to DEBUG: a damaged file is
    reported once, in MediaInfo.error, not as stray lines on the console.
    """
    from PIL import Image, ImageFile

    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, Image.WARN_POSSIBLE_FORMATS
    pil_logger = logging.getLogger("PIL")
    saved_propagate, handler = pil_logger.propagate, _ToDebugLog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        Image.WARN_POSSIBLE_FORMATS = True  # keeps the plugin's reason when a header is refused
        pil_logger.addHandler(handler)
        pil_logger.propagate = False
        try:
            yield caught
        finally:
            pil_logger.removeHandler(handler)
            pil_logger.propagate = saved_propagate
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved[:2]
            Image.WARN_POSSIBLE_FORMATS = saved[2]


def _decoded_bytes(im: _PILImage.Image) -> int:
    # Pillow stores single-band 8-bit modes in 1 byte, I;16 in 2, everything else in 4 per pixel.
    per_pixel = 1 if im.mode in ("1", "L", "P") else 2 if im.mode.startswith("I;16") else 4
    return im.width * im.height * per_pixel


def _bmp_structure_check(im: _PILImage.Image, head: bytes, size: int) -> None:
    compression = _u32le(head, 30) if len(head) >= 34 and _u32le(head, 14) >= 40 else 0
    bits = int.from_bytes(head[28:30], "little") if len(head) >= 30 else 0
    if compression in (0, 3) and bits:
        needed = _u32le(head, 10) + ((im.width * bits + 31) // 32) * 4 * im.height
        if size < needed:
            raise _ProbeFailure(f"truncated BMP: file has {size:,} of {needed:,} bytes")


def _validate_pixels(im: _PILImage.Image, fmt: str, head: bytes, size: int) -> bool:
    """Decode enough of the image to prove it is not truncated or corrupt.

    Returns:
        True when the pixels were decoded (the image is loaded); False when only a structural
        check was affordable.
    """
    if fmt == "jpeg":
        im.draft("RGB", (256, 256))  # DCT scaling: decodes at up to 1/8 size, cheap and bounded
    if _decoded_bytes(im) <= _FULL_DECODE_BYTES:
        im.load()
        return True
    if fmt == "png":
        im.verify()  # streams every chunk through its CRC up to IEND without decoding pixels
    elif fmt == "bmp":
        _bmp_structure_check(im, head, size)
    else:
        logger.debug("%s image too large for a validating decode; header checks only", fmt)
    return False


def _exif_orientation(im: _PILImage.Image) -> int | None:
    try:
        value = im.getexif().get(0x0112)
    except Exception:  # damaged EXIF does not make the pixels unusable; orientation is unknown
        logger.debug("unreadable EXIF", exc_info=True)
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _gif_seconds(fh: BinaryIO, size: int) -> float | None:
    """Sum of GIF frame delays, walking the block structure in memory (no pixel decode)."""
    if size > _MAX_GIF_SCAN_BYTES:
        return None
    fh.seek(0)
    data = fh.read(size)
    if len(data) < 13:
        return None
    pos, n = 13, len(data)
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    total_cs, delay = 0, 0

    def skip_sub_blocks(at: int) -> int:
        while at < n:
            length = data[at]
            at += 1 + length
            if length == 0:
                break
        return at

    while pos < n:
        block = data[pos]
        if block == 0x21 and pos + 2 <= n:  # extension
            if data[pos + 1] == 0xF9 and pos + 6 <= n and data[pos + 2] == 4:
                delay = data[pos + 4] | (data[pos + 5] << 8)
            pos = skip_sub_blocks(pos + 2)
        elif block == 0x2C and pos + 10 <= n:  # image descriptor
            flags = data[pos + 9]
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
            pos = skip_sub_blocks(pos)
            total_cs, delay = total_cs + delay, 0
        else:  # trailer (0x3B) or garbage
            break
    return total_cs / 100 if total_cs > 0 else None


def _webp_seconds(fh: BinaryIO, size: int) -> float | None:
    """Sum of ANMF frame durations, walking RIFF chunk headers."""
    fh.seek(12)
    total_ms = 0
    for _ in range(_MAX_CHUNKS):
        header = fh.read(8)
        if len(header) < 8:
            break
        length = _u32le(header, 4)
        if header[:4] == b"ANMF":
            payload = fh.read(16)
            if len(payload) < 16:
                break
            total_ms += int.from_bytes(payload[12:15], "little")
            fh.seek(length - 16 + (length & 1), os.SEEK_CUR)
        else:
            fh.seek(length + (length & 1), os.SEEK_CUR)
    return total_ms / 1000 if total_ms > 0 else None


def _apng_seconds(fh: BinaryIO, size: int) -> float | None:
    """Sum of APNG fcTL frame delays, walking PNG chunk headers."""
    fh.seek(8)
    total = 0.0
    for _ in range(_MAX_CHUNKS):
        header = fh.read(8)
        if len(header) < 8 or header[4:8] == b"IEND":
            break
        length = _u32be(header, 0)
        if header[4:8] == b"fcTL" and length >= 26:
            body = fh.read(26)
            if len(body) < 26:
                break
            numerator, denominator = _u16be(body, 20), _u16be(body, 22) or 100
            total += numerator / denominator
            fh.seek(length - 26 + 4, os.SEEK_CUR)
        else:
            fh.seek(length + 4, os.SEEK_CUR)
    return total if total > 0 else None


_ANIMATION_SECONDS: dict[str, Callable[[BinaryIO, int], float | None]] = {
    "gif": _gif_seconds,
    "webp": _webp_seconds,
    "png": _apng_seconds,
}


def _image_reason(exc: BaseException, label: str, caught: list[warnings.WarningMessage]) -> str:
    """One line for a Pillow failure: truncation and damage are told apart from I/O errors."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, OSError) and exc.errno is not None:
        return _os_error_reason(exc)
    if isinstance(exc, MemoryError):
        return f"{label} image is too large to decode in memory"
    message = str(exc)
    if isinstance(exc, UnidentifiedImageError):
        # Pillow hides the plugin's own complaint in a warning ("PNG opening failed. broken ...").
        details = [
            str(w.message).split("opening failed.", 1)[-1]
            for w in caught
            if "opening failed." in str(w.message)
        ]
        message = details[-1] if details else "Pillow cannot read it"
    message = _one_line(message).strip(" .") or type(exc).__name__
    if "truncat" in message.lower():
        return _one_line(f"truncated {label}: {message}")
    return _one_line(f"damaged {label} image: {message}")


def _probe_image(fh: BinaryIO, size: int, head: bytes, found: _Match, opts: _Options) -> MediaInfo:
    from PIL import Image

    kind = _IMAGE_KINDS[found.format]
    fail = MediaInfo(modality="image", format=found.format)
    if kind.pil_format is None or kind.pil_format not in _pil_openers():
        return replace(
            fail, error=f"{kind.label} images are not supported here (convert them to JPEG or PNG)"
        )
    if found.format == "webp":
        dims = _webp_header_size(head)
        if dims and dims[0] * dims[1] > opts.max_pixels:
            return replace(fail, error=_bomb_reason(*dims, opts.max_pixels))
        _check_riff_length(head, size, "WebP")
    if found.format in ("webp", "avif") and size > _MAX_SLURP_BYTES:  # Pillow reads these whole
        return replace(
            fail, error=f"{kind.label} file is {size / 2**20:.0f} MiB, too large to probe"
        )

    dims = None
    caught: list[warnings.WarningMessage] = []
    fh.seek(0)
    try:
        # Header parse only, with Pillow's own limit off so that *we* report the bomb with its size.
        with _pillow_limits(None) as caught:
            im = Image.open(fh, formats=[kind.pil_format])
        with im, _pillow_limits(opts.max_pixels) as caught:
            width, height = dims = im.size
            fail = replace(fail, width=width, height=height)
            if width * height > opts.max_pixels:
                return replace(fail, error=_bomb_reason(width, height, opts.max_pixels))
            mode = im.mode
            fail = replace(fail, mode=mode)
            frames = int(getattr(im, "n_frames", 1) or 1)
            # PNG keeps EXIF anywhere, so reading it may decode the image: only once it is loaded.
            early = found.format != "png"
            orientation = _exif_orientation(im) if early else None
            if _validate_pixels(im, found.format, head, size) and not early:
                orientation = _exif_orientation(im)
        duration = (
            _ANIMATION_SECONDS[found.format](fh, size)
            if (frames > 1 and found.format in _ANIMATION_SECONDS)
            else None
        )
    except _ProbeFailure as exc:
        return replace(fail, error=str(exc))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        w, h = dims or (0, 0)
        return replace(
            fail,
            error=_bomb_reason(w, h, opts.max_pixels)
            if dims
            else f"image is over the {_size_text(opts.max_pixels)} limit (decompression "
            "bomb guard)",
        )
    except Exception as exc:  # Pillow signals damage with many exception types
        logger.debug("image probe failed", exc_info=True)
        return replace(fail, error=_image_reason(exc, kind.label, caught))
    for warning in caught:
        logger.debug("Pillow warning: %s", warning.message)
    if orientation in (5, 6, 7, 8):  # rotated by 90°: displayed width is the stored height
        width, height = height, width
    return MediaInfo(
        modality="image",
        format=found.format,
        width=width,
        height=height,
        duration=duration,
        codec=found.format,
        mode=mode,
        frames=frames,
        orientation=orientation,
    )


def _pil_openers() -> frozenset[str]:
    from PIL import Image

    Image.init()
    return frozenset(Image.OPEN)


