"""GPU paths: encoded JPEGs decoded in batches on the model's device, weights in real half
precision, `cuda:N`. The dispatch logic runs here on CPU; tests marked `gpu` need CUDA and are
run by bench/gpu_check.sh."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexing.embedders.base import Decoded


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (bench/gpu_check.sh)")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A plain JPEG, a grey JPEG, a CMYK JPEG, a rotated JPEG (EXIF 6), a PNG, a fake .jpg."""
    root = tmp_path_factory.mktemp("gpu_jpegs")
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    arr[:60] //= 3
    Image.fromarray(arr).save(root / "plain.jpg", quality=92)
    Image.fromarray(arr[..., 0]).save(root / "grey.jpg")
    Image.fromarray(arr).convert("CMYK").save(root / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(root / "rotated.jpg", exif=exif)
    Image.fromarray(arr).save(root / "pic.png")
    (root / "fake.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _fallback():
    from indexing.decode import DecodeSpec, MediaDecoder

    return MediaDecoder(DecodeSpec(image_size=32))


def test_plain_jpegs_travel_encoded_and_the_rest_is_decoded_on_cpu(files):
    from indexing.gpu_decode import EncodedJpegDecoder, is_encoded

    decode = EncodedJpegDecoder(_fallback())
    got = {name: decode(i, str(files / name), "image", True)
           for i, name in enumerate(["plain.jpg", "grey.jpg", "cmyk.jpg", "rotated.jpg",
                                     "pic.png", "fake.jpg"])}
    assert is_encoded(got["plain.jpg"]) and is_encoded(got["grey.jpg"])
    assert got["plain.jpg"].data.tobytes() == (files / "plain.jpg").read_bytes()
    with Image.open(__import__("io").BytesIO(got["plain.jpg"].thumbnail)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    # CMYK and rotated JPEGs need the CPU path's colour conversion and EXIF rotation.
    for name in ("cmyk.jpg", "rotated.jpg", "pic.png"):
        assert got[name].error is None and got[name].data.shape == (32, 32, 3), name
    assert got["fake.jpg"].error is not None and "cannot decode" in got["fake.jpg"].error
    audio = decode(9, str(files / "pic.png"), "audio", False)
    assert audio.error is not None  # other modalities go straight to the CPU decoder


def test_batched_jpeg_decode_matches_pillow_and_flags_what_it_cannot_decode(files):
    from indexing.gpu_decode import decode_jpeg_batch

    blobs = [np.frombuffer((files / n).read_bytes(), np.uint8)
             for n in ("plain.jpg", "grey.jpg", "fake.jpg")]
    out = decode_jpeg_batch(blobs, "cpu")
    assert out[2] is None
    plain = out[0].permute(1, 2, 0).numpy()
    with Image.open(files / "plain.jpg") as img:
        ref = np.asarray(img.convert("RGB"))
    assert plain.shape == ref.shape
    assert np.abs(plain.astype(int) - ref.astype(int)).max() <= 2  # libjpeg builds may differ by 1
    assert out[1].shape == (3, 120, 160)  # grey comes out as RGB


def test_encoded_jpegs_embed_like_cpu_decoded_ones(tiny_clip, files):
    """The device-decode branch, run on CPU: same model input path, nearly the same vectors."""
    from indexing.embedders.clip import create
    from indexing.gpu_decode import EncodedJpegDecoder

    emb = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")
    assert not isinstance(emb.decoder(), EncodedJpegDecoder)  # on CPU the CPU decoder is used
    encoded = emb.gpu_decoder()
    paths = [files / "plain.jpg", files / "grey.jpg", files / "pic.png"]
    enc = [encoded(i, str(p), "image", False) for i, p in enumerate(paths)]
    cpu = [emb.cpu_decoder()(i, str(p), "image", False) for i, p in enumerate(paths)]
    a, b = emb.embed_batch(enc).vectors, emb.embed_batch(cpu).vectors
    assert a.shape == (3, tiny_clip.dim)
    np.testing.assert_array_equal(a[2], b[2])  # the PNG took the CPU path in both
    assert np.all(np.sum(a * b, axis=1) > 0.97)  # full decode + torch resize vs DCT draft + PIL


def test_undecodable_encoded_jpeg_fails_only_as_an_error(tiny_clip, files):
    from indexing.embedders.clip import create

    emb = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")
    bad = Decoded(1, "image", data=np.frombuffer(b"\xff\xd8\xff\xe0junk", np.uint8))
    with pytest.raises(OSError):  # Pillow's "cannot identify image file" after the device failed
        emb.embed_batch([bad])


def test_bf16_casts_the_weights_themselves_on_cpu(tiny_clip, monkeypatch):
    import torch

    import indexing.embedders.weights as weights
    from indexing.embedders.clip import create

    # As on a CPU with native bf16 (AVX512-BF16/AMX); elsewhere the weights stay fp32.
    monkeypatch.setattr(weights, "cpu_has_native_bf16", lambda: True)

    bf16 = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu",
                  precision="bf16")
    fp32 = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    rng = np.random.default_rng(0)
    batch = [Decoded(i, "image", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
             for i in range(3)]
    low, full = bf16.embed_batch(batch).vectors, fp32.embed_batch(batch).vectors
    assert low.dtype == np.float32 and np.all(np.sum(low * full, axis=1) > 0.95)
    text = bf16.embed_text(["a photo"])
    assert text.dtype == np.float32 and abs(np.linalg.norm(text) - 1) < 1e-3


def test_weight_dtype_follows_the_device(monkeypatch):
    import torch

    import indexing.embedders.weights as weights
    from indexing.embedders.weights import weight_dtype

    assert weight_dtype("cpu", "fp32") is None
    assert weight_dtype("cpu", "fp16") is None  # no fp16 kernels worth having on CPU
    monkeypatch.setattr(weights, "cpu_has_native_bf16", lambda: True)
    assert weight_dtype("cpu", "bf16") is torch.bfloat16
    monkeypatch.setattr(weights, "cpu_has_native_bf16", lambda: False)
    assert weight_dtype("cpu", "bf16") is None  # emulated bf16 would be slower than fp32
    assert weight_dtype("mps", "fp16") is torch.float16
    assert weight_dtype("cuda:1", "fp16") is torch.float16


# --- on a GPU ----------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_embeds_in_half_weights_close_to_cpu(tiny_clip, files, precision):
    import torch

    from indexing.embedders.clip import create
    from indexing.gpu_decode import EncodedJpegDecoder

    gpu = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cuda:0",
                 precision=precision)
    cpu = create(model=tiny_clip.arch, weights=tiny_clip.safetensors, device="cpu")
    want = torch.float16 if precision == "fp16" else torch.bfloat16
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        want = torch.float32
    assert {p.dtype for p in gpu.model.parameters()} == {want}
    decode = gpu.decoder()
    assert isinstance(decode, EncodedJpegDecoder)  # JPEGs are decoded on the GPU
    paths = [files / "plain.jpg", files / "grey.jpg", files / "cmyk.jpg", files / "pic.png"]
    items = [decode(i, str(p), "image", True) for i, p in enumerate(paths)]
    a = gpu.embed_batch(items).vectors
    b = cpu.embed_batch([cpu.decoder()(i, str(p), "image", False)
                         for i, p in enumerate(paths)]).vectors
    assert np.all(np.sum(a * b, axis=1) > 0.95)


@pytest.mark.gpu
@needs_cuda
def test_nvjpeg_batch_decode_matches_cpu_decode(files):
    from indexing.gpu_decode import decode_jpeg_batch

    blobs = [np.frombuffer((files / "plain.jpg").read_bytes(), np.uint8)] * 8
    gpu = decode_jpeg_batch(blobs, "cuda")
    cpu = decode_jpeg_batch(blobs[:1], "cpu")[0]
    assert all(t.is_cuda and t.shape == cpu.shape for t in gpu)
    assert (gpu[0].cpu().int() - cpu.int()).abs().max() <= 3


def test_search_beyond_the_gpu_k_limit_uses_the_cpu_copy():
    """A GPU index answers at most 2,048 neighbours; a larger k (a modality filter asks k*4)
    must be answered from the CPU index instead of failing."""
    from indexing.vector_index import GPU_MAX_K, VectorIndex

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    index = VectorIndex.build(np.arange(3000, dtype=np.int64) + 1, x, kind="flat", gpu=False)

    class GpuCopy:  # stands for the GPU index: it refuses k above the limit, as faiss GPU does
        calls: list[int] = []

        def search(self, q, k):
            GpuCopy.calls.append(k)
            if k > GPU_MAX_K:
                raise RuntimeError("GPU index only supports k <= 2048")
            return index._index.search(q, k)

    index._gpu, index._gpu_index = True, GpuCopy()
    scores, ids = index.search(x[0], k=2500)
    assert ids.shape == (1, 2500) and ids[0, 0] == 1 and GpuCopy.calls == []
    index.search(x[0], k=10)
    assert GpuCopy.calls == [10]  # small k still goes to the GPU copy


@pytest.mark.gpu
@needs_cuda
def test_faiss_gpu_index_answers_k_above_2048_when_faiss_has_gpus():
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        pytest.skip("this faiss has no GPU support (see `curator doctor`)")
    from indexing.vector_index import VectorIndex

    rng = np.random.default_rng(1)
    x = rng.standard_normal((5000, 32)).astype(np.float32)
    index = VectorIndex.build(np.arange(5000, dtype=np.int64), x, kind="flat", gpu=True)
    assert index.search(x[:2], k=10)[1][0, 0] == 0
    assert index.search(x[:2], k=4000)[1].shape == (2, 4000)
