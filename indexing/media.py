"""Identify and probe one media file (image, audio or video): never raises, never over-allocates."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, BinaryIO, Union

if TYPE_CHECKING:  # pragma: no cover - typing only; PIL and av are imported inside functions
    from PIL import Image as _PILImage

logger = logging.getLogger(__name__)

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})
AUDIO_EXTENSIONS = frozenset({"wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac", "mka"})
VIDEO_EXTENSIONS = frozenset({"mp4", "m4v", "mkv", "webm", "mov", "avi"})
MEDIA_EXTENSIONS: frozenset[str] = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
"""Lower-case extensions (no dot) that claim to be media; the content still decides."""

_EXTENSION_MODALITY = {
    **{ext: "image" for ext in IMAGE_EXTENSIONS},
    **{ext: "audio" for ext in AUDIO_EXTENSIONS},
    **{ext: "video" for ext in VIDEO_EXTENSIONS},
}

# Video extensions whose audio-only content is an error, and the extension that would fit it.
_AUDIO_RENAME_HINT = {"mp4": ".m4a", "m4v": ".m4a", "mov": ".m4a", "mkv": ".mka", "webm": ".mka"}

_HEAD_BYTES = 4096  # enough for every signature below, and for the text/pointer checks
_MAX_REASON_CHARS = 200
# Decoded-pixel budget for a full validating decode; bigger images get a streaming structural check
# instead, so a worker never holds more than this much pixel memory (JPEG always decodes at 1/8).
_FULL_DECODE_BYTES = 256 << 20
# Pillow reads a whole WebP/AVIF into memory before decoding; refuse absurd sizes before that.
_MAX_SLURP_BYTES = 256 << 20
_MAX_GIF_SCAN_BYTES = 64 << 20  # animated GIF durations are summed from an in-memory walk
_MAX_CHUNKS = 200_000  # chunk walks (WebP, APNG) stop here on hostile files
_FIRST_FRAME_PACKETS = 512  # packets read while waiting for the first decoded frame
_DURATION_PACKETS = 50_000  # packets demuxed (not decoded) to measure an unknown duration
_AV_CONTAINER_OPTIONS = {"probesize": "1000000", "analyzeduration": "1000000"}


@dataclass(frozen=True)
class MediaInfo:
    """What one file is, as far as probing could tell; `error` is a one-line reason when unusable.

    `modality` may be set together with `error` when we know what the file claims to be (a truncated
    JPEG is still an "image"). Width/height of images are as displayed, after EXIF orientation.
    """

    modality: str | None
    format: str | None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    codec: str | None = None
    mode: str | None = None
    frames: int | None = None
    orientation: int | None = None
    has_audio: bool | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file is usable media (no error)."""
        return self.error is None


class _ProbeFailure(Exception):
    """A file problem already phrased as the one-line reason that goes into MediaInfo.error."""


# --------------------------------------------------------------------------------------------
# Sniffing: magic numbers only, a registry of small matchers tried in order.


@dataclass(frozen=True)
class _Match:
    modality: str
    format: str
    demuxer: str | None = None  # FFmpeg demuxer to force for audio/video (None: let it probe)
    strong: bool = True  # False for frame-sync style signatures that random bytes can hit
    container: bool = False  # the streams, not the signature, decide the modality


def _u16be(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 2], "big")


def _u32le(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "little")


def _u32be(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "big")


def _sniff_jpeg(h: bytes) -> _Match | None:
    return _Match("image", "jpeg") if h[:3] == b"\xff\xd8\xff" else None


def _sniff_png(h: bytes) -> _Match | None:
    return _Match("image", "png") if h[:8] == b"\x89PNG\r\n\x1a\n" else None


def _sniff_gif(h: bytes) -> _Match | None:
    return _Match("image", "gif") if h[:6] in (b"GIF87a", b"GIF89a") else None


def _sniff_bmp(h: bytes) -> _Match | None:
    # "BM" alone is two letters of text; require zero reserved bytes and a known DIB header size.
    header_sizes = (12, 16, 40, 52, 56, 64, 108, 124)
    if h[:2] == b"BM" and h[6:10] == b"\0\0\0\0" and _u32le(h, 14) in header_sizes:
        return _Match("image", "bmp")
    return None


