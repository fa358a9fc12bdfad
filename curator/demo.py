"""`curator demo`: the main job end to end on the generated sample corpus."""

from __future__ import annotations

import logging
import os
import shlex
import sys
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

    folder = Path(folder).resolve()
    corpus = folder / "corpus"
    summary = write_sample_corpus(corpus, items=items, seed=seed, progress=progress)
    if hasattr(progress, "close"):
        progress.close()
    echo(f"sample corpus: {sum(summary.counts.values())} good files "
         f"({', '.join(f'{n} {m}' for m, n in sorted(summary.counts.items()))}) "
         f"and {summary.broken} broken ones in {corpus}")
    project = Project.create(folder / "project", [corpus])
    # The demo never downloads: it runs on the models whose weights are here, classic otherwise.
    options, notes = IndexOptions.from_settings(offline=True).with_models_here("the demo")
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
    for line in report.unavailable:
        echo(f"not embedded: {line.splitlines()[0]}")
    _groups(project, report.cluster_run, report.cluster, echo)
    _ending(project, report, echo)
    return project


def commands() -> tuple[str, str]:
    """How to start the app and the command line from a shell: (gui, cli) command prefixes.

    Full paths where the scripts sit beside this Python (a virtual environment whose `bin` is
    not on PATH until activated), the bundle's own executable when frozen.
    """
    if getattr(sys, "frozen", False):
        exe = shlex.quote(sys.executable)
        return f"{exe} gui", exe
    scripts = Path(sys.executable).parent
    suffix = ".exe" if os.name == "nt" else ""
    cli, gui = scripts / f"curator{suffix}", scripts / f"curator-gui{suffix}"
    if cli.is_file():
        cli_text = shlex.quote(str(cli))
        return (shlex.quote(str(gui)) if gui.is_file() else f"{cli_text} gui"), cli_text
    cli_text = f"{shlex.quote(sys.executable)} -m curator.cli"
    return f"{cli_text} gui", cli_text


def _ending(project: Project, report: Any, echo: Callable[[str], Any]) -> None:
    """What the demo did, where the project is, the broken files in one line, and the next step
    last, with full paths (the venv's `bin` need not be on PATH)."""
    st = project.status()
    root = shlex.quote(str(st.root))
    gui, cli = commands()
    echo("items by modality:")
    for modality, by_status in sorted(st.counts.items()):
        parts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        echo(f"  {modality:<8} {parts}")
    n_errors = sum(c.get("error", 0) for c in st.counts.values())
    if n_errors:
        echo(f"{n_errors} broken files are kept in the catalog with their reasons (the sample "
             f"corpus plants them); list them: {cli} status {root}")
    groups = sum(c["groups"] for c in (report.cluster or {}).values())
    spaces = ", ".join(report.embed.spaces) or "no space"
    made = f"{groups} groups" + (" and a map" if report.map is not None else "")
    echo(f"done: scanned {report.scan.listed} files, embedded {report.embed.embedded} new "
         f"items ({spaces}), made {made}; the project is {st.root}")
    echo(f"next: {gui} {root}")
    echo(f"  or on the command line: {cli} queue {root}")


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
