"""Where model weights live: the Hugging Face cache, local checkpoint files, offline checks,
device."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from indexing.embedders.base import EmbedderUnavailable

log = logging.getLogger(__name__)

HF_HOST = "huggingface.co"
OFFLINE_ENV_VARS = ("CURATOR_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_S = 2.0
# open_clip's default names for a weights file in a Hub repo (open_clip.constants).
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP_CONFIG = "open_clip_config.json"
# transformers' weight file names, safest first.
HF_MODEL_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TRUE = {"1", "true", "yes", "on"}


# --- caches -------------------------------------------------------------------------------------


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time.

    huggingface_hub reads HF_HOME once at import; reading it here instead means a changed
    environment (a test, a CLI flag that sets HF_HOME) is honoured.

    Returns:
        HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else
        $XDG_CACHE_HOME/huggingface/hub (default ~/.cache/huggingface/hub).
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    if os.environ.get("HF_HOME"):
        home = Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = Path(xdg).expanduser() / "huggingface"
    return home / "hub"


def _repo_folder(cache_dir: Path, repo_id: str) -> Path:
    # The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}.
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def cached_hf_file(repo_id: str, filename: str, cache_dir: Path | None = None) -> Path | None:
    """The local copy of one file of a Hub repo, or None when it is not in the cache.

    Looks where `hf_hub_download` would (refs/main → snapshots/<rev>/filename), then in any
    other snapshot of the repo (a copy made at a pinned revision has no refs/main).

    Args:
        repo_id: "org/name".
        filename: path of the file inside the repo.
        cache_dir: the hub cache folder; default `hf_cache_dir()`.

    Returns:
        The file's path, or None.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir))
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    except ImportError:
        pass
    except ValueError as exc:  # an invalid repo id or file name: nothing can be cached under it
        log.debug("cache lookup %s/%s: %s", repo_id, filename, exc)
        return None
    snapshots = _repo_folder(cache_dir, repo_id) / "snapshots"
    candidates = [p for p in snapshots.glob(f"*/{filename}") if p.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime)


def find_cached_hf_model(
    repo_id: str,
    cache_dir: Path | None = None,
    required: Sequence[str] = ("config.json",),
    any_of: Sequence[str] = (),
) -> Path | None:
    """The snapshot folder of a cached Hub repo holding the files a model needs, or None.

    Args:
        repo_id: "org/name".
        cache_dir: the hub cache folder; default `hf_cache_dir()`.
        required: files that must all be in the snapshot.
        any_of: files of which at least one must be there (e.g. the weight file names);
            empty means no such condition.

    Returns:
        The snapshot folder (the one refs/main names when it qualifies, else the newest).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    repo = _repo_folder(cache_dir, repo_id)
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None

    def ok(folder: Path) -> bool:
        if not folder.is_dir() or not any(folder.iterdir()):
            return False
        if not all((folder / name).is_file() for name in required):
            return False
        return not any_of or any((folder / name).is_file() for name in any_of)

    main = repo / "refs" / "main"
    if main.is_file():
        folder = snapshots / main.read_text().strip()
        if ok(folder):
            return folder
    folders = sorted((f for f in snapshots.iterdir() if ok(f)), key=lambda f: f.stat().st_mtime)
    return folders[-1] if folders else None


def clip_weight_candidates(arch: str, tag: str) -> tuple[str | None, list[str], str]:
    """Where open_clip would fetch the weights of a pretrained tag from.

    Args:
        arch: an open_clip architecture name, e.g. "ViT-B-32".
        tag: a pretrained tag of it, e.g. "laion2b_s34b_b79k".

    Returns:
        (hub repo id or None, file names in the order open_clip tries them, download URL or "").
    """
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch, tag)
    hub = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    if not hub:
        return None, [], url
    # Same split as open_clip: "org/repo/" names the default file, "org/repo/file.bin" a file.
    repo_id, filename = os.path.split(hub)
    if not filename:
        return repo_id, list(OPEN_CLIP_WEIGHTS), url
    # open_clip prefers a .safetensors sibling of a .bin/.pth file when the repo has one.
    names = [filename]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return repo_id, names, url


def url_cache_dir(cache_dir: Path | None = None) -> Path:
    """Where open_clip keeps weights it downloads from a plain URL (default ~/.cache/clip)."""
    return Path(cache_dir) if cache_dir is not None else Path("~/.cache/clip").expanduser()


def find_cached_clip_file(
    arch: str, tag: str, cache_dir: Path | None = None
) -> Path | None:
    """The local weights file of an open_clip pretrained tag, or None when absent.

    Args:
        arch: architecture name.
        tag: pretrained tag.
        cache_dir: open_clip's cache_dir (used as the hub cache and the URL cache, as open_clip
            does); default the Hugging Face cache and ~/.cache/clip.
    """
    repo_id, names, url = clip_weight_candidates(arch, tag)
    if repo_id:
        for name in names:
            found = cached_hf_file(repo_id, name, Path(cache_dir) if cache_dir else None)
            if found is not None:
                return found
    if url:
        target = url_cache_dir(cache_dir) / os.path.basename(urllib.parse.urlsplit(url).path)
        if target.is_file():
            return target
    return None


def find_cached_clip_weights(cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Which open_clip models have their weights on this machine (for `curator doctor`).

    Checks every pretrained tag open_clip knows at the exact place open_clip would look, and
    every "hf-hub:" open_clip repo in the hub cache (a folder with open_clip_config.json and
    a weights file). Reads no weights and touches no network.

    Args:
        cache_dir: the hub cache folder; default `hf_cache_dir()`.

    Returns:
        One dict per usable model: {"model": model string, "file": path, "size": bytes},
        sorted by model string.
    """
    from open_clip.pretrained import list_pretrained

    hub = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    found: dict[str, dict[str, Any]] = {}
    for arch, tag in list_pretrained():
        path = find_cached_clip_file(arch, tag, hub if cache_dir is not None else None)
        if path is not None:
            model = f"{arch}/{tag}"
            found[model] = {"model": model, "file": str(path), "size": path.stat().st_size}
    if hub.is_dir():
        for repo in hub.glob("models--*"):
            repo_id = repo.name[len("models--"):].replace("--", "/", 1)
            snap = find_cached_hf_model(
                repo_id, hub, required=(OPEN_CLIP_CONFIG,), any_of=OPEN_CLIP_WEIGHTS
            )
            if snap is None:
                continue
            weights = next(snap / n for n in OPEN_CLIP_WEIGHTS if (snap / n).is_file())
            model = f"hf-hub:{repo_id}"
            found[model] = {"model": model, "file": str(weights), "size": weights.stat().st_size}
    return [found[k] for k in sorted(found)]


