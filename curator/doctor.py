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
    faiss_info: dict[str, Any] = {"faiss": _version("faiss")}
    try:
        import faiss

        faiss_info["gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except Exception:  # noqa: BLE001
        pass
    report["faiss"] = faiss_info
    report["clip weights (local cache)"] = _weights()
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
        return [f"none found in {hf_cache_dir()}; `curator embed` will use --model classic "
                "unless you place weights there or pass --weights FILE"]
    return [f"{w.get('model')}: {w.get('file')}" for w in found]
