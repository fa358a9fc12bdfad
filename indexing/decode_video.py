"""Video frames at chosen times (PyAV): seek to a keyframe or decode on, whichever is cheaper."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from indexing.decode_base import MEAN_GREY, MediaError
from indexing.decode_image import scaled_dims, square_array

if TYPE_CHECKING:  # Pillow is imported inside functions so that importing this module stays cheap.
    from PIL import Image as PILImage

log = logging.getLogger(__name__)


# Below this gap between the last decoded video frame and the next target time we keep decoding
# forward instead of seeking (longer when the keyframes seen are further apart than this).
_VIDEO_CONTINUE_S = 1.0


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
    frames, _ = decode_video(path, n, size, resize_mode, 0, MEAN_GREY)
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
        tw, th = scaled_dims(dw, dh, self.size, self.mode)
        arr = self._reformat(frame, rotation, tw, th)
        return square_array(arr, self.size, self.mode, self.pad_rgb)

    def thumbnail(self, frame) -> PILImage.Image:
        from PIL import Image

        rotation, (dw, dh) = self._rotated(frame)
        scale = min(1.0, self.thumb_size / max(dw, dh))
        tw, th = max(1, round(dw * scale)), max(1, round(dh * scale))
        return Image.fromarray(np.ascontiguousarray(self._reformat(frame, rotation, tw, th)))


def stream_span(container, stream) -> tuple[float, float | None]:
    """(start time, duration) of a stream in seconds; duration None when the file does not say."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    if stream.duration and tb:
        return start, float(stream.duration * tb)
    if container.duration:
        import av

        return start, container.duration / av.time_base
    return start, None


def decode_video(path, n, size, mode, thumb_size, pad_rgb):
    """(frames (F, size, size, 3), thumbnail PIL image or None) of a video file."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("no video stream in the file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        convert = _FrameConverter(stream, size, mode, thumb_size, pad_rgb)
        start, duration = stream_span(container, stream)
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