def read_open_clip_config(folder: Path) -> dict[str, Any]:
    """The parsed open_clip_config.json of a folder ({"model_cfg": ..., "preprocess_cfg": ...})."""
    with open(Path(folder) / OPEN_CLIP_CONFIG, encoding="utf-8") as f:
        return json.load(f)


# --- offline ------------------------------------------------------------------------------------


def offline_requested(offline: bool | None = None) -> str | None:
    """Why the network must not be used, or None when it may be.

    Args:
        offline: True forces offline, False allows the network whatever the environment says,
            None reads CURATOR_OFFLINE, HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE.

    Returns:
        A short reason such as "HF_HUB_OFFLINE is set", or None.
    """
    if offline is True:
        return "offline mode was asked for"
    if offline is False:
        return None
    for var in OFFLINE_ENV_VARS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    return None


def network_reachable(
    host: str = HF_HOST, timeout: float = PROBE_TIMEOUT_S, port: int = 443
) -> bool:
    """Whether a TCP connection to `host:port` opens within `timeout` seconds.

    The probe runs in a daemon thread so that a slow DNS lookup (which ignores socket
    timeouts) cannot hold the caller longer than `timeout`.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name=f"probe-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_endpoint() -> tuple[str, int]:
    """The host and port a Hub download would connect to first (proxy, mirror or huggingface.co)."""
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        if os.environ.get(var):
            parts = urllib.parse.urlsplit(os.environ[var])
            if parts.hostname:
                return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or f"https://{HF_HOST}")
    return endpoint.hostname or HF_HOST, endpoint.port or (80 if endpoint.scheme == "http" else 443)


def why_no_download(offline: bool | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why weights cannot be downloaded now (offline asked, or the Hub unreachable), else None."""
    reason = offline_requested(offline)
    if reason:
        return reason
    host, port = hub_endpoint()
    if not network_reachable(host, timeout, port):
        return f"{host}:{port} cannot be reached (no answer within {timeout:g} s)"
    return None


MISSING_WEIGHTS = "weights are not on this machine and cannot be downloaded"


def is_missing_weights(exc: BaseException) -> bool:
    """Whether an EmbedderUnavailable says only that the weights are absent (not a bad model)."""
    return MISSING_WEIGHTS in str(exc)


