"""Media decoding near a model's input size, and the thumbnails made in the same pass."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexing.embedders.base import Decoded

if TYPE_CHECKING:  # Pillow is imported inside functions so that importing this module stays cheap.
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

RESIZE_MODES = ("crop", "squash", "pad")

# OpenAI CLIP's normalisation mean as 8-bit RGB: letterbox padding in this colour becomes ~0
# after the model's normalisation, so padding carries no signal.
MEAN_GREY = (122, 116, 104)

# Below this gap between the last decoded video frame and the next target time we keep decoding
# forward instead of seeking (longer when the keyframes seen are further apart than this).
_VIDEO_CONTINUE_S = 1.0


class MediaError(ValueError):
    """A file has no usable content of the asked modality; the message says what is missing."""


@dataclass(frozen=True)
class DecodeSpec:
    """How to decode media for one model.

    Attributes:
        image_size: images and video frames come out `image_size` square.
        resize_mode: "crop" (short side to `image_size`, centre crop), "squash" (both sides to
            `image_size`) or "pad" (keep aspect, letterbox with `pad_rgb`).
        video_frames: frames sampled uniformly over a video's duration.
        audio_rate: audio is mono float32 resampled to this rate.
        audio_window_s: audio is cut in windows of this length (the last one zero-padded).
        audio_max_windows: long clips give this many windows spread uniformly over the duration.
        thumbnail_size: longest side of the JPEG thumbnails.
        pad_rgb: the letterbox colour for "pad".
    """

    image_size: int = 224
    resize_mode: str = "crop"
    video_frames: int = 8
    audio_rate: int = 48000
    audio_window_s: float = 10.0
    audio_max_windows: int = 8
    thumbnail_size: int = 256
    pad_rgb: tuple = MEAN_GREY

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}"
            )
        if self.image_size < 1 or self.video_frames < 1 or self.audio_max_windows < 1:
            raise ValueError("image_size, video_frames and audio_max_windows must be at least 1")
        if self.audio_rate < 1000 or self.audio_window_s <= 0:
            raise ValueError("audio_rate must be >= 1000 Hz and audio_window_s positive")

    @property
    def window_samples(self) -> int:
        """Samples in one audio window."""
        return round(self.audio_rate * self.audio_window_s)


class MediaDecoder:
    """The picklable decode callable run in worker processes (see `Embedder.decoder`)."""

    def __init__(self, spec: DecodeSpec):
        self.spec = spec

    def __repr__(self) -> str:
        return f"MediaDecoder({self.spec!r})"

    def __call__(self, item_id: int, path: str, modality: str, thumbnail: bool = True) -> Decoded:
        """Decode one file; never raises for a bad file.

        Args:
            item_id: catalog id, passed through.
            path: the media file.
            modality: "image", "video" or "audio".
            thumbnail: also make the JPEG thumbnail in the same pass.

        Returns:
            Decoded with `data` (image uint8 (S, S, 3); video uint8 (F, S, S, 3); audio float32
            (W, window_samples)) and `thumbnail`, or with `error` set to a one-line reason.
        """
        decode = _MODALITY_DECODERS.get(modality)
        if decode is None:
            return Decoded(item_id, modality, error=f"unknown modality {modality!r}")
        try:
            data, thumb = decode(self.spec, str(path), thumbnail)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the job; report it
            reason = f"cannot decode {modality}: {_one_line(exc)}"
            log.debug("cannot decode %s %s: %s", modality, path, reason)
            return Decoded(item_id, modality, error=reason)
        return Decoded(item_id, modality, data=data, thumbnail=thumb)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return reason[:300]


# ----------------------------------------------------------------------------------------- images


def load_image(
    path, size: int, resize_mode: str = "crop", thumbnail_size: int = 256, pad_rgb=MEAN_GREY
) -> tuple[np.ndarray, PILImage.Image]:
    """Read an image once: the model array and a small image for the thumbnail.

    EXIF orientation is applied; alpha is composited on white; 16-bit and float images are scaled
    to 8 bits; CMYK, palette and grey modes become RGB; animated images give their first frame.
    JPEGs are decoded with DCT scaling (`Image.draft`) near the size needed.

    Args:
        path: the image file.
        size: the model array is `size` square.
        resize_mode: "crop", "squash" or "pad" (see DecodeSpec).
        thumbnail_size: the returned PIL image is shrunk to this longest side (0: no thumbnail
            needed; the returned image is then the model image).
        pad_rgb: letterbox colour for "pad".

    Returns:
        (uint8 array (size, size, 3) RGB, a small RGB PIL image for `thumbnail_jpeg`).
    """
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            _draft(img, size, resize_mode, thumbnail_size)
        rgb = _to_rgb(img)  # may be `img` itself, which closes with the file: make new images here
        small = _shrink(rgb, thumbnail_size, copy=rgb is img) if thumbnail_size > 0 else None
        # Resampling dominates the cost: scale the model image from the thumbnail when that still
        # has twice the model size on the sides that matter.
        side = max if resize_mode == "pad" else min
        source = small if small is not None and side(small.size) >= 2 * size else rgb
        fitted = _fit_square(source, size, resize_mode, pad_rgb)
    return np.asarray(fitted, dtype=np.uint8), (small if small is not None else fitted)


def _draft(img: PILImage.Image, size: int, resize_mode: str, thumbnail_size: int) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while keeping what the outputs need.

    The model array wants about twice its size before the bicubic downscale (crop and squash on
    the short side, pad on the long side); the thumbnail wants its longest side.
    """
    w, h = img.size
    need = 2 * size
    scale = (min(w, h) if resize_mode in ("crop", "squash") else max(w, h)) / need
    if thumbnail_size > 0:
        scale = min(scale, max(w, h) / thumbnail_size)
    if scale >= 2:
        img.draft("RGB", (math.ceil(w / scale), math.ceil(h / scale)))


