"""The `splits` commands: show, assign, clear and move items of the stored split assignment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from curator.cli.base import ANNOTATOR, PROJECT, cli, emit_json, open_as, open_project


@cli.group()
def splits() -> None:
    """The project's stored train/val/test split assignment, reused by every export."""


@splits.command("show")
@PROJECT
@click.option("--json", "as_json", is_flag=True)
def show(project: Path, as_json: bool) -> None:
    """Show the assignment and its counts per split x label."""
    with open_project(project) as proj:
        table = proj.split_table()
    if as_json:
        emit_json(table.to_json())
        return
    if table.assignment is None:
        click.echo("no split assignment; create one with `curator splits assign PROJECT "
                   "--split train=0.8,val=0.1,test=0.1` (or `curator export --split ...`)")
        return
    a = table.assignment
    ratios = ", ".join(f"{k}={v:g}" for k, v in a.fractions.items())
    click.echo(f"split assignment #{a.id}: {ratios}, seed {a.seed}, made {a.created_at}"
               + (f" by {a.annotator}" if a.annotator else ""))
    labels = sorted({label for counts in table.counts.values() for label in counts})
    width = max([len(label) for label in labels] + [5])
    click.echo(f"  {'label':<{width}}  " + "  ".join(f"{s:>8}" for s in table.counts))
    for label in labels:
        click.echo(f"  {label:<{width}}  " + "  ".join(
            f"{table.counts[s].get(label, 0):>8}" for s in table.counts))
    click.echo(f"  {'total':<{width}}  " + "  ".join(
        f"{sum(table.counts[s].values()):>8}" for s in table.counts))
    if table.unassigned:
        click.echo(f"  {table.unassigned} labelled item(s) get a split at the next export")


@splits.command("assign")
@PROJECT
@click.option("--split", required=True, help="e.g. train=0.8,val=0.1,test=0.1")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--items", "items", multiple=True,
              help="Move these item ids or paths into --split NAME by hand instead (repeatable).")
@ANNOTATOR
@click.option("--json", "as_json", is_flag=True)
def assign(project: Path, split: str, seed: int, items: tuple[str, ...],
           annotator: Optional[str], as_json: bool) -> None:
    """(Re-)split every labelled item: stratified by label, duplicates kept together.

    With --items, move those items into the split named by --split instead.
    """
    with open_as(project, annotator) as proj:
        if items:
            n = proj.move_to_split(proj.resolve_items(list(items)), split)
            click.echo(f"moved {n} item(s) to {split}")
            return
        found = proj.assign_splits(split, seed)
        table = proj.split_table()
    if as_json:
        emit_json(table.to_json())
        return
    click.echo(f"split assignment #{found.id}: " + ", ".join(
        f"{s} {sum(c.values())}" for s, c in table.counts.items()))


@splits.command("clear")
@PROJECT
def clear(project: Path) -> None:
    """Drop the stored assignment; exports have no splits until the next one."""
    with open_project(project) as proj:
        found = proj.clear_splits()
    click.echo("no split assignment to clear" if found is None
               else f"cleared split assignment #{found}")
