"""Shared test fixtures: isolated settings and a factory for small real media files."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Config and caches point into a temporary folder; no test reads the user's own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CURATOR_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    for name in list(os.environ):
        if name.startswith("CURATOR_") and name != "CURATOR_CONFIG":
            monkeypatch.delenv(name, raising=False)


class MediaFactory:
    """Writes small, real media files (Pillow, NumPy, PyAV)."""

    def image(self, path: Path, size=(64, 48), color=(200, 30, 30), fmt=None, seed=0) -> Path:
        from PIL import Image

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(color, np.uint8)
        arr = np.clip(arr.astype(int) + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(path, format=fmt)
        return path

    def wav(self, path: Path, seconds=0.5, rate=16000, freq=440.0, channels=1) -> Path:
        import wave

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
        if channels > 1:
            samples = np.repeat(samples[:, None], channels, axis=1)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(samples.tobytes())
        return path

    def video(self, path: Path, frames=10, size=(64, 48), fps=10, codec="libx264",
              audio=False) -> Path:
        import av

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            astream = None
            if audio:
                astream = out.add_stream("aac", rate=16000)
                astream.layout = "mono"
            for i in range(frames):
                arr = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            if astream is not None:
                n = int(16000 * frames / fps)
                samples = (0.2 * np.sin(np.arange(n) / 10)).astype(np.float32)[None, :]
                aframe = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                aframe.sample_rate = 16000
                aframe.time_base = Fraction(1, 16000)
                aframe.pts = 0
                for packet in astream.encode(aframe):
                    out.mux(packet)
                for packet in astream.encode():
                    out.mux(packet)
        return path


@pytest.fixture
def media() -> MediaFactory:
    return MediaFactory()
