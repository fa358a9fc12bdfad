"""The `export` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from curator.cli.base import (
    ANNOTATOR,
    PROJECT,
    Bars,
    cancellable,
    cli,
    emit_json,
    open_as,
)

FORMATS = ["jsonl", "csv", "parquet", "imagefolder", "audiofolder", "videofolder", "fiftyone",
           "coco", "labelstudio", "yolo", "webdataset", "nemo"]


@cli.command()
@PROJECT
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
              help="jsonl/csv/parquet: one row per item, every modality; imagefolder/"
                   "audiofolder: Hugging Face datasets; videofolder: FiftyOne video tree + "
                   "Kinetics CSV; fiftyone; coco; labelstudio; yolo; webdataset; nemo (audio). "
                   "See docs/exports.md.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Export folder (new, empty, or a previous export, which is replaced).")
@click.option("--split", default=None,
              help="e.g. train=0.8,val=0.1,test=0.1: creates the project's stored split "
                   "assignment (stratified by label, duplicates kept together) that every "
                   "later export reuses. Without it the stored assignment is used.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of a new split assignment.")
@click.option("--resplit", is_flag=True, help="Replace the stored split assignment with --split.")
@click.option("--no-split", "no_split", is_flag=True,
              help="Ignore the stored split assignment for this export.")
@click.option("--modality", type=click.Choice(["image", "audio", "video"]), default=None,
              help="Only this modality. Without it, formats with one layout per modality "
                   "(fiftyone, labelstudio) write one sub-export per modality.")
@click.option("--only-labeled", is_flag=True,
              help="Only items with a label (no noise, mixed or unlabelled).")
@click.option("--mode", type=click.Choice(["copy", "symlink", "hardlink"]), default="copy",
              show_default=True, help="How formats with media folders place the files.")
@click.option("--force", is_flag=True,
              help="Replace OUT even when it holds files no previous export wrote.")
@click.option("--relative-to", "relative_to", type=click.Path(path_type=Path), default=None,
              help="jsonl/csv/parquet/nemo: media paths relative to this folder.")
@click.option("--url-prefix", "url_prefix", default=None,
              help="labelstudio: media URLs under this prefix instead of local-files serving.")
@click.option("--as", "ls_as", type=click.Choice(["predictions", "annotations"]),
              default="predictions", show_default=True, help="labelstudio: how labels go in.")
@click.option("--shard-size", "shard_size", type=click.IntRange(min=1), default=1000,
              show_default=True, help="webdataset: samples per tar shard.")
@ANNOTATOR
@click.option("--json", "as_json", is_flag=True)
def export(project: Path, fmt: str, out: Path, split: Optional[str], seed: int, resplit: bool,
           no_split: bool, modality: Optional[str], only_labeled: bool, mode: str, force: bool,
           relative_to: Optional[Path], url_prefix: Optional[str], ls_as: str, shard_size: int,
           annotator: Optional[str], as_json: bool) -> None:
    """Export items and labels of PROJECT for training (atomic; with manifest.json)."""
    from curator.export import ForeignFiles
    from curator.splits import SplitMismatch

    bars = Bars(quiet=as_json)
    with open_as(project, annotator) as proj, cancellable() as cancel:
        try:
            report = proj.export(fmt, out, split=split, seed=seed, only_labeled=only_labeled,
                                 mode=mode, progress=bars, cancel=cancel, modality=modality,
                                 force=force, resplit=resplit, use_splits=not no_split,
                                 relative_to=str(relative_to) if relative_to else None,
                                 url_prefix=url_prefix, ls_as=ls_as, shard_size=shard_size)
        except ForeignFiles as exc:
            raise click.ClickException(f"{exc} (with --force)") from exc
        except SplitMismatch as exc:
            raise click.ClickException(f"{exc}; leave out --split to use it, add --resplit to "
                                       "replace it, or run `curator splits assign`") from exc
        finally:
            bars.close()
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(f"exported {report.items} items as {report.format} to {report.out} "
               f"in {report.seconds:.1f} s")
    if report.split_assignment is not None:
        click.echo(f"  splits: assignment #{report.split_assignment}")
    for part in report.parts:
        click.echo(f"  sub-export: {Path(report.out) / part}")
    for split_name, counts in report.counts.items():
        click.echo(f"  {split_name}: {sum(counts.values())} items, {len(counts)} labels")
    for reason, n in report.skipped.items():
        click.echo(f"  left out: {n} ({reason})")
    for note in report.notes:
        click.echo(f"  note: {note}")
