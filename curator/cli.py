"""The `curator` command line: each command parses flags, calls one Project method and prints.

Nothing heavy is imported at start-up; each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import click

log = logging.getLogger("curator")


# --- shared plumbing --------------------------------------------------------------------------


class _Bars:
    """A progress callback that draws one tqdm bar per stage (files/s or items/s, ETA)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.stage: Optional[str] = None

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if event.stage != self.stage:
            self.close()
            self.stage = event.stage
            # In a log file (no terminal) a bar that redraws five times a second buries the
            # output; there it redraws every ten seconds.
            tty = sys.stderr.isatty()
            self.bar = tqdm(total=event.total, desc=event.stage, unit=event.unit.rstrip("s") or "it",
                            dynamic_ncols=True, leave=False, file=sys.stderr,
                            mininterval=0.2 if tty else 10.0)
        if self.bar.total != event.total:
            self.bar.total = event.total
        self.bar.n = event.done
        if event.message:
            self.bar.set_postfix_str(event.message, refresh=False)
        self.bar.refresh() if event.done == event.total else self.bar.update(0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def _cancellable() -> Iterator[Callable[[], bool]]:
    """First Ctrl-C (or SIGTERM) asks the job to stop after the current batch; a second one aborts."""
    from indexing.progress import CancelToken

    token = CancelToken()

    def handler(signum: int, frame: Any) -> None:
        if token.cancelled and signum == signal.SIGINT:
            raise KeyboardInterrupt
        token.cancel()
        click.echo("\nstopping after the current batch (Ctrl-C again to abort)...", err=True)

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _open(path: Path) -> Any:
    from curator.project import Project

    return Project.open(path)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


PROJECT = click.argument("project", type=click.Path(path_type=Path))


# --- commands ---------------------------------------------------------------------------------


class _PluginGroup(click.Group):
    """Built-in commands plus those other packages register under the `curator.commands`
    entry point (the desktop app's `gui` is one), loaded only when asked for."""

    def _plugins(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group="curator.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command


@click.group(cls=_PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="curator", prog_name="curator")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Curator: embed, group and label a million images, sounds and videos.

    A project is a folder holding the catalog (catalog.db) and its stores; its source folders hold
    the media and are never written to.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@PROJECT
@click.option("--source", "sources", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A media folder to index (repeat for several).")
def init(project: Path, sources: tuple[Path, ...]) -> None:
    """Create a project folder PROJECT indexing the given source folders."""
    from curator.project import Project

    with Project.create(project, list(sources)) as proj:
        click.echo(f"project {proj.root} with {len(proj.sources())} source(s):")
        for source in proj.sources():
            click.echo(f"  {source.root}")
        click.echo(f"next: curator scan {project}")


@cli.command()
@PROJECT
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable; ** ok).")
@click.option("--exclude", multiple=True, help="Leave out files or folders matching this glob.")
@click.option("--hidden", is_flag=True, help="Also walk hidden files and folders.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Probing processes (default: one per core; 0: in this process).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def scan(project: Path, include: tuple[str, ...], exclude: tuple[str, ...], hidden: bool,
         workers: Optional[int], as_json: bool) -> None:
    """Walk every source of PROJECT and update the catalog (incremental)."""
    from curator.scan import ScanOptions
    from curator.settings import load_settings

    settings = load_settings().with_overrides(workers=workers)
    options = ScanOptions(include=include, exclude=exclude, hidden=hidden, workers=settings.workers)
    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            report = proj.scan(options, progress=bars, cancel=cancel)
        finally:
            bars.close()
    if as_json:
        _emit_json({"run_id": report.run_id, **report.counts()})
    else:
        click.echo(
            f"scanned {report.listed} files in {report.seconds:.1f} s "
            f"({report.files_per_second:.0f} files/s): {report.new} new, {report.changed} changed, "
            f"{report.renamed} moved, {report.missing} missing, {report.unchanged} unchanged, "
            f"{report.errors} errors"
        )
        if report.errors:
            click.echo(f"see the errors with: curator status {project}")
    for root in report.unreachable:
        click.echo(f"warning: source {root} is not reachable (unmounted?); its items were left "
                   "as they are", err=True)
    if report.cancelled:
        click.echo("scan cancelled; run it again to finish (finished files are kept)", err=True)
        sys.exit(130)


@cli.command()
@PROJECT
@click.option("--model", default=None,
              help="Images and video: an open_clip model string (ARCH/TAG, hf-hub:ORG/REPO, or ARCH "
                   "with --weights), or 'classic' (weight-free). Default from settings: "
                   "ViT-B-32/laion2b_s34b_b79k.")
@click.option("--audio-model", default=None,
              help="Audio: a CLAP model (hub id or local folder), or 'classic'. "
                   "Default: laion/clap-htsat-unfused.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A local open_clip checkpoint (.safetensors or a torch state_dict file).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoding processes (default: cores - 1; 0: in this process).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32",
              show_default=True)
@click.option("--offline", is_flag=True, default=None,
              help="Never try the network for weights (also CURATOR_OFFLINE=1).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def embed(project: Path, model: Optional[str], audio_model: Optional[str], weights: Optional[str],
          device: Optional[str], batch_size: Optional[int], workers: Optional[int],
          precision: str, offline: Optional[bool], as_json: bool) -> None:
    """Embed every scanned item of PROJECT not yet embedded by the chosen models (resumable)."""
    from curator.settings import load_settings

    settings = load_settings().with_overrides(model=model, audio_model=audio_model, device=device,
                                              batch_size=batch_size, workers=workers,
                                              offline=offline)
    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            report = proj.embed(settings.model, settings.audio_model, weights=weights,
                                device=settings.device, precision=precision,
                                batch_size=settings.batch_size, workers=settings.workers,
                                offline=settings.offline or None, progress=bars, cancel=cancel)
        finally:
            bars.close()
    if as_json:
        _emit_json({"run_id": report.run_id, **report.counts(), "unavailable": report.unavailable})
    else:
        for space, c in report.spaces.items():
            click.echo(f"{space}: {c['embedded']} embedded, {c['errors']} errors, "
                       f"{c['items_per_second']:.1f} items/s on {c['device']} ({c['precision']})")
        if not report.spaces:
            click.echo("nothing to embed")
    for line in report.unavailable:
        click.echo(f"error: {line}", err=True)
    if report.cancelled:
        click.echo("embedding cancelled; run it again to continue (finished batches are kept)",
                   err=True)
        sys.exit(130)
    if report.unavailable:
        sys.exit(1)


@cli.command()
@PROJECT
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--max-errors", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many error items to list.")
def status(project: Path, as_json: bool, max_errors: int) -> None:
    """Counts per modality and status, sizes, and the errors with reasons."""
    with _open(project) as proj:
        st = proj.status(max_errors=max_errors if not as_json else 100_000)
    if as_json:
        _emit_json(st.to_json())
        return
    click.echo(f"project {st.root}")
    for source in st.sources:
        click.echo(f"  source {source.root}")
    click.echo(f"{'modality':<10}{'ok':>9}{'error':>9}{'missing':>9}{'size':>12}")
    for modality, by_status in st.counts.items():
        click.echo(
            f"{modality:<10}{by_status.get('ok', 0):>9}{by_status.get('error', 0):>9}"
            f"{by_status.get('missing', 0):>9}{_human_bytes(st.sizes.get(modality, 0)):>12}"
        )
    click.echo(f"{'total':<10}{st.total:>9}")
    if st.last_scan:
        click.echo(f"last scan: run {st.last_scan.id}, {st.last_scan.status}, "
                   f"started {st.last_scan.started_at}")
    if st.errors:
        n_errors = sum(c.get("error", 0) for c in st.counts.values())
        click.echo(f"errors ({n_errors}):")
        for err in st.errors:
            click.echo(f"  [{err['id']}] {err['path']}: {err['error']}")
        if n_errors > len(st.errors):
            click.echo(f"  ... and {n_errors - len(st.errors)} more (--max-errors N or --json)")


@cli.command("sample-corpus")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--items", type=click.IntRange(min=30), default=300, show_default=True,
              help="How many good files to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def sample_corpus(out: Path, items: int, seed: int) -> None:
    """Write a deterministic, labelled sample corpus of images, audio and video to OUT."""
    from curator.sample_corpus import write_sample_corpus

    bars = _Bars()
    try:
        summary = write_sample_corpus(out, items=items, seed=seed, progress=bars)
    except ValueError as exc:
        from curator.errors import UsageError

        raise UsageError(str(exc)) from exc
    finally:
        bars.close()
    counts = ", ".join(f"{n} {m}" for m, n in sorted(summary.counts.items()))
    click.echo(f"wrote {counts} and {summary.broken} broken files to {summary.root}")
    click.echo(f"ground truth: {summary.ground_truth}")


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path), default=Path("demo"))
@click.option("--items", type=click.IntRange(min=30), default=300, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(folder: Path, items: int, seed: int) -> None:
    """Make the sample corpus in FOLDER/corpus, a project in FOLDER/project, scan it, summarise."""
    from curator.demo import run_demo

    with _cancellable() as cancel:
        run_demo(folder, items=items, seed=seed, echo=click.echo, progress=_Bars(), cancel=cancel)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def doctor(as_json: bool) -> None:
    """What this machine has: Python, torch and CUDA, faiss, open_clip weights, Qt, FFmpeg."""
    from curator.doctor import collect

    report = collect()
    if as_json:
        _emit_json(report)
        return
    for section, entries in report.items():
        click.echo(f"{section}:")
        if isinstance(entries, dict):
            for key, value in entries.items():
                click.echo(f"  {key}: {value}")
        elif isinstance(entries, list):
            if not entries:
                click.echo("  (none)")
            for entry in entries:
                click.echo(f"  {entry}")
        else:
            click.echo(f"  {entries}")


@cli.command()
@PROJECT
@click.option("--kind", default=None, help="Only runs of this kind (scan, embed, cluster, ...).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs(project: Path, kind: Optional[str], limit: int, as_json: bool) -> None:
    """The recorded runs of PROJECT, newest first: what ran, with which parameters, and how it ended."""
    with _open(project) as proj:
        records = proj.runs(kind, limit)
    if as_json:
        _emit_json([r.__dict__ for r in records])
        return
    for r in records:
        click.echo(f"{r.id:>5} {r.kind:<10} {r.status:<11} {r.started_at}  {json.dumps(r.counts)}")


# --- groups -----------------------------------------------------------------------------------

ANNOTATOR = click.option("--annotator", default=None,
                         help="Who makes this change (default: settings, then the OS user).")
RUN = click.option("--run", "run_id", type=int, default=None,
                   help="Clustering run (default: the newest finished one).")


def _open_as(project: Path, annotator: Optional[str]) -> Any:
    proj = _open(project)
    proj.set_annotator(annotator)
    return proj


@cli.command()
@PROJECT
@click.option("--groups", "n_groups", default="auto", show_default=True,
              help="Number of groups, or 'auto' (chosen from the data by the graph "
                   "method; about items/300, within 10..5000, for kmeans and hdbscan).")
@click.option("--method", type=click.Choice(["auto", "graph", "kmeans", "hdbscan"]),
              default="auto", show_default=True,
              help="auto = graph: k-means micro-clusters merged along their density graph, "
                   "outliers in one noise group; kmeans: plain spherical k-means; hdbscan: "
                   "UMAP + HDBSCAN (up to ~200k items, marks noise).")
@click.option("--space", "spaces", multiple=True, help="Only these embedding spaces.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cluster(project: Path, n_groups: str, method: str, spaces: tuple[str, ...], seed: int,
            as_json: bool) -> None:
    """Cluster every embedding space of PROJECT into groups (a new run; labels are kept)."""
    from curator.errors import UsageError

    if n_groups != "auto" and not n_groups.isdigit():
        raise UsageError(f"--groups must be a number or 'auto', not {n_groups!r}")
    groups = None if n_groups == "auto" else int(n_groups)
    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            run_id, counts = proj.cluster(groups, method, seed, list(spaces) or None, bars, cancel)
        finally:
            bars.close()
        if as_json:
            _emit_json({"run_id": run_id, "spaces": counts})
            return
        click.echo(f"clustering run {run_id}:")
        for space, c in counts.items():
            click.echo(f"  {space}: {c['items']} items in {c['groups']} groups ({c['method']}"
                       + (f", {c['noise']} noise" if c.get("noise") else "") + ")")
        _print_groups(proj.groups(run_id, order="size")[:5], "largest groups")
        _print_groups(proj.groups(run_id, order="impurity")[:5], "most impure groups")


def _print_groups(groups: list[Any], title: str) -> None:
    click.echo(f"{title}:")
    click.echo(f"  {'group':>6} {'size':>7} {'cohesion':>9} {'impurity':>9} {'topic':>6}  "
               f"{'status':<10} label")
    for g in groups:
        click.echo(f"  {g.group_id:>6} {g.size:>7} {g.cohesion:>9.3f} {g.impurity:>9.3f} "
                   f"{g.topic:>6}  {g.status:<10} {g.label or ''}")


@cli.command()
@PROJECT
@click.option("--order", type=click.Choice(["impurity", "size", "unlabeled"]), default="impurity",
              show_default=True)
@RUN
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def queue(project: Path, order: str, run_id: Optional[int], limit: int, as_json: bool) -> None:
    """The undecided groups to review next, with progress."""
    with _open(project) as proj:
        q = proj.queue(order, run_id)
    if as_json:
        _emit_json({**q, "groups": [g.to_json() for g in q["groups"]]})
        return
    click.echo(f"run {q['run_id']}: {q['groups_decided']} of {q['groups_total']} groups decided, "
               f"{q['items_labelled']} of {q['items_total']} items labelled")
    _print_groups(q["groups"][:limit], f"next {min(limit, len(q['groups']))} groups ({order})")


@cli.command()
@PROJECT
@click.option("--group", "group_id", type=int, required=True)
@click.option("--k", type=click.IntRange(2, 8), default=2, show_default=True)
@RUN
def split(project: Path, group_id: int, k: int, run_id: Optional[int]) -> None:
    """Re-cluster one group into K sub-groups of the same run."""
    with _open(project) as proj:
        new = proj.split(group_id, k, run_id)
        click.echo(f"group {group_id} split into {', '.join(map(str, new))}")


@cli.command()
@PROJECT
@click.option("--groups", "group_ids", type=int, multiple=True, required=True,
              help="Groups to join (repeat: --groups 3 --groups 7).")
@RUN
def merge(project: Path, group_ids: tuple[int, ...], run_id: Optional[int]) -> None:
    """Join groups of one run into a new group."""
    with _open(project) as proj:
        new = proj.merge(list(group_ids), run_id)
        click.echo(f"groups {', '.join(map(str, group_ids))} merged into group {new}")


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
    with _open(project) as proj:
        hits = proj.search(text=text, like=like, file=file, k=k, modality=modality, space=space)
    if as_json:
        _emit_json(hits)
        return
    for h in hits:
        click.echo(f"{h['score']:.3f}  [{h['item_id']}] {h['path']}  ({h['modality']})")
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
    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            counts = proj.compute_map(sample_size, seed, bars, cancel)
        finally:
            bars.close()
    if as_json:
        _emit_json(counts)
        return
    for space, c in counts.items():
        click.echo(f"{space}: {c['items']} items mapped ({c['sampled']} fitted with UMAP)")


# --- labels -----------------------------------------------------------------------------------


@cli.command()
@PROJECT
@click.option("--group", "group_id", type=int, default=None, help="Label a whole group.")
@click.option("--items", "items", multiple=True, help="Item ids or paths (repeatable).")
@click.option("--from-file", "from_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="A file of item ids or paths, one per line, or a CSV with "
                                 "columns item (or path) and label.")
@click.option("--label", default=None, help="The label name (or full path parent/child).")
@click.option("--noise", is_flag=True, help="Mark as noise (no single label fits).")
@click.option("--mixed", is_flag=True, help="Mark as mixed (several labels; split it later).")
@click.option("--clear", is_flag=True, help="Remove the current label.")
@click.option("--confirm", is_flag=True, help="Confirm the current label.")
@click.option("--except", "exclude", multiple=True, type=int,
              help="With --group: leave this item out (repeatable).")
@click.option("--note", default="", help="A note kept with the event.")
@RUN
@ANNOTATOR
def label(project: Path, group_id: Optional[int], items: tuple[str, ...], from_file: Optional[str],
          label: Optional[str], noise: bool, mixed: bool, clear: bool, confirm: bool,
          exclude: tuple[int, ...], note: str, run_id: Optional[int],
          annotator: Optional[str]) -> None:
    """Label a group, items, or a file of items: one event, undone as one."""
    from curator.errors import UsageError

    actions = [a for a, on in (("noise", noise), ("mixed", mixed), ("clear", clear),
                               ("confirm", confirm)) if on]
    if len(actions) > 1 or (actions and label):
        raise UsageError("give one of --label, --noise, --mixed, --clear, --confirm")
    action = actions[0] if actions else "assign"
    targets = sum(1 for t in (group_id is not None, bool(items), from_file) if t)
    if targets != 1:
        raise UsageError("give exactly one of --group, --items, --from-file")
    if exclude and group_id is None:
        raise UsageError("--except goes with --group")
    with _open_as(project, annotator) as proj:
        if group_id is not None:
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
        ev = proj.history(limit=1)[0]
        what = ev.label or action
        click.echo(f"event {event}: {what} on {ev.item_count} item(s) (undo: curator undo "
                   f"{project})")


def _read_item_file(proj: Any, path: str) -> tuple[list[int], dict[int, str]]:
    import csv

    from curator.errors import UsageError

    with open(path, newline="", encoding="utf-8") as fh:
        text = fh.read()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise UsageError(f"{path} lists no items")
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    if "label" in header and ("item" in header or "path" in header or "id" in header):
        key = "item" if "item" in header else ("id" if "id" in header else "path")
        rows = list(csv.DictReader(lines))
        refs, labels_ = [], []
        for n, row in enumerate(rows, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not row.get(key):
                raise UsageError(f"{path}: line {n} has no {key}")
            refs.append(row[key])
            labels_.append(row.get("label", ""))
        ids = proj.resolve_items(refs)
        per_item = {i: lab for i, lab in zip(ids, labels_) if lab}
        return ids, per_item
    return proj.resolve_items(lines), {}


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
    with _open_as(project, annotator) as proj:
        lab = proj.add_label(name, parent, colour, hotkey, description)
        click.echo(f"label {lab.path} (id {lab.id}, colour {lab.colour}"
                   + (f", hotkey {lab.hotkey}" if lab.hotkey else "") + ")")


@labels.command("list")
@PROJECT
@click.option("--json", "as_json", is_flag=True)
def labels_list(project: Path, as_json: bool) -> None:
    """The labels with their item counts."""
    with _open(project) as proj:
        labs = proj.labels()
    if as_json:
        _emit_json([lab.to_json() for lab in labs])
        return
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
    with _open_as(project, annotator) as proj:
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
    with _open_as(project, annotator) as proj:
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
    with _open_as(project, annotator) as proj:
        result = proj.merge_labels(list(sources), into)
        click.echo(f"moved {result['moved']} item(s) into {result['into']}")


@labels.command("remove")
@PROJECT
@click.argument("name")
@click.option("--force", is_flag=True, help="Also clear the items that carry it (undoable).")
@ANNOTATOR
def labels_remove(project: Path, name: str, force: bool, annotator: Optional[str]) -> None:
    """Retire label NAME."""
    with _open_as(project, annotator) as proj:
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
    with _open_as(project, annotator) as proj:
        added = proj.import_taxonomy(entries)
        click.echo(f"added {len(added)} label(s)")


@labels.command("export")
@PROJECT
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write JSON here (default: standard output).")
def labels_export(project: Path, out: Optional[str]) -> None:
    """The taxonomy as JSON (importable with `curator labels import`)."""
    with _open(project) as proj:
        data = json.dumps(proj.export_taxonomy(), indent=2, ensure_ascii=False)
    if out:
        from curator.stores import write_text_atomic

        write_text_atomic(Path(out), data + "\n")
    else:
        click.echo(data)


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
    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            found = proj.suspects(k, min_disagreement, limit, bars, cancel)
        finally:
            bars.close()
    if as_json:
        _emit_json([s.to_json() for s in found])
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
        with _open_as(project, annotator) as proj:
            new = proj.start_audit(sample, seed)
            size = proj.audit_report(new)["sampled"]
        if as_json:
            _emit_json({"audit_id": new, "sampled": size})
        else:
            click.echo(f"audit {new}: {size} items to review (curator audit {project} --id {new})")
        return
    if audit_id is None:
        raise UsageError("give --sample N to start an audit, or --id A to work on one")
    if (item_id is None) != (verdict is None):
        raise UsageError("--item and --verdict go together")
    with _open_as(project, annotator) as proj:
        if verdict is not None:
            r = proj.record_verdict(audit_id, item_id, verdict, label)
            click.echo(f"item {item_id}: {verdict}" + (f", relabelled {label} (event "
                       f"{r['event']}, undo: curator undo {project})" if r["event"] else ""))
        elif report:
            rep = proj.audit_report(audit_id)
            if as_json:
                _emit_json(rep)
                return
            click.echo(f"audit {audit_id}: {rep['reviewed']} of {rep['sampled']} reviewed, "
                       f"{rep['remaining']} remaining")
            rows = [("overall", rep["overall"])] + [(f"label {n}", e) for n, e in
                                                    rep["labels"].items()]
            rows += [(f"source {n}", e) for n, e in rep["sources"].items()]
            for name, e in rows:
                acc = ("n/a" if e["accuracy"] is None else
                       f"{e['accuracy']:.1%} ({e['low']:.1%} - {e['high']:.1%})")
                click.echo(f"  {name:<28} {acc:<26} {e['correct']} correct, {e['wrong']} wrong, "
                           f"{e['unsure']} unsure")
        else:
            todo = proj.next_unreviewed(audit_id, limit)
            if as_json:
                _emit_json([t.to_json() for t in todo])
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
    bars = _Bars(quiet=as_json)
    with _open_as(project, annotator) as proj, _cancellable() as cancel:
        try:
            rep = proj.propagate(min_confidence, k, not dry_run, bars, cancel)
        finally:
            bars.close()
    if as_json:
        _emit_json(rep.to_json())
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
@click.option("--event", "event_id", type=int, default=None,
              help="Undo this event (undoing an undo redoes it).")
@ANNOTATOR
def undo(project: Path, event_id: Optional[int], annotator: Optional[str]) -> None:
    """Undo your latest labelling event (a bulk label is one event)."""
    with _open_as(project, annotator) as proj:
        r = proj.undo(event_id)
    click.echo(f"{r['action']} of event {r['target']}: {r['restored']} item(s) restored"
               + (f", {r['skipped']} left as they are (changed since)" if r["skipped"] else ""))


@cli.command()
@PROJECT
@ANNOTATOR
def redo(project: Path, annotator: Optional[str]) -> None:
    """Redo what you undid last."""
    with _open_as(project, annotator) as proj:
        r = proj.redo()
    click.echo(f"redo of event {r['target']}: {r['restored']} item(s)"
               + (f", {r['skipped']} left as they are (changed since)" if r["skipped"] else ""))


@cli.command()
@PROJECT
@click.option("--item", "item_id", type=int, default=None, help="Only events that touched it.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def history(project: Path, item_id: Optional[int], limit: int, as_json: bool) -> None:
    """The labelling history, newest first: who did what, to which items, from where."""
    with _open(project) as proj:
        events = proj.history(item_id, limit)
    if as_json:
        _emit_json([e.to_json() for e in events])
        return
    for e in events:
        where = f" group {e.group_id} of run {e.run_id}" if e.group_id is not None else ""
        target = f" event {e.target}" if e.target else ""
        click.echo(f"{e.id:>6} {e.time} {e.annotator:<12} {e.action:<12} {e.label or '':<16} "
                   f"{e.item_count:>7} items  {e.source}{where}{target}"
                   + ("  (undone)" if e.undone else "") + (f"  \"{e.note}\"" if e.note else ""))


# --- export, duplicates, report ---------------------------------------------------------------


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
    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            report = proj.export(fmt, out, split=split, seed=seed, only_labeled=only_labeled,
                                 mode=mode, progress=bars, cancel=cancel)
        finally:
            bars.close()
    if as_json:
        _emit_json(report.to_json())
        return
    click.echo(f"exported {report.items} items as {report.format} to {report.out} "
               f"in {report.seconds:.1f} s")
    for split_name, counts in report.counts.items():
        click.echo(f"  {split_name}: {sum(counts.values())} items, {len(counts)} labels")
    for reason, n in report.skipped.items():
        click.echo(f"  left out: {n} ({reason})")
    for note in report.notes:
        click.echo(f"  note: {note}")


@cli.command()
@PROJECT
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.95,
              show_default=True, help="Cosine similarity for near duplicates.")
@click.option("--keep", "rule", type=click.Choice(["resolution", "longest", "oldest", "source"]),
              default="resolution", show_default=True, help="Which copy to suggest keeping.")
@click.option("--prefer-source", default=None, type=click.Path(path_type=Path),
              help="With --keep source: the source folder (or a folder in one) to keep.")
@click.option("--outliers", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many outliers to rank (needs a clustering).")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="Groups to list.")
@click.option("--json", "as_json", is_flag=True)
def dedup(project: Path, threshold: float, rule: str, prefer_source: Optional[Path],
          outliers: int, show: int, as_json: bool) -> None:
    """Find exact and near duplicates in PROJECT (nothing is deleted) and rank outliers."""
    from curator.dedup import latest_path

    bars = _Bars(quiet=as_json)
    with _open(project) as proj, _cancellable() as cancel:
        try:
            report = proj.find_duplicates(threshold, rule,
                                          str(prefer_source) if prefer_source else None,
                                          outliers=outliers, progress=bars, cancel=cancel)
        finally:
            bars.close()
        if as_json:
            _emit_json(report.to_json())
            return
        s = report.summary()
        click.echo(f"{s['exact_groups']} exact groups ({s['exact_items']} items), "
                   f"{s['near_groups']} near groups ({s['near_items']} items) at cosine >= "
                   f"{threshold:g}; {s['removable']} items could go (keeping one per group)")
        for g in report.groups[:show]:
            keep = proj.item(g.keeper)["abs_path"]
            click.echo(f"  {g.kind:<5} {len(g.items):>4} items, keep {keep}")
        if report.outliers:
            click.echo("top outliers: " + ", ".join(
                f"{o.item_id} ({o.score:.2f})" for o in report.outliers[:show]))
        click.echo(f"saved {latest_path(proj)}; exports keep each group in one split")


@cli.command()
@PROJECT
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the report as one self-contained HTML file.")
@click.option("--json", "as_json", is_flag=True)
def report(project: Path, html_path: Optional[Path], as_json: bool) -> None:
    """Coverage of PROJECT's labels: by label, source folder, modality and label source."""
    from curator.report import render_text, write_html

    with _open(project) as proj:
        data = proj.report()
    if html_path is not None:
        write_html(data, html_path)
    if as_json:
        _emit_json(data)
        return
    click.echo(render_text(data), nl=False)
    if html_path is not None:
        click.echo(f"wrote {html_path}")


# --- entry point ------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI; every expected failure ends as one `error:` line and a non-zero exit."""
    from curator.errors import CuratorError

    try:
        cli.main(args=argv, prog_name="curator", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        where = f"curator {exc.ctx.command_path.split(' ', 1)[1]} --help" if (
            exc.ctx and " " in exc.ctx.command_path) else "curator --help"
        click.echo(f"error: {exc.format_message()} (see `{where}`)", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except CuratorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted; finished work is kept", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except OSError as exc:
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"error:{name} {exc.strerror or exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
