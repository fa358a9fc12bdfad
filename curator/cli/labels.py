"""Commands on labels: label, the taxonomy (`labels ...`), undo, redo and history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click

from curator.cli.base import (
    ANNOTATOR,
    PROJECT,
    RUN,
    cli,
    emit_json,
    greedy_options,
    older_run_note,
    open_as,
    open_project,
)


@cli.command(cls=greedy_options("--items", "--except"))
@PROJECT
@click.option("--group", "group_id", type=int, default=None, help="Label a whole group.")
@click.option("--items", "items", multiple=True,
              help="Item ids or paths: --items 3 4 5 (or repeat the flag).")
@click.option("--from-file", "from_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="A file of item ids or paths, one per line, or a CSV with "
                                 "columns item (or path) and label.")
@click.option("--label", default=None, help="The label name (or full path parent/child).")
@click.option("--noise", is_flag=True, help="Mark as noise (no single label fits).")
@click.option("--mixed", is_flag=True, help="Mark as mixed (several labels; split it later).")
@click.option("--clear", is_flag=True, help="Remove the current label.")
@click.option("--confirm", is_flag=True, help="Confirm the current label.")
@click.option("--except", "exclude", multiple=True, type=int,
              help="With --group: leave these items out: --except 3 4 (or repeat the flag).")
@click.option("--note", default="", help="A note kept with the event.")
@click.option("--accept-suggestions", "accept_suggestions", is_flag=True,
              help="Give every undecided group its suggested label (see `curator queue`) when "
                   "the confidence reaches --min-confidence: one event, undone as one.")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=0.9,
              show_default=True, help="With --accept-suggestions: the least confidence taken.")
@RUN
@ANNOTATOR
def label(project: Path, group_id: Optional[int], items: tuple[str, ...], from_file: Optional[str],
          label: Optional[str], noise: bool, mixed: bool, clear: bool, confirm: bool,
          exclude: tuple[int, ...], note: str, accept_suggestions: bool, min_confidence: float,
          run_id: Optional[int], annotator: Optional[str]) -> None:
    """Label a group, items, or a file of items: one event, undone as one."""
    from curator.errors import UsageError

    if accept_suggestions:
        if group_id is not None or items or from_file or label or noise or mixed or clear:
            raise UsageError("--accept-suggestions takes no --group, --items, --label or action")
        with open_as(project, annotator) as proj:
            event, accepted = proj.accept_suggestions(min_confidence, run_id)
        if event is None:
            click.echo(f"no suggestion reaches confidence {min_confidence:.2f}; nothing labelled")
            return
        click.echo(f"event {event}: accepted {len(accepted)} suggestion(s) at confidence >= "
                   f"{min_confidence:.2f} (undo: curator undo {project})")
        for s in accepted:
            click.echo(f"  group {s.group_id:>6}  {s.confidence:5.0%}  {s.label}")
        return

    actions = [a for a, on in (("noise", noise), ("mixed", mixed), ("clear", clear),
                               ("confirm", confirm)) if on]
    if len(actions) > 1 or (actions and label):
        raise UsageError("give one of --label, --noise, --mixed, --clear, --confirm")
    if not actions and label is None and not from_file:
        raise UsageError("say what to do: --label NAME, --noise, --mixed, --clear or --confirm")
    action = actions[0] if actions else "assign"
    targets = sum(1 for t in (group_id is not None, bool(items), from_file) if t)
    if targets != 1:
        raise UsageError("give exactly one of --group, --items, --from-file")
    if exclude and group_id is None:
        raise UsageError("--except goes with --group")
    with open_as(project, annotator) as proj:
        if group_id is not None:
            run_id = proj.current_run(run_id)
            event = proj.label_group(group_id, label, action=action, exclude=exclude,
                                     run_id=run_id, note=note)
        elif items:
            event = proj.label_items(proj.resolve_items(items), label, action=action, note=note)
        else:
            ids, per_item = _read_item_file(proj, from_file)
            if per_item and action == "assign" and label is None:
                event = proj.label_items(ids, None, source="imported", per_item=per_item,
                                         note=note or f"from {from_file}")
            else:
                event = proj.label_items(ids, label, action=action, source="imported",
                                         note=note or f"from {from_file}")
        # This process's own event, by id: another process may have written one since.
        click.echo(f"{proj.describe_event(event)} (undo: curator undo {project})")
        if group_id is not None:
            note_ = older_run_note(proj, run_id)
            if note_:
                click.echo(f"note: {note_}", err=True)


def _read_item_file(proj: Any, path: str) -> tuple[list[int], dict[int, str]]:
    """Item ids (and per-item labels for a CSV with a label column) from a file.

    A UTF-8 byte-order mark is accepted; a binary file, or a CSV that gives one item two
    different labels, is refused with the lines named.
    """
    import csv

    from curator.errors import UsageError

    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not a UTF-8 text file (byte {exc.start} is not UTF-8); give "
                         "one item id or path per line, or a CSV with item and label columns"
                         ) from None
    if "\0" in text:
        raise UsageError(f"{path} is a binary file, not a list of items; give one item id or "
                         "path per line, or a CSV with item and label columns")
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not numbered:
        raise UsageError(f"{path} lists no items")
    header = [h.strip().lower() for h in next(csv.reader([numbered[0][1]]))]
    if not ("label" in header and ("item" in header or "path" in header or "id" in header)):
        return proj.resolve_items([ln.strip() for _, ln in numbered]), {}
    key = "item" if "item" in header else ("id" if "id" in header else "path")
    reader = csv.DictReader([ln for _, ln in numbered])
    refs, labels_, lines = [], [], []
    for (n, _), row in zip(numbered[1:], reader):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        if not row.get(key):
            raise UsageError(f"{path}: line {n} has no {key}")
        refs.append(row[key])
        labels_.append(row.get("label", ""))
        lines.append(n)
    ids = proj.resolve_items(refs)
    per_item: dict[int, str] = {}
    first_line: dict[int, int] = {}
    for item_id, lab, n in zip(ids, labels_, lines):
        if item_id in per_item and per_item[item_id] != lab:
            raise UsageError(f"{path}: lines {first_line[item_id]} and {n} give item {item_id} "
                             f"two labels ({per_item[item_id]!r} and {lab!r}); keep one")
        per_item.setdefault(item_id, lab)
        first_line.setdefault(item_id, n)
    ids = list(dict.fromkeys(ids))
    return ids, {i: lab for i, lab in per_item.items() if lab}


@cli.group()
def labels() -> None:
    """The taxonomy: add, list, rename, merge, remove, import, export labels."""


@labels.command("add")
@PROJECT
@click.argument("name")
@click.option("--parent", default=None, help="Parent label (hierarchy).")
@click.option("--colour", "--color", "colour", default=None, help="#rrggbb")
@click.option("--hotkey", default=None, help="One letter, digit or F1-F12 for the desktop app.")
@click.option("--description", default="")
@ANNOTATOR
def labels_add(project: Path, name: str, parent: Optional[str], colour: Optional[str],
               hotkey: Optional[str], description: str, annotator: Optional[str]) -> None:
    """Add label NAME."""
    with open_as(project, annotator) as proj:
        lab = proj.add_label(name, parent, colour, hotkey, description)
        click.echo(f"label {lab.path} (id {lab.id}, colour {lab.colour}"
                   + (f", hotkey {lab.hotkey}" if lab.hotkey else "") + ")")


@labels.command("list")
@PROJECT
@click.option("--json", "as_json", is_flag=True)
def labels_list(project: Path, as_json: bool) -> None:
    """The labels with their item counts."""
    with open_project(project) as proj:
        labs = proj.labels()
    if as_json:
        emit_json([lab.to_json() for lab in labs])
        return
    if not labs:
        click.echo(f"no labels yet; add one with `curator labels add {project} NAME --hotkey 1`")
    for lab in labs:
        click.echo(f"{lab.path:<40} {lab.count:>8}  {lab.colour or ''} "
                   f"{('[' + lab.hotkey + ']') if lab.hotkey else ''}")


@labels.command("rename")
@PROJECT
@click.argument("name")
@click.argument("new_name")
@ANNOTATOR
def labels_rename(project: Path, name: str, new_name: str, annotator: Optional[str]) -> None:
    """Rename label NAME to NEW_NAME (items keep it; history records the rename)."""
    with open_as(project, annotator) as proj:
        lab = proj.update_label(name, new_name=new_name)
        click.echo(f"renamed {name} to {lab.path}")


@labels.command("edit")
@PROJECT
@click.argument("name")
@click.option("--colour", "--color", "colour", default=None)
@click.option("--hotkey", default=None)
@click.option("--description", default=None)
@click.option("--parent", default=None, help="New parent ('' for none).")
@ANNOTATOR
def labels_edit(project: Path, name: str, colour: Optional[str], hotkey: Optional[str],
                description: Optional[str], parent: Optional[str],
                annotator: Optional[str]) -> None:
    """Change a label's colour, hotkey, description or parent."""
    with open_as(project, annotator) as proj:
        lab = proj.update_label(name, colour=colour, hotkey=hotkey, description=description,
                                parent=parent)
        click.echo(f"label {lab.path}: colour {lab.colour}, hotkey {lab.hotkey or '-'}")


