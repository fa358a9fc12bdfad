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
# Packets demuxed to check a declared duration: a stream that ends within them is measured
# exactly (minutes of audio, about a minute of video); a longer one is checked by bitrate x size.
_VERIFY_PACKETS = 4_000
_VERIFY_BYTES = 16 << 20  # and at most this much packet data, so a long HD video costs little
_MAX_PLAUSIBLE_SECONDS = 7 * 24 * 3600.0  # a week: longer claims need timestamps to back them
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
    duration: float | None  # the demuxed span, when the whole stream was demuxed
    seen_seconds: float | None = None  # the span demuxed before the packet cap
    seen_bytes: int = 0  # bytes of this stream's packets in that span


def _scan_stream(container, stream, max_packets: int, max_bytes: float = float("inf")
                 ) -> _StreamScan:
    """Decode the first frame (proof the stream decodes), demuxing on up to `max_packets`
    packets to time the stream; `duration` is set only when the stream ended before the cap."""
    # One frame: decoder threads would only cost start-up, and the scanner runs one worker per core.
    stream.codec_context.thread_count = 1
    first = None
    start = end = None
    capped = False
    seen_bytes = 0
    for count, packet in enumerate(container.demux(stream), start=1):
        if first is None:
            decoded = packet.decode()
            if decoded:
                first = decoded[0]
            elif count >= _FIRST_FRAME_PACKETS:
                break
        if packet.pts is not None:
            tail = packet.pts + (packet.duration or 0)
            start = packet.pts if start is None else min(start, packet.pts)
            end = tail if end is None else max(end, tail)
            seen_bytes += packet.size
        if first is not None and (count >= max_packets or seen_bytes > max_bytes):
            capped = True  # a very long stream: its length is estimated, not measured
            break
    if first is None:
        raise _ProbeFailure(
            f"no {stream.type} frame could be decoded ({_codec_name(stream) or 'unknown codec'}); "
            "the stream is empty or damaged"
        )
    span = None if start is None or end is None else _seconds(end - start, stream.time_base)
    return _StreamScan(
        getattr(first, "width", None),
        getattr(first, "height", None),
        None if capped else span,
        seen_seconds=span,
        seen_bytes=seen_bytes,
    )


# Bitrates (bits/s over the whole file) a real stream stays within. Below: even silence in FLAC
# or a still frame in H.264 costs more than 800 bit/s in frame headers. Above: beyond any
# uncompressed audio, and beyond any video a camera writes.
_BITRATE_BOUNDS = {"audio": (800.0, 60e6), "video": (800.0, 4e9)}


def _plausible(declared: float, file_size: int, kind: str) -> bool:
    low, high = _BITRATE_BOUNDS.get(kind, _BITRATE_BOUNDS["video"])
    if declared <= 0 or declared > _MAX_PLAUSIBLE_SECONDS or file_size <= 0:
        return False
    return low <= 8.0 * file_size / declared <= high


def _describe_seconds(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds >= 10 else f"{seconds:.2f} s"


def measured_duration(
    container, stream, file_size: int
) -> tuple[_StreamScan, float | None, str | None]:
    """The stream's duration, measured where the container's own figure can be checked.

    The declared duration (stream, else container header) is only a claim: a damaged or hostile
    header says 65,536 s for a 2 s FLAC. A claim whose implied bitrate (size / duration) is
    plausible for the kind of stream is kept at no cost; any other is checked against the
    stream, which is demuxed (not decoded) up to a bound: when
    it ends within the bound its measured span replaces a declared figure that disagrees; a longer
    stream is checked against bitrate x size, and a declared figure off by more than 4x either way
    is replaced by that estimate. A stream with no timestamps at all keeps its declared figure.

    Returns:
        (scan of the first frame and packets, duration or None when unknown, error or None).
    """
    declared = _stream_duration(container, stream)
    if declared is None:
        scan = _scan_stream(container, stream, _DURATION_PACKETS)
        return scan, scan.duration, None
    if _plausible(declared, file_size, stream.type):
        return _scan_stream(container, stream, 1), declared, None  # the first frame only
    scan = _scan_stream(container, stream, _VERIFY_PACKETS, _VERIFY_BYTES)
    if scan.duration is not None:  # the whole stream was demuxed: its span is the truth
        if abs(declared - scan.duration) > max(1.0, 0.05 * scan.duration):
            logger.debug("declared %.3f s, measured %.3f s", declared, scan.duration)
            return scan, scan.duration, None
        return scan, declared, None
    if scan.seen_seconds and scan.seen_bytes > 0 and file_size > 0:
        estimate = file_size * scan.seen_seconds / scan.seen_bytes
        estimate = max(estimate, scan.seen_seconds)
        if declared < scan.seen_seconds * 0.95 or not (estimate / 4 <= declared <= estimate * 4):
            logger.debug("declared %.3f s, estimated %.3f s", declared, estimate)
            return scan, estimate, None
        return scan, declared, None
    if scan.seen_seconds is None and declared > _MAX_PLAUSIBLE_SECONDS:
        return scan, None, (
            f"declared duration {_describe_seconds(declared)} cannot be checked against the "
            "stream (no timestamps); the file is damaged"
        )
    return scan, declared, None


def _format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


