"""Opening audio/video containers with PyAV: structure checks first, then the streams decide."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import BinaryIO

from indexing.media.audio import _describe_audio
from indexing.media.avcommon import (
    _AV_CONTAINER_OPTIONS,
    _av_reason,
    _codec_name,
    _is_cover_art,
    _quiet_av,
)
from indexing.media.common import (
    _AUDIO_RENAME_HINT,
    _EXTENSION_MODALITY,
    _MAX_CHUNKS,
    MediaInfo,
    _claimed_modality,
    _Match,
    _Options,
    _ProbeFailure,
    _u32be,
)
from indexing.media.video import _describe_video

logger = logging.getLogger("indexing.media")

def _describe_container(container, found: _Match, opts: _Options) -> MediaInfo:
    videos = [s for s in container.streams.video if not _is_cover_art(s, found)]
    audios = list(container.streams.audio)
    if videos:
        return _describe_video(container, videos, bool(audios), found, opts)
    # Only a video-style container (MP4, Matroska, AVI, ...) named as video is suspicious; a WAV
    # named .mp4 is plainly audio, and an M4A-branded MP4 declares itself audio.
    ext = opts.ext
    if found.modality == "video" and _EXTENSION_MODALITY.get(ext) == "video":
        what = (
            f"it holds only {_codec_name(audios[0]) or 'unknown'} audio"
            if audios
            else "and no audio stream either"
        )
        hint = _AUDIO_RENAME_HINT.get(ext)
        if audios and hint:
            what += f"; rename it to {hint} if it is meant as audio"
        return MediaInfo(
            modality="video", format=found.format, error=f"video file has no video stream ({what})"
        )
    if not audios:
        return MediaInfo(
            modality=found.modality,
            format=found.format,
            error=f"no audio or video stream in this {found.format} file",
        )
    return _describe_audio(container, audios[0], found, opts)



def _probe_av(fh: BinaryIO, size: int, head: bytes, found: _Match, opts: _Options) -> MediaInfo:
    import av

    failed = MediaInfo(modality=_claimed_modality(found, opts.ext), format=found.format)
    label = _AV_LABELS.get(found.format, found.format.upper())
    check = _STRUCTURE_CHECKS.get(found.demuxer or "")
    if check is not None:
        try:
            check(fh, size, label)
        except _ProbeFailure as exc:
            return replace(failed, error=str(exc))
    opts = replace(opts, size=size)
    fh.seek(0)
    with _quiet_av() as logs:
        try:
            container = av.open(
                fh,
                mode="r",
                format=found.demuxer,
                container_options=dict(_AV_CONTAINER_OPTIONS),
                metadata_errors="replace",
            )
        except av.error.FFmpegError as exc:
            return replace(failed, error=_av_reason(f"cannot read {label} file", exc, logs, label))
        with container:
            try:
                return _describe_container(container, found, opts)
            except _ProbeFailure as exc:
                return replace(failed, error=str(exc))
            except av.error.FFmpegError as exc:
                logger.debug("decode failed", exc_info=True)
                return replace(
                    failed, error=_av_reason(f"cannot decode {label} file", exc, logs, label)
                )


def _check_isobmff_boxes(fh: BinaryIO, size: int, label: str) -> None:
    """A top-level box (moov, mdat) that runs past the end of the file means a cut-off file.

    FFmpeg quietly returns *no streams* for a half-present moov box, so we check first.
    """
    pos = 0
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > size:
            break
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            break
        box_size, kind = _u32be(header, 0), header[4:8]
        if box_size == 1 and len(header) == 16:
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:  # "extends to the end of the file"
            break
        if box_size < 8 or not all(0x20 <= c <= 0x7E for c in kind):
            break  # not a box (trailing junk, say): FFmpeg will judge the rest
        if pos + box_size > size:
            name = kind.decode("latin-1").strip() or "?"
            raise _ProbeFailure(
                f"truncated {label}: its {name!r} box needs {pos + box_size:,} "
                f"bytes but the file has {size:,}"
            )
        pos += box_size


def _ebml_vint(data: bytes, at: int) -> tuple[int | None, int]:
    """(value, length) of an EBML variable-size integer; value None for "unknown size"."""
    if at >= len(data) or data[at] == 0:
        return None, 0
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None, 0
    value = data[at] & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _check_matroska_segment(fh: BinaryIO, size: int, label: str) -> None:
    """The Segment element declares its size (when written to a seekable file): compare it."""
    fh.seek(0)
    head = fh.read(64)
    header_size, n = _ebml_vint(head, 4)
    if header_size is None:
        return
    at = 4 + n + header_size
    if head[at : at + 4] != b"\x18\x53\x80\x67":  # Segment element ID
        return
    at += 4
    segment_size, m = _ebml_vint(head, at)
    if segment_size is not None and at + m + segment_size > size:
        raise _ProbeFailure(
            f"truncated {label}: the file has {size:,} of the "
            f"{at + m + segment_size:,} bytes its header declares"
        )


_STRUCTURE_CHECKS: dict[str, Callable[[BinaryIO, int, str], None]] = {
    "mov": _check_isobmff_boxes,
    "matroska": _check_matroska_segment,
}


_AV_LABELS = {
    "mkv": "Matroska",
    "webm": "WebM",
    "ogg": "Ogg",
    "m4a": "M4A",
    "mp4": "MP4",
    "mov": "QuickTime",
    "avi": "AVI",
    "wav": "WAV",
    "flac": "FLAC",
    "mp3": "MP3",
    "aac": "AAC",
    "ts": "MPEG-TS",
    "mpeg": "MPEG",
    "asf": "ASF",
    "aiff": "AIFF",
    "caf": "CAF",
}


