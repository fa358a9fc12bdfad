"""Tests for indexing.media: sniffing, probing good and hostile files, hashing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from indexing.media import (
    MEDIA_EXTENSIONS,
    MediaInfo,
    hash_file,
    is_media_candidate,
    probe_file,
    sniff,
)
from tests.helpers.media import encoded_tone

REPO_ROOT = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX files and permissions")


# --- builders for small real media ------------------------------------------------------------


def _noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def _image(path: Path, size=(64, 48), fmt=None, seed=0, **save) -> Path:
    Image.fromarray(_noise(*size, seed=seed)).save(path, format=fmt, **save)
    return path


def _wav(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(samples, channels).tobytes())
    return path




def _video(path: Path, codec="libx264", fmt=None, size=(64, 48), fps=10, frames=10) -> Path:
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            rgb = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid-looking 1-bit PNG whose header claims width x height (10 GB decoded in mode "1")."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * 8)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _assert_reason(info: MediaInfo, *parts: str) -> str:
    """The file failed with one short line containing every part (case-insensitive)."""
    assert not info.ok, info
    reason = info.error
    assert isinstance(reason, str) and reason
    assert "\n" not in reason and len(reason) <= 200, reason
    assert "Traceback" not in reason
    for part in parts:
        assert part.lower() in reason.lower(), reason
    return reason


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# --- bad input: one clear line, never an exception ----------------------------------------------


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    info = probe_file(tmp_path / "empty.jpg")
    _assert_reason(info, "empty file (0 bytes)")
    assert info.modality == "image"  # what it claims to be


def test_truncated_jpeg(tmp_path):
    path = _truncate(_image(tmp_path / "t.jpg", size=(200, 150), fmt="JPEG"), 0.5)
    info = probe_file(path)
    reason = _assert_reason(info, "truncated JPEG")
    assert reason.startswith("truncated JPEG: image file is truncated")
    assert (info.modality, info.format) == ("image", "jpeg")
    assert (info.width, info.height) == (200, 150)


def test_truncated_png(tmp_path):
    path = _truncate(_image(tmp_path / "t.png", size=(200, 150), fmt="PNG"), 0.5)
    info = probe_file(path)
    _assert_reason(info, "truncated PNG")
    assert (info.modality, info.format) == ("image", "png")


def test_truncated_webp_is_caught_from_its_riff_header(tmp_path):
    path = _truncate(_image(tmp_path / "t.webp", size=(200, 150), fmt="WEBP"), 0.5)
    _assert_reason(probe_file(path), "truncated WebP")


def test_corrupt_png_checksum_names_the_damage(tmp_path):
    path = _image(tmp_path / "c.png", fmt="PNG")
    data = bytearray(path.read_bytes())
    data[16] ^= 0xFF  # inside IHDR: its CRC no longer matches
    path.write_bytes(bytes(data))
    info = probe_file(path)
    _assert_reason(info, "damaged PNG image")
    assert info.modality == "image"


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my notes, not a picture\n" * 10)
    info = probe_file(path)
    _assert_reason(info, "not an image, audio or video file (content looks like text)")
    assert info.format is None


def test_git_lfs_pointer_says_what_to_do(tmp_path):
    path = tmp_path / "cat.png"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab12\nsize 1234\n")
    _assert_reason(probe_file(path), "Git LFS pointer", "git lfs pull")


def test_unknown_content_with_media_extension(tmp_path):
    path = tmp_path / "mystery.png"
    path.write_bytes(bytes([0, 1, 2, 3, 250, 251, 252, 253]) * 64)
    reason = _assert_reason(probe_file(path), "unrecognised content for .png file")
    assert "starts with 00 01 02 03 fa fb fc fd" in reason


def test_unknown_content_is_never_handed_to_ffmpeg(tmp_path, monkeypatch):
    # FFmpeg would happily "open" many things as some raw format; we must not even ask it.
    import av

    def refuse(*args, **kwargs):
        raise AssertionError("av.open called for unknown content")

    monkeypatch.setattr(av, "open", refuse)
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(1).integers(1, 255, 4096, np.uint8).tobytes())
    _assert_reason(probe_file(path), "unrecognised content for .mp4 file")


@posix_only
def test_decompression_bomb_is_refused_without_allocating(tmp_path):
    # Run in a fresh process whose address space is capped: decoding the 10-gigapixel image would
    # need ~10 GB and fail with a MemoryError (a different reason), so the assertion on the reason
    # and the peak RSS together prove nothing was allocated.
    path = _bomb_png(tmp_path / "bomb.png")
    script = (
        "import json, resource, sys\n"
        "try:\n"
        "    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "except (ValueError, OSError):\n"
        "    pass  # macOS: no address-space limit; the peak RSS check still holds\n"
        "from indexing.media import probe_file\n"
        "info = probe_file(sys.argv[1])\n"
        "try:  # VmHWM is this process's own peak; ru_maxrss on Linux keeps the forking parent's\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "    peak_mb = int(hwm.split()[1]) / 1024\n"
        "except OSError:  # macOS: ru_maxrss in bytes\n"
        "    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)\n"
        "print(json.dumps({'error': info.error, 'modality': info.modality, 'peak_mb': peak_mb}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["error"] == (
        "image is 100000×100000 = 10000 MP, over the 179 MP limit (decompression bomb guard)"
    )
    assert result["modality"] == "image"
    assert result["peak_mb"] < 300


def test_gif_bomb_from_its_screen_size(tmp_path):
    # A 1x1 GIF whose logical screen claims 65535 x 65535 (4.3 gigapixels).
    path = tmp_path / "bomb.gif"
    Image.new("P", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[6:10] = struct.pack("<HH", 65535, 65535)
    path.write_bytes(bytes(data))
    info = probe_file(path)
    _assert_reason(info, "image is 65535×65535 = 4295 MP", "decompression bomb guard")
    assert (info.modality, info.format) == ("image", "gif")


def test_max_pixels_is_a_parameter(tmp_path):
    path = _image(tmp_path / "small.png", size=(64, 48), fmt="PNG")
    info = probe_file(path, max_pixels=1000)
    _assert_reason(info, "image is 64×48 = 3,072 pixels, over the 1,000 pixels limit")
    assert probe_file(path).ok


def test_webp_bomb_is_refused_from_its_header(tmp_path):
    # A VP8X header claiming a 16384 x 16384 canvas: refused before libwebp sees it.
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (16383).to_bytes(3, "little") * 2
    path = tmp_path / "big.webp"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x)
    _assert_reason(probe_file(path), "16384×16384", "decompression bomb")


def test_pillow_global_settings_are_restored(tmp_path):
    truncated = _truncate(_image(tmp_path / "t.jpg", size=(200, 150), fmt="JPEG"), 0.5)
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = True  # someone relaxed it for display elsewhere
        Image.MAX_IMAGE_PIXELS = 123_456_789
        _assert_reason(probe_file(truncated), "truncated JPEG")  # still strict for the probe
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
        assert Image.MAX_IMAGE_PIXELS == 123_456_789
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def test_audio_shorter_than_50_ms(tmp_path):
    info = probe_file(_wav(tmp_path / "blip.wav", seconds=0.02))
    _assert_reason(info, "audio is 20 ms long; clips under 50 ms are too short to use")
    assert info.modality == "audio"
    assert probe_file(tmp_path / "blip.wav", min_audio_seconds=0.01).ok


def test_video_file_with_only_audio(tmp_path):
    path = encoded_tone(tmp_path / "novideo.mp4", "aac", fmt="mp4")
    info = probe_file(path)
    _assert_reason(info, "video file has no video stream", "aac audio", ".m4a")
    assert info.modality == "video"
    # The same bytes named as audio are a fine audio file.
    renamed = shutil.copy(path, tmp_path / "song.m4a")
    good = probe_file(renamed)
    assert good.ok, good.error
    assert (good.modality, good.format, good.codec) == ("audio", "m4a", "aac")


def test_wav_named_mp4_is_audio(tmp_path):
    info = probe_file(_wav(tmp_path / "sound.mp4", seconds=0.3))
    assert info.ok, info.error
    assert (info.modality, info.format) == ("audio", "wav")


def test_truncated_mp4_without_index(tmp_path):
    path = _truncate(_video(tmp_path / "cut.mp4"), 0.6)  # PyAV writes the moov atom last
    info = probe_file(path)
    _assert_reason(info, "truncated MP4", "'moov' box needs")
    assert info.modality == "video"


def test_mp4_cut_before_its_index(tmp_path):
    path = _video(tmp_path / "cut.mp4", frames=30)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"moov") - 4])  # everything but the moov box
    info = probe_file(path)
    _assert_reason(info, "truncated MP4", "moov atom not found")


def test_mp4_with_index_first_cut_in_its_media_data(tmp_path):
    path = tmp_path / "fast.mp4"
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            rgb = _noise(64, 48, seed=i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert probe_file(path).ok
    _truncate(path, 0.7)
    _assert_reason(probe_file(path), "truncated MP4", "'mdat' box needs")


def test_truncated_mkv(tmp_path):
    path = _truncate(_video(tmp_path / "cut.mkv", fmt="matroska", frames=30), 0.5)
    info = probe_file(path)
    _assert_reason(info, "truncated Matroska")
    assert (info.modality, info.format) == ("video", "mkv")


def test_damaged_video_is_quiet(tmp_path, capfd):
    path = _truncate(_video(tmp_path / "cut.mp4"), 0.6)
    _assert_reason(probe_file(path), "truncated")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@posix_only
def test_directory_fifo_and_missing_file(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    _assert_reason(probe_file(folder), "is a directory")
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    _assert_reason(probe_file(fifo), "not a regular file (a FIFO)")  # returns, never blocks
    _assert_reason(probe_file(tmp_path / "gone.png"), "file vanished during the scan")


@posix_only
def test_symlink_loop(tmp_path):
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    _assert_reason(probe_file(tmp_path / "a.jpg"), "symlink loop")


_PERMISSION_SCRIPT = """
import json, os, sys
from indexing.media import probe_file
control, locked = sys.argv[1], sys.argv[2]
probe_file(control)  # warm-up: import everything while the interpreter's own files are readable
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
print(json.dumps({"control": probe_file(control).error, "locked": probe_file(locked).error,
                  "uid": os.geteuid()}))
