"""The open_clip embedder with a tiny random model: loading, images, video, text, offline
failures."""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest

from indexing.embedders.base import Decoded, EmbedderUnavailable, create_embedder

pytestmark = pytest.mark.torch

REAL_TAG = "ViT-B-32/laion2b_s34b_b79k"
REAL_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def _norms(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors.astype(np.float64), axis=1)


@pytest.fixture(scope="module")
def clip_st(tiny_clip):
    from indexing.embedders.clip import create

    return create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real image files of different sizes, formats and content."""
    from PIL import Image

    root = tmp_path_factory.mktemp("clip_images")
    rng = np.random.default_rng(7)
    paths = []
    specs = [((64, 48), "png"), ((40, 90), "jpg"), ((32, 32), "png"), ((300, 200), "jpg")]
    for i, (size, ext) in enumerate(specs):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        arr[: size[1] // 2] //= (i + 2)  # give each picture its own structure
        path = root / f"img{i}.{ext}"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def _decode(embedder, paths, modality="image"):
    decode = embedder.decoder()
    items = [decode(i, str(p), modality, thumbnail=False) for i, p in enumerate(paths)]
    assert all(d.error is None for d in items), [d.error for d in items]
    return items


def test_registry_builds_open_clip_from_a_local_safetensors_file(tiny_clip):
    from indexing.embedders.weights import file_sha256

    emb = create_embedder(
        "open_clip", model=tiny_clip.arch, weights=str(tiny_clip.safetensors), device="cpu"
    )
    assert emb.name == "open_clip" and emb.dim == tiny_clip.dim
    assert emb.modalities == frozenset({"image", "video"}) and emb.has_text
    assert emb.space == f"clip:{tiny_clip.arch}@weights:{file_sha256(tiny_clip.safetensors)[:8]}"
    info = emb.describe()
    assert info["weights_sha256"] == file_sha256(tiny_clip.safetensors)
    assert info["precision"] == "fp32"
    assert emb.preprocess.startswith("resize 32 bicubic shortest + center crop, mean=(0.481")


def test_image_files_embed_to_unit_vectors_through_the_decoder(clip_st, images):
    spec = clip_st.decoder().spec
    assert (spec.image_size, spec.resize_mode) == (32, "crop")
    items = _decode(clip_st, images)
    assert all(d.data.shape == (32, 32, 3) for d in items)
    result = clip_st.embed_batch(items)
    assert result.vectors.shape == (len(images), 32) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(_norms(result.vectors), 1.0, atol=1e-5)
    assert result.frames == {}
    # Different pictures give different vectors (the model is not constant).
    sims = result.vectors @ result.vectors.T
    assert np.all(sims[~np.eye(len(images), dtype=bool)] < 0.9999)


def test_safetensors_and_torch_files_give_the_same_vectors(tiny_clip, clip_st, images):
    from indexing.embedders.clip import create

    items = _decode(clip_st, images)
    expected = clip_st.embed_batch(items).vectors
    for path in (tiny_clip.pt, tiny_clip.plain_pt):  # {"state_dict": {"module.*"}} and plain
        emb = create(model=tiny_clip.arch, weights=path, device="cpu")
        np.testing.assert_array_equal(emb.embed_batch(items).vectors, expected)
        assert emb.space != clip_st.space  # another file, another space: they never mix


def test_two_loads_give_identical_vectors_and_another_checkpoint_differs(
    tiny_clip, clip_st, images
):
    from indexing.embedders.clip import create

    items = _decode(clip_st, images)
    again = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")
    assert again.space == clip_st.space
    np.testing.assert_array_equal(
        again.embed_batch(items).vectors, clip_st.embed_batch(items).vectors
    )
    other = create(model=tiny_clip.arch, weights=tiny_clip.other_safetensors, device="cpu")
    assert other.space != clip_st.space
    assert not np.allclose(
        other.embed_batch(items).vectors, clip_st.embed_batch(items).vectors, atol=1e-3
    )


def test_batch_of_mixed_raw_sizes_is_fitted_and_matches_one_by_one(clip_st):
    rng = np.random.default_rng(3)
    arrays = [
        rng.integers(0, 256, shape, dtype=np.uint8)
        for shape in [(32, 32, 3), (50, 80, 3), (97, 31, 3)]
    ]
    arrays.append(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8))  # RGBA: alpha dropped
    arrays.append(rng.integers(0, 256, (32, 32), dtype=np.uint8))  # grey
    batch = [Decoded(i, "image", a) for i, a in enumerate(arrays)]
    together = clip_st.embed_batch(batch).vectors
    assert together.shape == (5, 32)
    np.testing.assert_allclose(_norms(together), 1.0, atol=1e-5)
    alone = np.stack([clip_st.embed_batch([d]).vectors[0] for d in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_raw_array_fit_agrees_with_the_decoder(clip_st, tmp_path):
    """An odd-sized array handed straight to embed_batch is fitted like the decoder fits a file."""
    from PIL import Image

    y, x = np.mgrid[0:60, 0:90]
    arr = np.stack([x * 2.8, y * 4.2, (x + y) * 1.7], axis=-1).clip(0, 255).astype(np.uint8)
    path = tmp_path / "smooth.png"
    Image.fromarray(arr).save(path)
    via_decoder = clip_st.embed_batch(_decode(clip_st, [path])).vectors[0]
    direct = clip_st.embed_batch([Decoded(0, "image", arr)]).vectors[0]
    assert float(via_decoder @ direct) > 0.98


def test_video_frames_are_pooled_and_kept(clip_st, media, tmp_path):
    from indexing.embedders.clip import create

    emb = create(
        model=clip_st.model_string, weights=clip_st.source.weights, device="cpu", video_frames=4
    )
    assert emb.decoder().spec.video_frames == 4
    video = media.video(tmp_path / "clip.mp4", frames=12, size=(64, 48))
    image = media.image(tmp_path / "still.png", size=(50, 40))
    decode = emb.decoder()
    items = [decode(10, str(image), "image", False), decode(11, str(video), "video", False)]
    assert items[1].error is None and items[1].data.shape == (4, 32, 32, 3)
    result = emb.embed_batch(items)
    assert result.vectors.shape == (2, 32)
    assert set(result.frames) == {1}
    frames = result.frames[1]
    assert frames.shape == (4, 32) and frames.dtype == np.float32
    np.testing.assert_allclose(_norms(frames), 1.0, atol=1e-5)
    pooled = frames.mean(axis=0)
    np.testing.assert_allclose(result.vectors[1], pooled / np.linalg.norm(pooled), atol=1e-6)
    # The frames differ (the video fades), so the pooled vector is not just one frame.
    assert not np.allclose(frames[0], frames[-1], atol=1e-4)
    # The image next to the video gets the vector it gets alone.
    np.testing.assert_allclose(result.vectors[0], emb.embed_batch(items[:1]).vectors[0], atol=1e-6)


def test_text_embeddings(clip_st):
    texts = ["a photo of a cat", "a red car on a street", "", "a photo of a cat"]
    vecs = clip_st.embed_text(texts)
    assert vecs.shape == (4, 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(_norms(vecs), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vecs[0], vecs[3])
    assert not np.allclose(vecs[0], vecs[1], atol=1e-3)
    assert clip_st.embed_text([]).shape == (0, 32)


def test_text_is_encoded_without_its_padding_and_gives_the_full_context_features(clip_st):
    import torch

    from indexing.embedders.clip import encode_text_trimmed

    model = clip_st.model
    tokens = clip_st.tokenizer(["a cat", "a red car parked on a wet street at night"])
    used = int(tokens.argmax(dim=-1).max()) + 1
    assert used < tokens.shape[1]  # there is padding to leave out
    seen = []
    hook = model.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    try:
        with torch.inference_mode():
            trimmed = encode_text_trimmed(model, tokens)
            full = model.encode_text(tokens)
    finally:
        hook.remove()
    assert seen[0][1] == used and seen[1][1] == tokens.shape[1]
    np.testing.assert_allclose(trimmed.numpy(), full.numpy(), atol=1e-5)


def test_embed_batch_rejects_failed_decodes_and_audio(clip_st):
    with pytest.raises(ValueError, match="item 5 has no decoded data"):
        clip_st.embed_batch([Decoded(5, "image", error="broken file")])
    with pytest.raises(ValueError, match="not 'audio'"):
        clip_st.embed_batch([Decoded(6, "audio", np.zeros((1, 100), np.float32))])
    assert clip_st.embed_batch([]).vectors.shape == (0, 32)


def test_precision_on_cpu(tiny_clip, clip_st, caplog):
    from indexing.embedders.clip import create

    with caplog.at_level(logging.WARNING, logger="indexing.embedders.weights"):
        fp16 = create(
            model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu", precision="fp16"
        )
    assert fp16.precision == "fp32"
    assert any("fp16 is not supported on cpu" in r.getMessage() for r in caplog.records)
    bf16 = create(
        model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu", precision="bf16"
    )
    assert bf16.precision == "bf16"
    rng = np.random.default_rng(0)
    batch = [
        Decoded(i, "image", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for i in range(3)
    ]
    low, full = bf16.embed_batch(batch).vectors, clip_st.embed_batch(batch).vectors
    assert low.dtype == np.float32
    np.testing.assert_allclose(_norms(low), 1.0, atol=1e-5)
    assert np.all(np.sum(low * full, axis=1) > 0.95)
    with pytest.raises(EmbedderUnavailable, match="unknown precision"):
        create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu", precision="fp8")


def test_bad_model_strings_and_weight_files(tiny_clip, tmp_path):
    from indexing.embedders.clip import create

    with pytest.raises(EmbedderUnavailable, match="did you mean"):
        create(model="ViT-B-23/laion2b_s34b_b79k", offline=True)
    with pytest.raises(EmbedderUnavailable, match="its tags: .*laion2b_s34b_b79k"):
        create(model="ViT-B-32/no_such_tag", offline=True)
    with pytest.raises(EmbedderUnavailable, match="names no weights"):
        create(model="ViT-B-32", offline=True)
    with pytest.raises(EmbedderUnavailable, match="does not exist"):
        create(model=tiny_clip.arch, weights=tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(EmbedderUnavailable, match="cannot read weights file"):
        create(model=tiny_clip.arch, weights=junk)
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_clip.safetensors))
    state.pop("visual.proj")
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(EmbedderUnavailable, match="(?s)do not fit this architecture.*visual.proj"):
        create(model=tiny_clip.arch, weights=tmp_path / "partial.safetensors", device="cpu")


@pytest.mark.timeout(30)
def test_offline_missing_weights_fail_fast_naming_the_cache(hf_cache):
    from indexing.embedders.clip import create

    with pytest.raises(EmbedderUnavailable) as err:
        create(model=REAL_TAG, device="cpu")
    message = str(err.value)
    assert str(hf_cache.hub) in message
    assert "HF_HUB_OFFLINE is set" in message
    assert f"hf download {REAL_REPO}" in message
    assert "--weights FILE" in message and "--model classic" in message


@pytest.mark.timeout(30)
def test_unreachable_hub_fails_fast_without_offline_flag(hf_cache, monkeypatch):
    from indexing.embedders import weights
    from indexing.embedders.clip import create

    monkeypatch.delenv("HF_HUB_OFFLINE")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    probes = []
    monkeypatch.setattr(
        weights, "network_reachable", lambda host, timeout, port: probes.append(host) or False
    )
    with pytest.raises(EmbedderUnavailable, match="huggingface.co:443 cannot be reached") as err:
        create(model=REAL_TAG, device="cpu")
    assert probes == ["huggingface.co"]
    assert str(hf_cache.hub) in str(err.value)
    monkeypatch.setenv("CURATOR_OFFLINE", "1")
    with pytest.raises(EmbedderUnavailable, match="CURATOR_OFFLINE is set"):
        create(model=REAL_TAG, device="cpu")
    assert probes == ["huggingface.co"]  # an offline flag means no probe at all


def test_network_probe_on_local_ports():
    from indexing.embedders.weights import network_reachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert network_reachable("127.0.0.1", timeout=2.0, port=port)
    assert not network_reachable("127.0.0.1", timeout=2.0, port=port)  # closed now


def test_hf_hub_model_loads_from_the_cache_offline(tiny_clip, clip_st, hf_cache, images):
    from indexing.embedders.clip import create
    from indexing.embedders.weights import file_sha256

    config = {"model_cfg": tiny_clip.config, "preprocess_cfg": {"resize_mode": "squash"}}
    hf_cache(
        "curator-test/tiny-clip",
        {
            "open_clip_config.json": json.dumps(config).encode(),
            "open_clip_model.safetensors": tiny_clip.safetensors,
        },
    )
    emb = create(model="hf-hub:curator-test/tiny-clip", device="cpu")
    assert emb.space == "clip:hf-hub:curator-test/tiny-clip"
    assert emb.describe()["weights_sha256"] == file_sha256(tiny_clip.safetensors)
    assert emb.decoder().spec.resize_mode == "squash"
    assert "squash" in emb.preprocess
    # Same weights and normalisation: the same vectors for the same pixels.
    items = _decode(clip_st, images)
    np.testing.assert_array_equal(
        emb.embed_batch(items).vectors, clip_st.embed_batch(items).vectors
    )
    np.testing.assert_array_equal(emb.embed_text(["a dog"]), clip_st.embed_text(["a dog"]))


def test_hf_tokenizer_comes_from_the_cache_offline(tiny_clip, tiny_hf_tokenizer, clip_st, hf_cache):
    from indexing.embedders.clip import create

    cfg = json.loads(json.dumps(tiny_clip.config))
    cfg["text_cfg"]["hf_tokenizer_name"] = "curator-test/tiny-tok"
    config = json.dumps({"model_cfg": cfg}).encode()
    hf_cache(
        "curator-test/tiny-clip-hftok",
        {"open_clip_config.json": config, "open_clip_model.safetensors": tiny_clip.safetensors},
    )
    with pytest.raises(EmbedderUnavailable, match="hf download curator-test/tiny-tok`"):
        create(model="hf-hub:curator-test/tiny-clip-hftok", device="cpu")
    hf_cache("curator-test/tiny-tok", {p.name: p for p in tiny_hf_tokenizer.iterdir()})
    emb = create(model="hf-hub:curator-test/tiny-clip-hftok", device="cpu")
    tokens = emb.tokenizer(["ab"])
    assert tokens.shape == (1, 16) and int(tokens[0, 0]) == 0  # RoBERTa's <s>, not CLIP's BPE
    vecs = emb.embed_text(["a dog", "a cat"])
    assert vecs.shape == (2, 32)
    np.testing.assert_allclose(_norms(vecs), 1.0, atol=1e-5)
    assert not np.allclose(vecs, clip_st.embed_text(["a dog", "a cat"]), atol=1e-3)


def test_pretrained_tag_resolves_to_the_cached_file(tiny_clip, hf_cache, monkeypatch):
    from open_clip import pretrained

    from indexing.embedders.clip import create
    from indexing.embedders.weights import find_cached_clip_weights

    tag_cfg = {
        "url": "",
        "hf_hub": "curator-test/tiny-clip-tag/",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "interpolation": "bilinear",
        "resize_mode": "longest",
    }
    monkeypatch.setitem(pretrained._PRETRAINED, tiny_clip.arch, {"curatortest": tag_cfg})
    with pytest.raises(EmbedderUnavailable, match="hf download curator-test/tiny-clip-tag"):
        create(model=f"{tiny_clip.arch}/curatortest", device="cpu")
    # open_clip takes the .safetensors sibling of its default .bin name first.
    snap = hf_cache(
        "curator-test/tiny-clip-tag", {"open_clip_model.safetensors": tiny_clip.safetensors}
    )
    emb = create(model=f"{tiny_clip.arch}/CuratorTest", device="cpu")
    assert emb.model_string == f"{tiny_clip.arch}/curatortest"
    assert emb.space == f"clip:{tiny_clip.arch}/curatortest"
    assert emb.decoder().spec.resize_mode == "pad"
    assert (
        emb.preprocess
        == "resize 32 bilinear longest + pad, mean=(0.500,0.500,0.500), std=(0.250,0.250,0.250)"
    )
    found = {f["model"]: f for f in find_cached_clip_weights()}
    entry = found[f"{tiny_clip.arch}/curatortest"]
    assert entry["file"] == str(snap / "open_clip_model.safetensors")
    assert entry["size"] == tiny_clip.safetensors.stat().st_size


def test_find_cached_clip_weights_empty_and_at_the_real_lookup_path(hf_cache):
    from indexing.embedders.weights import cached_hf_file, find_cached_clip_weights

    assert find_cached_clip_weights() == []
    snap = hf_cache(REAL_REPO, {"open_clip_model.safetensors": b"\0" * 1234})
    found = find_cached_clip_weights()
    assert {
        "model": REAL_TAG,
        "file": str(snap / "open_clip_model.safetensors"),
        "size": 1234,
    } in found
    # huggingface_hub's own lookup agrees on the place.
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache(
        REAL_REPO, "open_clip_model.safetensors", cache_dir=str(hf_cache.hub)
    ) == str(snap / "open_clip_model.safetensors")
    assert cached_hf_file(REAL_REPO, "open_clip_pytorch_model.bin") is None


def test_hf_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    from indexing.embedders.weights import hf_cache_dir

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hf_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hf_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"


class _BrokenTorchvision:
    """An import hook that fails open_clip the way a torchvision built for another torch does."""

    def find_spec(self, name, path=None, target=None):
        if name == "open_clip":
            raise RuntimeError("operator torchvision::nms does not exist")
        return None


def test_torch_and_torchvision_that_do_not_load_together_are_one_clear_error(monkeypatch):
    import sys

    from indexing.embedders.clip import create

    for name in [m for m in sys.modules if m == "open_clip" or m.startswith("open_clip.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchvision(), *sys.meta_path])
    with pytest.raises(EmbedderUnavailable, match="torchvision::nms.*matching pair"):
        create(model="ViT-B-32/laion2b_s34b_b79k", offline=True)


def _packed_vs_plain(model, texts, tokenizer):
    import torch

    from indexing.embedders.clip_text import PackedTextTower

    tower = PackedTextTower.build(model)
    assert tower is not None
    tokens = tokenizer(texts)
    with torch.inference_mode():
        return tower(tokens).numpy(), model.encode_text(tokens).numpy()


def test_packed_text_tower_gives_the_plain_towers_features(clip_st):
    texts = ["a cat", "a red car parked on a wet street at night", ""]
    packed, plain = _packed_vs_plain(clip_st.model, texts, clip_st.tokenizer)
    assert packed.shape == plain.shape == (3, 32)
    np.testing.assert_allclose(packed, plain, atol=1e-5)
    # The embedder's text path is the packed tower on a float32 CPU model, and stays the same.
    vecs = clip_st.embed_text(texts)
    assert clip_st._packed_text is not None
    np.testing.assert_allclose(vecs, plain / np.linalg.norm(plain, axis=1, keepdims=True),
                               atol=1e-5)


def test_packed_text_tower_with_layer_scale_and_a_linear_projection():
    import open_clip
    import torch

    torch.manual_seed(3)
    model = open_clip.model.CLIP(
        embed_dim=24,
        vision_cfg={"image_size": 32, "layers": 1, "width": 64, "head_width": 32,
                    "patch_size": 16},
        text_cfg={"context_length": 20, "vocab_size": 49408, "width": 48, "heads": 4,
                  "layers": 3, "ls_init_value": 0.5, "proj_type": "linear", "proj_bias": True},
    ).eval()
    assert isinstance(model.text_projection, torch.nn.Linear)
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=20)
    packed, plain = _packed_vs_plain(model, ["one", "two birds on a wire above a river"],
                                     tokenizer)
    np.testing.assert_allclose(packed, plain, atol=1e-5)


def test_other_text_towers_keep_the_plain_path(clip_st, tiny_clip):
    from indexing.embedders.clip import create
    from indexing.embedders.clip_text import PackedTextTower

    emb = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")
    emb.model.text_pool_type = "last"  # not the argmax pooling the packed tower does
    assert PackedTextTower.build(emb.model) is None
    vecs = emb.embed_text(["a photo of a cat"])
    assert emb._packed_text is None and emb._packed_tried
    assert vecs.shape == (1, 32)


def test_a_packed_tower_that_disagrees_with_open_clip_is_not_used(clip_st, monkeypatch):
    """The packed path calls private oneDNN ops: where a torch release changes them, its trial
    query differs from `encode_text` and the embedder keeps the plain tower."""
    import torch

    from indexing.embedders.clip_text import PackedTextTower

    linear = torch.ops.mkldnn._linear_pointwise

    class Ops:  # the same op, off by a little: what a changed private op would look like
        @staticmethod
        def _linear_pointwise(*args):
            return linear(*args) * 1.01

        _reorder_linear_weight = torch.ops.mkldnn._reorder_linear_weight

    monkeypatch.setattr(torch.ops, "mkldnn", Ops)
    assert PackedTextTower.build(clip_st.model) is None
    def changed(*args):
        raise RuntimeError("_linear_pointwise() expected 4 arguments")

    monkeypatch.setattr(Ops, "_linear_pointwise", staticmethod(changed))
    assert PackedTextTower.build(clip_st.model) is None
