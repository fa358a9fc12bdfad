"""Where the chosen models' weights are: here, downloadable, or missing, per modality.

One answer for `curator doctor` (what `curator embed` will do), the demo and the app's first
start (which fall back to the weight-free `classic` embedder). It resolves the models as `embed`
does (`indexing.embedders.resolve` and the embedder's own source resolution) but never loads or
downloads anything: it looks for the files, and at most asks whether the Hub answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

#: The flag that chooses each kind's model on the command line, and what to pass for no weights.
FLAGS = {"image/video": "--model", "audio": "--audio-model"}


@dataclass(frozen=True)
class ModelCheck:
    """One modality's model and whether `curator embed` can run it here.

    Attributes:
        kind: "image/video" or "audio".
        model: the model as the user chose it.
        status: "weight-free" (no weights needed), "local" (weights on this machine),
            "download" (not here, the Hub answers: embed downloads them first), or
            "missing" (not here and not downloadable, or not a usable model: embed stops).
        detail: where the weights are, or why they cannot be had.
        cache: the folder searched for weights ('' when none was searched).
        fetch: the command that downloads them on a connected machine ('' when unknown).
    """

    kind: str
    model: str
    status: str
    detail: str = ""
    cache: str = ""
    fetch: str = ""

    @property
    def flag(self) -> str:
        return FLAGS[self.kind]

    @property
    def fix(self) -> str:
        """The flags (and the place for weights) that make `embed` work for this kind."""
        ways = [f"`{self.flag} classic` (weight-free)"]
        if self.kind == "image/video":
            ways.append("`--weights FILE` (a local checkpoint)")
        if self.cache:
            ways.append(f"copy the weights into {self.cache}"
                        + (f" (on a connected machine: `{self.fetch}`)" if self.fetch else ""))
        return ", or ".join(ways)

    def embed_line(self) -> str:
        """What `curator embed` will do for this kind, in one line."""
        if self.status == "weight-free":
            return f"{self.kind}: {self.model} (weight-free, nothing to download)"
        if self.status == "local":
            return f"{self.kind}: {self.model} (weights found: {self.detail})"
        if self.status == "download":
            return (f"{self.kind}: {self.model} is not on this machine; `curator embed` downloads "
                    f"it first into {self.cache} ({self.detail})")
        return (f"{self.kind}: `curator embed` leaves {self.kind} out and ends with an error: "
                f"{self.detail}; fix: {self.fix}")


def check_models(model: str, audio_model: str, weights: Optional[str] = None,
                 offline: Optional[bool] = None,
                 probe_network: bool = True) -> list[ModelCheck]:
    """The image/video and the audio model, each as `embed` would resolve it.

    Args:
        model: the image and video model choice.
        audio_model: the audio model choice.
        weights: a local checkpoint for the image model (`--weights`).
        offline: True: never the network; False/None as `embed` (None reads CURATOR_OFFLINE).
        probe_network: whether to ask the Hub if missing weights could be downloaded (at most
            2 s); False treats missing weights as missing (the demo never downloads).
    """
    from indexing.embedders.weights import why_no_download

    reasons: list[Optional[str]] = []

    def blocked() -> Optional[str]:  # asked at most once: the probe can take 2 s
        if not probe_network:
            return "not asked"
        if not reasons:
            reasons.append(why_no_download(offline))
        return reasons[0]

    return [_check("image/video", "image", model, weights, blocked),
            _check("audio", "audio", audio_model, None, blocked)]


def _check(kind: str, modality: str, choice: str, weights: Optional[str],
           blocked: Callable[[], Optional[str]]) -> ModelCheck:
    from indexing.embedders import EmbedderUnavailable, resolve
    from indexing.embedders.weights import hf_cache_dir, is_missing_weights

    try:
        spec = resolve(choice, modality, weights)
        needs_weights = spec.capabilities.needs_weights
    except (ValueError, KeyError) as exc:
        return ModelCheck(kind, choice, "missing", str(exc).strip("'\""))
    if not needs_weights:
        return ModelCheck(kind, choice, "weight-free")
    cache = str(hf_cache_dir())
    try:
        found = _find(spec, offline=True)
    except EmbedderUnavailable as exc:
        if not is_missing_weights(exc):  # an unknown model, a broken folder, no open_clip
            return ModelCheck(kind, choice, "missing", _first_line(exc))
        missing = f"no {choice} weights on this machine"
        fetch = re.search(r"`(hf download [^`]+)`", str(exc))
        fetch_text = fetch.group(1) if fetch else ""
        reason = blocked()
        if reason is None:
            return ModelCheck(kind, choice, "download", "the Hub answers", cache, fetch_text)
        if reason != "not asked":
            missing += f" and they cannot be downloaded now ({reason})"
        return ModelCheck(kind, choice, "missing", missing, cache, fetch_text)
    return ModelCheck(kind, choice, "local", found, cache)


def _find(spec, offline: bool) -> str:
    """Where the spec's weights are (a file or folder), found without loading or downloading."""
    if spec.name == "open_clip":
        from indexing.embedders.clip import resolve_clip_source

        return str(resolve_clip_source(spec.model or "", weights=spec.weights,
                                       offline=offline).weights)
    if spec.name == "clap":
        from indexing.embedders.clap import resolve_clap_source

        source = resolve_clap_source(spec.model or "", offline=offline)
        return str(source.weights or source.location)
    # A plug-in's embedder: nothing to look for without loading it; embed will say.
    return f"{spec.name} (a plug-in; not checked without loading)"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def fallback_note(checks: list[ModelCheck], purpose: str = "the demo") -> Optional[str]:
    """One line for the kinds whose models cannot run here and so run `classic`, or None."""
    missing = [c for c in checks if c.status == "missing"]
    if not missing:
        return None
    absent = [c for c in missing if c.detail.startswith(f"no {c.model} weights")]
    reasons = []
    if absent:
        where = next((c.cache for c in absent if c.cache), "")
        reasons.append("no weights for " + " or ".join(f"{c.model} ({c.kind})" for c in absent)
                       + " on this machine" + (f" (looked in {where})" if where else ""))
    reasons += [f"{c.model} ({c.kind}) cannot run here: {c.detail}" for c in missing
                if c not in absent]
    kinds = " and ".join(c.kind for c in missing)
    return ("; ".join(reasons) + f": {purpose} embeds {kinds} with the weight-free classic "
            "embedder; `curator doctor` says how to add weights")
