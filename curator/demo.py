"""`curator demo`: the main job end to end on the generated sample corpus."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

from curator.project import Project
from curator.scan import ScanOptions
from indexing.progress import Progress

log = logging.getLogger(__name__)


def run_demo(
    folder: Path,
    items: int = 300,
    seed: int = 0,
    echo: Callable[[str], Any] = print,
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
) -> Project:
    """Write the sample corpus, make (or reopen) the demo project, scan it and print a summary.

    Args:
        folder: where `corpus/` and `project/` go; rerunning reuses them (the scan is incremental).
        items: good files in the corpus.
        seed: corpus seed.
        echo: where the summary lines go.
        progress: progress callback for the long steps.
        cancel: cancel callable.

    Returns:
        The open project (the caller closes it).
    """
    from curator.sample_corpus import write_sample_corpus

    folder = Path(folder)
    corpus = folder / "corpus"
    summary = write_sample_corpus(corpus, items=items, seed=seed, progress=progress)
    if hasattr(progress, "close"):
        progress.close()
    echo(f"sample corpus: {sum(summary.counts.values())} good files "
         f"({', '.join(f'{n} {m}' for m, n in sorted(summary.counts.items()))}) "
         f"and {summary.broken} broken ones in {corpus}")
    project = Project.create(folder / "project", [corpus])
    report = project.scan(ScanOptions(), progress=progress, cancel=cancel)
    if hasattr(progress, "close"):
        progress.close()
    echo(f"scan: {report.listed} files in {report.seconds:.1f} s, {report.new} new, "
         f"{report.changed} changed, {report.unchanged} unchanged, {report.errors} errors")
    _embed(project, echo, progress, cancel)
    _cluster(project, echo, progress, cancel)
    st = project.status()
    echo(f"project {st.root}:")
    for modality, by_status in sorted(st.counts.items()):
        parts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        echo(f"  {modality:<8} {parts}")
    if st.errors:
        echo("errors (each file kept in the catalog with its reason):")
        for err in st.errors:
            echo(f"  {err['path']}: {err['error']}")
    return project


def _embed(project: Project, echo: Callable[[str], Any], progress: Optional[Progress],
           cancel: Optional[Callable[[], bool]]) -> None:
    """CLIP and CLAP when their weights are here, otherwise `classic`, saying which and why."""
    from curator.settings import load_settings
    from indexing.embedders import EmbedderUnavailable
    from indexing.embedders.clap import resolve_clap_source
    from indexing.embedders.clip import resolve_clip_source

    settings = load_settings()
    choice = {}
    for kind, resolve, model in (("image/video", resolve_clip_source, settings.model),
                                 ("audio", resolve_clap_source, settings.audio_model)):
        try:
            # Only looks for the files (offline: no network); the model loads once, in embed.
            resolve(model, offline=True)
        except EmbedderUnavailable as exc:
            choice[kind] = "classic"
            first = str(exc).split(";")[0].split(". ")[0]
            echo(f"{kind}: using the weight-free classic embedder because {model} is not "
                 f"available here ({first})")
        else:
            choice[kind] = model
            echo(f"{kind}: using {model} (weights found locally)")
    report = project.embed(choice["image/video"], choice["audio"], offline=True,
                           progress=progress, cancel=cancel)
    if hasattr(progress, "close"):
        progress.close()
    for space, counts in report.spaces.items():
        echo(f"embed {space}: {counts['embedded']} items, {counts['errors']} errors, "
             f"{counts['items_per_second']:.1f} items/s on {counts['device']}")


def _cluster(project: Project, echo: Callable[[str], Any], progress: Optional[Progress],
             cancel: Optional[Callable[[], bool]]) -> None:
    """Group the vectors and show the largest and the most doubtful groups."""
    run_id, counts = project.cluster(progress=progress, cancel=cancel)
    if hasattr(progress, "close"):
        progress.close()
    for name, c in counts.items():
        echo(f"cluster {name}: {c['items']} items in {c['groups']} groups")
    for title, order in (("largest groups", "size"), ("most impure groups (review first)",
                                                      "impurity")):
        echo(f"{title}:")
        for g in project.groups(run_id, order=order)[:5]:
            members = project.group(g.group_id, run_id)["items"][:3]
            sample = ", ".join(project.item(i)["path"] for i in members)
            echo(f"  group {g.group_id:>3}: {g.size:>4} items, cohesion {g.cohesion:.2f}, "
                 f"impurity {g.impurity:.2f}  e.g. {sample}")
    echo(f"next: curator queue {project.root}   (or: curator gui {project.root})")
