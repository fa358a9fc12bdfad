"""Which models embed a project: the user's choices resolved into embedders per modality, and the
embed run that goes through them (one recorded `embed` run, one space per model)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from curator.catalog import Catalog
from curator.embed import EmbedReport, compact_space, embed_space
from curator.errors import CuratorError
from curator.items import present_modalities
from indexing.embedders import DEFAULT_MODELS, EmbedderSpec, resolve
from indexing.progress import Progress

if TYPE_CHECKING:
    from curator.distributed import RayOptions

log = logging.getLogger(__name__)

IMAGE_MODALITIES = ("image", "video")
AUDIO_MODALITIES = ("audio",)


@dataclass(frozen=True)
class EmbedOptions:
    """The models and how to run them.

    Attributes:
        image: the image and video model (a model string, "classic", or a resolved spec).
        audio: the audio model (a CLAP model string, "classic", or a resolved spec).
        weights: a local checkpoint for the image model.
        device: auto, cpu, cuda or mps.
        precision: fp32, fp16 or bf16.
        batch_size: inference batch size.
        workers: decoding processes (None: per core; 0: in this process).
        offline: never try the network for weights.
        thumbnails: also store a thumbnail per item.
        ray: run the models on a Ray cluster (curator.distributed.RayOptions); None: here.
    """

    image: str | EmbedderSpec = DEFAULT_MODELS["image"]
    audio: str | EmbedderSpec = DEFAULT_MODELS["audio"]
    weights: Optional[str] = None
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 64
    workers: Optional[int] = None
    offline: Optional[bool] = None
    thumbnails: bool = True
    ray: Optional[RayOptions] = None

    def __post_init__(self) -> None:
        if self.weights:
            # Stored resolved: a later text search from another folder must find the same file.
            object.__setattr__(self, "weights", str(Path(self.weights).expanduser().resolve()))

    def specs(self) -> tuple[EmbedderSpec, EmbedderSpec]:
        """(image spec, audio spec), resolved once."""
        return (resolve(self.image, "image", self.weights), resolve(self.audio, "audio"))

    def params(self) -> dict[str, object]:
        """What the run records about the models and their settings."""
        image, audio = self.specs()
        params: dict[str, object] = {
            "model": image.label, "audio_model": audio.label, "weights": self.weights,
            "device": self.device, "precision": self.precision,
            "batch_size": self.batch_size, "workers": self.workers}
        if self.ray is not None:
            params["ray"] = {"address": self.ray.address,
                             "path_map": [list(p) for p in self.ray.path_map]}
        return params


def plan(image: EmbedderSpec, audio: EmbedderSpec) -> list[tuple[EmbedderSpec, tuple[str, ...]]]:
    """Which embedder takes which modalities: one model chosen for both takes all three.

    An embedder chosen for images and for audio alike (the weight-free classic) embeds every
    modality into its one space in one pass; otherwise each takes its own.
    """
    if image == audio:
        return [(image, IMAGE_MODALITIES + AUDIO_MODALITIES)]
    return [(image, IMAGE_MODALITIES), (audio, AUDIO_MODALITIES)]


def embed_all(catalog: Catalog, options: EmbedOptions = EmbedOptions(),
              progress: Optional[Progress] = None,
              cancel: Optional[Callable[[], bool]] = None) -> EmbedReport:
    """Embed every ok item not yet embedded (or stale) by the chosen models; a recorded run.

    A model that cannot load here is reported in `report.unavailable` and the others still run.
    Each space's vectors are compacted and its search index brought up to date, also when the
    run is cancelled (finished batches are kept).

    Raises:
        CuratorError: no model could be loaded at all.
        Cancelled: the cancel token was set.
    """
    from curator.search import sync_index
    from indexing.embedders import EmbedderUnavailable

    present = present_modalities(catalog)
    started = time.monotonic()
    with catalog.recorded_run("embed", options.params()) as run:
        report = EmbedReport(run_id=run.id)
        try:
            for spec, modalities in plan(*options.specs()):
                wanted = [m for m in modalities if m in present]
                if not wanted:
                    continue
                runtime = {"precision": options.precision, "batch_size": options.batch_size,
                           "offline": options.offline}
                try:
                    # On Ray this copy only names the space and gives the decoder: keep it on cpu.
                    embedder = spec.create(device="cpu" if options.ray else options.device,
                                           **runtime)
                except EmbedderUnavailable as exc:
                    report.unavailable.append(f"{', '.join(wanted)}: {exc}")
                    continue
                embedder.modalities = frozenset(wanted)
                try:
                    if options.ray is not None:
                        from curator.distributed import embed_space_ray

                        factory = (spec.name, {**spec.options(), "device": options.device,
                                               **runtime})
                        counts = embed_space_ray(
                            catalog, embedder, run.id, factory, options.ray,
                            batch_size=options.batch_size, progress=progress, cancel=cancel,
                            thumbnails=options.thumbnails, options=spec.to_saved())
                    else:
                        counts = embed_space(
                            catalog, embedder, run.id, batch_size=options.batch_size,
                            workers=options.workers, progress=progress, cancel=cancel,
                            thumbnails=options.thumbnails, options=spec.to_saved())
                finally:
                    compact_space(catalog, embedder.space)
                    sync_index(catalog, embedder.space)
                counts.update(model=embedder.model_string, embedder=embedder.name,
                              device=counts.get("actors", {}).get("device")
                              or str(getattr(embedder, "device", "cpu")),
                              precision=str(getattr(embedder, "precision", "fp32")),
                              modalities=wanted, dim=embedder.dim)
                report.spaces[embedder.space] = counts
                report.embedded += counts["embedded"]
                report.errors += counts["errors"]
            if report.unavailable and not report.spaces:
                raise CuratorError("no model could be loaded: " + " | ".join(report.unavailable),
                                   hint="`--model classic` embeds every modality without "
                                        "weights; `curator doctor` says what is missing")
        finally:
            report.seconds = time.monotonic() - started
            run.counts = {**report.counts(), "unavailable": report.unavailable}
    return report
