"""Commands that build a project: init, scan, embed, index, status, runs, doctor, demo and
sample-corpus."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import click

from curator.cli.base import (
    PROJECT,
    Bars,
    cancellable,
    cli,
    emit_json,
    human_bytes,
    open_project,
)
from indexing.embedders.defaults import DEFAULT_MODELS


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


class _DeviceType(click.ParamType):
    """auto, cpu, cuda, cuda:N or mps."""

    name = "device"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip().lower()
        if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
            return text
        self.fail(f"{value!r} is not a device; use auto, cpu, cuda, cuda:N or mps", param, ctx)


DEVICE = _DeviceType()


def RAY_OPTIONS(fn: Callable) -> Callable:  # noqa: N802 - a decorator named like the others
    """The --ray flags shared by embed (and index)."""
    for option in reversed([
        click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None,
                     metavar="[ADDRESS]",
                     help="Run the models on a Ray cluster: its address (host:6379 or "
                          "ray://host:10001), or no value for the cluster this machine is part "
                          "of (a local one is started if there is none). Put it after PROJECT."),
        click.option("--path-map", multiple=True, metavar="OLD=NEW",
                     help="With --ray: workers read files under OLD at NEW (repeatable)."),
        click.option("--ray-actors", default=None, metavar="MIN[:MAX]",
                     help="With --ray: model actors, e.g. 1:8 (default: 1 up to one per GPU)."),
        click.option("--ray-gpus-per-actor", "ray_gpus", type=click.FloatRange(min=0),
                     default=None, help="With --ray: GPUs per model actor (default: 1 when the "
                                        "cluster has GPUs, else 0)."),
    ]):
        fn = option(fn)
    return fn


def ray_options(address: Optional[str], path_map: tuple[str, ...], actors: Optional[str],
                gpus: Optional[float]) -> Any:
    """RayOptions from the --ray flags, or None without --ray."""
    if address is None:
        if path_map or actors or gpus is not None:
            raise click.UsageError("--path-map, --ray-actors and --ray-gpus-per-actor need --ray")
        return None
    from curator.distributed import RayOptions, parse_path_map

    low, high = 1, None
    if actors:
        match = re.fullmatch(r"(\d+)(?::(\d+))?", actors.strip())
        if not match or int(match.group(1)) < 1:
            raise click.BadParameter(f"{actors!r}: expected MIN or MIN:MAX, e.g. 1:8",
                                     param_hint="--ray-actors")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low:
            raise click.BadParameter("MAX is below MIN", param_hint="--ray-actors")
    return RayOptions(address=address, path_map=parse_path_map(path_map), gpus_per_actor=gpus,
                      min_actors=low, max_actors=high)


@cli.command()
@PROJECT
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable; ** ok).")
@click.option("--exclude", multiple=True, help="Leave out files or folders matching this glob.")
@click.option("--hidden", is_flag=True, help="Also walk hidden files and folders.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Probing processes (default: one per core; 0: in this process).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None,
              metavar="[ADDRESS]",
              help="Probe and hash on a Ray cluster's workers over shared storage (address, or "
                   "no value for this machine's cluster); the catalog is written here.")
@click.option("--path-map", multiple=True, metavar="OLD=NEW",
              help="With --ray: workers read files under OLD at NEW (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def scan(project: Path, include: tuple[str, ...], exclude: tuple[str, ...], hidden: bool,
         workers: Optional[int], ray_address: Optional[str], path_map: tuple[str, ...],
         as_json: bool) -> None:
    """Walk every source of PROJECT and update the catalog (incremental)."""
    from curator.scan import ScanOptions
    from curator.settings import load_settings

    settings = load_settings().with_overrides(workers=workers)
    options = ScanOptions(include=include, exclude=exclude, hidden=hidden, workers=settings.workers,
                          ray=ray_options(ray_address, path_map, None, None))
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            report = proj.scan(options, progress=bars, cancel=cancel)
        finally:
            bars.close()
    if as_json:
        emit_json({"run_id": report.run_id, **report.counts()})
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
        click.echo(f"warning: source {root} is missing or empty (unmounted?); its items were "
                   "left as they are (`curator sources relocate` if it moved)", err=True)


@cli.command()
@PROJECT
@click.option("--model", default=None,
              help="Images and video: an open_clip model string (ARCH/TAG, hf-hub:ORG/REPO, or "
                   "ARCH with --weights), or 'classic' (weight-free). Default from settings: "
                   f"{DEFAULT_MODELS['image']}.")
@click.option("--audio-model", default=None,
              help="Audio: a CLAP model (hub id or local folder), or 'classic'. "
                   f"Default: {DEFAULT_MODELS['audio']}, or classic with --model classic.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A local open_clip checkpoint (.safetensors or a torch state_dict file).")
@click.option("--device", type=DEVICE, default=None,
              help="auto, cpu, cuda, cuda:N (the Nth GPU) or mps. Default: auto.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoding processes (default: cores - 1; 0: in this process).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32",
              show_default=True)
@click.option("--offline", is_flag=True, default=None,
              help="Never try the network for weights (also CURATOR_OFFLINE=1).")
@RAY_OPTIONS
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def embed(project: Path, model: Optional[str], audio_model: Optional[str], weights: Optional[str],
          device: Optional[str], batch_size: Optional[int], workers: Optional[int],
          precision: str, offline: Optional[bool], ray_address: Optional[str],
          path_map: tuple[str, ...], ray_actors: Optional[str], ray_gpus: Optional[float],
          as_json: bool) -> None:
    """Embed every scanned item of PROJECT not yet embedded by the chosen models (resumable).

    With --ray the models run on a Ray cluster (decoding on CPU workers, the model on GPU
    actors); this process writes the vectors and the catalog as a local run does.
    """
    from curator.settings import load_settings

    if model == "classic" and audio_model is None:
        audio_model = "classic"  # --model classic means classic for every modality
    ray = ray_options(ray_address, path_map, ray_actors, ray_gpus)

    settings = load_settings().with_overrides(model=model, audio_model=audio_model, device=device,
                                              batch_size=batch_size, workers=workers,
                                              offline=offline)
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            report = proj.embed(settings.model, settings.audio_model, weights=weights,
                                device=settings.device, precision=precision,
                                batch_size=settings.batch_size, workers=settings.workers,
                                offline=settings.offline or None, ray=ray, progress=bars,
                                cancel=cancel)
        finally:
            bars.close()
    if as_json:
        emit_json({"run_id": report.run_id, **report.counts(), "unavailable": report.unavailable})
    else:
        for space, c in report.spaces.items():
            click.echo(f"{space}: {c['embedded']} embedded, {c['errors']} errors, "
                       f"{c['items_per_second']:.1f} items/s on {c['device']} ({c['precision']})")
            if "cluster" in c:
                cl = c["cluster"]
                kinds = f": {', '.join(cl['gpu_types'])}" if cl["gpu_types"] else ""
                click.echo(f"  on a Ray cluster of {cl['nodes']} nodes ({cl['cpus']} CPUs, "
                           f"{cl['gpus']} GPUs{kinds})")
        if not report.spaces:
            click.echo("nothing to embed")
    for line in report.unavailable:
        click.echo(f"error: {line}", err=True)
    if report.unavailable:
        sys.exit(1)


@cli.command("index")
@PROJECT
@click.option("--model", default=None,
              help="Images and video: an open_clip model string, or 'classic'. Default from "
                   f"settings: {DEFAULT_MODELS['image']}.")
@click.option("--audio-model", default=None,
              help=f"Audio: a CLAP model, or 'classic'. Default: {DEFAULT_MODELS['audio']}.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A local open_clip checkpoint for --model.")
@click.option("--device", type=DEVICE, default=None,
              help="auto, cpu, cuda, cuda:N (the Nth GPU) or mps. Default: auto.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Probing and decoding processes (default: per core; 0: in this process).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None)
@click.option("--offline", is_flag=True, default=None,
              help="Never try the network for weights (also CURATOR_OFFLINE=1).")
@click.option("--groups", "n_groups", type=click.IntRange(min=1), default=None,
              help="Groups per space (default: automatic, about items/300).")
@click.option("--method", type=click.Choice(["auto", "kmeans", "hdbscan"]), default=None)
@click.option("--seed", type=int, default=None, help="Clustering and map seed (default 0).")
@click.option("--no-map", is_flag=True, help="Skip the 2-D map.")
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Leave out files or folders matching this glob.")
@click.option("--hidden", is_flag=True, help="Also walk hidden files and folders.")
@RAY_OPTIONS
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def index_command(project: Path, model: Optional[str], audio_model: Optional[str],
                  weights: Optional[str], device: Optional[str], batch_size: Optional[int],
                  workers: Optional[int], precision: Optional[str], offline: Optional[bool],
                  n_groups: Optional[int], method: Optional[str], seed: Optional[int],
                  no_map: bool, include: tuple[str, ...], exclude: tuple[str, ...], hidden: bool,
                  ray_address: Optional[str], path_map: tuple[str, ...],
                  ray_actors: Optional[str], ray_gpus: Optional[float], as_json: bool) -> None:
    """Scan, embed, group and map PROJECT in one go (the app's Index…; resumable)."""
    from curator.pipeline import IndexOptions, index
    from curator.scan import ScanOptions

    if model == "classic" and audio_model is None:
        audio_model = "classic"  # --model classic means classic for every modality
    options = IndexOptions.from_settings(
        model=model, audio_model=audio_model, weights=weights, device=device,
        batch_size=batch_size, workers=workers, precision=precision, offline=offline,
        n_groups=n_groups, method=method, seed=seed, build_map=not no_map,
        scan=ScanOptions(include=include, exclude=exclude, hidden=hidden),
        ray=ray_options(ray_address, path_map, ray_actors, ray_gpus))
    bars = Bars(quiet=as_json)
    with open_project(project) as proj, cancellable() as cancel:
        try:
            report = index(proj, options, progress=bars, cancel=cancel)
        finally:
            bars.close()
    if as_json:
        emit_json(report.to_json())
    else:
        scan = report.scan
        click.echo(f"scan: {scan.listed} files, {scan.new} new, {scan.changed} changed, "
                   f"{scan.missing} missing, {scan.errors} errors")
        for space, c in report.embed.spaces.items():
            click.echo(f"embed {space}: {c['embedded']} embedded, {c['errors']} errors")
        for space, c in (report.cluster or {}).items():
            click.echo(f"group {space}: {c['items']} items in {c['groups']} groups "
                       f"(run {report.cluster_run})")
        if report.map is not None:
            click.echo("map: computed")
        click.echo(f"next: curator queue {project}   (or: curator gui {project})")
    for line in report.unavailable:
        click.echo(f"error: {line}", err=True)
    if report.unavailable:
        sys.exit(1)


@cli.command()
@PROJECT
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--max-errors", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many error items to list.")
def status(project: Path, as_json: bool, max_errors: int) -> None:
    """Counts per modality and status, sizes, and the errors with reasons."""
    with open_project(project) as proj:
        st = proj.status(max_errors=max_errors if not as_json else 100_000)
    if as_json:
        emit_json(st.to_json())
        return
    click.echo(f"project {st.root}")
    for source in st.sources:
        click.echo(f"  source {source.root}")
    click.echo(f"{'modality':<10}{'ok':>9}{'error':>9}{'missing':>9}{'size':>12}")
    for modality, by_status in st.counts.items():
        click.echo(
            f"{modality:<10}{by_status.get('ok', 0):>9}{by_status.get('error', 0):>9}"
            f"{by_status.get('missing', 0):>9}{human_bytes(st.sizes.get(modality, 0)):>12}"
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

    bars = Bars()
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

    with cancellable() as cancel:
        run_demo(folder, items=items, seed=seed, echo=click.echo, progress=Bars(), cancel=cancel)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def doctor(as_json: bool) -> None:
    """What this machine has: Python, torch and CUDA, faiss, open_clip weights, Qt, FFmpeg."""
    from curator.doctor import collect

    report = collect()
    if as_json:
        emit_json(report)
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
    """The recorded runs of PROJECT, newest first: what ran, with which parameters, how it
    ended."""
    with open_project(project) as proj:
        records = proj.runs(kind, limit)
    if as_json:
        emit_json([r.__dict__ for r in records])
        return
    for r in records:
        click.echo(f"{r.id:>5} {r.kind:<10} {r.status:<11} {r.started_at}  {json.dumps(r.counts)}")
