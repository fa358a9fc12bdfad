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


def greedy_options(*names: str) -> type[click.Command]:
    """A Command class whose repeatable options `names` also take several values at once.

    `--items 3 4 5` reads as `--items 3 --items 4 --items 5`: after such an option every
    following word that is not an option is one more value, once the command's positional
    argument has been given before it (so `label PROJECT --items 3 4` works, and
    `label --items 3 PROJECT` keeps its usual meaning).
    """

    class GreedyCommand(click.Command):
        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            return super().parse_args(ctx, _spread(self, args, names))

    return GreedyCommand


def _spread(command: click.Command, args: list[str], names: tuple[str, ...]) -> list[str]:
    takes_value = {opt for p in command.params if isinstance(p, click.Option)
                   and not p.is_flag and not p.count for opt in p.opts}
    out: list[str] = []
    positional = False
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return out + args[i:]
        if word in names:
            values = []
            i += 1
            while i < len(args) and not args[i].startswith("-") and (positional or not values):
                values.append(args[i])
                i += 1
            out += [x for v in values for x in (word, v)] or [word]
            continue
        out.append(word)
        if word in takes_value and i + 1 < len(args):
            out.append(args[i + 1])
            i += 1
        elif not word.startswith("-"):
            positional = True
        i += 1
    return out


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


def click_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`--version`: the report's module (importlib.metadata, ~0.1 s) loads only when asked."""
    if value:
        from curator.version import click_callback

        click_callback(ctx, param, value)


@click.group(cls=_PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=click_version, help="Show the version, the libraries and exit.")
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


# The flag that sets each option a domain error can name (CuratorError.option): the domain
# speaks of its parameters, the command line of its flags.
FLAGS = {
    "threshold": "--threshold",
    "preferred_source": "--prefer-source FOLDER",
    "label": "--label NAME, --noise or --mixed",
    "undecided_only": "--undecided",
    "k": "--k",
    "force": "--force",
    "sources": "--source FOLDER",
    "text": "--text WORDS",
    "like": "--like ITEM_ID",
    "query": "--text, --like or --file",
    "audit_sample": "--sample N",
    "audit_id": "--id",
    "path_map": "--path-map OLD=NEW",
    "ray": "--ray",
    "model": "--model classic",
}


def error_line(exc: Any) -> str:
    """A domain error as the CLI's one line: message, hint, and the flag for its option."""
    line = exc.with_hint()
    option = getattr(exc, "option", None)
    flag = FLAGS.get(option) if option else None
    if option and flag is None:
        flag = "--" + option.replace("_", "-")
    return f"{line} ({flag})" if flag else line


def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI; every expected failure ends as one `error:` line and a non-zero exit."""
    import sqlite3

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
        click.echo(f"error: {error_line(exc)}", err=True)
        sys.exit(1)
    except Cancelled:
        click.echo("cancelled; run it again to continue (finished work is kept)", err=True)
        sys.exit(130)
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        from curator.catalog import explain

        log.debug("catalog error", exc_info=True)
        click.echo(f"error: {explain(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted; finished work is kept", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except OSError as exc:
        click.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(1)


def os_error_line(exc: OSError) -> str:
    """One line for a file-system failure, with what to do for the common ones."""
    import errno

    name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    text = f"{name}{exc.strerror or exc}"
    hints = {
        errno.ENOSPC: "the disk is full; free space and run the command again",
        errno.EDQUOT: "the disk quota is used up; free space and run the command again",
        errno.EROFS: "the file system is read-only; write somewhere else or remount it read-write",
        errno.EACCES: "permission denied; check the permissions of that path",
        errno.EIO: "input/output error; the disk may be failing",
    }
    hint = hints.get(exc.errno or 0)
    return f"{text} ({hint})" if hint else text


def older_run_note(proj: Any, run_id: int) -> Optional[str]:
    """A warning when a command acts on a clustering run that is not the newest, else None."""
    from curator.decisions import newer_run

    newest = newer_run(proj.catalog, run_id)
    if newest is None:
        return None
    return (f"run {run_id} is an older clustering; the newest is run {newest} "
            f"(pass --run {newest} to work on it)")
