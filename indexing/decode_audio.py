"""Audio as fixed-length mono windows at a model's rate, read by seeking so long files are cheap."""

from __future__ import annotations

import logging
import math

import numpy as np

from indexing.decode_base import MediaError
from indexing.decode_video import stream_span

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ audio


def load_audio_windows(path, rate: int, window_s: float, max_windows: int) -> np.ndarray:
    """Mono float32 windows of an audio stream, resampled to `rate`, without decoding it all.

    A clip of at most `max_windows` windows is cut into consecutive windows (the last one
    zero-padded; a clip shorter than one window gives one padded window). A longer clip gives
    `max_windows` windows at uniform offsets from its start to its end, each reached by seeking
    and decoding only its own samples, so time and memory do not grow with the file's length.
    A file that does not state its duration gives its first `max_windows` windows.

    Args:
        path: any file with an audio stream (audio or video container).
        rate: output sample rate in Hz.
        window_s: window length in seconds.
        max_windows: most windows returned.

    Returns:
        float32 array (W, round(rate * window_s)), 1 <= W <= max_windows.

    Raises:
        MediaError: no audio stream or no decodable samples.
    """
    import av

    win = round(rate * window_s)
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise MediaError("no audio stream in the file")
        stream = container.streams.audio[0]
        start, duration = stream_span(container, stream)
        if duration is not None and duration > window_s * max_windows:
            try:
                return _seek_windows(
                    container, stream, start, duration, rate, window_s, max_windows
                )
            except av.error.FFmpegError as exc:
                log.debug("seeking failed in %s (%s); reading from the start", path, exc)
                container.seek(0)
        samples = np.zeros(win * max_windows, np.float32)
        got = _read_samples(container, stream, rate, samples, skip_to=None)
    if got == 0:
        raise MediaError("no decodable audio samples")
    count = max(1, math.ceil(got / win))
    return samples[: count * win].reshape(count, win)


def _seek_windows(container, stream, start, duration, rate, window_s, max_windows) -> np.ndarray:
    win = round(rate * window_s)
    out = np.zeros((max_windows, win), np.float32)
    keep = []
    for i, offset in enumerate(np.linspace(0.0, duration - window_s, max_windows)):
        target = start + float(offset)
        container.seek(max(0, int(target / stream.time_base)), stream=stream, backward=True)
        if _read_samples(container, stream, rate, out[i], skip_to=target) > 0:
            keep.append(i)
    if not keep:
        raise MediaError("no decodable audio samples")
    return out[keep]


def _read_samples(container, stream, rate: int, out: np.ndarray, skip_to: float | None) -> int:
    """Decode from the current position into `out` (in place), dropping samples before `skip_to`.

    Returns:
        The number of samples written.
    """
    import av

    # A fresh resampler per window: its filter graph must not carry samples across a seek.
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    filled, skip = 0, None
    for frame in container.decode(stream):
        if skip is None:
            first = frame.time
            skip = (
                max(0, round((skip_to - first) * rate))
                if skip_to is not None and first is not None
                else 0
            )
        filled, skip = _take(resampler.resample(frame), out, filled, skip)
        if filled >= out.size:
            return filled
    filled, _ = _take(resampler.resample(None), out, filled, skip or 0)
    return filled


def _take(frames, out: np.ndarray, filled: int, skip: int) -> tuple[int, int]:
    for rframe in frames:
        chunk = rframe.to_ndarray().reshape(-1)
        if skip:
            dropped = min(skip, chunk.size)
            chunk, skip = chunk[dropped:], skip - dropped
        n = min(chunk.size, out.size - filled)
        out[filled : filled + n] = chunk[:n]
        filled += n
        if filled >= out.size:
            break
    return filled, skip