def _sniff_tiff(h: bytes) -> _Match | None:
    if h[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return _Match("image", "tiff")
    return None


_RIFF_FORMS = {
    b"WEBP": _Match("image", "webp"),
    b"WAVE": _Match("audio", "wav", demuxer="wav"),
    b"AVI ": _Match("video", "avi", demuxer="avi", container=True),
}


def _sniff_riff(h: bytes) -> _Match | None:
    if h[:4] in (b"RIFF", b"RF64"):
        return _RIFF_FORMS.get(h[8:12])
    return None


def _sniff_iff(h: bytes) -> _Match | None:
    if h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return _Match("audio", "aiff", demuxer="aiff")
    return None


def _sniff_flac(h: bytes) -> _Match | None:
    return _Match("audio", "flac", demuxer="flac") if h[:4] == b"fLaC" else None


def _sniff_ogg(h: bytes) -> _Match | None:
    if h[:4] != b"OggS":
        return None
    modality = "video" if b"\x80theora" in h[:256] else "audio"
    return _Match(modality, "ogg", demuxer="ogg", container=True)


def _sniff_id3(h: bytes) -> _Match | None:
    # An ID3 tag can precede MP3, AAC or even FLAC data: let FFmpeg probe past it.
    return _Match("audio", "mp3") if h[:3] == b"ID3" and len(h) >= 10 and h[3] < 0xFF else None


def _sniff_caf(h: bytes) -> _Match | None:
    return _Match("audio", "caf", demuxer="caf") if h[:4] == b"caff" else None


_ISO_BRANDS = {
    b"M4A ": _Match("audio", "m4a", demuxer="mov", container=True),
    b"M4B ": _Match("audio", "m4a", demuxer="mov", container=True),
    b"M4P ": _Match("audio", "m4a", demuxer="mov", container=True),
    b"qt  ": _Match("video", "mov", demuxer="mov", container=True),
    b"avif": _Match("image", "avif"),
    b"avis": _Match("image", "avif"),
    b"heic": _Match("image", "heic"),
    b"heix": _Match("image", "heic"),
    b"mif1": _Match("image", "heic"),
    b"msf1": _Match("image", "heic"),
}
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _sniff_isobmff(h: bytes) -> _Match | None:
    if len(h) < 12:
        return None
    box_size, box_type = _u32be(h, 0), h[4:8]
    if box_type == b"ftyp" and 8 <= box_size <= 4096:
        default = _Match("video", "mp4", demuxer="mov", container=True)
        return _ISO_BRANDS.get(h[8:12], default)
    # Old QuickTime files start straight with an atom; size 1 means "64-bit size follows".
    if box_type in _QUICKTIME_ATOMS and (box_size == 1 or 8 <= box_size < (1 << 24)):
        return _Match("video", "mov", demuxer="mov", container=True)
    return None


def _sniff_matroska(h: bytes) -> _Match | None:
    if h[:4] != b"\x1a\x45\xdf\xa3":
        return None
    fmt = "webm" if b"webm" in h[:128] else "mkv"
    return _Match("video", fmt, demuxer="matroska", container=True)


def _sniff_asf(h: bytes) -> _Match | None:
    if h[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return _Match("video", "asf", demuxer="asf", container=True)
    return None


def _sniff_mpeg_ps(h: bytes) -> _Match | None:
    if h[:4] == b"\x00\x00\x01\xba":
        return _Match("video", "mpeg", demuxer="mpeg", container=True)
    return None


def _sniff_mpegts(h: bytes) -> _Match | None:
    if len(h) >= 377 and h[0] == h[188] == h[376] == 0x47:
        return _Match("video", "ts", demuxer="mpegts", container=True)
    return None


def _adts_frame_length(h: bytes, at: int) -> int | None:
    """Length of the ADTS AAC frame whose header starts at `at`, or None if there is none."""
    if len(h) < at + 7 or h[at] != 0xFF or (h[at + 1] & 0xF6) != 0xF0:
        return None
    if (h[at + 2] >> 2) & 0x0F > 12:  # sampling-frequency index
        return None
    length = ((h[at + 3] & 0x03) << 11) | (h[at + 4] << 3) | (h[at + 5] >> 5)
    return length if length >= 7 else None


_MPEG_BITRATES_KBPS = {  # (mpeg1?, layer) -> bitrate table indexed 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_audio_frame_length(h: bytes, at: int) -> int | None:
    """Length of the MPEG-1/2/2.5 audio frame whose header starts at `at`, or None."""
    if len(h) < at + 4 or h[at] != 0xFF or (h[at + 1] & 0xE0) != 0xE0:
        return None
    version, layer_bits = (h[at + 1] >> 3) & 3, (h[at + 1] >> 1) & 3
    bitrate_index, rate_index = h[at + 2] >> 4, (h[at + 2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _MPEG_BITRATES_KBPS[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_SAMPLE_RATES[version][rate_index]
    padding = (h[at + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 144 if (layer == 2 or mpeg1) else 72
    return per_frame * bitrate // rate + padding


def _sniff_frame_sync(
    frame_length: Callable[[bytes, int], int | None], match: _Match
) -> Callable[[bytes], _Match | None]:
    """A matcher for headerless frame streams; strong only when the next header is seen too."""

    def sniff_frames(h: bytes) -> _Match | None:
        length = frame_length(h, 0)
        if length is None:
            return None
        confirmed = frame_length(h, length) is not None
        return replace(match, strong=confirmed)

    return sniff_frames


_SNIFFERS: tuple[Callable[[bytes], _Match | None], ...] = (
    _sniff_jpeg,
    _sniff_png,
    _sniff_gif,
    _sniff_riff,
    _sniff_tiff,
    _sniff_bmp,
    _sniff_flac,
    _sniff_ogg,
    _sniff_id3,
    _sniff_iff,
    _sniff_caf,
    _sniff_isobmff,
    _sniff_matroska,
    _sniff_asf,
    _sniff_mpeg_ps,
    _sniff_mpegts,
    # Frame-sync signatures last: they are the weakest. ADTS has layer bits 00, MP3 never does.
    _sniff_frame_sync(_adts_frame_length, _Match("audio", "aac", demuxer="aac")),
    _sniff_frame_sync(_mpeg_audio_frame_length, _Match("audio", "mp3", demuxer="mp3")),
)


def _match(head: bytes) -> _Match | None:
    for sniffer in _SNIFFERS:
        found = sniffer(head)
        if found is not None:
            return found
    return None


def sniff(head: bytes) -> tuple[str | None, str | None]:
    """Guess what a file is from its first bytes, by magic numbers only.

    Args:
        head: the first bytes of the file; 64 are enough for most formats, 4096 are better
            (MPEG-TS and confirming a second MP3/AAC frame need more).

    Returns:
        (modality guess, short format name), e.g. ("image", "png") or ("video", "mp4");
        (None, None) when the content is not recognised. For containers (MP4, Matroska, AVI,
        Ogg) the modality is only a guess; the streams decide it in `probe_file`.
    """
    found = _match(bytes(head[:_HEAD_BYTES]))
    return (found.modality, found.format) if found else (None, None)


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lstrip(".").lower()


def is_media_candidate(name: str, head: bytes) -> bool:
    """Whether the scanner should probe this file at all (other files are skipped silently).

    Args:
        name: the file name (or path); only its extension is used.
        head: the first bytes of the file.

    Returns:
        True when the extension is a media extension, or the content is recognised media. For
        files with some other extension (``data.bin``) weak frame-sync signatures do not count,
        since random bytes hit them.
    """
    ext = _extension(os.fsdecode(name))
    if ext in MEDIA_EXTENSIONS:
        return True
    found = _match(bytes(head[:_HEAD_BYTES]))
    return found is not None and (found.strong or ext == "")


# --------------------------------------------------------------------------------------------
# Describing content that is not media, for a useful error line.


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    for cut in range(4):  # the head may end inside a multi-byte UTF-8 character
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        text = head.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\t\n\r\f" for ch in text)
    return printable >= 0.95 * len(text)


_NON_MEDIA_SIGNATURES: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (
        lambda h: h.startswith(b"version https://git-lfs"),
        "a Git LFS pointer, not the media itself; run `git lfs pull` to fetch it",
    ),
    (
        lambda h: (
            h.lstrip()[:14].lower() in (b"<!doctype html",) or h.lstrip()[:5].lower() == b"<html"
        ),
        "an HTML page, perhaps a failed download",
    ),
    (lambda h: h.lstrip()[:5] == b"<?xml" or h.lstrip()[:4] == b"<svg", "XML or SVG text"),
    (lambda h: h[:5] == b"%PDF-", "a PDF document"),
    (lambda h: h[:4] == b"PK\x03\x04", "a ZIP archive"),
    (lambda h: h[:2] == b"\x1f\x8b", "a gzip archive"),
    (lambda h: h[:6] == b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (lambda h: h[:4] == b"Rar!", "a RAR archive"),
    (lambda h: h[:6] == b"\x93NUMPY", "a NumPy array file"),
    (lambda h: h[:16] == b"SQLite format 3\0", "an SQLite database"),
    (lambda h: h[:4] == b"\x7fELF", "a program (ELF executable)"),
    (_looks_like_text, "text"),
)


def _unrecognised_reason(head: bytes, ext: str) -> str:
    for test, description in _NON_MEDIA_SIGNATURES:
        if test(head):
            return f"not an image, audio or video file (content looks like {description})"
    start = head[:8].hex(" ")
    if ext:
        return f"unrecognised content for .{ext} file (starts with {start})"
    return f"unrecognised content (starts with {start})"


# --------------------------------------------------------------------------------------------
# Files and OS errors.


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    if len(line) > _MAX_REASON_CHARS:
        line = line[: _MAX_REASON_CHARS - 1].rstrip() + "…"
    return line or "unknown problem"


_OS_ERROR_REASONS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "file vanished during the scan"),
    (PermissionError, "permission denied: cannot read this file (check its permissions)"),
    (IsADirectoryError, "is a directory, not a file"),
    (NotADirectoryError, "path is no longer valid: a parent folder was replaced during the scan"),
)
_ERRNO_REASONS = {
    errno.EIO: "read error (input/output error): the disk or network share may be failing",
    errno.ELOOP: "symlink loop: this path never resolves to a file",
}


def _os_error_reason(exc: OSError) -> str:
    for kind, reason in _OS_ERROR_REASONS:
        if isinstance(exc, kind):
            return reason
    if exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    return _one_line(exc.strerror or str(exc) or type(exc).__name__)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


@contextlib.contextmanager
def _open_regular(path: PathArg) -> Iterator[tuple[BinaryIO, int]]:
    """Open a regular file for reading without ever blocking (FIFOs) and yield (file, size)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise _ProbeFailure(f"not a regular file ({_file_kind(st.st_mode)})")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size


def hash_file(path: PathArg, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks so memory stays flat.

    Args:
        path: the file.
        chunk_size: bytes per read.

    Returns:
        The hex digest.

    Raises:
        OSError: when the file cannot be read (the scanner reports it); a FIFO or device is
            refused instead of blocking.
    """
    digest = hashlib.sha256()
    buffer = bytearray(max(1, chunk_size))
    view = memoryview(buffer)
    try:
        with _open_regular(path) as (fh, _size):
            while True:
                n = fh.readinto(view)
                if not n:
                    break
                digest.update(view[:n])
    except _ProbeFailure as exc:
        raise OSError(errno.EINVAL, str(exc)) from None
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Images (Pillow).


@dataclass(frozen=True)
class _ImageKind:
    pil_format: str | None  # None: Pillow cannot read it here
    label: str


_IMAGE_KINDS = {
    "jpeg": _ImageKind("JPEG", "JPEG"),
    "png": _ImageKind("PNG", "PNG"),
    "gif": _ImageKind("GIF", "GIF"),
    "bmp": _ImageKind("BMP", "BMP"),
    "tiff": _ImageKind("TIFF", "TIFF"),
    "webp": _ImageKind("WEBP", "WebP"),
    "avif": _ImageKind("AVIF", "AVIF"),
    "heic": _ImageKind(None, "HEIC"),
}


def _size_text(pixels: int) -> str:
    if pixels >= 10_000_000:
        return f"{pixels / 1e6:.0f} MP"
    if pixels >= 100_000:
        return f"{pixels / 1e6:.1f} MP"
    return f"{pixels:,} pixels"


def _bomb_reason(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image is {width}×{height} = {_size_text(width * height)}, over the "
        f"{_size_text(max_pixels)} limit (decompression bomb guard)"
    )


def _webp_header_size(head: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (VP8X, VP8 or VP8L first chunk), without Pillow."""
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return (
            int.from_bytes(head[24:27], "little") + 1,
            int.from_bytes(head[27:30], "little") + 1,
        )
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(head[26:28], "little") & 0x3FFF,
            int.from_bytes(head[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return None


def _check_riff_length(head: bytes, size: int, label: str) -> None:
    declared = _u32le(head, 4) + 8
    if head[:4] == b"RIFF" and declared > 12 and size < declared:
        raise _ProbeFailure(
            f"truncated {label}: file has {size:,} of the {declared:,} bytes its header declares"
        )


class _ToDebugLog(logging.Handler):
    """Re-logs Pillow's own complaints about a damaged file at DEBUG under our logger."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.debug("Pillow: %s", record.getMessage())


@contextlib.contextmanager
def _pillow_limits(max_pixels: int | None) -> Iterator[list[warnings.WarningMessage]]:
    """Pin Pillow's bomb limit and strict truncation for this block; keep its complaints quiet.

    Pillow keeps these as module globals; we set them around our own calls only and restore them,
    so a caller that relaxed them elsewhere (e.g. LOAD_TRUNCATED_IMAGES for display) is untouched.
    Warnings are recorded (the caller reads them), log records go to DEBUG: a damaged file is
    reported once, in MediaInfo.error, not as stray lines on the console.
    """
    from PIL import Image, ImageFile

    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, Image.WARN_POSSIBLE_FORMATS
    pil_logger = logging.getLogger("PIL")
    saved_propagate, handler = pil_logger.propagate, _ToDebugLog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        Image.WARN_POSSIBLE_FORMATS = True  # keeps the plugin's reason when a header is refused
        pil_logger.addHandler(handler)
        pil_logger.propagate = False
        try:
            yield caught
        finally:
            pil_logger.removeHandler(handler)
            pil_logger.propagate = saved_propagate
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved[:2]
            Image.WARN_POSSIBLE_FORMATS = saved[2]


def _decoded_bytes(im: _PILImage.Image) -> int:
    # Pillow stores single-band 8-bit modes in 1 byte, I;16 in 2, everything else in 4 per pixel.
    per_pixel = 1 if im.mode in ("1", "L", "P") else 2 if im.mode.startswith("I;16") else 4
    return im.width * im.height * per_pixel


def _bmp_structure_check(im: _PILImage.Image, head: bytes, size: int) -> None:
    compression = _u32le(head, 30) if len(head) >= 34 and _u32le(head, 14) >= 40 else 0
    bits = int.from_bytes(head[28:30], "little") if len(head) >= 30 else 0
    if compression in (0, 3) and bits:
        needed = _u32le(head, 10) + ((im.width * bits + 31) // 32) * 4 * im.height
        if size < needed:
            raise _ProbeFailure(f"truncated BMP: file has {size:,} of {needed:,} bytes")


def _validate_pixels(im: _PILImage.Image, fmt: str, head: bytes, size: int) -> bool:
    """Decode enough of the image to prove it is not truncated or corrupt.

    Returns:
        True when the pixels were decoded (the image is loaded); False when only a structural
        check was affordable.
    """
    if fmt == "jpeg":
        im.draft("RGB", (256, 256))  # DCT scaling: decodes at up to 1/8 size, cheap and bounded
    if _decoded_bytes(im) <= _FULL_DECODE_BYTES:
        im.load()
        return True
    if fmt == "png":
        im.verify()  # streams every chunk through its CRC up to IEND without decoding pixels
    elif fmt == "bmp":
        _bmp_structure_check(im, head, size)
    else:
        logger.debug("%s image too large for a validating decode; header checks only", fmt)
    return False


def _exif_orientation(im: _PILImage.Image) -> int | None:
    try:
        value = im.getexif().get(0x0112)
    except Exception:  # damaged EXIF does not make the pixels unusable; orientation is unknown
        logger.debug("unreadable EXIF", exc_info=True)
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _gif_seconds(fh: BinaryIO, size: int) -> float | None:
    """Sum of GIF frame delays, walking the block structure in memory (no pixel decode)."""
    if size > _MAX_GIF_SCAN_BYTES:
        return None
    fh.seek(0)
    data = fh.read(size)
    if len(data) < 13:
        return None
    pos, n = 13, len(data)
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    total_cs, delay = 0, 0

    def skip_sub_blocks(at: int) -> int:
        while at < n:
            length = data[at]
            at += 1 + length
            if length == 0:
                break
        return at

    while pos < n:
        block = data[pos]
        if block == 0x21 and pos + 2 <= n:  # extension
            if data[pos + 1] == 0xF9 and pos + 6 <= n and data[pos + 2] == 4:
                delay = data[pos + 4] | (data[pos + 5] << 8)
            pos = skip_sub_blocks(pos + 2)
        elif block == 0x2C and pos + 10 <= n:  # image descriptor
            flags = data[pos + 9]
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
            pos = skip_sub_blocks(pos)
            total_cs, delay = total_cs + delay, 0
        else:  # trailer (0x3B) or garbage
            break
    return total_cs / 100 if total_cs > 0 else None


def _webp_seconds(fh: BinaryIO, size: int) -> float | None:
    """Sum of ANMF frame durations, walking RIFF chunk headers."""
    fh.seek(12)
    total_ms = 0
    for _ in range(_MAX_CHUNKS):
        header = fh.read(8)
        if len(header) < 8:
            break
        length = _u32le(header, 4)
        if header[:4] == b"ANMF":
            payload = fh.read(16)
            if len(payload) < 16:
                break
            total_ms += int.from_bytes(payload[12:15], "little")
            fh.seek(length - 16 + (length & 1), os.SEEK_CUR)
        else:
            fh.seek(length + (length & 1), os.SEEK_CUR)
    return total_ms / 1000 if total_ms > 0 else None


def _apng_seconds(fh: BinaryIO, size: int) -> float | None:
    """Sum of APNG fcTL frame delays, walking PNG chunk headers."""
    fh.seek(8)
    total = 0.0
    for _ in range(_MAX_CHUNKS):
        header = fh.read(8)
        if len(header) < 8 or header[4:8] == b"IEND":
            break
        length = _u32be(header, 0)
        if header[4:8] == b"fcTL" and length >= 26:
            body = fh.read(26)
            if len(body) < 26:
                break
            numerator, denominator = _u16be(body, 20), _u16be(body, 22) or 100
            total += numerator / denominator
            fh.seek(length - 26 + 4, os.SEEK_CUR)
        else:
            fh.seek(length + 4, os.SEEK_CUR)
    return total if total > 0 else None


_ANIMATION_SECONDS: dict[str, Callable[[BinaryIO, int], float | None]] = {
    "gif": _gif_seconds,
    "webp": _webp_seconds,
    "png": _apng_seconds,
}


def _image_reason(exc: BaseException, label: str, caught: list[warnings.WarningMessage]) -> str:
    """One line for a Pillow failure: truncation and damage are told apart from I/O errors."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, OSError) and exc.errno is not None:
        return _os_error_reason(exc)
    if isinstance(exc, MemoryError):
        return f"{label} image is too large to decode in memory"
    message = str(exc)
    if isinstance(exc, UnidentifiedImageError):
        # Pillow hides the plugin's own complaint in a warning ("PNG opening failed. broken ...").
        details = [
            str(w.message).split("opening failed.", 1)[-1]
            for w in caught
            if "opening failed." in str(w.message)
        ]
        message = details[-1] if details else "Pillow cannot read it"
    message = _one_line(message).strip(" .") or type(exc).__name__
    if "truncat" in message.lower():
        return _one_line(f"truncated {label}: {message}")
    return _one_line(f"damaged {label} image: {message}")


def _probe_image(fh: BinaryIO, size: int, head: bytes, found: _Match, opts: _Options) -> MediaInfo:
    from PIL import Image

    kind = _IMAGE_KINDS[found.format]
    fail = MediaInfo(modality="image", format=found.format)
    if kind.pil_format is None or kind.pil_format not in _pil_openers():
        return replace(
            fail, error=f"{kind.label} images are not supported here (convert them to JPEG or PNG)"
        )
    if found.format == "webp":
        dims = _webp_header_size(head)
        if dims and dims[0] * dims[1] > opts.max_pixels:
            return replace(fail, error=_bomb_reason(*dims, opts.max_pixels))
        _check_riff_length(head, size, "WebP")
    if found.format in ("webp", "avif") and size > _MAX_SLURP_BYTES:  # Pillow reads these whole
        return replace(
            fail, error=f"{kind.label} file is {size / 2**20:.0f} MiB, too large to probe"
        )

    dims = None
    caught: list[warnings.WarningMessage] = []
    fh.seek(0)
    try:
        # Header parse only, with Pillow's own limit off so that *we* report the bomb with its size.
        with _pillow_limits(None) as caught:
            im = Image.open(fh, formats=[kind.pil_format])
        with im, _pillow_limits(opts.max_pixels) as caught:
            width, height = dims = im.size
            fail = replace(fail, width=width, height=height)
            if width * height > opts.max_pixels:
                return replace(fail, error=_bomb_reason(width, height, opts.max_pixels))
            mode = im.mode
            fail = replace(fail, mode=mode)
            frames = int(getattr(im, "n_frames", 1) or 1)
            # PNG keeps EXIF anywhere, so reading it may decode the image: only once it is loaded.
            early = found.format != "png"
            orientation = _exif_orientation(im) if early else None
            if _validate_pixels(im, found.format, head, size) and not early:
                orientation = _exif_orientation(im)
        duration = (
            _ANIMATION_SECONDS[found.format](fh, size)
            if (frames > 1 and found.format in _ANIMATION_SECONDS)
            else None
        )
    except _ProbeFailure as exc:
        return replace(fail, error=str(exc))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        w, h = dims or (0, 0)
        return replace(
            fail,
            error=_bomb_reason(w, h, opts.max_pixels)
            if dims
            else f"image is over the {_size_text(opts.max_pixels)} limit (decompression "
            "bomb guard)",
        )
    except Exception as exc:  # Pillow signals damage with many exception types
        logger.debug("image probe failed", exc_info=True)
        return replace(fail, error=_image_reason(exc, kind.label, caught))
    for warning in caught:
        logger.debug("Pillow warning: %s", warning.message)
    if orientation in (5, 6, 7, 8):  # rotated by 90°: displayed width is the stored height
        width, height = height, width
    return MediaInfo(
        modality="image",
        format=found.format,
        width=width,
        height=height,
        duration=duration,
        codec=found.format,
        mode=mode,
        frames=frames,
        orientation=orientation,
    )


def _pil_openers() -> frozenset[str]:
    from PIL import Image

    Image.init()
    return frozenset(Image.OPEN)


# --------------------------------------------------------------------------------------------
# Audio and video (PyAV).


_STILL_IMAGE_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff"})


@contextlib.contextmanager
def _quiet_av() -> Iterator[list]:
    """Route FFmpeg's log lines into a private list (for error details) instead of stderr."""
    import av.logging

    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # errors carry FFmpeg's own explanation this way
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


_TRUNCATION_HINTS = ("prematurely", "truncat", "end of file", "moov atom not found")


def _av_reason(doing: str, exc: BaseException, logs: list, label: str) -> str:
    """One line for an FFmpeg failure, preferring the log line that explains a truncation."""
    lines = [
        _one_line(str(entry[2])) for entry in logs if len(entry) >= 3 and str(entry[2]).strip()
    ]
    log = getattr(exc, "log", None)
    if log and len(log) >= 3 and str(log[2]).strip():
        lines.append(_one_line(str(log[2])))
    truncated = [line for line in lines if any(h in line.lower() for h in _TRUNCATION_HINTS)]
    if isinstance(exc, EOFError) and not truncated:  # av.error.EOFError: data ran out mid-way
        truncated = ["the file ends before its data does"]
    if truncated:
        detail = truncated[0].rstrip(".")
        if "moov atom not found" in detail:
            detail += " (the file was cut off or never finished writing)"
        return _one_line(f"truncated {label}: {detail}")
    detail = lines[-1] if lines else (getattr(exc, "strerror", None) or str(exc))
    return _one_line(f"{doing}: {detail or type(exc).__name__}".rstrip("."))


def _is_cover_art(stream, found: _Match) -> bool:
    import av.stream

    disposition = int(getattr(stream, "disposition", 0) or 0)
    flags = int(av.stream.Disposition.attached_pic) | int(av.stream.Disposition.still_image)
    if disposition & flags:
        return True
    # Audio containers carry album art as a one-picture "video" stream without the flag sometimes.
    return found.modality == "audio" and _codec_name(stream) in _STILL_IMAGE_CODECS


def _codec_name(stream) -> str | None:
    try:
        codec = stream.codec_context.codec
        return codec.canonical_name or codec.name
    except (AttributeError, ValueError, LookupError):  # no decoder for it in this FFmpeg build
        return None


def _seconds(value: int | None, time_base) -> float | None:
    if value is None or value <= 0 or not time_base:
        return None
    return float(value * time_base)


def _stream_duration(container, stream) -> float | None:
    seconds = _seconds(stream.duration, stream.time_base)
    if seconds is None and container.duration and container.duration > 0:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    return seconds


@dataclass(frozen=True)
class _StreamScan:
    width: int | None
    height: int | None
    duration: float | None


def _scan_stream(container, stream, need_duration: bool) -> _StreamScan:
    """Decode the first frame (proof the stream decodes); demux on to time it when unknown."""
    # One frame: decoder threads would only cost start-up, and the scanner runs one worker per core.
    stream.codec_context.thread_count = 1
    first = None
    start = end = None
    capped = False
    for count, packet in enumerate(container.demux(stream), start=1):
        if first is None:
            decoded = packet.decode()
            if decoded:
                first = decoded[0]
            elif count >= _FIRST_FRAME_PACKETS:
                break
        if need_duration and packet.pts is not None:
            tail = packet.pts + (packet.duration or 0)
            start = packet.pts if start is None else min(start, packet.pts)
            end = tail if end is None else max(end, tail)
        if first is not None and (not need_duration or count >= _DURATION_PACKETS):
            capped = need_duration  # a very long stream of unknown length stays unknown
            break
    if first is None:
        raise _ProbeFailure(
            f"no {stream.type} frame could be decoded ({_codec_name(stream) or 'unknown codec'}); "
            "the stream is empty or damaged"
        )
    duration = None
    if need_duration and not capped and start is not None and end is not None:
        duration = _seconds(end - start, stream.time_base)
    return _StreamScan(getattr(first, "width", None), getattr(first, "height", None), duration)


def _format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _describe_container(container, found: _Match, opts: _Options) -> MediaInfo:
    videos = [s for s in container.streams.video if not _is_cover_art(s, found)]
    audios = list(container.streams.audio)
    if videos:
        return _describe_video(container, videos, bool(audios), found)
    # Only a video-style container (MP4, Matroska, AVI, ...) named as video is suspicious; a WAV
    # named .mp4 is plainly audio, and an M4A-branded MP4 declares itself audio.
    ext = opts.ext
    if found.modality == "video" and _EXTENSION_MODALITY.get(ext) == "video":
        what = (
            f"it holds only {_codec_name(audios[0]) or 'unknown'} audio"
            if audios
            else "and no audio stream either"
        )
        hint = _AUDIO_RENAME_HINT.get(ext)
        if audios and hint:
            what += f"; rename it to {hint} if it is meant as audio"
        return MediaInfo(
            modality="video", format=found.format, error=f"video file has no video stream ({what})"
        )
    if not audios:
        return MediaInfo(
            modality=found.modality,
            format=found.format,
            error=f"no audio or video stream in this {found.format} file",
        )
    return _describe_audio(container, audios[0], found, opts)


def _describe_video(container, videos, has_audio: bool, found: _Match) -> MediaInfo:
    import av.stream

    default = int(av.stream.Disposition.default)
    stream = next((s for s in videos if int(s.disposition) & default), videos[0])
    codec = _codec_name(stream)
    info = MediaInfo(modality="video", format=found.format, codec=codec, has_audio=has_audio)
    if codec is None or stream.codec_context is None:
        return replace(info, error="unknown video codec, or no decoder for it in this FFmpeg build")
    duration = _stream_duration(container, stream)
    scan = _scan_stream(container, stream, need_duration=duration is None)
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate and 0 < float(rate) < 10_000 else None
    context = stream.codec_context
    return replace(
        info,
        width=context.width or scan.width,
        height=context.height or scan.height,
        duration=duration if duration is not None else scan.duration,
        fps=fps,
        frames=stream.frames or None,
    )


def _describe_audio(container, stream, found: _Match, opts: _Options) -> MediaInfo:
    codec = _codec_name(stream)
    fmt = "m4a" if found.format in ("mp4", "mov") else found.format
    info = MediaInfo(modality="audio", format=fmt, codec=codec)
    context = stream.codec_context
    if codec is None or context is None:
        return replace(info, error="unknown audio codec, or no decoder for it in this FFmpeg build")
    info = replace(info, sample_rate=context.sample_rate or None, channels=context.channels or None)
    duration = _stream_duration(container, stream)
    scan = _scan_stream(container, stream, need_duration=duration is None)
    duration = duration if duration is not None else scan.duration
    info = replace(info, duration=duration)
    if duration is not None and duration < opts.min_audio_seconds:
        return replace(
            info,
            error=f"audio is {_format_ms(duration)} long; clips under "
            f"{_format_ms(opts.min_audio_seconds)} are too short to use",
        )
    return info


def _probe_av(fh: BinaryIO, size: int, head: bytes, found: _Match, opts: _Options) -> MediaInfo:
    import av

    failed = MediaInfo(modality=_claimed_modality(found, opts.ext), format=found.format)
    label = _AV_LABELS.get(found.format, found.format.upper())
    check = _STRUCTURE_CHECKS.get(found.demuxer or "")
    if check is not None:
        try:
            check(fh, size, label)
        except _ProbeFailure as exc:
            return replace(failed, error=str(exc))
    fh.seek(0)
    with _quiet_av() as logs:
        try:
            container = av.open(
                fh,
                mode="r",
                format=found.demuxer,
                container_options=dict(_AV_CONTAINER_OPTIONS),
                metadata_errors="replace",
            )
        except av.error.FFmpegError as exc:
            return replace(failed, error=_av_reason(f"cannot read {label} file", exc, logs, label))
        with container:
            try:
                return _describe_container(container, found, opts)
            except _ProbeFailure as exc:
                return replace(failed, error=str(exc))
            except av.error.FFmpegError as exc:
                logger.debug("decode failed", exc_info=True)
                return replace(
                    failed, error=_av_reason(f"cannot decode {label} file", exc, logs, label)
                )


def _check_isobmff_boxes(fh: BinaryIO, size: int, label: str) -> None:
    """A top-level box (moov, mdat) that runs past the end of the file means a cut-off file.

    FFmpeg quietly returns *no streams* for a half-present moov box, so we check first.
    """
    pos = 0
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > size:
            break
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            break
        box_size, kind = _u32be(header, 0), header[4:8]
        if box_size == 1 and len(header) == 16:
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:  # "extends to the end of the file"
            break
        if box_size < 8 or not all(0x20 <= c <= 0x7E for c in kind):
            break  # not a box (trailing junk, say): FFmpeg will judge the rest
        if pos + box_size > size:
            name = kind.decode("latin-1").strip() or "?"
            raise _ProbeFailure(
                f"truncated {label}: its {name!r} box needs {pos + box_size:,} "
                f"bytes but the file has {size:,}"
            )
        pos += box_size


def _ebml_vint(data: bytes, at: int) -> tuple[int | None, int]:
    """(value, length) of an EBML variable-size integer; value None for "unknown size"."""
    if at >= len(data) or data[at] == 0:
        return None, 0
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None, 0
    value = data[at] & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _check_matroska_segment(fh: BinaryIO, size: int, label: str) -> None:
    """The Segment element declares its size (when written to a seekable file): compare it."""
    fh.seek(0)
    head = fh.read(64)
    header_size, n = _ebml_vint(head, 4)
    if header_size is None:
        return
    at = 4 + n + header_size
    if head[at : at + 4] != b"\x18\x53\x80\x67":  # Segment element ID
        return
    at += 4
    segment_size, m = _ebml_vint(head, at)
    if segment_size is not None and at + m + segment_size > size:
        raise _ProbeFailure(
            f"truncated {label}: the file has {size:,} of the "
            f"{at + m + segment_size:,} bytes its header declares"
        )


_STRUCTURE_CHECKS: dict[str, Callable[[BinaryIO, int, str], None]] = {
    "mov": _check_isobmff_boxes,
    "matroska": _check_matroska_segment,
}


_AV_LABELS = {
    "mkv": "Matroska",
    "webm": "WebM",
    "ogg": "Ogg",
    "m4a": "M4A",
    "mp4": "MP4",
    "mov": "QuickTime",
    "avi": "AVI",
    "wav": "WAV",
    "flac": "FLAC",
    "mp3": "MP3",
    "aac": "AAC",
    "ts": "MPEG-TS",
    "mpeg": "MPEG",
    "asf": "ASF",
    "aiff": "AIFF",
    "caf": "CAF",
}


# --------------------------------------------------------------------------------------------
# Entry point.


@dataclass(frozen=True)
class _Options:
    ext: str
    max_pixels: int
    min_audio_seconds: float


def _claimed_modality(found: _Match | None, ext: str) -> str | None:
    """What a failing file claims to be: its signature, or for containers its extension."""
    if found is not None and not (found.container and ext in _EXTENSION_MODALITY):
        return found.modality
    return _EXTENSION_MODALITY.get(ext, found.modality if found else None)


_PROBERS: dict[str, Callable[[BinaryIO, int, bytes, _Match, _Options], MediaInfo]] = {
    "image": _probe_image,
    "audio": _probe_av,
    "video": _probe_av,
}


def probe_file(
    path: PathArg,
    *,
    max_pixels: int = 178_956_970,
    min_audio_seconds: float = 0.05,
) -> MediaInfo:
    """Identify one file by its content and check that it decodes; never raises.

    Magic bytes decide what the file is (the extension never does on its own); Pillow then checks
    images (size against `max_pixels` before any decode, then a cheap validating decode) and PyAV
    checks audio/video (streams, duration, first decoded frame). Memory and time are bounded for
    hostile files. Meant for the scanner's worker processes: it briefly pins Pillow's and PyAV's
    global settings and restores them.

    Args:
        path: the file to probe.
        max_pixels: images with more pixels are refused as decompression bombs.
        min_audio_seconds: audio shorter than this is refused as too short to use.

    Returns:
        A MediaInfo; when the file is unusable, `error` holds one line naming the problem and,
        where useful, what to do (and `modality` what the file claims to be, when known).
    """
    try:
        name = os.fsdecode(os.path.basename(os.fspath(path)))
    except (TypeError, ValueError):  # an odd path object: the extension is only a hint anyway
        name = ""
    ext = _extension(name)
    found: _Match | None = None
    try:
        opts = _Options(ext=ext, max_pixels=int(max_pixels), min_audio_seconds=min_audio_seconds)
        with _open_regular(path) as (fh, size):
            if size == 0:
                return MediaInfo(
                    modality=_EXTENSION_MODALITY.get(ext), format=None, error="empty file (0 bytes)"
                )
            head = fh.read(_HEAD_BYTES)
            found = _match(head)
            if found is None:
                return MediaInfo(
                    modality=_EXTENSION_MODALITY.get(ext),
                    format=None,
                    error=_unrecognised_reason(head, ext),
                )
            return _PROBERS[found.modality](fh, size, head, found, opts)
    except _ProbeFailure as exc:
        error = str(exc)
    except OSError as exc:
        error = _os_error_reason(exc)
    except MemoryError:
        error = "ran out of memory while probing this file"
    except ImportError as exc:  # Pillow or PyAV missing from this install
        error = f"cannot probe this file: the {exc.name or 'decoder'} package is not installed"
    except Exception as exc:  # last resort: a scan must never die on one file
        logger.debug("unexpected error probing %r", path, exc_info=True)
        error = f"unexpected error while probing ({type(exc).__name__}: {exc})"
    return MediaInfo(
        modality=_claimed_modality(found, ext),
        format=found.format if found else None,
        error=_one_line(error),
    )
