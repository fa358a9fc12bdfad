"""`curator doctor`: what this machine offers Curator (runtimes, GPU, weights, Qt, FFmpeg)."""

from __future__ import annotations

import importlib
import logging
import os
import platform
import sys
from typing import Any

log = logging.getLogger(__name__)


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken install is exactly what doctor reports
        return f"not available ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return str(getattr(mod, "__version__", "installed"))


def collect() -> dict[str, Any]:
    """Everything doctor reports, as plain data (also the `--json` output)."""
    report: dict[str, Any] = {}
    report["python"] = {
        "version": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    torch_info: dict[str, Any] = {"torch": _version("torch")}
    try:
        import torch

        torch_info["cuda available"] = torch.cuda.is_available()
        torch_info["cuda version"] = torch.version.cuda
        if torch.cuda.is_available():
            torch_info["gpus"] = [torch.cuda.get_device_name(i)
                                  for i in range(torch.cuda.device_count())]
        mps = getattr(torch.backends, "mps", None)
        torch_info["mps available"] = bool(mps and mps.is_available())
    except Exception:  # noqa: BLE001
        pass
    torch_info["open_clip"] = _version("open_clip")
    torch_info["transformers"] = _version("transformers")
    report["models"] = torch_info
    report["faiss"] = faiss_report(torch_info.get("cuda available") is True)
    report["ray"] = {"ray": _version("ray"),
                     "use": "curator embed PROJECT --ray [ADDRESS] (pip install 'curator[ray]')"}
    report["clip weights (local cache)"] = _weights()
    report["curator embed (with your settings)"] = embed_plan()
    qt: dict[str, Any] = {"PySide6": _version("PySide6")}
    qt["QT_QPA_PLATFORM"] = os.environ.get("QT_QPA_PLATFORM", "(default)")
    qt["display"] = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "none"
    report["qt"] = qt
    media: dict[str, Any] = {"PyAV": _version("av"), "Pillow": _version("PIL")}
    try:
        import av

        media["FFmpeg"] = ", ".join(
            f"{name} {'.'.join(map(str, v[0:3]))}" if isinstance(v, tuple) else f"{name} {v}"
            for name, v in sorted(av.library_versions.items())[:3]
        )
    except Exception:  # noqa: BLE001
        pass
    report["media"] = media
    return report


#: The pip distributions that install the `faiss` module, and whether they have GPU support.
FAISS_DISTRIBUTIONS = {"faiss-cpu": False, "faiss-gpu-cu12": True, "faiss-gpu-cu11": True,
                       "faiss-gpu": True}
# 1.14.0 is the first faiss-gpu-cu12 with ClusteringInitMethod_AFK_MC2 (docs/packaging.md).
FAISS_SWAP = "pip uninstall -y faiss-cpu && pip install 'faiss-gpu-cu12>=1.14'"


def faiss_report(cuda: bool) -> dict[str, Any]:
    """Which faiss build is installed, whether it can use a GPU, and what to install if not.

    Args:
        cuda: whether torch sees a CUDA GPU here (a GPU build is only worth it then).
    """
    from importlib import metadata

    info: dict[str, Any] = {"faiss": _version("faiss")}
    installed = []
    for dist in FAISS_DISTRIBUTIONS:
        try:
            installed.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    info["installed"] = ", ".join(installed) or "none"
    try:
        import faiss
    except Exception:  # noqa: BLE001 - reported above as not available
        info["build"] = "none"
        info["advice"] = "pip install faiss-cpu" + (" (or faiss-gpu-cu12 for this GPU)" if cuda
                                                   else "")
        return info
    gpu_build = hasattr(faiss, "StandardGpuResources")
    gpus = faiss.get_num_gpus() if gpu_build else 0
    info["build"] = "GPU support" if gpu_build else "CPU only (no GPU support in this build)"
    info["gpus"] = gpus
    if len(installed) > 1:
        info["advice"] = (f"{' and '.join(installed)} both install the faiss module and "
                          "overwrite each other; keep one: " + FAISS_SWAP)
    elif not gpu_build and cuda:
        info["advice"] = ("this machine has a CUDA GPU but faiss is CPU-only; for GPU k-means "
                          "and search: " + FAISS_SWAP)
    elif gpu_build and gpus == 0:
        info["advice"] = "the GPU build sees no GPU (driver or CUDA_VISIBLE_DEVICES?)"
    elif not gpu_build:
        info["advice"] = f"none (no CUDA GPU here); on a GPU machine: {FAISS_SWAP}"
    else:
        info["advice"] = "none"
    return info


def _weights() -> list[str]:
    try:
        from indexing.embedders.weights import find_cached_clip_weights, hf_cache_dir
    except ImportError:
        return ["(weight lookup not available)"]
    try:
        found = find_cached_clip_weights()
    except Exception as exc:  # noqa: BLE001
        return [f"lookup failed: {exc}"]
    if not found:
        return [f"none found in {hf_cache_dir()}"]
    return [f"{w.get('model')}: {w.get('file')}" for w in found]


def embed_plan(probe_network: bool = True) -> list[str]:
    """What a bare `curator embed` does here, per modality: the models the settings choose
    (config file, CURATOR_* environment), resolved as `embed` resolves them, and, where it would
    stop, the flag that fixes it."""
    from curator.model_check import check_models
    from curator.pipeline import IndexOptions

    try:
        options = IndexOptions.from_settings()
    except Exception as exc:  # noqa: BLE001 - a broken config is what doctor must report
        return [f"the settings cannot be read: {exc}"]
    audio = options.audio_model
    if options.model == "classic" and audio == IndexOptions().audio_model:
        audio = "classic"  # as `embed`: --model classic means classic for every modality
    checks = check_models(options.model, audio, options.weights,
                          offline=options.offline or None, probe_network=probe_network)
    lines = [c.embed_line() for c in checks]
    if any(c.status == "missing" for c in checks):
        lines.append("`curator embed PROJECT --model classic` runs every modality without "
                     "weights")
    return lines
