"""A sound as a picture with its scales: a log-mel spectrogram that spans exactly the decoded clip,
and where its time (s) and frequency (Hz, kHz) ticks fall.

The thumbnails made while embedding are square pictures of the first analysis window (a 1.6 s
clip padded to the window's length fills a third of it); the preview draws this one instead:
one column per hop of the clip itself, so the picture's width is the clip's duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from indexing.decode import MediaError, mel_filterbank, power_spectrogram, viridis_lut

FREQ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
TIME_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@dataclass(frozen=True)
class Spectrogram:
    """A spectrogram picture and its scales.

    Attributes:
        rgb: uint8 (mels, frames, 3), low frequencies in the last row, time left to right.
        seconds: the time the columns span (the decoded part of the clip, never padded).
        total_seconds: the whole clip's duration when only its start was decoded, else None.
        rate: the sample rate the clip was decoded at (Hz).
        fmin: the frequency at the bottom edge (Hz).
        fmax: the frequency at the top edge (Hz).
    """

    rgb: np.ndarray
    seconds: float
    total_seconds: Optional[float]
    rate: int
    fmin: float
    fmax: float

    def height_of(self, hz: float) -> float:
        """Where `hz` lies, from 0 (bottom edge) to 1 (top edge), on the picture's mel scale."""
        lo, hi = _mel(self.fmin), _mel(self.fmax)
        return (_mel(min(max(hz, self.fmin), self.fmax)) - lo) / max(hi - lo, 1e-9)

    def freq_ticks(self) -> list[tuple[float, str]]:
        """(Hz, label) of the round frequencies inside the picture, such as "500 Hz", "2 kHz"."""
        return [(f, f"{f // 1000} kHz" if f >= 1000 else f"{f} Hz")
                for f in FREQ_TICKS if self.fmin <= f <= self.fmax]

    def time_ticks(self, most: int = 8) -> list[tuple[float, str]]:
        """(seconds, label) of round times from 0 to the end, at most `most` of them."""
        step = next((s for s in TIME_STEPS if self.seconds / s <= most - 1), TIME_STEPS[-1])
        n = int(math.floor(self.seconds / step + 1e-9))
        return [(i * step, _seconds(i * step)) for i in range(n + 1)]


def _seconds(t: float) -> str:
    if t >= 60:
        return f"{int(t // 60)}:{int(t % 60):02d}"
    return f"{t:g} s"


def decode_mono(path: str, max_rate: int, max_seconds: float
                ) -> tuple[np.ndarray, int, Optional[float]]:
    """The first `max_seconds` of a file's audio as mono float32, its rate and its duration.

    The rate is the file's own, or `max_rate` when the file's is higher (so the top of the
    picture is the file's real upper frequency, never an empty band made by upsampling).

    Raises:
        MediaError: no audio stream, or nothing decodable.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise MediaError("no audio stream in the file")
        stream = container.streams.audio[0]
        rate = min(int(stream.rate or max_rate), max_rate)
        limit = max(1, int(round(max_seconds * rate)))
        out = np.zeros(limit, np.float32)
        filled = 0
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(stream):
            filled = _take(resampler.resample(frame), out, filled)
            if filled >= limit:
                break
        else:
            filled = _take(resampler.resample(None), out, filled)
    if filled == 0:
        raise MediaError("no decodable audio samples")
    return out[:filled], rate, duration


def _take(frames, out: np.ndarray, filled: int) -> int:
    for frame in frames:
        chunk = frame.to_ndarray().reshape(-1)
        n = min(chunk.size, out.size - filled)
        out[filled:filled + n] = chunk[:n]
        filled += n
    return filled


def spectrogram_of(samples: np.ndarray, rate: int, columns: int = 1200, n_mels: int = 128,
                   fmin: float = 20.0) -> Spectrogram:
    """The log-mel spectrogram of mono samples, one column per hop, at most `columns` wide.

    Levels are dB below the loudest bin with an absolute floor (80 dB range), so silence is dark.
    """
    x = np.asarray(samples, np.float32).reshape(-1)
    n_fft = 1 << max(8, round(math.log2(rate * 0.032)))
    hop = max(n_fft // 4, math.ceil(max(x.size - n_fft, 1) / max(columns - 1, 1)))
    power = power_spectrogram(x, n_fft, hop)  # (frames, bins)
    fmax = rate / 2.0
    mel = power @ mel_filterbank(rate, n_fft, n_mels, fmin=fmin, fmax=fmax).T
    db = 10.0 * np.log10(mel + 1e-12)
    top = max(float(db.max()), -40.0)
    level = np.clip((db - (top - 80.0)) / 80.0, 0.0, 1.0)
    index = np.round(level.T[::-1] * 255).astype(np.uint8)  # (mels, frames), low rows last
    return Spectrogram(np.ascontiguousarray(viridis_lut()[index]), x.size / rate, None, rate,
                       fmin, fmax)


def audio_spectrogram(path: str, max_rate: int = 22050, max_seconds: float = 300.0,
                      columns: int = 1200, n_mels: int = 128) -> Spectrogram:
    """The spectrogram of a file's audio (its first `max_seconds` when longer).

    Args:
        path: any file with an audio stream.
        max_rate: highest decoding sample rate (half the rate is the top frequency shown).
        max_seconds: most audio decoded; `total_seconds` says when the clip is longer.
        columns: most picture columns.
        n_mels: picture rows.

    Raises:
        MediaError: no audio stream, or nothing decodable.
    """
    samples, rate, duration = decode_mono(path, max_rate, max_seconds)
    spec = spectrogram_of(samples, rate, columns, n_mels)
    longer = duration if duration is not None and duration > spec.seconds + 0.5 else None
    return Spectrogram(spec.rgb, spec.seconds, longer, spec.rate, spec.fmin, spec.fmax)