def _shrink(img: PILImage.Image, size: int, copy: bool) -> PILImage.Image:
    """A new image with its longest side at most `size` (aspect kept).

    Bilinear with box pre-reduction: for a thumbnail it looks the same as bicubic and costs less.
    """
    from PIL import Image

    w, h = img.size
    if max(w, h) <= size:
        return img.copy() if copy else img
    scale = size / max(w, h)
    dims = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(dims, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _to_rgb(img: PILImage.Image) -> PILImage.Image:
    """Orientation-corrected RGB copy of the current frame of `img`."""
    from PIL import Image, ImageOps

    ImageOps.exif_transpose(img, in_place=True)  # loads the pixels; no copy when upright
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = Image.fromarray(_to_uint8(np.asarray(img), mode), "L")
        mode = "L"
    if mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
        img = img.convert(mode)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, L, 1: Pillow's converters
    return img


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16-bit, 32-bit or float grey image to 8 bits by its nominal range."""
    if mode == "F":
        arr = np.nan_to_num(arr.astype(np.float32))
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.round(arr * 255.0).astype(np.uint8)
        return np.round((arr - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
    arr = arr.astype(np.int64)
    hi = int(arr.max()) if arr.size else 0
    if mode == "I" and hi <= 255:
        return np.clip(arr, 0, 255).astype(np.uint8)  # 8-bit data stored in a 32-bit image
    if mode.startswith("I;16") or hi <= 65535:
        return ((np.clip(arr, 0, 65535) + 128) // 257).astype(np.uint8)
    return np.round(np.clip(arr, 0, None) * (255.0 / hi)).astype(np.uint8)


def _fit_square(img: PILImage.Image, size: int, mode: str, pad_rgb=MEAN_GREY) -> PILImage.Image:
    """Resize an RGB image to `size` square by crop, squash or letterbox (bicubic)."""
    from PIL import Image

    w, h = img.size
    if mode == "squash":
        return img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    if mode == "crop":
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        return img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)
    if mode == "pad":
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (size, size), tuple(pad_rgb))
        canvas.paste(
            img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=2.0),
            ((size - nw) // 2, (size - nh) // 2),
        )
        return canvas
    raise ValueError(f"resize_mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")


def _square_array(arr: np.ndarray, size: int, mode: str, pad_rgb=MEAN_GREY) -> np.ndarray:
    """Centre-crop or letterbox an (H, W, 3) array already scaled for `mode` to (size, size, 3)."""
    h, w = arr.shape[:2]
    if mode == "crop":
        y, x = (h - size) // 2, (w - size) // 2
        return np.ascontiguousarray(arr[y : y + size, x : x + size])
    if mode == "pad":
        out = np.empty((size, size, 3), np.uint8)
        out[...] = np.asarray(pad_rgb, np.uint8)
        y, x = (size - h) // 2, (size - w) // 2
        out[y : y + h, x : x + w] = arr
        return out
    return arr


def _scaled_dims(w: float, h: float, size: int, mode: str) -> tuple[int, int]:
    """Target (width, height) before crop/letterbox: short side = size (crop), long side (pad)."""
    if mode == "squash":
        return size, size
    scale = size / (min(w, h) if mode == "crop" else max(w, h))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    if mode == "crop":
        tw, th = max(tw, size), max(th, size)
    else:
        tw, th = min(tw, size), min(th, size)
    return tw, th


def thumbnail_jpeg(img: PILImage.Image, size: int = 256, quality: int = 85) -> bytes:
    """JPEG bytes of `img` with its longest side at most `size` (aspect kept).

    Args:
        img: any PIL image (converted to RGB).
        size: the longest side bound.
        quality: JPEG quality.

    Returns:
        The JPEG file as bytes.
    """
    from PIL import Image

    thumb = img if img.mode == "RGB" else img.convert("RGB")
    if max(thumb.size) > size:
        thumb = thumb.copy()
        thumb.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ video


def load_video_frames(path, n: int, size: int, resize_mode: str = "crop") -> np.ndarray:
    """Sample `n` frames uniformly over a video's duration, decoded at low resolution.

    Each frame is reached by seeking to the keyframe before its timestamp and decoding forward;
    frames are scaled by FFmpeg straight to the model size. A file with fewer distinct frames
    than `n` gives the frames it has.

    Args:
        path: the video file.
        n: frames wanted.
        size: frames come out `size` square.
        resize_mode: "crop", "squash" or "pad".

    Returns:
        uint8 array (F, size, size, 3) RGB, 1 <= F <= n, in time order.

    Raises:
        MediaError: no video stream or no decodable frame.
    """
    frames, _ = _decode_video(path, n, size, resize_mode, 0, MEAN_GREY)
    return frames


class _FrameConverter:
    """Scales decoded frames to the model size (and the thumbnail size) with rotation applied."""

    def __init__(self, stream, size: int, mode: str, thumb_size: int, pad_rgb):
        self.size, self.mode, self.thumb_size, self.pad_rgb = size, mode, thumb_size, pad_rgb
        sar = stream.sample_aspect_ratio
        self.sar = float(sar) if sar else 1.0

    def _rotated(self, frame) -> tuple[int, tuple[float, float]]:
        rotation = round((getattr(frame, "rotation", 0) or 0) / 90.0) % 4
        w, h = frame.width * self.sar, float(frame.height)
        return rotation, (h, w) if rotation % 2 else (w, h)

    def _reformat(self, frame, rotation: int, tw: int, th: int) -> np.ndarray:
        # Coded dims are the display dims swapped when the display matrix turns by 90 degrees.
        cw, ch = (th, tw) if rotation % 2 else (tw, th)
        arr = frame.reformat(
            width=cw, height=ch, format="rgb24", interpolation="BICUBIC"
        ).to_ndarray()
        return np.rot90(arr, k=rotation) if rotation else arr

    def model_array(self, frame) -> np.ndarray:
        rotation, (dw, dh) = self._rotated(frame)
        tw, th = _scaled_dims(dw, dh, self.size, self.mode)
        arr = self._reformat(frame, rotation, tw, th)
        return _square_array(arr, self.size, self.mode, self.pad_rgb)

    def thumbnail(self, frame) -> PILImage.Image:
        from PIL import Image

        rotation, (dw, dh) = self._rotated(frame)
        scale = min(1.0, self.thumb_size / max(dw, dh))
        tw, th = max(1, round(dw * scale)), max(1, round(dh * scale))
        return Image.fromarray(np.ascontiguousarray(self._reformat(frame, rotation, tw, th)))


def _stream_span(container, stream) -> tuple[float, float | None]:
    """(start time, duration) of a stream in seconds; duration None when the file does not say."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    if stream.duration and tb:
        return start, float(stream.duration * tb)
    if container.duration:
        import av

        return start, container.duration / av.time_base
    return start, None


def _decode_video(path, n, size, mode, thumb_size, pad_rgb):
    """(frames (F, size, size, 3), thumbnail PIL image or None) of a video file."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("no video stream in the file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        convert = _FrameConverter(stream, size, mode, thumb_size, pad_rgb)
        start, duration = _stream_span(container, stream)
        frames, thumb = [], None
        if duration and duration > 0:
            try:
                frames, thumb = _seek_frames(container, stream, start, duration, n, convert)
            except av.error.FFmpegError as exc:
                log.debug("seeking failed in %s (%s); decoding sequentially", path, exc)
                container.seek(0)
                frames = []
        if not frames:
            frames, thumb = _sequential_frames(container, stream, n, convert)
    if not frames:
        raise MediaError("no decodable video frame")
    return np.stack(frames), thumb


def _seek_frames(container, stream, start, duration, n, convert):
    """Frames nearest to n uniform timestamps: seek to the keyframe before each, decode forward.

    Returns:
        (list of model arrays in time order, thumbnail PIL image of the middle target or None).
    """
    rate = stream.average_rate or stream.guessed_rate
    half_frame = 0.5 / float(rate) if rate else 0.0
    targets = [start + (i + 0.5) * duration / n for i in range(n)]
    frames, thumb, last_chosen, last_pts = [], None, None, None
    decoder, last_time = None, None
    # Keyframe spacing seen so far (a lower bound while inside one long GOP): when the next target
    # is nearer than that, a seek would land on a keyframe behind us, so decode on instead.
    last_key, gop = None, 0.0
    for i, target in enumerate(targets):
        near = max(_VIDEO_CONTINUE_S, gop, (last_time - last_key) if last_key is not None else 0.0)
        if decoder is None or last_time is None or not 0 <= target - last_time <= near:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            decoder, last_key = container.decode(stream), None
        chosen = None
        for frame in decoder:
            chosen, last_time = frame, frame.time
            if frame.key_frame and frame.time is not None:
                if last_key is not None:
                    gop = max(gop, frame.time - last_key)
                last_key = frame.time
            if frame.time is None or frame.time >= target - half_frame:
                break
        if chosen is None:  # ran past the end: the duration overstated the stream
            decoder = None
            continue
        if chosen.pts is not None and chosen.pts == last_pts:
            continue  # fewer frames than targets: keep each frame once
        last_pts, last_chosen = chosen.pts, chosen
        if convert.thumb_size and thumb is None and i >= n // 2:
            thumb = convert.thumbnail(chosen)
        frames.append(convert.model_array(chosen))
    if convert.thumb_size and thumb is None and last_chosen is not None:
        thumb = convert.thumbnail(last_chosen)
    return frames, thumb


def _sequential_frames(container, stream, n, convert):
    """Uniform frames of a stream with no known duration, in memory bounded by 2n frames.

    Keeps every `stride`-th frame and doubles the stride (dropping every other kept frame) when
    the buffer fills, so the kept frames stay evenly spread over what was decoded.

    Returns:
        (list of model arrays in time order, thumbnail PIL image or None).
    """
    from PIL import Image

    kept, stride, count = [], 1, 0
    for index, frame in enumerate(container.decode(stream)):
        count = index + 1
        if index % stride == 0:
            kept.append((index, convert.model_array(frame)))
            if len(kept) >= 2 * n:
                kept, stride = kept[::2], stride * 2
    if not kept:
        return [], None
    # The kept frame nearest to the centre of each of n equal slices of what was decoded.
    positions = np.array([index for index, _ in kept])
    targets = (np.arange(n) + 0.5) * count / n
    pick = np.unique(np.abs(positions[None, :] - targets[:, None]).argmin(axis=1))
    frames = [kept[i][1] for i in pick]
    thumb = Image.fromarray(frames[len(frames) // 2]) if convert.thumb_size else None
    return frames, thumb


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
        start, duration = _stream_span(container, stream)
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


# ------------------------------------------------------------------------------- per-modality items


def _decode_image_item(spec: DecodeSpec, path: str, thumbnail: bool):
    array, small = load_image(
        path,
        spec.image_size,
        spec.resize_mode,
        spec.thumbnail_size if thumbnail else 0,
        spec.pad_rgb,
    )
    return array, (thumbnail_jpeg(small, spec.thumbnail_size) if thumbnail else None)


def _decode_video_item(spec: DecodeSpec, path: str, thumbnail: bool):
    frames, thumb = _decode_video(
        path,
        spec.video_frames,
        spec.image_size,
        spec.resize_mode,
        spec.thumbnail_size if thumbnail else 0,
        spec.pad_rgb,
    )
    return frames, (
        thumbnail_jpeg(thumb, spec.thumbnail_size) if thumbnail and thumb is not None else None
    )


def _decode_audio_item(spec: DecodeSpec, path: str, thumbnail: bool):
    windows = load_audio_windows(path, spec.audio_rate, spec.audio_window_s, spec.audio_max_windows)
    thumb = (
        spectrogram_jpeg(windows[0], spec.audio_rate, spec.thumbnail_size) if thumbnail else None
    )
    return windows, thumb


_MODALITY_DECODERS: dict[str, Callable] = {
    "image": _decode_image_item,
    "video": _decode_video_item,
    "audio": _decode_audio_item,
}
