"""PyAV helpers shared by the audio and video probers: quiet logs, reasons, stream scans."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from indexing.media.common import _Match, _one_line, _ProbeFailure

logger = logging.getLogger("indexing.media")

_FIRST_FRAME_PACKETS = 512  # packets read while waiting for the first decoded frame
_DURATION_PACKETS = 50_000  # packets demuxed (not decoded) to measure an unknown duration
_AV_CONTAINER_OPTIONS = {"probesize": "1000000", "analyzeduration": "1000000"}


_STILL_IMAGE_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff"})


@contextlib.contextmanager
def _quiet_av() -> Iterator[list]:
    """Route FFmpeg's log lines into a private list (for error details) instead of stderr."""
    import av.logging

    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # errors carry FFmpeg's own explanation this way
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


_TRUNCATION_HINTS = ("prematurely", "truncat", "end of file", "moov atom not found")


def _av_reason(doing: str, exc: BaseException, logs: list, label: str) -> str:
    """One line for an FFmpeg failure, preferring the log line that explains a truncation."""
    lines = [
        _one_line(str(entry[2])) for entry in logs if len(entry) >= 3 and str(entry[2]).strip()
    ]
    log = getattr(exc, "log", None)
    if log and len(log) >= 3 and str(log[2]).strip():
        lines.append(_one_line(str(log[2])))
    truncated = [line for line in lines if any(h in line.lower() for h in _TRUNCATION_HINTS)]
    if isinstance(exc, EOFError) and not truncated:  # av.error.EOFError: data ran out mid-way
        truncated = ["the file ends before its data does"]
    if truncated:
        detail = truncated[0].rstrip(".")
        if "moov atom not found" in detail:
            detail += " (the file was cut off or never finished writing)"
        return _one_line(f"truncated {label}: {detail}")
    detail = lines[-1] if lines else (getattr(exc, "strerror", None) or str(exc))
    return _one_line(f"{doing}: {detail or type(exc).__name__}".rstrip("."))


def _is_cover_art(stream, found: _Match) -> bool:
    import av.stream

    disposition = int(getattr(stream, "disposition", 0) or 0)
    flags = int(av.stream.Disposition.attached_pic) | int(av.stream.Disposition.still_image)
    if disposition & flags:
        return True
    # Audio containers carry album art as a one-picture "video" stream without the flag sometimes.
    return found.modality == "audio" and _codec_name(stream) in _STILL_IMAGE_CODECS


def _codec_name(stream) -> str | None:
    try:
        codec = stream.codec_context.codec
        return codec.canonical_name or codec.name
    except (AttributeError, ValueError, LookupError):  # no decoder for it in this FFmpeg build
        return None


def _seconds(value: int | None, time_base) -> float | None:
    if value is None or value <= 0 or not time_base:
        return None
    return float(value * time_base)


def _stream_duration(container, stream) -> float | None:
    seconds = _seconds(stream.duration, stream.time_base)
    if seconds is None and container.duration and container.duration > 0:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    return seconds


@dataclass(frozen=True)
class _StreamScan:
    width: int | None
    height: int | None
    duration: float | None


def _scan_stream(container, stream, need_duration: bool) -> _StreamScan:
    """Decode the first frame (proof the stream decodes); demux on to time it when unknown."""
    # One frame: decoder threads would only cost start-up, and the scanner runs one worker per core.
    stream.codec_context.thread_count = 1
    first = None
    start = end = None
    capped = False
    for count, packet in enumerate(container.demux(stream), start=1):
        if first is None:
            decoded = packet.decode()
            if decoded:
                first = decoded[0]
            elif count >= _FIRST_FRAME_PACKETS:
                break
        if need_duration and packet.pts is not None:
            tail = packet.pts + (packet.duration or 0)
            start = packet.pts if start is None else min(start, packet.pts)
            end = tail if end is None else max(end, tail)
        if first is not None and (not need_duration or count >= _DURATION_PACKETS):
            capped = need_duration  # a very long stream of unknown length stays unknown
            break
    if first is None:
        raise _ProbeFailure(
            f"no {stream.type} frame could be decoded ({_codec_name(stream) or 'unknown codec'}); "
            "the stream is empty or damaged"
        )
    duration = None
    if need_duration and not capped and start is not None and end is not None:
        duration = _seconds(end - start, stream.time_base)
    return _StreamScan(getattr(first, "width", None), getattr(first, "height", None), duration)


def _format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


