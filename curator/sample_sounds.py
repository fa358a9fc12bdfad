"""The sample corpus's sounds: one synthesiser per audio class, written as WAV, FLAC, MP3, Opus, ...

Tones, chirps, noise bursts and rhythms with seeded variation; `render_audio` makes the samples
and `write_audio_file` encodes them bit-exactly (PyAV), so reruns give the same bytes.
"""

from __future__ import annotations

import itertools
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from curator.sample_plan import SampleFile, rng_of

if TYPE_CHECKING:  # numpy is imported inside functions so importing this module stays cheap
    import numpy as np

# --------------------------------------------------------------------------------------------
# Audio: one renderer per class, registered by name. Each returns mono float64 in [-1, 1].


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    import numpy as np

    env = np.ones(n)
    a, r = max(1, int(attack * sr)), max(1, int(release * sr))
    env[:a] = np.linspace(0, 1, a)[:n]
    env[-r:] *= np.linspace(1, 0, r)[-n:]
    return env


def _tones(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    t = np.arange(n) / sr
    f0 = 110 * 2 ** rng.uniform(0, 3)  # 110-880 Hz
    vibrato = 1 + rng.uniform(0, 0.005) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * f0 * np.cumsum(vibrato) / sr
    x = np.zeros(n)
    for k in range(1, int(rng.integers(1, 7)) + 1):
        if k * f0 < sr / 2.2:
            x += rng.uniform(0.3, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return x * _envelope(n, sr, rng.uniform(0.01, 0.05), rng.uniform(0.02, 0.1))


def _chirps(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    sweeps = int(rng.integers(1, 4))
    edges = np.linspace(0, n, sweeps + 1).astype(int)
    x = np.zeros(n)
    nyquist = sr / 2.2
    for a, b in itertools.pairwise(edges):
        lo, hi = 150 * 2 ** rng.uniform(0, 1.5), min(nyquist, 1500 * 2 ** rng.uniform(0, 1.5))
        f = np.geomspace(lo, hi, b - a)
        if rng.random() < 0.5:
            f = f[::-1]  # falling
        seg = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.3 * np.sin(4 * np.pi * np.cumsum(f) / sr)
        x[a:b] = seg * _envelope(b - a, sr, 0.01, 0.02)
    return x


def _noise_bursts(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    centre = 500 * 2 ** rng.uniform(0, 3)  # 500-4000 Hz
    width = rng.uniform(1.5, 4.0)  # octaves: always broadband enough not to sound like a tone
    octaves = np.log2(np.maximum(freqs, 1) / centre)
    noise = np.fft.irfft(spec * np.exp(-0.5 * (octaves / (width / 2)) ** 2), n)
    env = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        length = int(n * rng.uniform(0.25, 0.7))
        start = int(rng.integers(0, n - length + 1))
        shape = np.linspace(0, 1, length) ** rng.uniform(0.3, 3)
        if rng.random() < 0.5:
            shape = shape[::-1]
        env[start : start + length] = np.maximum(env[start : start + length], shape)
    return noise * np.maximum(env, 0.02)


def _rhythms(rng, sr: int, n: int) -> np.ndarray:
    import numpy as np

    step = 60 / rng.uniform(80, 200) / 2  # eighth notes
    pattern = rng.random(8) < 0.6
    pattern[0] = pattern[4] = True
    kick_f, kick_decay = rng.uniform(50, 120), rng.uniform(0.03, 0.08)
    hat_decay = rng.uniform(0.01, 0.03)
    x = np.zeros(n)
    for k in range(int(n / sr / step) + 1):
        if not pattern[k % 8]:
            continue
        start = int((k * step + rng.uniform(-0.005, 0.005)) * sr)
        if not 0 <= start < n:
            continue
        m = min(n - start, int(0.25 * sr))
        t = np.arange(m) / sr
        if k % 4 == 0:  # kick: a sine whose pitch drops
            f = kick_f * (1 + 2 * np.exp(-t / 0.02))
            hit = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / kick_decay)
        else:  # click / hat: differentiated noise
            hit = np.diff(rng.standard_normal(m + 1)) * 0.5 * np.exp(-t / hat_decay)
        x[start : start + m] += hit * rng.uniform(0.6, 1.0)
    return x


AUDIO_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "tones": _tones,
    "chirps": _chirps,
    "noise_bursts": _noise_bursts,
    "rhythms": _rhythms,
}
"""Class name -> renderer `(rng, sample_rate, n_samples) -> mono float (n,)`."""


def _to_channels(rng, x: np.ndarray, channels: int, peak: float) -> np.ndarray:
    """Scale to `peak` and make (channels, n) float32, the second channel panned and delayed."""
    import numpy as np

    x = x / max(float(np.max(np.abs(x))), 1e-9) * peak
    if channels == 1:
        return x[None].astype(np.float32)
    delay = int(rng.integers(0, 30))
    right = np.roll(x, delay) * rng.uniform(0.6, 1.0)
    return np.stack([x * rng.uniform(0.6, 1.0), right]).astype(np.float32)


def render_audio(f: SampleFile, seed: int) -> np.ndarray:
    """The samples of a planned audio file: float32 (channels, n) in [-1, 1].

    Args:
        f: a planned audio file.
        seed: the corpus seed.

    Returns:
        The samples at `f.sample_rate`.
    """
    rng = rng_of(seed, "audio", f.index, 1)
    n = round(f.duration * f.sample_rate)
    x = AUDIO_RENDERERS[f.label](rng, f.sample_rate, n)
    return _to_channels(rng, x, f.channels, rng.uniform(0.4, 0.9))


def track_of(rng, duration: float, sr: int, channels: int) -> np.ndarray:
    """A quiet tone for the audio track of a video."""
    import numpy as np

    n = round(duration * sr)
    t = np.arange(n) / sr
    x = np.sin(2 * np.pi * rng.uniform(220, 660) * t) * _envelope(n, sr, 0.02, 0.05)
    return _to_channels(rng, x, channels, 0.3)


def write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    """Write (channels, n) samples in [-1, 1] as 16-bit PCM WAV."""
    import numpy as np

    pcm = np.clip(np.round(samples.T * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def encode_audio(container, stream, samples: np.ndarray, sr: int) -> None:
    """Encode float32 (channels, n) into `stream` and mux it; PyAV re-chunks to frame_size."""
    import av

    frame = av.AudioFrame.from_ndarray(
        samples, format="fltp", layout="mono" if samples.shape[0] == 1 else "stereo"
    )
    frame.sample_rate = sr
    frame.pts = 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


# Faster settings than the defaults; quality hardly matters for synthetic test sounds.
_AUDIO_OPTIONS = {
    "aac": {"aac_coder": "fast", "b": "64k"},
    "libopus": {"compression_level": "3"},
}


def add_audio_stream(container, codec: str, sr: int, channels: int):
    """An audio stream of a codec on a PyAV container, mono or stereo."""
    stream = container.add_stream(codec, rate=sr, options=_AUDIO_OPTIONS.get(codec, {}))
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


# Container flags that keep library versions and random stream serials out of the bytes.
BITEXACT = {"fflags": "+bitexact"}


def write_audio_file(path: Path, f: SampleFile, samples: np.ndarray) -> None:
    """Encode a planned audio file (WAV, FLAC or Opus in Ogg) bit-exactly."""
    import av

    if f.fmt == "wav":
        write_wav(path, samples, f.sample_rate)
        return
    codec, container_format = {"flac": ("flac", "flac"), "ogg": ("libopus", "ogg")}[f.fmt]
    with av.open(str(path), "w", format=container_format, options=BITEXACT) as out:
        stream = add_audio_stream(out, codec, f.sample_rate, f.channels)
        encode_audio(out, stream, samples, f.sample_rate)