def missing_weights_message(
    what: str,
    reason: str,
    cache_dir: Path,
    downloads: Iterable[tuple[str, str]] = (),
    weights_flag: bool = True,
    classic_flag: str = "--model classic",
) -> str:
    """The one message shown when weights are absent and cannot be fetched.

    Args:
        what: the model, e.g. "open_clip model ViT-B-32/laion2b_s34b_b79k".
        reason: why nothing was downloaded (from `why_no_download`).
        cache_dir: the hub cache folder that was searched.
        downloads: (repo id, file name or "") pairs to fetch on a connected machine.
        weights_flag: whether to suggest `--weights FILE`.
        classic_flag: the flag that chooses the weight-free embedder for this model's modality
            (`--audio-model classic` for an audio model).
    """
    cmds = [f"hf download {repo}" + (f" {name}" if name else "") for repo, name in downloads]
    lines = [
        f"{what}: {MISSING_WEIGHTS} ({reason}).",
        f"Looked in the Hugging Face cache at {cache_dir} (set HF_HOME or HF_HUB_CACHE to use "
        "another).",
    ]
    if cmds:
        lines.append(
            "To place them there: on a connected machine run "
            + " and ".join(f"`{c}`" for c in cmds)
            + " (older huggingface_hub: `huggingface-cli download ...`), then copy that machine's "
            f"hub cache folder (~/.cache/huggingface/hub) to {cache_dir}."
        )
    if weights_flag:
        lines.append("Or pass a local checkpoint with `--weights FILE`.")
    lines.append(f"Or use `{classic_flag}`, which needs no weights.")
    return "\n".join(lines)


# --- checkpoint files ---------------------------------------------------------------------------


def file_sha256(path: os.PathLike | str) -> str:
    """The hex SHA-256 of a file (remembered per path, size and modification time)."""
    st = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_sha256(path: Path) -> str | None:
    """The SHA-256 a hub cache already names a file by (its blob), without reading it; else None."""
    name = Path(path).resolve().name
    return name if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else None


def load_state_dict_file(path: os.PathLike | str) -> dict[str, Any]:
    """Read a checkpoint file into a plain state_dict of tensors, safely.

    Accepts .safetensors, or a torch file read with `torch.load(weights_only=True)` holding a
    state_dict or {"state_dict": ...}. A "module." prefix (DataParallel / DDP) is removed.

    Raises:
        EmbedderUnavailable: the file is missing, unreadable, or not a state_dict.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise EmbedderUnavailable(f"weights file {path} does not exist; check the --weights path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint: Any = load_file(str(path), device="cpu")
        else:
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EmbedderUnavailable(
            f"cannot read weights file {path} ({type(exc).__name__}: {str(exc)[:300]}); "
            "use a .safetensors file or a torch file holding a plain state_dict"
        ) from exc
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise EmbedderUnavailable(
            f"weights file {path} holds {type(checkpoint).__name__}, not a state_dict of tensors"
        )
    tensors = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise EmbedderUnavailable(f"weights file {path} holds no tensors")
    return {(k.removeprefix("module.")): v for k, v in tensors.items()}


# --- device and precision -----------------------------------------------------------------------

PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(device: str = "auto") -> str:
    """The torch device to run on: "auto" picks cuda, then mps, then cpu.

    Raises:
        EmbedderUnavailable: an explicit device that is not available here.
    """
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise EmbedderUnavailable(f"device {device!r} asked for, but CUDA is not available; use "
                                  "--device cpu")
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise EmbedderUnavailable(f"device {device!r} asked for, but MPS is not available; use "
                                  "--device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise EmbedderUnavailable(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """The precision to use on `device`: fp16 on cpu falls back to fp32 with a warning.

    Raises:
        EmbedderUnavailable: an unknown precision name.
    """
    precision = (precision or "fp32").lower()
    if precision not in PRECISIONS:
        raise EmbedderUnavailable(f"unknown precision {precision!r}; use one of "
                                  f"{', '.join(PRECISIONS)}")
    if precision == "fp16" and device.startswith("cpu"):
        log.warning("fp16 is not supported on cpu; using fp32 instead")
        return "fp32"
    return precision


def autocast(device: str, precision: str) -> AbstractContextManager:
    """The mixed-precision context for a forward pass (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    try:
        return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
    except RuntimeError as exc:  # an older torch without autocast for this device type
        log.warning("no %s autocast on %s (%s); running in fp32", precision, device, exc)
        return nullcontext()


def weight_dtype(device: str, precision: str) -> Any:
    """The torch dtype to cast a model's weights to, or None to keep them in fp32.

    fp16 halves the weights on CUDA and MPS; bf16 on CUDA where the GPU supports it (Ampere and
    newer) and on CPUs with native bf16 instructions (AVX512-BF16, AMX; elsewhere bf16 matrix
    products are emulated and several times slower than fp32). Otherwise the run keeps fp32
    weights under autocast.
    """
    if precision == "fp32":
        return None
    import torch

    kind = device.split(":")[0]
    if precision == "fp16":
        return torch.float16 if kind in ("cuda", "mps") else None
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if kind == "cpu" and cpu_has_native_bf16() else None


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (Linux: the avx512_bf16 or amx_bf16 flag)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
