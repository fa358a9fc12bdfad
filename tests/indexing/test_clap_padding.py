"""CLAP input shorter than its window follows the model's feature extractor (repeatpad for
laion/clap-htsat-unfused), not the decoder's zero padding."""

from __future__ import annotations

import wave

import numpy as np
import pytest


@pytest.fixture(scope="module")
def clap(tiny_clap):
    from indexing.embedders.clap import create

    return create(model=str(tiny_clap.folder), device="cpu")


def _wav(path, seconds, rate=16000, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((x * 32767).astype("<i2").tobytes())
    return path


def test_short_clip_reaches_the_extractor_unpadded_and_is_repeat_padded(clap, tmp_path,
                                                                         monkeypatch):
    assert clap.extractor.padding == "repeatpad"
    item = clap.decoder()(1, str(_wav(tmp_path / "short.wav", 0.25)), "audio", False)
    assert item.data.shape == (1, 16000)  # the decoder's window: 0.25 s of sound, then zeros
    assert np.count_nonzero(item.data[0][4000:]) == 0
    seen = []
    real = clap.extractor.__class__.__call__

    def spy(self, raw, **kwargs):
        seen.extend(len(r) for r in raw)
        return real(self, raw, **kwargs)

    monkeypatch.setattr(clap.extractor.__class__, "__call__", spy)
    got = clap.embed_batch([item]).vectors[0]
    assert seen == [4000]  # the real samples, padded by the extractor itself
    # What the extractor does with them: repeat the clip to the window (features of the
    # repeated clip), which differs from what zero padding would give.
    feats = real(clap.extractor, [item.data[0][:4000]], sampling_rate=16000,
                 return_tensors="np")["input_features"]
    zero = real(clap.extractor, [item.data[0]], sampling_rate=16000,
                return_tensors="np")["input_features"]
    assert not np.allclose(feats, zero)
    monkeypatch.setattr(clap.extractor.__class__, "__call__", real)
    import indexing.embedders.clap as clap_module

    monkeypatch.setattr(clap_module, "_without_zero_tail", lambda w: w)
    before_fix = clap.embed_batch([item]).vectors[0]
    assert float(got @ before_fix) < 0.9999  # zero padding really gave another vector


def test_only_the_last_window_loses_its_zero_tail(clap):
    from indexing.embedders.base import Decoded
    from indexing.embedders.clap import _without_zero_tail

    rng = np.random.default_rng(0)
    windows = (0.2 * rng.standard_normal((2, 16000))).astype(np.float32)
    windows[0, -100:] = 0.0  # silence inside the clip stays
    windows[1, 6000:] = 0.0  # the padded tail of the clip goes
    got = clap._windows(Decoded(3, "audio", windows))
    assert [len(w) for w in got] == [16000, 6000]
    silent = np.zeros(16000, np.float32)
    assert len(_without_zero_tail(silent)) == 16000  # a silent window is kept whole
