"""The `export` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from curator.cli.base import (
    PROJECT,
    Bars,
    cancellable,
    cli,
    emit_json,
    open_project,
)


@cli.command()
@PROJECT
@click.option("--format", "fmt", required=True,
              type=click.Choice(["jsonl", "csv", "parquet", "imagefolder", "coco", "labelstudio",
                                 "nemo"]),
              help="jsonl/csv/parquet: one row per item; imagefolder: class folders with "
                   "metadata.jsonl (Hugging Face); coco; labelstudio; nemo (audio).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Export folder (new, empty, or a previous export, which is replaced).")
@click.option("--split", default=None,
              help="e.g. train=0.8,val=0.1,test=0.1: stratified by label, duplicates kept in "
                   "one split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--only-labeled", is_flag=True,
              help="Only items with a label (no noise, mixed or unlabelled).")
@click.option("--mode", type=click.Choice(["copy", "symlink", "hardlink"]), default="copy",
              show_default=True, help="How imagefolder places media files.")
@click.option("--json", "as_json", is_flag=True)
def export(project: Path, fmt: str, out: Path, split: Optional[str], seed: int,
           only_labeled: bool, mode: str, as_json: bool) -> None:
    """Export items and labels of PROJECT for training (atomic; with manifest.json)."""
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            report = proj.export(fmt, out, split=split, seed=seed, only_labeled=only_labeled,
                                 mode=mode, progress=bars, cancel=cancel)
        finally:
            bars.close()
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(f"exported {report.items} items as {report.format} to {report.out} "
               f"in {report.seconds:.1f} s")
    for split_name, counts in report.counts.items():
        click.echo(f"  {split_name}: {sum(counts.values())} items, {len(counts)} labels")
    for reason, n in report.skipped.items():
        click.echo(f"  left out: {n} ({reason})")
    for note in report.notes:
        click.echo(f"  note: {note}")
