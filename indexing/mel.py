"""Mel spectra: the power spectrogram and mel filterbank of the classic audio features, and the
viridis colour map of spectrogram pictures (the thumbnail JPEG here, the preview's in
`indexing.spectrogram`)."""

from __future__ import annotations

import io
import math

import numpy as np

# ------------------------------------------------------------------------------------ spectrogram


def power_spectrogram(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed power spectrum of frames along the last axis, scaled to full scale.

    Args:
        samples: float array (..., S); shorter than `n_fft` is zero-padded.
        n_fft: frame length.
        hop: frame step.

    Returns:
        float32 array (..., frames, n_fft // 2 + 1); a full-scale sine peaks near 0.25.
    """
    x = np.asarray(samples, np.float32)
    if x.shape[-1] < n_fft:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n_fft - x.shape[-1])])
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop, :]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    spec = np.fft.rfft(frames * window, axis=-1)
    power = spec.real**2
    power += spec.imag**2
    power *= np.float32(1.0 / float(window.sum()) ** 2)
    return power.astype(np.float32, copy=False)


def mel_filterbank(
    rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters (HTK mel scale) as a (n_mels, n_fft // 2 + 1) float32 matrix.

    Filters narrower than one FFT bin still take the nearest bin, so no band is empty.
    """
    fmax = rate / 2.0 if fmax is None else min(fmax, rate / 2.0)

    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, rate / 2.0, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs) / np.maximum(hi - mid, 1e-9)
    bank = np.clip(np.minimum(up, down), 0.0, None)
    empty = bank.sum(axis=1) == 0
    if empty.any():
        bank[empty, np.abs(freqs[None, :] - mid[empty]).argmin(axis=1)] = 1.0
    return (bank / bank.sum(axis=1, keepdims=True)).astype(np.float32)


# 11 evenly spaced stops of matplotlib's viridis (perceptually uniform, luminance rising).
_VIRIDIS_STOPS = np.array(
    [
        (68, 1, 84),
        (72, 36, 117),
        (65, 68, 135),
        (53, 95, 141),
        (42, 120, 142),
        (33, 145, 140),
        (34, 168, 132),
        (68, 191, 112),
        (122, 209, 81),
        (189, 223, 38),
        (253, 231, 37),
    ],
    np.float32,
)


def viridis_lut() -> np.ndarray:
    """A 256-entry viridis-like colour map as uint8 (256, 3)."""
    pos = np.linspace(0.0, len(_VIRIDIS_STOPS) - 1, 256)
    lut = np.stack(
        [np.interp(pos, np.arange(len(_VIRIDIS_STOPS)), _VIRIDIS_STOPS[:, c]) for c in range(3)], 1
    )
    return np.round(lut).astype(np.uint8)


def spectrogram_jpeg(samples: np.ndarray, rate: int, size: int = 256) -> bytes:
    """A log-mel spectrogram picture as JPEG: time on x, frequency on y (low at the bottom).

    Args:
        samples: mono float samples (S,), full scale +-1; a 2-D array uses its first row.
        rate: sample rate in Hz.
        size: the picture is `size` square.

    Returns:
        The JPEG file as bytes.
    """
    from PIL import Image

    x = np.asarray(samples, np.float32)
    if x.ndim > 1:
        x = x.reshape(-1, x.shape[-1])[0]
    n_fft = 1 << max(8, round(math.log2(rate * 0.032)))
    hop = max(1, (max(x.size, n_fft) - n_fft) // max(1, 2 * size - 1))
    power = power_spectrogram(x, n_fft, hop)  # (frames, bins)
    n_mels = max(16, size // 2)
    mel = power @ mel_filterbank(rate, n_fft, n_mels, fmin=20.0).T  # (frames, mels)
    db = 10.0 * np.log10(mel + 1e-12)
    # dB relative to full scale with an absolute floor, so silence is dark rather than stretched.
    top = max(float(db.max()), -40.0)
    level = np.clip((db - (top - 80.0)) / 80.0, 0.0, 1.0)
    index = np.round(level.T[::-1] * 255).astype(np.uint8)  # (mels, frames), low frequencies last
    picture = Image.fromarray(viridis_lut()[index]).resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
