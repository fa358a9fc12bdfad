"""The indexing pipeline: scan → embed → cluster → map as one job with weighted progress.

`curator index`, the app's *Index…*, `curator demo` and the screenshots all run `index` with
`IndexOptions`, built from the same settings (`IndexOptions.from_settings`: defaults < config
file < CURATOR_* environment < flags or the dialog).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from curator.scan import ScanOptions, ScanReport
from indexing.embedders import DEFAULT_MODELS
from indexing.progress import Progress, ProgressEvent, check_cancel

if TYPE_CHECKING:
    from curator.embed import EmbedReport
    from curator.project import Project
    from curator.settings import Settings

log = logging.getLogger(__name__)

STAGES = (("scan", 0.10), ("embed", 0.70), ("group", 0.15), ("map", 0.05))
"""The stages in order with their share of the whole job's progress bar (embedding dominates)."""


@dataclass(frozen=True)
class IndexOptions:
    """Everything the pipeline runs with.

    Attributes:
        model: image and video model (open_clip model string, "classic", or "name:model").
        audio_model: audio model (CLAP model, or "classic").
        n_groups: groups per space (None: chosen automatically).
        build_map: also compute the 2-D map.
        weights: a local checkpoint for the image model.
        device: auto, cpu, cuda or mps.
        precision: fp32, fp16 or bf16.
        batch_size: inference batch size.
        workers: probing and decoding processes (None: per core; 0: in this process).
        offline: never try the network for model weights.
        method: clustering method.
        seed: clustering and map seed.
        scan: what to walk (globs, hidden files); its `workers` follows `workers`.
        ray: embed on a Ray cluster (curator.distributed.RayOptions); None: here.
    """

    model: str = DEFAULT_MODELS["image"]
    audio_model: str = DEFAULT_MODELS["audio"]
    n_groups: Optional[int] = None
    build_map: bool = True
    weights: Optional[str] = None
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 64
    workers: Optional[int] = None
    offline: bool = False
    method: str = "auto"
    seed: int = 0
    scan: ScanOptions = field(default_factory=ScanOptions)
    ray: Optional[Any] = None

    @classmethod
    def from_settings(cls, settings: Optional[Settings] = None, **overrides: Any) -> IndexOptions:
        """Options from the user's settings, then the given values (None values are skipped).

        Args:
            settings: loaded settings (default: `load_settings()`).
            **overrides: any field of IndexOptions (a flag or a dialog's choice).
        """
        from curator.settings import load_settings

        settings = settings or load_settings()
        base = cls(model=settings.model, audio_model=settings.audio_model,
                   device=settings.device, batch_size=settings.batch_size,
                   workers=settings.workers, offline=settings.offline)
        return base.with_overrides(**overrides)

    def with_overrides(self, **values: Any) -> IndexOptions:
        """A copy with the given non-None values replaced."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})

    def with_models_here(self, purpose: str = "this run") -> tuple[IndexOptions, list[str]]:
        """These options with each model whose weights are not on this machine replaced by
        `classic`, and what was chosen: one line for every fallback together, one per model
        found locally.

        Only looks for the files (`curator.model_check`, the resolution `embed` uses): nothing
        loads and nothing is downloaded. The demo and the app's first-start page use it so that
        they work on a machine without weights.
        """
        from curator.model_check import check_models, fallback_note

        checks = check_models(self.model, self.audio_model, self.weights, probe_network=False)
        chosen = ["classic" if c.status == "missing" else c.model for c in checks]
        notes = [f"{c.kind}: using {c.model} (weights found locally)" for c in checks
                 if c.status == "local"]
        note = fallback_note(checks, purpose)
        if note:
            notes.insert(0, note)
        return self.with_overrides(model=chosen[0], audio_model=chosen[1]), notes


@dataclass
class IndexReport:
    """What each stage did; a stage that did not run is None."""

    scan: Optional[ScanReport] = None
    embed: Optional[EmbedReport] = None
    cluster_run: Optional[int] = None
    cluster: Optional[dict[str, Any]] = None
    map: Optional[dict[str, Any]] = None

    @property
    def unavailable(self) -> list[str]:
        """Models that could not be loaded (their modalities were left out), one line each."""
        return list(self.embed.unavailable) if self.embed is not None else []

    def to_json(self) -> dict[str, Any]:
        return {
            "scan": None if self.scan is None else {"run_id": self.scan.run_id,
                                                    **self.scan.counts()},
            "embed": None if self.embed is None else {"run_id": self.embed.run_id,
                                                      **self.embed.counts()},
            "unavailable": self.unavailable,
            "cluster": None if self.cluster is None else {"run_id": self.cluster_run,
                                                          **self.cluster},
            "map": self.map,
        }


class StageProgress:
    """Maps each stage's own events into the whole job (Orange3's `wrap_callback`).

    The stage text reads "i/n name: detail" and `ProgressEvent.overall` is the share of the job
    done: each stage owns a range of the bar by its weight, split among its parts (a scan lists,
    then probes; embedding, grouping and the map go space by space) in the order they report.
    The share never goes back.
    """

    def __init__(self, progress: Optional[Progress], stages: tuple = STAGES) -> None:
        self.progress = progress
        self.stages = stages
        total = sum(w for _, w in stages)
        self.ranges: dict[str, tuple[int, float, float]] = {}
        start = 0.0
        for i, (name, weight) in enumerate(stages, 1):
            self.ranges[name] = (i, start / total, weight / total)
            start += weight
        self.last = 0.0

    def stage(self, name: str, parts: tuple[float, ...] = (1.0,)) -> Progress:
        """The progress callback to hand to stage `name`, whose parts weigh `parts`."""
        i, start, weight = self.ranges[name]
        cuts = [sum(parts[:k]) / sum(parts) for k in range(len(parts) + 1)]
        seen: list[str] = []

        def report(e: ProgressEvent) -> None:
            if self.progress is None:
                return
            if e.stage not in seen:
                seen.append(e.stage)
            k = min(seen.index(e.stage), len(parts) - 1)
            share = min(1.0, e.done / e.total) if e.total else 0.0
            within = cuts[k] + (cuts[k + 1] - cuts[k]) * share
            self.last = max(self.last, start + weight * within)
            detail = f": {e.stage}" if e.stage and e.stage != name else ""
            self.progress(ProgressEvent(f"{i}/{len(self.stages)} {name}{detail}", e.done,
                                        e.total, e.unit, e.message, overall=self.last))
        return report


def index(project: Project, options: IndexOptions = IndexOptions(),
          progress: Optional[Progress] = None,
          cancel: Optional[Callable[[], bool]] = None) -> IndexReport:
    """Scan, embed, cluster and map a project: each stage a recorded run, all resumable.

    A model that cannot load leaves its modalities out (`report.unavailable`); the other stages
    still run on what was embedded.

    Args:
        project: the open project.
        options: models, grouping and how to run.
        progress: receives "i/4 stage: detail" events with the job's `overall` share.
        cancel: checked at every batch; finished batches are kept.

    Returns:
        What each stage did.

    Raises:
        Cancelled: `cancel` said stop (a new run picks up where this one stopped).
        CuratorError: a stage failed (no source folder, no model could load, ...).
    """
    from curator.models import EmbedOptions, plan

    stages = StageProgress(progress, STAGES if options.build_map else STAGES[:3])
    report = IndexReport()
    scan = dataclasses.replace(options.scan, workers=options.workers)
    # Listing is quick beside probing; each embedding model, and each space, is a part.
    report.scan = project.scan(scan, progress=stages.stage("scan", (0.1, 0.9)), cancel=cancel)
    check_cancel(cancel)
    models = len(plan(*EmbedOptions(options.model, options.audio_model).specs()))
    report.embed = project.embed(options.model, options.audio_model, weights=options.weights,
                                 device=options.device, precision=options.precision,
                                 batch_size=options.batch_size, workers=options.workers,
                                 offline=options.offline or None, ray=options.ray,
                                 progress=stages.stage("embed", (1.0,) * models), cancel=cancel)
    check_cancel(cancel)
    spaces = (1.0,) * max(1, len(project.spaces()))
    report.cluster_run, report.cluster = project.cluster(
        options.n_groups, options.method, options.seed, progress=stages.stage("group", spaces),
        cancel=cancel)
    check_cancel(cancel)
    if options.build_map:
        report.map = project.compute_map(seed=options.seed, progress=stages.stage("map", spaces),
                                         cancel=cancel)
    return report
