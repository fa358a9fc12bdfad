"""What every media prober shares: MediaInfo, the sniff match, limits, file opening and hashing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Union

logger = logging.getLogger("indexing.media")

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

_HEAD_BYTES = 4096  # enough for every signature, and for the text/pointer checks
_MAX_REASON_CHARS = 200

_MAX_CHUNKS = 200_000  # chunk walks (WebP, APNG) stop here on hostile files


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



    return None


def _sniff_flac(h: bytes) -> _Match | None:
    return _Match("audio", "flac", demuxer="flac") if h[:4] == b"fLaC" else None



def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lstrip(".").lower()


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


def _claimed_modality(found: _Match | None, ext: str) -> str | None:
    """What a failing file claims to be: its signature, or for containers its extension."""
    if found is not None and not (found.container and ext in _EXTENSION_MODALITY):
        return found.modality
    return _EXTENSION_MODALITY.get(ext, found.modality if found else None)


@dataclass(frozen=True)
class _Options:
    """What a prober needs besides the file: its extension and the caller's limits."""

    ext: str
    max_pixels: int
    min_audio_seconds: float
    size: int = 0  # bytes in the file, set once it is open