"""


@posix_only
def test_permission_denied(tmp_path):
    # As root every file is readable, so drop to "nobody" in a child process; its files live in a
    # directory that nobody can traverse, with a readable control file to prove that.
    base = Path(tempfile.mkdtemp(prefix="curator-media-perm-")) if os.geteuid() == 0 else tmp_path
    try:
        os.chmod(base, 0o755)
        control = _image(base / "ok.png", fmt="PNG")
        os.chmod(control, 0o644)
        locked = _image(base / "locked.png", fmt="PNG")
        os.chmod(locked, 0o000)
        done = subprocess.run(
            [sys.executable, "-c", _PERMISSION_SCRIPT, str(control), str(locked)],
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["uid"] != 0
        assert result["control"] is None  # the child can read a normal file here
        assert result["locked"] == (
            "permission denied: cannot read this file (check its permissions)"
        )
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)


@posix_only
def test_non_utf8_file_name(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.png"
    _image(Path(os.fsdecode(raw)), fmt="PNG")
    for path in (raw, os.fsdecode(raw)):
        info = probe_file(path)
        assert info.ok, info.error
        assert info.format == "png"


# --- good images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, pil_format, fmt, mode",
    [
        ("a.jpg", "JPEG", "jpeg", "RGB"),
        ("a.png", "PNG", "png", "RGB"),
        ("a.webp", "WEBP", "webp", "RGB"),
        ("a.gif", "GIF", "gif", "P"),
        ("a.bmp", "BMP", "bmp", "RGB"),
        ("a.tif", "TIFF", "tiff", "RGB"),
    ],
)
def test_valid_images(tmp_path, name, pil_format, fmt, mode):
    info = probe_file(_image(tmp_path / name, size=(64, 48), fmt=pil_format))
    assert info.ok, info.error
    assert (info.modality, info.format, info.codec, info.mode) == ("image", fmt, fmt, mode)
    assert (info.width, info.height, info.frames) == (64, 48, 1)
    assert info.duration is None and info.orientation is None


def test_large_jpeg_is_validated_through_draft(tmp_path):
    path = _image(tmp_path / "big.jpg", size=(2400, 1800), fmt="JPEG", quality=50)
    info = probe_file(path)
    assert info.ok, info.error
    assert (info.width, info.height) == (2400, 1800)  # the true size, not the draft size


def test_16_bit_png(tmp_path):
    ramp = (np.arange(40 * 30, dtype=np.uint16) * 50).reshape(30, 40)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    info = probe_file(path)
    assert info.ok, info.error
    assert info.mode.startswith("I;16") or info.mode == "I"
    assert (info.width, info.height) == (40, 30)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (40, 30), (0, 128, 255, 10)).save(path, "JPEG")
    info = probe_file(path)
    assert info.ok, info.error
    assert (info.format, info.mode, info.width, info.height) == ("jpeg", "CMYK", 40, 30)


def test_palette_png_with_transparency(tmp_path):
    im = Image.new("P", (32, 32), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)
    info = probe_file(path)
    assert info.ok, info.error
    assert (info.mode, info.width, info.height) == ("P", 32, 32)


def test_animated_gif(tmp_path):
    frames = [Image.fromarray(_noise(32, 24, seed=i)).convert("P") for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    info = probe_file(path)
    assert info.ok, info.error
    assert info.frames == 3
    assert info.duration == pytest.approx(0.6)
    assert (info.width, info.height) == (32, 24)


def test_animated_webp_and_png(tmp_path):
    frames = [Image.fromarray(_noise(32, 24, seed=i)) for i in range(4)]
    for name in ("anim.webp", "anim.png"):
        path = tmp_path / name
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=250, loop=0)
        info = probe_file(path)
        assert info.ok, info.error
        assert info.frames == 4, name
        assert info.duration == pytest.approx(1.0), name


def test_exif_orientation_6_swaps_width_and_height(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(_noise(64, 48)).save(path, exif=exif)
    info = probe_file(path)
    assert info.ok, info.error
    assert info.orientation == 6
    assert (info.width, info.height) == (48, 64)


def test_png_named_jpg_is_a_png(tmp_path):
    info = probe_file(_image(tmp_path / "really.jpg", fmt="PNG"))
    assert info.ok, info.error
    assert (info.modality, info.format) == ("image", "png")


def test_wav_named_jpg_is_audio(tmp_path):
    info = probe_file(_wav(tmp_path / "sound.jpg", seconds=0.3))
    assert info.ok, info.error
    assert info.modality == "audio"


# --- good audio and video ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, codec, container, rate, fmt, codec_name",
    [
        ("a.flac", "flac", None, 16000, "flac", "flac"),
        ("a.mp3", "libmp3lame", None, 44100, "mp3", "mp3"),
        ("a.opus", "libopus", "ogg", 48000, "ogg", "opus"),
        ("a.ogg", "vorbis", "ogg", 22050, "ogg", "vorbis"),
        ("a.m4a", "aac", "mp4", 16000, "m4a", "aac"),
    ],
)
def test_valid_audio(tmp_path, name, codec, container, rate, fmt, codec_name):
    info = probe_file(
        encoded_tone(
            tmp_path / name,
            codec,
            fmt=container,
            rate=rate,
            seconds=1.0,
            layout="stereo" if codec == "vorbis" else "mono",
        )
    )
    assert info.ok, info.error
    assert (info.modality, info.format, info.codec) == ("audio", fmt, codec_name)
    assert info.sample_rate == rate
    assert info.channels == (2 if codec == "vorbis" else 1)
    assert info.duration == pytest.approx(1.0, rel=0.1)
    assert info.width is None and info.has_audio is None


def test_valid_wav(tmp_path):
    info = probe_file(_wav(tmp_path / "tone.wav", seconds=0.5, rate=22050, channels=2))
    assert info.ok, info.error
    assert (info.modality, info.format, info.codec) == ("audio", "wav", "pcm_s16le")
    assert (info.sample_rate, info.channels) == (22050, 2)
    assert info.duration == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize(
    "name, codec, container, fmt, codec_name",
    [
        ("v.mp4", "libx264", None, "mp4", "h264"),
        ("v.mkv", "libx264", "matroska", "mkv", "h264"),
        ("v.webm", "libvpx", "webm", "webm", "vp8"),
        ("v9.webm", "libvpx-vp9", "webm", "webm", "vp9"),
        ("v.mov", "libx264", "mov", "mov", "h264"),
        ("v.avi", "mpeg4", "avi", "avi", "mpeg4"),
    ],
)
def test_valid_video(tmp_path, name, codec, container, fmt, codec_name):
    path = _video(tmp_path / name, codec=codec, fmt=container, size=(64, 48), fps=10, frames=15)
    info = probe_file(path)
    assert info.ok, info.error
    assert (info.modality, info.format, info.codec) == ("video", fmt, codec_name)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10, rel=0.1)
    assert info.duration == pytest.approx(1.5, rel=0.1)
    assert info.has_audio is False
    assert info.frames in (None, 15)


def test_video_with_audio_track(tmp_path, media):
    info = probe_file(media.video(tmp_path / "talk.mp4", frames=10, fps=10, audio=True))
    assert info.ok, info.error
    assert (info.modality, info.codec, info.has_audio) == ("video", "h264", True)
    assert info.frames == 10


# --- sniff, candidates, hashing ----------------------------------------------------------------


def _head_of(path: Path) -> bytes:
    return path.read_bytes()[:4096]


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\xff\xd8\xff\xe0\0\x10JFIF\0" + b"\0" * 60, ("image", "jpeg")),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 60, ("image", "png")),
        (b"GIF89a" + b"\0" * 60, ("image", "gif")),
        (b"GIF87a" + b"\0" * 60, ("image", "gif")),
        (
            b"BM" + b"\x46\0\0\0" + b"\0\0\0\0" + b"\x36\0\0\0" + b"\x28\0\0\0" + b"\0" * 60,
            ("image", "bmp"),
        ),
        (b"II*\0\x08\0\0\0" + b"\0" * 60, ("image", "tiff")),
        (b"MM\0*\0\0\0\x08" + b"\0" * 60, ("image", "tiff")),
        (b"RIFF\x24\0\0\0WEBPVP8 " + b"\0" * 60, ("image", "webp")),
        (b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 60, ("audio", "wav")),
        (b"RIFF\x24\0\0\0AVI LIST" + b"\0" * 60, ("video", "avi")),
        (b"fLaC\0\0\0\x22" + b"\0" * 60, ("audio", "flac")),
        (b"OggS\0\x02" + b"\0" * 22 + b"\x01vorbis" + b"\0" * 40, ("audio", "ogg")),
        (b"OggS\0\x02" + b"\0" * 22 + b"\x80theora" + b"\0" * 40, ("video", "ogg")),
        (b"ID3\x04\0\0\0\0\0\x10" + b"\0" * 60, ("audio", "mp3")),
        (b"\xff\xfb\x90\x64" + b"\0" * 60, ("audio", "mp3")),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\0" * 60, ("audio", "aac")),
        (b"\0\0\0\x20ftypM4A \0\0\0\0M4A mp42isom" + b"\0" * 40, ("audio", "m4a")),
        (b"\0\0\0\x14ftypqt  \0\0\0\0qt  " + b"\0" * 40, ("video", "mov")),
        (b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41" + b"\0" * 40, ("video", "mp4")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\0" * 60, ("video", "webm")),
        (
            b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska" + b"\0" * 60,
            ("video", "mkv"),
        ),
        ((b"\x47" + b"\0" * 187) * 3, ("video", "ts")),
        (b"hello, this is plain text and nothing else" * 3, (None, None)),
        (b"BM is also how some text starts, but not a bitmap header....." * 2, (None, None)),
        (b"\0" * 64, (None, None)),
        (b"", (None, None)),
    ],
)
def test_sniff_magic_numbers(head, expected):
    assert sniff(head) == expected


def test_sniff_real_files(tmp_path):
    assert sniff(_head_of(_image(tmp_path / "a.webp", fmt="WEBP"))) == ("image", "webp")
    assert sniff(_head_of(_wav(tmp_path / "a.wav", 0.1))) == ("audio", "wav")
    mp3 = encoded_tone(tmp_path / "a.mp3", "libmp3lame", rate=44100, seconds=0.3)
    assert sniff(_head_of(mp3)) == ("audio", "mp3")
    webm = _video(tmp_path / "a.webm", codec="libvpx", fmt="webm", frames=2)
    assert sniff(_head_of(webm)) == ("video", "webm")


def test_media_extensions():
    assert {"jpg", "png", "tiff", "wav", "opus", "m4a", "mp4", "mkv", "webm", "avi", "mka"} <= (
        MEDIA_EXTENSIONS
    )
    assert all(ext == ext.lower() and not ext.startswith(".") for ext in MEDIA_EXTENSIONS)


def test_is_media_candidate(tmp_path):
    png = _head_of(_image(tmp_path / "a.png", fmt="PNG"))
    text = b"id,label\n1,cat\n"
    assert is_media_candidate("photo.JPG", text)  # a media extension always counts
    assert is_media_candidate("clip.mkv", b"")
    assert not is_media_candidate("README.txt", text)
    assert not is_media_candidate("labels.csv", text)
    assert is_media_candidate("IMG_0001", png)  # no extension: content decides
    assert not is_media_candidate("Makefile", text)
    assert is_media_candidate("export.dat", png)
    # One lone frame-sync word in a binary blob is not enough to claim some .bin is MP3.
    assert not is_media_candidate("weights.bin", b"\xff\xfb\x90\x64" + b"\x13" * 60)
    assert is_media_candidate("track", b"\xff\xfb\x90\x64" + b"\x13" * 60)


def test_hash_file_matches_hashlib_for_a_multi_chunk_file(tmp_path):
    data = np.random.default_rng(3).integers(0, 256, 3 * (1 << 20) + 123, np.uint8).tobytes()
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert hash_file(path) == expected
    assert hash_file(path, chunk_size=4096) == expected
    small = tmp_path / "small.bin"
    small.write_bytes(data[:1000])
    assert hash_file(str(small), chunk_size=7) == hashlib.sha256(data[:1000]).hexdigest()


@posix_only
def test_hash_file_raises_oserror_for_missing_or_special_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "missing")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="FIFO"):
        hash_file(tmp_path / "pipe")


def test_mediainfo_ok():
    assert MediaInfo(modality="image", format="png").ok
    assert not MediaInfo(modality="image", format="png", error="bad").ok


def _id3_with_cover(jpeg: bytes) -> bytes:
    """An ID3v2.3 tag holding one APIC (front cover) frame."""
    body = b"\0" + b"image/jpeg\0" + b"\x03" + b"\0" + jpeg
    frame = b"APIC" + struct.pack(">I", len(body)) + b"\0\0" + body
    size = len(frame)
    synchsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\0\0" + synchsafe + frame


def test_mp3_with_cover_art_is_audio(tmp_path):
    cover = _image(tmp_path / "cover.jpg", size=(32, 32), fmt="JPEG").read_bytes()
    plain = encoded_tone(tmp_path / "plain.mp3", "libmp3lame", rate=44100, seconds=1.0)
    path = tmp_path / "song.mp3"
    path.write_bytes(_id3_with_cover(cover) + plain.read_bytes())
    import av

    with av.open(str(path)) as container:  # FFmpeg itself sees the cover as a video stream
        assert len(container.streams.video) == 1
    info = probe_file(path)
    assert info.ok, info.error
    assert (info.modality, info.format, info.codec) == ("audio", "mp3", "mp3")
    assert info.duration == pytest.approx(1.0, rel=0.1)


def test_mp4_with_trailing_junk_is_not_called_truncated(tmp_path):
    path = _video(tmp_path / "v.mp4")
    path.write_bytes(path.read_bytes() + b"\x8f\x01\x02\x03\xff\xfe\xfd\xfc" * 4)
    info = probe_file(path)
    assert info.ok, info.error


def test_images_over_the_decode_budget_get_structural_checks(tmp_path, monkeypatch):
    import indexing.media as media_module

    monkeypatch.setattr(media_module.image, "_FULL_DECODE_BYTES", 1000)  # everything is "too big"
    png = _image(tmp_path / "a.png", size=(200, 150), fmt="PNG")
    bmp = _image(tmp_path / "a.bmp", size=(200, 150), fmt="BMP")
    assert probe_file(png).ok and probe_file(bmp).ok
    _assert_reason(probe_file(_truncate(png, 0.5)), "PNG")  # caught by streaming CRC checks
    _assert_reason(probe_file(_truncate(bmp, 0.5)), "truncated BMP")


def test_damaged_files_never_raise_and_are_always_explained(tmp_path, capfd):
    sources = [
        _image(tmp_path / "s.jpg", size=(120, 90), fmt="JPEG"),
        _image(tmp_path / "s.png", size=(120, 90), fmt="PNG"),
        _image(tmp_path / "s.gif", size=(120, 90), fmt="GIF"),
        _image(tmp_path / "s.tif", size=(120, 90), fmt="TIFF"),
        _wav(tmp_path / "s.wav", 0.3),
        encoded_tone(tmp_path / "s.m4a", "aac", fmt="mp4", seconds=0.5),
        encoded_tone(tmp_path / "s.flac", "flac", seconds=0.5),
        _video(tmp_path / "s.mp4", frames=12),
        _video(tmp_path / "s.mkv", fmt="matroska", frames=12),
    ]
    rng = np.random.default_rng(7)
    for source in sources:
        data = source.read_bytes()
        for k in range(8):
            damaged = bytearray(data)
            if k % 2:
                damaged = damaged[: int(rng.integers(1, len(data)))]
            else:
                for i in rng.integers(0, len(data), 12):
                    damaged[i] = int(rng.integers(0, 256))
            path = tmp_path / f"{source.stem}_{k}{source.suffix}"
            path.write_bytes(bytes(damaged))
            info = probe_file(path)
            assert isinstance(info, MediaInfo)
            if not info.ok:
                reason = _assert_reason(info)
                assert not reason.startswith("unexpected error"), (path.name, reason)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no FFmpeg, libtiff or Pillow chatter on the console
