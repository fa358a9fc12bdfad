"""Decoding near the model size: images of every mode, video frames, audio windows, thumbnails."""

from __future__ import annotations

import io
import pickle
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexing.decode import DecodeSpec, MediaDecoder
from indexing.decode_audio import load_audio_windows
from indexing.decode_base import MEAN_GREY, MediaError
from indexing.decode_image import load_image, thumbnail_jpeg
from indexing.decode_video import load_video_frames
from indexing.mel import spectrogram_jpeg

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# ---------------------------------------------------------------------------------- media makers


def halves(w: int = 80, h: int = 60, left=RED, right=BLUE) -> np.ndarray:
    """An (h, w, 3) picture whose left half is `left` and right half `right`."""
    arr = np.empty((h, w, 3), np.uint8)
    arr[:, : w // 2] = left
    arr[:, w // 2 :] = right
    return arr


def write_video(
    path: Path,
    values,
    size=(96, 64),
    fps=10,
    codec="libx264",
    gop=None,
    rotation=None,
    picture=None,
) -> Path:
    """A video whose frame i is grey level values[i] (or picture(i) when given)."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, value in enumerate(values):
            arr = picture(i) if picture else np.full((h, w, 3), value, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio(
    path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le", chunk: int = 1 << 16
) -> Path:
    """Write mono float samples (or a callable giving chunk k) with PyAV, chunk by chunk."""
    import av

    fmt = {"pcm_f32le": "flt", "aac": "fltp", "libopus": "flt"}.get(codec, "s16")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.format = fmt
        for start in range(0, len(samples), chunk):
            block = samples[start : start + chunk]
            data = (
                block.astype(np.float32)
                if fmt != "s16"
                else (np.clip(block, -1, 1) * 32767).astype(np.int16)
            )
            frame = av.AudioFrame.from_ndarray(data[None, :], format=fmt, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_silence(path: Path, seconds: int, rate: int = 1000) -> Path:
    """A long silent FLAC written one minute at a time (small on disk: FLAC stores silence cheaply).

    The encoder's block count, not the data, sets the writing time, so a low rate keeps it short.
    """
    import av

    minute = np.zeros((1, rate * 60), np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        stream.format = "s16"
        for k in range(seconds // 60):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, k * rate * 60, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def image_mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def jpeg_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    img.load()
    return img


# ------------------------------------------------------------------------------------------ spec


def test_spec_rejects_unknown_resize_mode():
    with pytest.raises(ValueError, match="resize_mode"):
        DecodeSpec(resize_mode="stretch")


def test_decoder_pickles_with_its_spec():
    spec = DecodeSpec(image_size=48, resize_mode="pad", audio_rate=16000)
    clone = pickle.loads(pickle.dumps(MediaDecoder(spec)))
    assert isinstance(clone, MediaDecoder) and clone.spec == spec


# ---------------------------------------------------------------------------------------- images


def _save(path: Path, img: Image.Image, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_jpeg_and_png_decode_to_square_rgb(tmp_path):
    for ext in ("jpg", "png", "webp", "bmp", "tiff"):
        path = _save(tmp_path / f"a.{ext}", Image.fromarray(halves()))
        arr, small = load_image(path, 32, "squash")
        assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8, ext
        assert arr[16, 3].tolist() == pytest.approx(RED, abs=40), ext
        assert arr[16, 28].tolist() == pytest.approx(BLUE, abs=40), ext
        assert small.mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    # Stored turned a quarter to the left; orientation 6 says "rotate 90 clockwise to display",
    # which gives back a picture that is red on its left half.
    stored = np.ascontiguousarray(np.rot90(halves(80, 60), k=1))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path / "rotated.jpg", Image.fromarray(stored), exif=exif)
    arr, small = load_image(path, 32, "squash")
    assert small.size == (80, 60)
    assert arr[16, 3].tolist() == pytest.approx(RED, abs=40)
    assert arr[16, 28].tolist() == pytest.approx(BLUE, abs=40)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64), (64, 1)).astype(np.uint16)
    path = _save(tmp_path / "g16.png", Image.fromarray(ramp))
    assert image_mode(path).startswith("I")
    arr, _ = load_image(path, 64, "squash")
    assert arr[:, 0].max() <= 5
    assert arr[:, -1].min() >= 250
    assert int(arr[32, 32, 0]) == pytest.approx(
        128, abs=10
    )  # clipping to 255 would make this white
    assert (arr[..., 0] == arr[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = _save(tmp_path / "cmyk.jpg", Image.fromarray(halves()).convert("CMYK"))
    assert image_mode(path) == "CMYK"
    arr, _ = load_image(path, 32, "squash")
    assert arr[16, 3].tolist() == pytest.approx(RED, abs=40)
    assert arr[16, 28].tolist() == pytest.approx(BLUE, abs=40)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    pal = Image.fromarray(halves(left=RED, right=GREEN)).convert("P")
    green_index = pal.getpixel((70, 30))
    path = _save(tmp_path / "pal.png", pal, transparency=green_index)
    assert image_mode(path) == "P"
    arr, _ = load_image(path, 32, "squash")
    assert arr[16, 3].tolist() == pytest.approx(RED, abs=10)
    assert arr[16, 28].tolist() == pytest.approx(WHITE, abs=10)


def test_rgba_and_la_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = BLUE
    rgba[:, :20, 3] = 255  # opaque left, transparent right
    path = _save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA"))
    arr, _ = load_image(path, 20, "squash")
    assert arr[10, 2].tolist() == pytest.approx(BLUE, abs=10)
    assert arr[10, 18].tolist() == pytest.approx(WHITE, abs=10)
    la = Image.fromarray(rgba[..., [0, 3]].copy(), "LA")
    arr, _ = load_image(_save(tmp_path / "la.png", la), 20, "squash")
    assert arr[10, 18].tolist() == pytest.approx(WHITE, abs=10)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 2
    arr, _ = load_image(path, 16)
    assert arr.mean(axis=(0, 1)).tolist() == pytest.approx(RED, abs=20)


def test_resize_modes_crop_squash_pad(tmp_path):
    wide = np.empty((100, 200, 3), np.uint8)
    wide[:, :50], wide[:, 50:150], wide[:, 150:] = RED, GREEN, BLUE
    path = _save(tmp_path / "wide.png", Image.fromarray(wide))
    crop, _ = load_image(path, 40, "crop")  # the centre square is all green
    assert crop[20, 1].tolist() == pytest.approx(GREEN, abs=30)
    assert crop[20, 38].tolist() == pytest.approx(GREEN, abs=30)
    squash, _ = load_image(path, 40, "squash")
    assert squash[20, 1].tolist() == pytest.approx(RED, abs=30)
    assert squash[20, 38].tolist() == pytest.approx(BLUE, abs=30)
    pad, _ = load_image(path, 40, "pad")  # 40 x 20 picture between grey bands
    assert pad[2, 20].tolist() == list(MEAN_GREY)
    assert pad[37, 20].tolist() == list(MEAN_GREY)
    assert pad[20, 1].tolist() == pytest.approx(RED, abs=30)
    for arr in (crop, squash, pad):
        assert arr.shape == (40, 40, 3)


def test_big_jpeg_gives_small_thumbnail_source(tmp_path):
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((2000, 1500))
    path = _save(tmp_path / "big.jpg", big, quality=90)
    arr, small = load_image(path, 224, "crop", thumbnail_size=256)
    assert arr.shape == (224, 224, 3)
    assert max(small.size) == 256 and small.size[0] > small.size[1]


def test_mixed_sizes_and_modes_all_decode_to_one_shape(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i, (mode, size, ext) in enumerate(
        [
            ("RGB", (17, 300), "jpg"),
            ("L", (640, 480), "png"),
            ("1", (33, 33), "png"),
            ("RGBA", (128, 16), "png"),
            ("P", (70, 50), "gif"),
            ("RGB", (1, 1), "bmp"),
            ("I;16", (50, 90), "png"),
            ("CMYK", (64, 64), "tiff"),
            ("LA", (30, 20), "png"),
        ]
    ):
        rgb = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        img = rgb.convert("I;16") if mode == "I;16" else rgb.convert(mode)
        paths.append(_save(tmp_path / f"{i}.{ext}", img))
    decode = MediaDecoder(DecodeSpec(image_size=48))
    for i, path in enumerate(paths):
        item = decode(i, str(path), "image")
        assert item.error is None, (path, item.error)
        assert item.item_id == i and item.modality == "image"
        assert item.data.shape == (48, 48, 3) and item.data.dtype == np.uint8
        thumb = jpeg_image(item.thumbnail)
        assert max(thumb.size) <= 256


def test_bad_files_give_errors_not_exceptions(tmp_path):
    good = _save(tmp_path / "good.jpg", Image.fromarray(halves(160, 120)), quality=95)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_bytes(b"These are notes, not a JPEG.\n" * 20)
    decode = MediaDecoder(DecodeSpec(image_size=32))
    for name in ("truncated.jpg", "empty.png", "notes.jpg", "missing.jpg"):
        for modality in ("image", "video", "audio"):
            item = decode(7, str(tmp_path / name), modality)
            assert item.data is None and item.thumbnail is None, (name, modality)
            assert item.error and "\n" not in item.error and len(item.error) <= 300, (
                name,
                item.error,
            )
            assert item.error.startswith(f"cannot decode {modality}")
    assert "unknown modality" in decode(1, str(good), "text").error


def test_thumbnail_jpeg_bounds_the_longest_side():
    img = Image.fromarray(halves(900, 300))
    thumb = jpeg_image(thumbnail_jpeg(img, 256))
    assert thumb.size == (256, 85)
    tiny = jpeg_image(thumbnail_jpeg(Image.fromarray(halves(40, 30)), 256))
    assert tiny.size == (40, 30)  # never enlarged
    assert thumbnail_jpeg(img.convert("RGBA"), 64)  # any mode


# ----------------------------------------------------------------------------------------- video


@pytest.mark.parametrize("gop", [None, 4])
def test_video_frames_are_uniform_and_in_order(tmp_path, gop):
    values = np.linspace(16, 235, 40).astype(int)  # brightness rises with time
    path = write_video(tmp_path / "ramp.mp4", values, gop=gop)
    frames = load_video_frames(path, 8, 32)
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    means = frames.mean(axis=(1, 2, 3))
    assert np.all(np.diff(means) > 0), means
    # Uniform over the duration: the centres of 8 equal slices of 40 frames.
    expected = values[((np.arange(8) + 0.5) * 40 // 8).astype(int)]
    assert means == pytest.approx(expected, abs=8)


def test_video_without_a_duration_is_sampled_while_decoding(tmp_path):
    import av

    values = np.linspace(16, 235, 40).astype(int)
    path = write_video(tmp_path / "raw.h264", values)  # a bare stream: no container, no duration
    with av.open(str(path)) as probe:
        assert probe.duration is None and probe.streams.video[0].duration is None
    frames = load_video_frames(path, 8, 16)
    assert frames.shape == (8, 16, 16, 3)
    means = frames.mean(axis=(1, 2, 3))
    assert np.all(np.diff(means) > 0), means
    assert means[0] < 50 and means[-1] > 200  # spread over the whole stream


def test_video_with_fewer_frames_than_asked_gives_what_it_has(tmp_path):
    path = write_video(tmp_path / "three.mp4", [30, 120, 210])
    frames = load_video_frames(path, 8, 16)
    assert 1 <= len(frames) <= 3
    assert np.all(np.diff(frames.mean(axis=(1, 2, 3))) > 0)


def _halves_frame(i: int) -> np.ndarray:
    return halves(96, 64, left=RED, right=BLUE)


def test_video_webm_and_resize_modes(tmp_path):
    path = write_video(tmp_path / "halves.webm", range(12), codec="libvpx", picture=_halves_frame)
    squash = load_video_frames(path, 4, 32, "squash")
    assert squash.shape == (4, 32, 32, 3)
    assert squash[0, 16, 2].tolist() == pytest.approx(RED, abs=50)
    assert squash[0, 16, 29].tolist() == pytest.approx(BLUE, abs=50)
    pad = load_video_frames(path, 4, 32, "pad")
    assert pad[0, 1, 16].tolist() == list(MEAN_GREY)
    crop = load_video_frames(path, 4, 32, "crop")
    assert crop.shape == (4, 32, 32, 3)


def test_video_display_rotation_is_applied(tmp_path):
    path = write_video(tmp_path / "rot.mp4", range(6), rotation=90, picture=_halves_frame)
    frames = load_video_frames(path, 2, 32, "squash")
    # Turned a quarter counter-clockwise for display: the red left half ends up at the bottom.
    assert frames[0, 29, 16].tolist() == pytest.approx(RED, abs=50)
    assert frames[0, 2, 16].tolist() == pytest.approx(BLUE, abs=50)


def test_audio_only_and_frameless_files_are_not_videos(tmp_path):
    import av

    audio = write_audio(tmp_path / "only_audio.m4a", tone(440, 0.5, 16000), 16000, codec="aac")
    with pytest.raises(MediaError, match="no video stream"):
        load_video_frames(audio, 8, 32)
    empty = tmp_path / "frameless.mp4"
    with av.open(str(empty), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    decode = MediaDecoder(DecodeSpec(image_size=32))
    for path in (audio, empty):
        item = decode(3, str(path), "video")
        assert item.data is None and item.error.startswith("cannot decode video"), item.error


def test_video_item_has_a_middle_frame_thumbnail(tmp_path):
    values = np.linspace(16, 235, 40).astype(int)
    path = write_video(tmp_path / "ramp.mp4", values, size=(320, 240))
    item = MediaDecoder(DecodeSpec(image_size=32, video_frames=8))(5, str(path), "video")
    assert item.error is None and item.data.shape == (8, 32, 32, 3)
    thumb = jpeg_image(item.thumbnail)
    assert thumb.size == (256, 192)  # from the full frame, not the 32 px model frame
    middle = np.asarray(thumb.convert("L")).mean()
    assert item.data[3].mean() - 10 < middle < item.data[5].mean() + 10


# ----------------------------------------------------------------------------------------- audio


def test_short_clip_gives_one_padded_window(tmp_path):
    path = write_audio(tmp_path / "blip.wav", tone(440, 0.05, 16000), 16000)
    windows = load_audio_windows(path, 16000, 1.0, 8)
    assert windows.shape == (1, 16000) and windows.dtype == np.float32
    assert np.abs(windows[0, :700]).max() > 0.3
    assert np.all(windows[0, 900:] == 0)


def test_medium_clip_is_cut_in_consecutive_windows(tmp_path):
    path = write_audio(tmp_path / "mid.flac", tone(300, 2.5, 8000, 0.3), 8000, codec="flac")
    windows = load_audio_windows(path, 8000, 1.0, 8)
    assert windows.shape == (3, 8000)
    assert np.abs(windows[:2]).min(axis=1).max() < 0.3  # a real sine, not padding
    assert np.abs(windows[2, :3900]).max() > 0.2 and np.all(windows[2, 4100:] == 0)


def test_long_clip_windows_are_seeked_to_uniform_offsets(tmp_path):
    # A tone whose pitch steps up every 5 s: each window's pitch says where it was cut.
    rate, seconds = 8000, 62
    t = np.arange(rate * seconds) / rate
    freq = 200.0 + 50.0 * np.floor(t / 5.0)
    samples = 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / rate)
    path = write_audio(tmp_path / "steps.flac", samples, rate, codec="flac")
    windows = load_audio_windows(path, rate, 2.0, 4)  # offsets 0, 20, 40, 60 s
    assert windows.shape == (4, 2 * rate)
    assert [peak_hz(w, rate) for w in windows] == pytest.approx([200, 400, 600, 800], abs=2)


def test_resampling_keeps_the_pitch(tmp_path):
    path = write_audio(tmp_path / "tone.wav", tone(1000, 2.0, 44100), 44100, codec="pcm_f32le")
    windows = load_audio_windows(path, 16000, 1.0, 8)
    assert windows.shape == (2, 16000)
    assert peak_hz(windows[0], 16000) == pytest.approx(1000, abs=2)
    assert np.abs(windows[0]).max() == pytest.approx(0.5, abs=0.05)


def test_stereo_is_mixed_to_mono(tmp_path):
    import av

    path = tmp_path / "stereo.wav"
    left, right = tone(500, 1.0, 16000), tone(2000, 1.0, 16000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="stereo")
        data = (np.stack([left, right]) * 32767).astype(np.int16).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    windows = load_audio_windows(path, 16000, 1.0, 2)
    spectrum = np.abs(np.fft.rfft(windows[0]))
    assert spectrum[500] > 0.2 * spectrum.max() and spectrum[2000] > 0.2 * spectrum.max()


def test_two_hour_silence_reads_only_its_windows(tmp_path, monkeypatch):
    from indexing import decode_audio

    path = write_silence(tmp_path / "two_hours.flac", 2 * 3600)
    assert path.stat().st_size < 5_000_000
    decoded = []  # every decoded frame passes through _take once
    real_take = decode_audio._take
    monkeypatch.setattr(
        decode_audio, "_take", lambda frames, *a: (decoded.append(1), real_take(frames, *a))[1]
    )
    tracemalloc.start()
    try:
        windows = load_audio_windows(path, 16000, 5.0, 6)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert windows.shape == (6, 80000)
    assert not windows.any()
    assert peak < 100e6  # the whole file at 16 kHz float32 would be 460 MB
    # 30 s of windows is ~160 FLAC blocks of the ~37,500 in the file: decoding stayed in them.
    assert len(decoded) < 1000


def test_audio_item_decodes_from_a_video_file(tmp_path, media):
    path = media.video(tmp_path / "with_audio.mp4", frames=20, audio=True)
    item = MediaDecoder(DecodeSpec(audio_rate=16000, audio_window_s=1.0))(9, str(path), "audio")
    assert item.error is None and item.data.shape[1] == 16000
    assert jpeg_image(item.thumbnail).size == (256, 256)


def test_no_audio_stream_is_an_error(tmp_path):
    path = write_video(tmp_path / "silent_film.mp4", range(5))
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio_windows(path, 16000, 1.0, 2)


# ----------------------------------------------------------------------------------- spectrogram


def test_spectrogram_of_a_rising_chirp_rises():
    rate, seconds = 16000, 4.0
    t = np.arange(int(rate * seconds)) / rate
    f0, f1 = 200.0, 6000.0
    chirp = 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))
    img = jpeg_image(spectrogram_jpeg(chirp.astype(np.float32), rate, 256))
    assert img.size == (256, 256) and img.mode == "RGB"
    lum = np.asarray(img.convert("L"), np.float32)
    cols = np.arange(8, 248, 8)
    rows = lum[:, cols].argmax(axis=0)  # the brightest row per time column
    assert np.corrcoef(cols, rows)[0, 1] < -0.9  # higher frequency = nearer the top, over time
    assert rows[0] > 192 and rows[-1] < 64


def test_spectrogram_of_silence_is_dark_and_of_a_tone_is_not():
    dark = np.asarray(jpeg_image(spectrogram_jpeg(np.zeros(16000, np.float32), 16000)).convert("L"))
    bright = np.asarray(jpeg_image(spectrogram_jpeg(tone(1000, 1.0, 16000), 16000)).convert("L"))
    assert dark.mean() < 60
    assert bright.max() > 200
