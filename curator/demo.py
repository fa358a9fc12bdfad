"""`curator demo`: the main job end to end on the generated sample corpus."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from curator.pipeline import IndexOptions, index
from curator.project import Project
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
    """Write the sample corpus, make (or reopen) the demo project, index it, print a summary.

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
    options, notes = IndexOptions.from_settings(offline=True).with_models_here()
    for note in notes:
        echo(note)
    report = index(project, options, progress, cancel)
    if hasattr(progress, "close"):
        progress.close()
    scan = report.scan
    echo(f"scan: {scan.listed} files in {scan.seconds:.1f} s, {scan.new} new, "
         f"{scan.changed} changed, {scan.unchanged} unchanged, {scan.errors} errors")
    for space, counts in report.embed.spaces.items():
        echo(f"embed {space}: {counts['embedded']} items, {counts['errors']} errors, "
             f"{counts['items_per_second']:.1f} items/s on {counts['device']}")
    _groups(project, report.cluster_run, report.cluster, echo)
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


def _groups(project: Project, run_id: int, counts: dict[str, Any],
            echo: Callable[[str], Any]) -> None:
    """Show the largest and the most doubtful groups."""
    for name, c in counts.items():
        echo(f"cluster {name}: {c['items']} items in {c['groups']} groups")
    for title, order in (("largest groups", "size"), ("most impure groups (review first)",
                                                      "impurity")):
        echo(f"{title}:")
        for g in project.groups(run_id, order=order)[:5]:
            members = project.group(g.group_id, run_id).items[:3]
            sample = ", ".join(project.item(i)["path"] for i in members)
            echo(f"  group {g.group_id:>3}: {g.size:>4} items, cohesion {g.cohesion:.2f}, "
                 f"impurity {g.impurity:.2f}  e.g. {sample}")
    echo(f"next: curator queue {project.root}   (or: curator gui {project.root})")
