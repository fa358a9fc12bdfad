"""Commands on groups: cluster, queue, split, merge, search and map."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from curator.cli.base import (
    PROJECT,
    RUN,
    Bars,
    cancellable,
    cli,
    emit_json,
    older_run_note,
    open_project,
)


@cli.command()
@PROJECT
@click.option("--groups", "n_groups", default="auto", show_default=True,
              help="Number of groups, or 'auto' (chosen from the data by the graph "
                   "method; about items/300, within 10..5000, for kmeans and hdbscan).")
@click.option("--method", type=click.Choice(["auto", "graph", "kmeans", "hdbscan"]),
              default="auto", show_default=True,
              help="auto: graph from 20 items a group up to 300,000 items per space, kmeans "
                   "otherwise; graph: k-means "
                   "micro-clusters merged along their density graph, outliers in one noise "
                   "group; kmeans: plain spherical k-means; hdbscan: UMAP + HDBSCAN (up to "
                   "~200k items, marks noise).")
@click.option("--space", "spaces", multiple=True, help="Only these embedding spaces.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--undecided", "undecided_only", is_flag=True,
              help="Group only the items that carry no decision yet.")
@click.option("--json", "as_json", is_flag=True)
def cluster(project: Path, n_groups: str, method: str, spaces: tuple[str, ...], seed: int,
            undecided_only: bool, as_json: bool) -> None:
    """Cluster every embedding space of PROJECT into groups (a new run; labels are kept)."""
    from curator.errors import UsageError

    if n_groups != "auto" and (not n_groups.isdigit() or int(n_groups) < 1):
        raise UsageError(f"--groups must be a whole number of at least 1, or 'auto', "
                         f"not {n_groups!r}")
    groups = None if n_groups == "auto" else int(n_groups)
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            run_id, counts = proj.cluster(groups, method, seed, list(spaces) or None, bars, cancel,
                                          undecided_only=undecided_only)
        finally:
            bars.close()
        if as_json:
            emit_json({"run_id": run_id, "spaces": counts})
            return
        q = proj.queue("impurity", run_id)
        click.echo(f"clustering run {run_id}" + (" (undecided items only)" if undecided_only
                                                  else "") + ":")
        for space, c in counts.items():
            click.echo(f"  {space}: {c['items']} items in {c['groups']} groups ({c['method']}"
                       + (f", {c['noise']} noise" if c.get("noise") else "") + ")")
        click.echo(f"  {q.groups_decided} of {q.groups_total} groups already decided by "
                   "their items' labels")
        for order, title in (("size", "largest groups"), ("impurity", "most impure groups")):
            shown = proj.groups(run_id, order=order)[:5]
            _print_groups(shown, title, proj.group_facts([g.group_id for g in shown], run_id))


def _print_groups(groups: list[Any], title: str, facts: Optional[dict] = None,
                  suggestions: Optional[dict[int, Any]] = None) -> None:
    click.echo(f"{title}:")
    extra = "  suggestion" if suggestions is not None else ""
    click.echo(f"  {'group':>6} {'size':>7} {'decided':>8} {'cohesion':>8}  {'status':<9} "
               f"{'label':<14} {'modalities':<18} {'labels carried':<22} {'topic':<28}{extra}")
    for g in groups:
        f = (facts or {}).get(g.group_id)
        hint = ""
        if suggestions is not None and g.group_id in suggestions:
            s = suggestions[g.group_id]
            hint = f"  {s.label} ({s.confidence:.0%})"
        click.echo(f"  {g.group_id:>6} {g.size:>7} {g.labelled:>8} {g.cohesion:>8.3f}  "
                   f"{g.status:<9} {(g.label or '-'):<14} "
                   f"{(f.modality_text() if f else ''):<18} {(f.labels_text() if f else ''):<22} "
                   f"{((f.topic_text() if f else str(g.topic)) or '-'):<28}{hint}")


@cli.command()
@PROJECT
@click.option("--order", type=click.Choice(["impurity", "size", "unlabeled"]), default="impurity",
              show_default=True)
@RUN
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def queue(project: Path, order: str, run_id: Optional[int], limit: int, as_json: bool) -> None:
    """The undecided groups to review next, with progress."""
    with open_project(project) as proj:
        q = proj.queue(order, run_id)
        shown = q.groups[:limit]
        facts = proj.group_facts([g.group_id for g in shown], q.run_id)
        suggestions = proj.suggestions(q.run_id)
    if as_json:
        payload = q.to_json()
        payload["groups"] = payload["groups"][:limit]
        for g in payload["groups"]:
            g.update(facts[g["group_id"]].to_json())
            s = suggestions.get(g["group_id"])
            g["suggestion"] = s.to_json() if s is not None else None
        emit_json(payload)
        return
    click.echo(f"run {q.run_id}: {q.groups_decided} of {q.groups_total} groups decided, "
               f"{q.items_labelled} of {q.items_total} items labelled")
    _print_groups(shown, f"next {len(shown)} groups ({order})", facts, suggestions)


@cli.group("group")
def group_cmd() -> None:
    """One group of a clustering run: show what is in it."""


@group_cmd.command("show")
@PROJECT
@click.argument("group_id", type=int)
@RUN
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="List this many members (representatives first, then most typical).")
@click.option("--json", "as_json", is_flag=True)
def group_show(project: Path, group_id: int, run_id: Optional[int], limit: int,
               as_json: bool) -> None:
    """List the members of GROUP_ID: path, modality, label and similarity to its centre."""
    with open_project(project) as proj:
        run = proj.current_run(run_id)
        shown = proj.group_show(group_id, run, limit)
        note = older_run_note(proj, run)
    if as_json:
        emit_json(shown.to_json())
        return
    f = shown.facts
    click.echo(f"group {group_id} of run {run} ({shown.state}, space {shown.space}): "
               f"{shown.size} items · {f.modality_text()} · topic: {f.topic_text() or '-'}")
    click.echo(f"labels carried: {f.labels_text() or 'none yet'}")
    click.echo(f"  {'item':>8} {'sim':>6}  {'modality':<8} {'label':<16} path")
    for m in shown.members:
        sim = "-" if m.similarity is None else f"{m.similarity:.3f}"
        click.echo(f"  {m.item_id:>8} {sim:>6}  {m.modality:<8} {(m.label or '-'):<16} "
                   f"{m.path}" + ("  [representative]" if m.representative else ""))
    if shown.size > len(shown.members):
        click.echo(f"  … {shown.size - len(shown.members)} more (--limit {shown.size} lists all)")
    if note:
        click.echo(f"note: {note}", err=True)


@cli.command()
@PROJECT
@click.option("--group", "group_id", type=int, required=True)
@click.option("--k", type=click.IntRange(2, 8), default=2, show_default=True)
@RUN
def split(project: Path, group_id: int, k: int, run_id: Optional[int]) -> None:
    """Re-cluster one group into K sub-groups of the same run."""
    with open_project(project) as proj:
        run = proj.current_run(run_id)
        new = proj.split(group_id, k, run)
        click.echo(f"run {run}: group {group_id} split into groups {', '.join(map(str, new))}")
        _olderolder_run_note(proj, run)


@cli.command()
@PROJECT
@click.option("--groups", "group_ids", type=int, multiple=True, required=True,
              help="Groups to join (repeat: --groups 3 --groups 7).")
@RUN
def merge(project: Path, group_ids: tuple[int, ...], run_id: Optional[int]) -> None:
    """Join groups of one run into a new group."""
    with open_project(project) as proj:
        run = proj.current_run(run_id)
        new = proj.merge(list(group_ids), run)
        click.echo(f"run {run}: groups {', '.join(map(str, group_ids))} merged into group {new}")
        _olderolder_run_note(proj, run)


def _olderolder_run_note(proj: Any, run_id: int) -> None:
    """Say so when a command acted on a clustering run that is not the newest."""
    note = older_run_note(proj, run_id)
    if note:
        click.echo(f"note: {note}", err=True)



@cli.command()
@PROJECT
@click.option("--text", default=None, help="Search by text through the CLIP or CLAP text tower.")
@click.option("--like", type=int, default=None, help="Items like this item id.")
@click.option("--file", "file", type=click.Path(dir_okay=False), default=None,
              help="Items like this media file.")
@click.option("--k", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--modality", type=click.Choice(["image", "audio", "video"]), default=None)
@click.option("--space", default=None, help="Only this embedding space.")
@click.option("--json", "as_json", is_flag=True)
def search(project: Path, text: Optional[str], like: Optional[int], file: Optional[str], k: int,
           modality: Optional[str], space: Optional[str], as_json: bool) -> None:
    """Find items by text, by example item, or by a file."""
    with open_project(project) as proj:
        hits = proj.search(text=text, like=like, file=file, k=k, modality=modality, space=space)
    if as_json:
        emit_json([h.to_json() for h in hits])
        return
    for h in hits:
        moment = f" at {h.frame_time:.1f} s" if h.frame_time is not None else ""
        click.echo(f"{h.score:.3f}  [{h.item_id}] {h.path}{moment}  ({h.modality})")
    if not hits:
        click.echo("no results")


@cli.command("map")
@PROJECT
@click.option("--sample", "sample_size", type=click.IntRange(min=10), default=50_000,
              show_default=True, help="UMAP is fitted on this many items; the rest are placed "
                                      "from their nearest sampled neighbours.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def map_(project: Path, sample_size: int, seed: int, as_json: bool) -> None:
    """Compute the 2-D map of every item (for the desktop app's map view)."""
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            counts = proj.compute_map(sample_size, seed, bars, cancel)
        finally:
            bars.close()
    if as_json:
        emit_json(counts)
        return
    for space, c in counts.items():
        click.echo(f"{space}: {c['items']} items mapped ({c['sampled']} fitted with UMAP)")
