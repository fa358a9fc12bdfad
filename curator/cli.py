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
            self.bar = tqdm(total=event.total, desc=event.stage, unit=event.unit.rstrip("s") or "it",
                            dynamic_ncols=True, leave=False, file=sys.stderr, mininterval=0.2)
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
