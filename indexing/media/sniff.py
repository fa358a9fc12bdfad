"""Sniffing by magic numbers, and describing content that is not media, for a useful error line."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from indexing.media.common import (
    _HEAD_BYTES,
    MEDIA_EXTENSIONS,
    _extension,
    _Match,
    _u32be,
    _u32le,
)


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


