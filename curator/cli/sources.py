"""`curator sources list|relocate|remove`: source folders that move or go away."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli.base import PROJECT, cli, emit_json, open_project


@cli.group("sources")
def sources_group() -> None:
    """The project's source folders: list them, relocate one that moved, remove one."""


@sources_group.command("list")
@PROJECT
@click.option("--json", "as_json", is_flag=True)
def list_cmd(project: Path, as_json: bool) -> None:
    """Every source with its items by status and whether it is reachable now."""
    with open_project(project) as proj:
        rows = proj.source_details()
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    for row in rows:
        counts = ", ".join(f"{n:,} {status}" for status, n in sorted(row.counts.items()))
        state = "" if row.reachable else "  [not reachable: unmounted or moved?]"
        click.echo(f"{row.id}  {row.root}  ({counts or 'no items'}){state}")


@sources_group.command("relocate")
@PROJECT
@click.argument("old")
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def relocate_cmd(project: Path, old: str, new: Path, as_json: bool) -> None:
    """Point source OLD (its path or id) at folder NEW; every item keeps its labels and vectors.

    If NEW was already added as a source, its items are merged into OLD's (matched by relative
    path, else by content).
    """
    with open_project(project) as proj:
        report = proj.relocate_source(old, new)
    if as_json:
        emit_json(report.to_json())
        return
    merged = f", {report.merged} merged from the source already at {report.new}" if (
        report.merged_source) else ""
    click.echo(f"source {report.old} -> {report.new}: {report.items} items kept, "
               f"{report.found} found at their path{merged}")
    for note in report.notes:
        click.echo(f"note: {note}")


@sources_group.command("remove")
@PROJECT
@click.argument("source")
@click.option("--force", is_flag=True, help="Also when its items have labels (they are lost).")
def remove_cmd(project: Path, source: str, force: bool) -> None:
    """Forget SOURCE (its path or id) and its items; the label history keeps its events."""
    with open_project(project) as proj:
        done = proj.remove_source(source, force=force)
    click.echo(f"removed source {done.source} ({done.items} items)")