@labels.command("merge")
@PROJECT
@click.argument("sources", nargs=-1, required=True)
@click.option("--into", required=True, help="The label that stays.")
@ANNOTATOR
def labels_merge(project: Path, sources: tuple[str, ...], into: str,
                 annotator: Optional[str]) -> None:
    """Merge SOURCES into one label: their items move (one undoable event)."""
    with open_as(project, annotator) as proj:
        result = proj.merge_labels(list(sources), into)
        click.echo(f"moved {result['moved']} item(s) into {result['into']}")


@labels.command("remove")
@PROJECT
@click.argument("name")
@click.option("--force", is_flag=True, help="Also clear the items that carry it (undoable).")
@ANNOTATOR
def labels_remove(project: Path, name: str, force: bool, annotator: Optional[str]) -> None:
    """Retire label NAME."""
    with open_as(project, annotator) as proj:
        result = proj.remove_label(name, force)
        click.echo(f"removed {name}" + (f"; cleared {result['cleared']} item(s)"
                                         if result["cleared"] else ""))


@labels.command("import")
@PROJECT
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@ANNOTATOR
def labels_import(project: Path, file: str, annotator: Optional[str]) -> None:
    """Add labels from FILE: JSON (a list of {name, parent, colour, hotkey, description}) or text
    (one name per line; parent/child paths make a hierarchy)."""
    from curator.errors import UsageError

    text = Path(file).read_text(encoding="utf-8")
    try:
        entries = json.loads(text)
        if isinstance(entries, dict):
            entries = entries.get("labels", [])
    except json.JSONDecodeError:
        entries = []
        for line in text.splitlines():
            parts = [p.strip() for p in line.split("/") if p.strip()]
            for i, part in enumerate(parts):
                entries.append({"name": part, "parent": parts[i - 1] if i else None})
    if not isinstance(entries, list):
        raise UsageError(f"{file}: expected a list of labels")
    with open_as(project, annotator) as proj:
        added = proj.import_taxonomy(entries)
        click.echo(f"added {len(added)} label(s)")


