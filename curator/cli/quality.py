"""Commands on label quality and coverage: suspects, audit, propagate, dedup and report."""

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
    open_project,
)


@cli.command("suspects")
@PROJECT
@click.option("--k", type=click.IntRange(1, 100), default=10, show_default=True,
              help="Labelled neighbours each item is compared with.")
@click.option("--min-disagreement", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="Smallest share of disagreeing neighbours (similarity-weighted) to report.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def suspects_command(project: Path, k: int, min_disagreement: float, limit: int,
                     as_json: bool) -> None:
    """Labelled items whose nearest labelled neighbours mostly carry another label."""
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            found = proj.suspects(k, min_disagreement, limit, bars, cancel)
        finally:
            bars.close()
    if as_json:
        emit_json([s.to_json() for s in found])
        return
    if not found:
        click.echo("no suspects: every labelled item agrees with most of its neighbours")
        return
    click.echo(f"{'item':>8} {'score':>6}  {'label':<20} {'suggested':<20} path")
    for s in found:
        click.echo(f"{s.item_id:>8} {s.score:>6.2f}  {s.label:<20} {s.suggested:<20} {s.path}")
    click.echo(f"fix one with: curator label {project} --items ID --label NAME")


@cli.command("audit")
@PROJECT
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help="Start an audit: draw about N labelled items, stratified by label and source.")
@click.option("--seed", type=int, default=0, show_default=True, help="With --sample.")
@click.option("--id", "audit_id", type=int, default=None, help="The audit to work on.")
@click.option("--item", "item_id", type=int, default=None, help="With --verdict: the item.")
@click.option("--verdict", type=click.Choice(["correct", "wrong", "unsure"]), default=None)
@click.option("--label", default=None, help="With --verdict wrong: the right label (applied).")
@click.option("--report", is_flag=True, help="Estimated accuracy with 95% intervals.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Items shown to review next.")
@click.option("--json", "as_json", is_flag=True)
@ANNOTATOR
def audit_command(project: Path, sample: Optional[int], seed: int, audit_id: Optional[int],
                  item_id: Optional[int], verdict: Optional[str], label: Optional[str],
                  report: bool, limit: int, as_json: bool, annotator: Optional[str]) -> None:
    """Spot-check labels: start a sample (--sample N), review it (--id A), read the --report."""
    from curator.errors import UsageError

    if sample is not None:
        if audit_id is not None or item_id is not None or verdict or report:
            raise UsageError("--sample starts a new audit; give --id A alone to work on one")
        with open_as(project, annotator) as proj:
            new = proj.start_audit(sample, seed)
            size = proj.audit_report(new).sampled
        if as_json:
            emit_json({"audit_id": new, "sampled": size})
        else:
            click.echo(f"audit {new}: {size} items to review (curator audit {project} --id {new})")
        return
    if audit_id is None:
        if report or verdict or item_id is not None:
            what = "--report" if report else "--verdict" if verdict else "--item"
            raise UsageError(f"{what} needs --id A, the audit to "
                             f"{'report on' if report else 'record in'}",
                             hint="start an audit with --sample N; its id is printed then")
        raise UsageError("give --sample N to start an audit, or --id A to work on one")
    if (item_id is None) != (verdict is None):
        raise UsageError("--item and --verdict go together")
    with open_as(project, annotator) as proj:
        if verdict is not None:
            r = proj.record_verdict(audit_id, item_id, verdict, label)
            click.echo(f"item {item_id}: {verdict}" + (f", relabelled {label} (event "
                       f"{r.event}, undo: curator undo {project})" if r.event else ""))
        elif report:
            rep = proj.audit_report(audit_id)
            if as_json:
                emit_json(rep.to_json())
                return
            click.echo(f"audit {audit_id}: {rep.reviewed} of {rep.sampled} reviewed, "
                       f"{rep.remaining} remaining")
            rows = [("overall", rep.overall)] + [(f"label {n}", e) for n, e in
                                                 rep.labels.items()]
            rows += [(f"source {n}", e) for n, e in rep.sources.items()]
            for name, e in rows:
                acc = ("n/a" if e["accuracy"] is None else
                       f"{e['accuracy']:.1%} ({e['low']:.1%} - {e['high']:.1%})")
                click.echo(f"  {name:<28} {acc:<26} {e['correct']} correct, {e['wrong']} wrong, "
                           f"{e['unsure']} unsure")
        else:
            todo = proj.next_unreviewed(audit_id, limit)
            if as_json:
                emit_json([t.to_json() for t in todo])
                return
            if not todo:
                click.echo(f"audit {audit_id} is fully reviewed; see --report")
            for t in todo:
                click.echo(f"{t.item_id:>8}  {t.label:<20} {t.source:<10} {t.path}")


