"""Declared durations are checked against the stream: a hostile header cannot claim 65,536 s."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from indexing.media import probe_file
from tests.helpers.media import encoded_tone


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _huge_flac(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    fields = int.from_bytes(data[18:26], "big") | ((1 << 36) - 1)  # STREAMINFO total samples
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def _huge_ogg(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    at = data.rfind(b"OggS")  # the last page's granule position gives the duration
    data[at + 6 : at + 14] = struct.pack("<q", 48000 * 10**9)
    n = data[at + 26]
    length = 27 + n + sum(data[at + 27 : at + 27 + n])
    data[at + 22 : at + 26] = b"\0\0\0\0"
    data[at + 22 : at + 26] = struct.pack("<I", _ogg_crc(bytes(data[at : at + length])))
    return bytes(data)


def _huge_mp4(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    for box in (b"mvhd", b"mdhd"):  # version 0: duration 20 bytes after the type
        at = 0
        while (at := data.find(box, at + 1)) > 0:
            data[at + 20 : at + 24] = struct.pack(">I", 0xFFFFFFF0)
    return bytes(data)


def _huge_mp3(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0, "no Xing/Info header"
    assert data[at + 7] & 1  # the frame count is present
    data[at + 8 : at + 12] = struct.pack(">I", 0x7FFFFFFF)
    return bytes(data)


@pytest.mark.parametrize(
    "name, make, mutate, seconds",
    [
        ("a.flac", lambda p: encoded_tone(p, "flac", "flac", 1.5), _huge_flac, 1.5),
        ("a.ogg", lambda p: encoded_tone(p, "libopus", "ogg", 1.5, rate=48000), _huge_ogg, 1.5),
        ("a.m4a", lambda p: encoded_tone(p, "aac", "mp4", 1.5), _huge_mp4, 1.5),
        ("a.mp3", lambda p: encoded_tone(p, "libmp3lame", "mp3", 1.5, rate=44100), _huge_mp3, 1.5),
    ],
)
def test_a_declared_duration_that_disagrees_with_the_stream_is_replaced(
    tmp_path, name, make, mutate, seconds
):
    good = make(tmp_path / name)
    assert probe_file(good).duration == pytest.approx(seconds, abs=0.1)
    hostile = tmp_path / f"huge-{name}"
    hostile.write_bytes(mutate(good))
    info = probe_file(hostile)
    assert info.ok, info.error
    assert info.duration == pytest.approx(seconds, abs=0.1)


def test_a_video_with_a_huge_declared_duration_is_measured(tmp_path, media):
    good = media.video(tmp_path / "v.mp4", frames=10, fps=10)
    hostile = tmp_path / "huge.mp4"
    hostile.write_bytes(_huge_mp4(good))
    info = probe_file(hostile)
    assert info.ok, info.error
    assert info.duration == pytest.approx(1.0, abs=0.15)


def test_a_long_stream_is_checked_by_bitrate_not_demuxed_to_the_end(tmp_path, monkeypatch):
    from indexing.media import avcommon

    monkeypatch.setattr(avcommon, "_VERIFY_PACKETS", 20)  # the file is "long" for the check
    good = encoded_tone(tmp_path / "a.flac", "flac", "flac", 6.0)
    assert probe_file(good).duration == pytest.approx(6.0, abs=0.1)  # plausible: kept
    hostile = tmp_path / "huge.flac"
    hostile.write_bytes(_huge_flac(good))
    info = probe_file(hostile)
    assert info.ok, info.error
    assert 1.5 < info.duration < 24.0  # estimated from bitrate x size, not 4.3 million s
