"""Identify and probe one media file (image, audio or video): never raises, never over-allocates.

One module per modality (`image`, `audio`, `video`, with `container` for what audio and video
share); `sniff` recognises content by magic numbers; `common` holds MediaInfo and file access.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import BinaryIO

from indexing.media.common import (
    _EXTENSION_MODALITY,
    _HEAD_BYTES,
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaInfo,
    PathArg,
    _claimed_modality,
    _extension,
    _Match,
    _one_line,
    _open_regular,
    _Options,
    _os_error_reason,
    _ProbeFailure,
    hash_file,
)
from indexing.media.container import _probe_av
from indexing.media.image import _probe_image
from indexing.media.sniff import _match, _unrecognised_reason, is_media_candidate, sniff

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaInfo",
    "PathArg",
    "hash_file",
    "is_media_candidate",
    "probe_file",
    "sniff",
]

logger = logging.getLogger(__name__)


_PROBERS: dict[str, Callable[[BinaryIO, int, bytes, _Match, _Options], MediaInfo]] = {
    "image": _probe_image,
    "audio": _probe_av,
    "video": _probe_av,
}


def probe_file(
    path: PathArg,
    *,
    max_pixels: int = 178_956_970,
    min_audio_seconds: float = 0.05,
) -> MediaInfo:
    """Identify one file by its content and check that it decodes; never raises.

    Magic bytes decide what the file is (the extension never does on its own); Pillow then checks
    images (size against `max_pixels` before any decode, then a cheap validating decode) and PyAV
    checks audio/video (streams, duration, first decoded frame). Memory and time are bounded for
    hostile files. Meant for the scanner's worker processes: it briefly pins Pillow's and PyAV's
    global settings and restores them.

    Args:
        path: the file to probe.
        max_pixels: images with more pixels are refused as decompression bombs.
        min_audio_seconds: audio shorter than this is refused as too short to use.

    Returns:
        A MediaInfo; when the file is unusable, `error` holds one line naming the problem and,
        where useful, what to do (and `modality` what the file claims to be, when known).
    """
    try:
        name = os.fsdecode(os.path.basename(os.fspath(path)))
    except (TypeError, ValueError):  # an odd path object: the extension is only a hint anyway
        name = ""
    ext = _extension(name)
    found: _Match | None = None
    try:
        opts = _Options(ext=ext, max_pixels=int(max_pixels), min_audio_seconds=min_audio_seconds)
        with _open_regular(path) as (fh, size):
            if size == 0:
                return MediaInfo(
                    modality=_EXTENSION_MODALITY.get(ext), format=None, error="empty file (0 bytes)"
                )
            head = fh.read(_HEAD_BYTES)
            found = _match(head)
            if found is None:
                return MediaInfo(
                    modality=_EXTENSION_MODALITY.get(ext),
                    format=None,
                    error=_unrecognised_reason(head, ext),
                )
            return _PROBERS[found.modality](fh, size, head, found, opts)
    except _ProbeFailure as exc:
        error = str(exc)
    except OSError as exc:
        error = _os_error_reason(exc)
    except MemoryError:
        error = "ran out of memory while probing this file"
    except ImportError as exc:  # Pillow or PyAV missing from this install
        error = f"cannot probe this file: the {exc.name or 'decoder'} package is not installed"
    except Exception as exc:  # last resort: a scan must never die on one file
        logger.debug("unexpected error probing %r", path, exc_info=True)
        error = f"unexpected error while probing ({type(exc).__name__}: {exc})"
    return MediaInfo(
        modality=_claimed_modality(found, ext),
        format=found.format if found else None,
        error=_one_line(error),
    )
