"""Near-duplicate precision and recall on planted copies, at the default (calibrated) threshold.

    python bench/dedup.py [--images 120] [--sounds 60] [--videos 12] [--tiny-clip] [--keep DIR]

Builds a corpus of distinct media (random shapes and colours; chirps of random pitch, sweep and
length; short clips), then plants copies of some of them: images re-encoded (JPEG q=60), resized
(50%), cropped (90% centre) and recoloured (+12% brightness); sounds re-encoded (WAV -> FLAC) and
trimmed (last 10% cut); videos re-muxed (MP4 -> MKV, packets copied). The project is scanned,
embedded and searched with `Project.find_duplicates()` (auto threshold, and the old fixed 0.95),
and every near pair is scored against the planted pairs: precision (found pairs that are
planted) and recall per kind of copy. `--tiny-clip` also embeds images and video frames with a
tiny random open_clip model: only the plumbing, a random network places copies anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.project import Project  # noqa: E402
from curator.scan import ScanOptions  # noqa: E402

TINY_CLIP_ARCH = "CuratorBenchTiny-ViT"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def _image(rng: np.random.Generator, size=(160, 120)):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 20))
        box = [x0, y0, x0 + int(rng.integers(10, 80)), y0 + int(rng.integers(10, 60))]
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return img


def _chirp(rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    seconds = float(rng.uniform(0.8, 2.0))
    t = np.arange(int(seconds * rate)) / rate
    f0, f1 = float(rng.uniform(200, 2000)), float(rng.uniform(200, 4000))
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    return (0.3 * np.sin(phase) * np.hanning(len(t))).astype(np.float32)


def _write_audio(path: Path, wave: np.ndarray, rate: int = 16000) -> None:
    """WAV with the standard library; FLAC (a lossless re-encode) with PyAV."""
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2")
    if path.suffix == ".wav":
        import wave as wav

        with wav.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm.tobytes())
        return
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _video(path: Path, rng: np.random.Generator, frames: int = 12) -> None:
    import av

    colour = rng.integers(0, 255, 3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):
            arr = np.zeros((64, 96, 3), np.uint8) + colour.astype(np.uint8)
            arr[:, (i * 6) % 96:(i * 6) % 96 + 12] = 255 - colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _remux(src: Path, dst: Path) -> None:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)


def build(root: Path, n_images: int, n_sounds: int, n_videos: int, seed: int = 0
          ) -> dict[str, list[tuple[str, str]]]:
    """Write the corpus; returns planted (original, copy) relative paths per kind of copy."""
    from PIL import ImageEnhance

    rng = np.random.default_rng(seed)
    planted: dict[str, list[tuple[str, str]]] = {}

    def plant(kind: str, original: str, copy: str) -> None:
        planted.setdefault(kind, []).append((original, copy))

    (root / "images").mkdir(parents=True)
    (root / "copies").mkdir()
    for i in range(n_images):
        img = _image(rng)
        name = f"images/{i:04d}.png"
        img.save(root / name)
        if i % 4 == 0:
            kind = ("re-encoded", "resized", "cropped", "recoloured")[(i // 4) % 4]
            copy = f"copies/{i:04d}-{kind}.jpg"
            if kind == "re-encoded":
                img.save(root / copy, quality=60)
            elif kind == "resized":
                img.resize((img.width // 2, img.height // 2)).save(root / copy, quality=90)
            elif kind == "cropped":
                w, h = img.size
                img.crop((w // 20, h // 20, w - w // 20, h - h // 20)).save(root / copy,
                                                                             quality=90)
            else:
                ImageEnhance.Brightness(img).enhance(1.12).save(root / copy, quality=90)
            plant(f"image {kind}", name, copy)
    (root / "sounds").mkdir()
    for i in range(n_sounds):
        wave = _chirp(rng)
        name = f"sounds/{i:04d}.wav"
        _write_audio(root / name, wave)
        if i % 3 == 0:
            kind = ("re-encoded", "trimmed")[(i // 3) % 2]
            copy = f"copies/{i:04d}-{kind}." + ("flac" if kind == "re-encoded" else "wav")
            _write_audio(root / copy, wave if kind == "re-encoded" else wave[:int(len(wave) * .9)])
            plant(f"audio {kind}", name, copy)
    (root / "videos").mkdir()
    for i in range(n_videos):
        name = f"videos/{i:04d}.mp4"
        _video(root / name, rng)
        if i % 3 == 0:
            copy = f"copies/{i:04d}-remuxed.mkv"
            _remux(root / name, root / copy)
            plant("video re-muxed", name, copy)
    return planted


def score(project: Project, planted: dict[str, list[tuple[str, str]]], threshold) -> dict:
    """Precision over all near pairs found, recall per kind of planted copy."""
    report = project.find_duplicates(threshold=threshold, outliers=0)
    paths = {r["id"]: r["path"] for r in project.items()}
    found = set()
    for group in report.groups:
        for a, b in itertools.combinations(sorted(group.items), 2):
            found.add(frozenset((paths[a], paths[b])))
    truth = {frozenset(p) for pairs in planted.values() for p in pairs}
    true_pos = len(found & truth)
    recall = {kind: sum(frozenset(p) in found for p in pairs) / len(pairs)
              for kind, pairs in planted.items()}
    return {"pairs found": len(found), "true": true_pos,
            "precision": true_pos / len(found) if found else 1.0, "recall": recall,
            "thresholds": report.params.get("thresholds", {})}


def _tiny_clip(folder: Path) -> tuple[str, str]:
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "configs" / f"{TINY_CLIP_ARCH}.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(folder / "configs")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP_ARCH, pretrained=None)
    path = folder / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return TINY_CLIP_ARCH, str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--sounds", type=int, default=60)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--tiny-clip", action="store_true")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-dedup-"))
    try:
        started = time.perf_counter()
        planted = build(base / "media", args.images, args.sounds, args.videos)
        spaces = [("classic", ("classic", "classic", {}))]
        if args.tiny_clip:
            arch, weights = _tiny_clip(base / "clip")
            spaces.append(("tiny random CLIP", (arch, "classic", {"weights": weights})))
        for title, (model, audio, extra) in spaces:
            root = base / f"project-{title.split()[0]}"
            with Project.create(root, [base / "media"]) as project:
                project.scan(ScanOptions(workers=0))
                project.embed(model, audio, workers=0, offline=True, **extra)
                print(f"\n{title} ({time.perf_counter() - started:.0f} s):")
                for label, threshold in (("auto", None), ("fixed 0.95", 0.95)):
                    s = score(project, planted, threshold)
                    print(f"  {label:<10} precision {s['precision']:.3f} "
                          f"({s['true']} of {s['pairs found']} pairs planted)")
                    for kind, r in s["recall"].items():
                        print(f"      recall {kind:<18} {r:.2f}")
                    if s["thresholds"]:
                        print("      thresholds: " + ", ".join(
                            f"{k} {v:.4f}" for k, v in s["thresholds"].items()))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