@cli.command("propagate")
@PROJECT
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Smallest similarity-weighted share of the neighbours' votes to accept.")
@click.option("--k", type=click.IntRange(2, 100), default=10, show_default=True,
              help="Neighbours looked at per item (at least 2 must be labelled).")
@click.option("--dry-run", is_flag=True, help="Show the proposals; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@ANNOTATOR
def propagate_command(project: Path, min_confidence: float, k: int, dry_run: bool,
                      as_json: bool, annotator: Optional[str]) -> None:
    """Label unlabelled items from their labelled neighbours: one event, undone as one."""
    bars = Bars(quiet=as_json)
    with open_as(project, annotator) as proj, cancellable() as cancel:
        try:
            rep = proj.propagate(min_confidence, k, not dry_run, bars, cancel)
        finally:
            bars.close()
    if as_json:
        emit_json(rep.to_json())
        return
    click.echo(f"{len(rep.proposals)} of {rep.considered} unlabelled items "
               + ("would be labelled" if dry_run else "labelled")
               + f" ({rep.below_confidence} below {min_confidence:g}, {rep.too_few_voters} with "
               f"fewer than 2 labelled neighbours)")
    for name, n in rep.counts.items():
        click.echo(f"  {name:<30} {n:>7}")
    if rep.event_id:
        click.echo(f"event {rep.event_id} (undo: curator undo {project} --event {rep.event_id})")



@cli.command()
@PROJECT
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Cosine similarity for near duplicates (default: calibrated per embedding "
                   "space and modality from its own nearest neighbours, at least 0.95).")
@click.option("--keep", "rule", type=click.Choice(["resolution", "longest", "oldest", "source"]),
              default="resolution", show_default=True, help="Which copy to suggest keeping.")
@click.option("--prefer-source", default=None, type=click.Path(path_type=Path),
              help="With --keep source: the source folder (or a folder in one) to keep.")
@click.option("--outliers", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many outliers to rank (needs a clustering).")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="Groups to list.")
@click.option("--json", "as_json", is_flag=True)
def dedup(project: Path, threshold: Optional[float], rule: str, prefer_source: Optional[Path],
          outliers: int, show: int, as_json: bool) -> None:
    """Find exact and near duplicates in PROJECT (nothing is deleted) and rank outliers."""
    from curator.dedup import latest_path

    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            report = proj.find_duplicates(threshold, rule,
                                          str(prefer_source) if prefer_source else None,
                                          outliers=outliers, progress=bars, cancel=cancel)
        finally:
            bars.close()
        if as_json:
            emit_json(report.to_json())
            return
        s = report.summary()
        used = ", ".join(f"{k} {v:g}" for k, v in report.params.get("thresholds", {}).items())
        click.echo(f"{s['exact_groups']} exact groups ({s['exact_items']} items), "
                   f"{s['near_groups']} near groups ({s['near_items']} items) at cosine >= "
                   f"{used or threshold}; {s['removable']} items could go (keeping one per "
                   "group)")
        for g in report.groups[:show]:
            keep = proj.item(g.keeper)["abs_path"]
            click.echo(f"  {g.kind:<5} {len(g.items):>4} items, keep {keep}")
        if report.outliers:
            click.echo("top outliers: " + ", ".join(
                f"{o.item_id} ({o.score:.2f})" for o in report.outliers[:show]))
        click.echo(f"saved {latest_path(proj.catalog)}; exports keep each group in one split")


@cli.command()
@PROJECT
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the report as one self-contained HTML file.")
@click.option("--json", "as_json", is_flag=True)
def report(project: Path, html_path: Optional[Path], as_json: bool) -> None:
    """Coverage of PROJECT's labels: by label, source folder, modality and label source."""
    from curator.report import render_text, write_html

    with open_project(project) as proj:
        data = proj.report()
    if html_path is not None:
        write_html(data, html_path)
    if as_json:
        emit_json(data)
        return
    click.echo(render_text(data), nl=False)
    if html_path is not None:
        click.echo(f"wrote {html_path}")
