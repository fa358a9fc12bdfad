"""Where an open_clip model comes from: model strings, hf-hub repos, local weights, offline caches.

`resolve_clip_source` turns a model string (`ViT-B-32/laion2b_s34b_b79k`, `hf-hub:org/repo`) and
optional weights into a `ClipSource` naming local files only, or says which file is missing and
where it was looked for; it never downloads when offline.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexing.embedders.base import EmbedderUnavailable
from indexing.embedders.defaults import DEFAULT_MODELS
from indexing.embedders.weights import (
    OPEN_CLIP_CONFIG,
    OPEN_CLIP_WEIGHTS,
    blob_sha256,
    cached_hf_file,
    clip_weight_candidates,
    file_sha256,
    find_cached_clip_file,
    find_cached_hf_model,
    hf_cache_dir,
    missing_weights_message,
    read_open_clip_config,
    url_cache_dir,
    why_no_download,
)

HF_HUB_PREFIX = "hf-hub:"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


@dataclass(frozen=True)
class ClipSource:
    """Where one open_clip model comes from, resolved to local files before anything loads.

    Attributes:
        model_string: the canonical model string ("ARCH/tag", "hf-hub:org/repo" or "ARCH").
        space: the embedding space id (includes a weights hash for a local checkpoint).
        arch: built-in architecture name, or None for an "hf-hub:" model.
        config_dir: the folder holding open_clip_config.json for an "hf-hub:" model.
        weights: the local weights file.
        weights_sha256: its SHA-256 when known without reading it (hub blob) or computed.
        preprocess: preprocessing overrides from the pretrained tag (mean, std, ...).
        quick_gelu: whether the weights were trained with QuickGELU.
        text_cfg: the text tower config with Hub references replaced by local folders, or None
            when nothing needed replacing.
    """

    model_string: str
    space: str
    arch: str | None
    config_dir: Path | None
    weights: Path
    weights_sha256: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool = False
    text_cfg: dict[str, Any] | None = None


def broken_torch_message(what: str, exc: BaseException) -> str:
    """The one line for torch, torchvision and open_clip installed but failing to load together
    (e.g. "operator torchvision::nms does not exist": torchvision built for another torch)."""
    return (f"{what}: torch, torchvision or open_clip is installed but does not load ({exc}); "
            "reinstall torch and torchvision as a matching pair, or use the classic embedder")


def parse_model_string(model: str) -> tuple[str, str, str]:
    """Split a model string into (kind, arch or repo, tag).

    Args:
        model: "ARCH/TAG" (also "ARCH:TAG"), "hf-hub:org/repo" or "ARCH".

    Returns:
        ("hub", "org/repo", ""), ("tag", ARCH, TAG) or ("arch", ARCH, "").
    """
    model = (model or "").strip()
    if model.startswith(HF_HUB_PREFIX):
        return "hub", model[len(HF_HUB_PREFIX):].strip("/"), ""
    for sep in ("/", ":"):
        if sep in model:
            arch, _, tag = model.partition(sep)
            return "tag", arch, tag
    return "arch", model, ""


def _check_arch(arch: str) -> None:
    import open_clip

    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()"
        raise EmbedderUnavailable(f"open_clip has no architecture {arch!r}{hint}")


def _check_tag(arch: str, tag: str) -> str:
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    if not get_pretrained_cfg(arch, tag):
        tags = list_pretrained_tags_by_model(arch)
        hint = (
            f"its tags: {', '.join(tags)}"
            if tags
            else "it has no pretrained tags; pass --weights FILE"
        )
        raise EmbedderUnavailable(f"open_clip has no pretrained weights {arch}/{tag}; {hint}")
    return tag.lower().replace("-", "_")  # open_clip's own tag normalisation


class _Downloads:
    """Decides once, lazily, whether downloading is allowed (the probe costs up to 2 s)."""

    def __init__(self, offline: bool | None) -> None:
        self._offline = offline
        self._reason: str | None = None
        self._checked = False

    def blocked(self) -> str | None:
        if not self._checked:
            self._reason = why_no_download(self._offline)
            self._checked = True
        return self._reason


def _hf_download(repo_id: str, names: Sequence[str], cache_dir: Path, what: str) -> Path:
    """Download the first of `names` that the repo has into the hub cache."""
    from huggingface_hub import hf_hub_download

    last: Exception | None = None
    for name in names:
        try:
            return Path(hf_hub_download(repo_id=repo_id, filename=name, cache_dir=str(cache_dir)))
        except Exception as exc:  # noqa: BLE001 - a missing alternative is expected; try the next
            last = exc
    raise EmbedderUnavailable(
        f"{what}: downloading {repo_id} ({' or '.join(names)}) failed: {last}. "
        "Pass a local checkpoint with `--weights FILE`, or use `--model classic`."
    )


def _localise_text_cfg(
    text_cfg: dict[str, Any], hub: Path, downloads: _Downloads, what: str
) -> dict[str, Any] | None:
    """Point an HF text tower / tokenizer at its cached folder so it loads without network."""
    names = {k: text_cfg.get(k) for k in ("hf_model_name", "hf_tokenizer_name") if text_cfg.get(k)}
    if not names:
        return None
    local = deepcopy(text_cfg)
    missing = []
    for key, repo in names.items():
        if Path(repo).expanduser().is_dir():
            continue
        if key == "hf_model_name":
            snap = find_cached_hf_model(repo, hub, required=("config.json",))
        else:
            snap = find_cached_hf_model(repo, hub, required=(), any_of=TOKENIZER_FILES)
        if snap is not None:
            local[key] = str(snap)
        elif repo not in missing:
            missing.append(repo)
    if "hf_model_name" in local:
        local["hf_model_pretrained"] = False  # the CLIP checkpoint carries the text tower weights
    if missing:
        reason = downloads.blocked()
        if reason:
            raise EmbedderUnavailable(
                missing_weights_message(what, reason, hub, [(r, "") for r in missing])
            )
    return local


def _hub_files(
    repo: str, need_weights: bool, hub: Path, downloads: _Downloads, what: str
) -> tuple[Path, Path | None]:
    """(open_clip_config.json, weights file or None) of an "hf-hub:" repo, cached or fetched."""
    cfg_file = cached_hf_file(repo, OPEN_CLIP_CONFIG, hub)
    found = None
    if need_weights:
        found = next(
            (f for f in (cached_hf_file(repo, n, hub) for n in OPEN_CLIP_WEIGHTS) if f), None
        )
    if cfg_file is not None and (found is not None or not need_weights):
        return cfg_file, found
    reason = downloads.blocked()
    if reason:
        wanted = [(repo, OPEN_CLIP_CONFIG)] if cfg_file is None else []
        if need_weights and found is None:
            wanted.append((repo, OPEN_CLIP_WEIGHTS[0]))
        raise EmbedderUnavailable(missing_weights_message(what, reason, hub, wanted))
    if cfg_file is None:
        cfg_file = _hf_download(repo, [OPEN_CLIP_CONFIG], hub, what)
    if need_weights and found is None:
        found = _hf_download(repo, OPEN_CLIP_WEIGHTS, hub, what)
    return cfg_file, found


def _tag_file(
    arch: str, tag: str, cache_dir: Path | None, hub: Path, downloads: _Downloads, what: str
) -> Path:
    """The weights file of a pretrained tag: where open_clip would find it, else fetched."""
    found = find_cached_clip_file(arch, tag, cache_dir)
    if found is not None:
        return found
    repo_id, names, url = clip_weight_candidates(arch, tag)
    reason = downloads.blocked()
    if reason:
        wanted = [(repo_id, names[-1])] if repo_id else []
        raise EmbedderUnavailable(missing_weights_message(what, reason, hub, wanted))
    if repo_id:
        return _hf_download(repo_id, names, hub, what)
    from open_clip.pretrained import download_pretrained_from_url

    try:
        return Path(download_pretrained_from_url(url, cache_dir=str(url_cache_dir(cache_dir))))
    except Exception as exc:
        raise EmbedderUnavailable(f"{what}: downloading {url} failed: {exc}") from exc


def resolve_clip_source(
    model: str = DEFAULT_MODELS["image"],
    weights: os.PathLike | str | None = None,
    cache_dir: os.PathLike | str | None = None,
    offline: bool | None = None,
) -> ClipSource:
    """Find (or, when allowed and needed, download) the files an open_clip model needs.

    Nothing is fetched when the weights are in the cache; when they are not and downloading
    is impossible (offline asked for, or the Hub unreachable within 2 s), this fails at once.

    Args:
        model: "ARCH/TAG", "hf-hub:org/repo", or "ARCH" together with `weights`.
        weights: a local checkpoint (.safetensors or a torch state_dict file).
        cache_dir: open_clip's cache_dir (hub cache and URL cache); default the HF cache.
        offline: True/False to force; None reads CURATOR_OFFLINE / HF_HUB_OFFLINE.

    Raises:
        EmbedderUnavailable: unknown model, or weights absent and not downloadable.
    """
    kind, name, tag = parse_model_string(model)
    if not name:
        raise EmbedderUnavailable(f"empty open_clip model string; try {DEFAULT_MODELS['image']!r}")
    user_cache = Path(cache_dir).expanduser() if cache_dir else None
    hub = user_cache or hf_cache_dir()
    downloads = _Downloads(offline)
    local_file = Path(weights).expanduser() if weights else None
    if local_file is not None and not local_file.is_file():
        raise EmbedderUnavailable(f"weights file {local_file} does not exist; check the --weights "
                                  "path")

    if kind == "hub":
        at = _locate_hub(name, local_file, hub, downloads)
    else:
        at = _locate_open_clip(kind, name, tag, local_file, user_cache, hub, downloads)
    canonical, what = at.canonical, at.what
    text_cfg = _localise_text_cfg(at.model_cfg.get("text_cfg", {}), hub, downloads, what)
    if local_file is not None:
        sha = file_sha256(local_file)
        space, weights_file = f"clip:{canonical}@weights:{sha[:8]}", local_file
    else:
        assert at.found is not None
        sha, space, weights_file = blob_sha256(at.found), f"clip:{canonical}", at.found
    return ClipSource(
        model_string=canonical,
        space=space,
        arch=at.arch,
        config_dir=at.config_dir,
        weights=weights_file,
        weights_sha256=sha,
        preprocess=at.preprocess,
        quick_gelu=at.quick_gelu,
        text_cfg=text_cfg,
    )


@dataclass
class _Located:
    """Where a model string led: its canonical name, its config and the files found so far."""

    canonical: str
    what: str
    model_cfg: dict[str, Any]
    found: Path | None = None
    arch: str | None = None
    config_dir: Path | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool = False


def _locate_hub(name: str, local_file: Path | None, hub: Path, downloads: _Downloads) -> _Located:
    """An hf-hub repo: its open_clip config and, unless local weights are given, its weights."""
    canonical = HF_HUB_PREFIX + name
    what = f"open_clip model {canonical}"
    cfg_file, found = _hub_files(name, local_file is None, hub, downloads, what)
    config_dir = cfg_file.parent
    model_cfg = read_open_clip_config(config_dir).get("model_cfg")
    if not isinstance(model_cfg, dict):
        raise EmbedderUnavailable(
            f"{what}: {cfg_file} has no model_cfg; it is not an open_clip repo"
        )
    return _Located(canonical, what, model_cfg, found=found, config_dir=config_dir)


def _locate_open_clip(kind: str, name: str, tag: str, local_file: Path | None,
                      user_cache: Path | None, hub: Path, downloads: _Downloads) -> _Located:
    """An architecture open_clip knows, with a pretrained tag or a local checkpoint."""
    try:
        import open_clip
        from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model
    except ImportError as exc:  # the lite desktop build has no torch or open_clip
        raise EmbedderUnavailable(
            f"open_clip model {name}: open-clip-torch is not installed here ({exc}); "
            "`pip install open-clip-torch`, or use the full build, or the classic embedder"
        ) from exc
    except (RuntimeError, OSError) as exc:
        raise EmbedderUnavailable(broken_torch_message(f"open_clip model {name}", exc)) from exc

    arch = name
    _check_arch(arch)
    preprocess: dict[str, Any] = {}
    quick_gelu = False
    if kind == "tag":
        tag = _check_tag(arch, tag)
        canonical = f"{arch}/{tag}"
        tag_cfg = get_pretrained_cfg(arch, tag)
        keys = ("mean", "std", "interpolation", "resize_mode")
        preprocess = {k: tag_cfg[k] for k in keys if k in tag_cfg}
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    elif local_file is None:
        tags = list_pretrained_tags_by_model(arch)
        hint = f"e.g. {arch}/{tags[0]}" if tags else "there are no pretrained tags for it"
        raise EmbedderUnavailable(
            f"open_clip model {arch!r} names no weights: add a pretrained tag ({hint}) "
            "or pass a local checkpoint with `--weights FILE`"
        )
    else:
        canonical = arch
    what = f"open_clip model {canonical}"
    found = None
    if kind == "tag" and local_file is None:
        found = _tag_file(arch, tag, user_cache, hub, downloads, what)
    return _Located(canonical, what, open_clip.get_model_config(arch), found=found, arch=arch,
                    preprocess=preprocess, quick_gelu=quick_gelu)
