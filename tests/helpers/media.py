"""Small, real media files for tests and benchmarks: images (Pillow), WAV, encoded audio and video
(PyAV). Nothing is faked: every file is what a user's folder could hold."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def encoded_tone(path: Path, codec: str, fmt: str | None = None, seconds: float = 1.0,
                 rate: int = 16000, *, freq: float = 330.0, layout: str = "mono") -> Path:
    """A sine tone encoded with a PyAV codec ("flac", "libmp3lame", "libopus", "aac", "vorbis")
    into a container (`fmt`, default from the suffix); the parent folder is created."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 1 if layout == "mono" else 2
    t = np.arange(int(rate * seconds)) / rate
    signal = np.tile((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), (channels, 1))
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder is marked experimental
            stream.codec_context.options = {"strict": "experimental"}
        block = stream.codec_context.frame_size or 1024
        for start in range(0, signal.shape[1], block):
            chunk = np.ascontiguousarray(signal[:, start : start + block])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.time_base = Fraction(1, rate)
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


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
              audio=False, scenes=False, options=None) -> Path:
        """A video of flat grey frames, or with `scenes` random noise that changes every second
        (a realistic bitrate, still frames between cuts); `options` go to the encoder."""
        import av

        rng = np.random.default_rng(0)

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            if options:
                stream.options = dict(options)
            astream = None
            if audio:
                astream = out.add_stream("aac", rate=16000)
                astream.layout = "mono"
            for i in range(frames):
                if not scenes:
                    arr = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
                elif i % fps == 0:
                    arr = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
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