@labels.command("export")
@PROJECT
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write JSON here (default: standard output).")
def labels_export(project: Path, out: Optional[str]) -> None:
    """The taxonomy as JSON (importable with `curator labels import`)."""
    with open_project(project) as proj:
        data = json.dumps(proj.export_taxonomy(), indent=2, ensure_ascii=False)
    if out:
        from curator.stores import write_text_atomic

        write_text_atomic(Path(out), data + "\n")
    else:
        click.echo(data)



@cli.command()
@PROJECT
@click.option("--event", "event_id", type=int, default=None,
              help="Undo this event (undoing an undo redoes it).")
@ANNOTATOR
def undo(project: Path, event_id: Optional[int], annotator: Optional[str]) -> None:
    """Undo your latest labelling event (a bulk label is one event)."""
    with open_as(project, annotator) as proj:
        r = proj.undo(event_id)
    click.echo(r.text + (f" ({r.skipped} item(s) left as they are: changed since)"
                         if r.skipped else ""))


@cli.command()
@PROJECT
@ANNOTATOR
def redo(project: Path, annotator: Optional[str]) -> None:
    """Redo what you undid last."""
    with open_as(project, annotator) as proj:
        r = proj.redo()
    click.echo(r.text + (f" ({r.skipped} item(s) left as they are: changed since)"
                         if r.skipped else ""))


@cli.command()
@PROJECT
@click.option("--item", "item_id", type=int, default=None, help="Only events that touched it.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def history(project: Path, item_id: Optional[int], limit: int, as_json: bool) -> None:
    """The labelling history, newest first: who did what, to which items, from where."""
    with open_project(project) as proj:
        events = proj.history(item_id, limit)
        if as_json:
            emit_json([{**e.to_json(), "text": proj.describe_event(e.id)} for e in events])
            return
        texts = {e.id: proj.describe_event(e.id) for e in events}
    for e in events:
        click.echo(f"{e.id:>6} {e.time} {e.annotator:<12} {texts[e.id]} [{e.source}]"
                   + ("  (undone)" if e.undone else "") + (f"  \"{e.note}\"" if e.note else ""))
