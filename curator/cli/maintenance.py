"""`curator check`, `curator repair` and `curator backup`: the catalog's health and its copies."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from curator.cli.base import PROJECT, cli, emit_json, open_project


@cli.command("check")
@PROJECT
@click.option("--full", is_flag=True, help="SQLite's full integrity_check (slower) instead of "
              "quick_check.")
@click.option("--json", "as_json", is_flag=True)
def check_cmd(project: Path, full: bool, as_json: bool) -> None:
    """Check PROJECT's catalog: SQLite integrity, rows that point nowhere, current labels against
    the event log, vector stores against the catalog. Reads only; exit 1 when anything is wrong."""
    from curator.integrity import check

    if not (project / "catalog.db").exists():
        open_project(project)  # says what is wrong with the folder
    report = check(project, full=full)
    if as_json:
        emit_json(report.to_json())
    elif report.ok:
        counts = ", ".join(f"{n:,} {table}" for table, n in report.counts.items())
        click.echo(f"ok: {report.catalog} is healthy ({counts})")
    else:
        for problem in report.problems:
            click.echo(f"problem: {problem.kind}: {problem.count:,} ({problem.detail}); "
                       f"fix: {problem.fix}")
    if not report.ok:
        sys.exit(1)


@cli.command("repair")
@PROJECT
@click.option("--from-backup", "from_backup", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None,
              help="Restore this backup (default: the newest good one, only when the catalog "
              "is unreadable).")
@click.option("--json", "as_json", is_flag=True)
def repair_cmd(project: Path, from_backup: Path | None, as_json: bool) -> None:
    """Repair PROJECT: restore a backup if the catalog is unreadable (replaying newer label
    events from the event-log backup), drop rows that point nowhere, rebuild current labels from
    the event log and the vector stores and indexes from their shards."""
    from curator.integrity import check, repair

    report = repair(project, from_backup=from_backup)
    after = check(project)
    if as_json:
        emit_json({**report.to_json(), "ok": after.ok})
        return
    if report.restored_from:
        click.echo(f"restored the catalog from {report.restored_from} (the damaged file is kept "
                   f"as {report.damaged_copy}); {report.replayed_events} newer label events "
                   "replayed")
    for kind, n in report.dropped.items():
        click.echo(f"dropped {n:,} {kind}")
    if report.labels_rebuilt:
        click.echo(f"current labels rebuilt from the event log ({report.labels_rebuilt:,} fixed)")
    if report.stores_rebuilt:
        click.echo(f"vector stores and indexes rebuilt: {', '.join(report.stores_rebuilt)}")
    click.echo("ok: the catalog passes its check" if after.ok else
               "the catalog still has problems; see `curator check`")
    if not after.ok:
        sys.exit(1)


@cli.command("backup")
@PROJECT
@click.option("--to", "dest", type=click.Path(path_type=Path), default=None,
              help="The backup file (default: PROJECT/backups/catalog-<time>.db, newest 5 kept).")
def backup_cmd(project: Path, dest: Path | None) -> None:
    """A consistent copy of PROJECT's catalog (SQLite's online backup API: safe while others
    write). Vectors and thumbnails are rebuilt from their shards by `curator repair`."""
    with open_project(project) as proj:
        target = proj.backup(dest)
    click.echo(f"backed up to {target}")
