"""Describing a video stream: size, rate, duration and proof that its first frame decodes."""

from __future__ import annotations

from dataclasses import replace

from indexing.media.avcommon import _codec_name, measured_duration
from indexing.media.common import MediaInfo, _Match, _Options


def _describe_video(
    container, videos, has_audio: bool, found: _Match, opts: _Options
) -> MediaInfo:
    import av.stream

    default = int(av.stream.Disposition.default)
    stream = next((s for s in videos if int(s.disposition) & default), videos[0])
    codec = _codec_name(stream)
    info = MediaInfo(modality="video", format=found.format, codec=codec, has_audio=has_audio)
    if codec is None or stream.codec_context is None:
        return replace(info, error="unknown video codec, or no decoder for it in this FFmpeg build")
    scan, duration, problem = measured_duration(container, stream, opts.size)
    if problem is not None:
        return replace(info, error=problem)
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate and 0 < float(rate) < 10_000 else None
    context = stream.codec_context
    return replace(
        info,
        width=context.width or scan.width,
        height=context.height or scan.height,
        duration=duration,
        fps=fps,
        frames=stream.frames or None,
    )


