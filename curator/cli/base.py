"""The CLI's shared plumbing: the root command group, progress bars, Ctrl-C, output and errors."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import click

log = logging.getLogger("curator")


# --- shared plumbing --------------------------------------------------------------------------


class Bars:
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
            self.bar = tqdm(
                total=event.total,
                desc=event.stage,
                unit=event.unit.rstrip("s") or "it",
                dynamic_ncols=True,
                leave=False,
                file=sys.stderr,
                mininterval=0.2 if tty else 10.0,
            )
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
def cancellable() -> Iterator[Callable[[], bool]]:
    """First Ctrl-C (or SIGTERM) asks the job to stop after the current batch; a second one
    aborts."""
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


def open_project(path: Path) -> Any:
    from curator.project import Project

    return Project.open(path)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


PROJECT = click.argument("project", type=click.Path(path_type=Path))


ANNOTATOR = click.option("--annotator", default=None,
                         help="Who makes this change (default: settings, then the OS user).")
RUN = click.option("--run", "run_id", type=int, default=None,
                   help="Clustering run (default: the newest finished one).")


def open_as(project: Path, annotator: Optional[str]) -> Any:
    proj = open_project(project)
    proj.set_annotator(annotator)
    return proj


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
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: "
                                                                "%(message)s")


# --- entry point ------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI; every expected failure ends as one `error:` line and a non-zero exit."""
    from curator.errors import CuratorError
    from indexing.progress import Cancelled

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
        click.echo(f"error: {exc.with_hint()}", err=True)
        sys.exit(1)
    except Cancelled:
        click.echo("cancelled; run it again to continue (finished work is kept)", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted; finished work is kept", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except OSError as exc:
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"error:{name} {exc.strerror or exc}", err=True)
        sys.exit(1)

