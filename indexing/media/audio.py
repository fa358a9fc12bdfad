"""Describing an audio stream: codec, rate, channels and a duration that is not too short."""

from __future__ import annotations

from dataclasses import replace

from indexing.media.avcommon import _codec_name, _format_ms, measured_duration
from indexing.media.common import MediaInfo, _Match, _Options


def _describe_audio(container, stream, found: _Match, opts: _Options) -> MediaInfo:
    codec = _codec_name(stream)
    fmt = "m4a" if found.format in ("mp4", "mov") else found.format
    info = MediaInfo(modality="audio", format=fmt, codec=codec)
    context = stream.codec_context
    if codec is None or context is None:
        return replace(info, error="unknown audio codec, or no decoder for it in this FFmpeg build")
    info = replace(info, sample_rate=context.sample_rate or None, channels=context.channels or None)
    _scan, duration, problem = measured_duration(container, stream, opts.size)
    info = replace(info, duration=duration)
    if problem is not None:
        return replace(info, error=problem)
    if duration is not None and duration < opts.min_audio_seconds:
        return replace(
            info,
            error=f"audio is {_format_ms(duration)} long; clips under "
            f"{_format_ms(opts.min_audio_seconds)} are too short to use",
        )
    return info


