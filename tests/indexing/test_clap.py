"""The CLAP embedder with a tiny random model: loading, audio windows, pooling, text, offline
failures."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.embedders.base import Decoded, EmbedderUnavailable, create_embedder

pytestmark = pytest.mark.torch


def _norms(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors.astype(np.float64), axis=1)


@pytest.fixture(scope="module")
def clap(tiny_clap):
    from indexing.embedders.clap import create

    return create(model=str(tiny_clap.folder), device="cpu", audio_max_windows=4)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """Real WAV files: tones at several rates and lengths, and a noise burst."""
    import wave

    root = tmp_path_factory.mktemp("clap_wavs")
    rng = np.random.default_rng(5)
    specs = [
        ("a440", 16000, 0.6, 440.0),
        ("b3000", 44100, 0.8, 3000.0),
        ("long", 22050, 3.5, 880.0),
        ("noise", 16000, 1.0, 0.0),
    ]
    paths = {}
    for name, rate, seconds, freq in specs:
        t = np.arange(int(rate * seconds)) / rate
        x = 0.3 * np.sin(2 * np.pi * freq * t) if freq else 0.3 * rng.standard_normal(t.size)
        path = root / f"{name}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
        paths[name] = path
    return paths


def _decode(embedder, paths):
    decode = embedder.decoder()
    items = [decode(i, str(p), "audio", thumbnail=False) for i, p in enumerate(paths)]
    assert all(d.error is None for d in items), [d.error for d in items]
    return items


def test_registry_builds_clap_from_a_saved_folder(tiny_clap):
    from indexing.embedders.weights import file_sha256

    emb = create_embedder("clap", model=str(tiny_clap.folder), device="cpu")
    assert emb.name == "clap" and emb.dim == tiny_clap.dim
    assert emb.modalities == frozenset({"audio"}) and emb.has_text
    sha = file_sha256(tiny_clap.folder / "model.safetensors")
    assert emb.space == f"clap:{tiny_clap.folder.name}@weights:{sha[:8]}"
    assert emb.describe()["weights_sha256"] == sha
    spec = emb.decoder().spec
    # The decoder follows the feature extractor (16 kHz, 1 s), not CLAP's usual 48 kHz / 10 s.
    assert (spec.audio_rate, spec.audio_window_s, spec.audio_max_windows) == (16000, 1.0, 8)
    assert emb.preprocess.startswith("mono 16000 Hz, windows of 1 s (up to 8), log-mel 16 bins")


def test_wav_files_embed_to_unit_vectors(clap, wavs):
    items = _decode(clap, [wavs["a440"], wavs["b3000"], wavs["long"], wavs["noise"]])
    assert [d.data.shape for d in items] == [(1, 16000), (1, 16000), (4, 16000), (1, 16000)]
    result = clap.embed_batch(items)
    assert result.vectors.shape == (4, 16) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(_norms(result.vectors), 1.0, atol=1e-5)
    sims = result.vectors @ result.vectors.T
    assert np.all(sims[~np.eye(4, dtype=bool)] < 0.9999)  # different sounds, different vectors


def test_two_loads_give_identical_vectors_and_batches_do_not_matter(tiny_clap, clap, wavs):
    from indexing.embedders.clap import create

    items = _decode(clap, [wavs["a440"], wavs["long"], wavs["noise"]])
    first = clap.embed_batch(items).vectors
    again = create(model=str(tiny_clap.folder), device="cpu", audio_max_windows=4)
    assert again.space == clap.space
    np.testing.assert_array_equal(again.embed_batch(items).vectors, first)
    np.testing.assert_array_equal(
        clap.embed_batch(items).vectors, first
    )  # no random crop or fusion pick
    alone = np.stack([clap.embed_batch([d]).vectors[0] for d in items])
    np.testing.assert_allclose(alone, first, atol=1e-5)
    small_batches = create(model=str(tiny_clap.folder), device="cpu", batch_size=2)
    np.testing.assert_allclose(small_batches.embed_batch(items).vectors, first, atol=1e-5)


def test_long_clip_is_the_normalised_mean_of_its_windows(clap):
    rng = np.random.default_rng(1)
    windows = (0.2 * rng.standard_normal((3, 16000))).astype(np.float32)
    windows[1] *= np.sin(np.linspace(0, 40, 16000)).astype(np.float32)
    pooled = clap.embed_batch([Decoded(1, "audio", windows)]).vectors[0]
    each = clap.embed_batch([Decoded(i, "audio", w[None]) for i, w in enumerate(windows)]).vectors
    assert not np.allclose(each[0], each[1], atol=1e-3)
    mean = each.mean(axis=0)
    np.testing.assert_allclose(pooled, mean / np.linalg.norm(mean), atol=1e-5)


def test_odd_window_lengths_are_handled(clap):
    rng = np.random.default_rng(2)
    short = (0.1 * rng.standard_normal(3000)).astype(np.float32)  # 1-D and shorter: repeat-padded
    long = (0.1 * rng.standard_normal((1, 20000))).astype(
        np.float32
    )  # longer: cut, not random-cropped
    result = clap.embed_batch([Decoded(1, "audio", short), Decoded(2, "audio", long)])
    np.testing.assert_allclose(_norms(result.vectors), 1.0, atol=1e-5)
    cut = clap.embed_batch([Decoded(3, "audio", long[:, :16000])]).vectors[0]
    np.testing.assert_allclose(result.vectors[1], cut, atol=1e-6)


def test_text_tower(clap):
    vecs = clap.embed_text(["a dog barking", "rain on a tin roof", "a dog barking"])
    assert vecs.shape == (3, 16) and vecs.dtype == np.float32
    np.testing.assert_allclose(_norms(vecs), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vecs[0], vecs[2])
    assert not np.allclose(vecs[0], vecs[1], atol=1e-3)
    long_text = clap.embed_text(["word " * 200])  # truncated to the position table, no crash
    assert long_text.shape == (1, 16)
    assert clap.embed_text([]).shape == (0, 16)


def test_embed_batch_rejects_failed_decodes_and_images(clap):
    with pytest.raises(ValueError, match="item 4 has no decoded data"):
        clap.embed_batch([Decoded(4, "audio", error="no audio stream")])
    with pytest.raises(ValueError, match="not 'image'"):
        clap.embed_batch([Decoded(5, "image", np.zeros((8, 8, 3), np.uint8))])
    assert clap.embed_batch([]).vectors.shape == (0, 16)


@pytest.mark.timeout(30)
def test_offline_missing_model_fails_fast_naming_the_cache(hf_cache):
    from indexing.embedders.clap import create

    with pytest.raises(EmbedderUnavailable) as err:
        create(model="laion/clap-htsat-unfused", device="cpu")
    message = str(err.value)
    assert str(hf_cache.hub) in message and "HF_HUB_OFFLINE is set" in message
    assert "hf download laion/clap-htsat-unfused" in message and "--audio-model classic" in message


def test_hub_repo_loads_from_the_cache_offline(tiny_clap, clap, hf_cache, wavs):
    from indexing.embedders.clap import create

    files = {p.name: p for p in tiny_clap.folder.iterdir() if p.is_file()}
    hf_cache("curator-test/tiny-clap", files)
    emb = create(model="curator-test/tiny-clap", device="cpu", audio_max_windows=4)
    assert emb.space == "clap:curator-test/tiny-clap"
    items = _decode(clap, [wavs["a440"], wavs["long"]])
    np.testing.assert_array_equal(emb.embed_batch(items).vectors, clap.embed_batch(items).vectors)
    np.testing.assert_array_equal(emb.embed_text(["a bell"]), clap.embed_text(["a bell"]))


def test_bad_clap_sources(tiny_clap, tmp_path):
    from indexing.embedders.clap import create

    with pytest.raises(EmbedderUnavailable, match="needs config.json and model weights"):
        create(model=str(tmp_path))
    with pytest.raises(EmbedderUnavailable, match="neither a folder nor a hub repo"):
        create(model=str(tmp_path / "missing" / "clap"))
    with pytest.raises(EmbedderUnavailable, match="--weights is for open_clip"):
        create(model=str(tiny_clap.folder), weights="x.pt")
