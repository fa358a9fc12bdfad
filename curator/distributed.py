"""Embedding on a Ray cluster: workers decode and embed, the driver alone writes shards and catalog.

The driver reads the pending items from the catalog, hands them to Ray Data in blocks, and
streams the vectors back. Decoding runs as CPU tasks; the model runs in an actor pool (one
model per actor, `num_gpus` each) that grows and shrinks between `min_actors` and `max_actors`.
Every batch the driver receives is written exactly as a local run writes it (`ShardWriter`,
`record_embeddings`, thumbnails, error rows), so resuming after a killed driver and comparing
with a local run need nothing new. A killed worker loses only its batch in flight: Ray retries
the decode task or restarts the actor and retries its call; the driver drops any item it
already wrote in this run, so a retried batch is never written twice.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.embed import (
    THUMBS_DIR,
    _mark_error,
    _Task,
    _with_thumb_flag,
    count_pending,
    embed_isolated,
    pending_items,
    record_embeddings,
    register_space,
)
from curator.errors import CuratorError, UsageError
from curator.stores import ShardOutputs, ShardWriter, ThumbnailStore
from indexing.progress import Progress, ProgressEvent, is_cancelled, no_progress

log = logging.getLogger(__name__)

#: For chaos tests: a folder; a process that can rename `<stage>.arm` there to `<stage>.fired`
#: (decode, embed or driver) kills itself with SIGKILL once, as a crashed node would.
CHAOS_ENV = "CURATOR_RAY_CHAOS"


@dataclass(frozen=True)
class RayOptions:
    """How an embedding run uses a Ray cluster.

    Attributes:
        address: a Ray cluster address ("ray://host:10001", "host:6379"), or "auto"/None to
            connect to the cluster this machine belongs to, or start a local one.
        path_map: (old, new) path prefixes: an item under `old` on the driver is read under
            `new` by the workers (sources mounted elsewhere on the cluster).
        gpus_per_actor: GPUs each model actor holds; None: 1 when the cluster has GPUs and the
            model is a neural network, else 0.
        min_actors: the smallest model actor pool.
        max_actors: the largest; None: one per GPU (GPU actors) or half the CPUs.
        decode_items: items per decode task (one input block each; the driver holds one small
            reference per block).
    """

    address: Optional[str] = None
    path_map: tuple[tuple[str, str], ...] = ()
    gpus_per_actor: Optional[float] = None
    min_actors: int = 1
    max_actors: Optional[int] = None
    decode_items: int = 64


def parse_path_map(entries: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Parse `OLD=NEW` entries into (old, new) prefixes, longest first.

    Raises:
        UsageError: an entry without `=` or with an empty side.
    """
    pairs = []
    for entry in entries:
        old, sep, new = entry.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"path map entry {entry!r}: expected OLD=NEW, e.g. /data=/mnt/data",
                             option="path_map")
        pairs.append((old.rstrip("/") or "/", new.rstrip("/") or "/"))
    return tuple(sorted(pairs, key=lambda p: len(p[0]), reverse=True))


def map_path(path: str, path_map: Sequence[tuple[str, str]]) -> str:
    """`path` as the workers see it: the longest matching prefix replaced (whole folders only)."""
    for old, new in path_map:
        if path == old:
            return new
        prefix = old if old.endswith("/") else old + "/"
        if path.startswith(prefix):
            return new.rstrip("/") + "/" + path[len(prefix):]
    return path


def _chaos(stage: str) -> None:
    folder = os.environ.get(CHAOS_ENV)
    if not folder:
        return
    try:
        os.rename(os.path.join(folder, f"{stage}.arm"), os.path.join(folder, f"{stage}.fired"))
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


# --- worker side --------------------------------------------------------------------------------


def decode_block(batch: dict[str, np.ndarray], decoder: Callable[..., Any]) -> dict[str, Any]:
    """Ray task: decode a block of items with the embedder's decoder (never raises per item)."""
    _chaos("decode")
    payloads = []
    for item_id, path, modality, thumb in zip(batch["item_id"], batch["path"],
                                              batch["modality"], batch["thumbnail"]):
        try:
            decoded = decoder(int(item_id), str(path), str(modality), bool(thumb))
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not fail the whole block
            from indexing.embedders.base import Decoded

            decoded = Decoded(int(item_id), str(modality), error=f"decoder failed: {exc}"[:300])
        payloads.append(pickle.dumps(decoded, protocol=5))
    return {"item_id": batch["item_id"], "version": batch["version"],
            "content_hash": batch["content_hash"], "payload": _objects(payloads)}


class EmbedActor:
    """Ray actor: holds one model and embeds batches of decoded items."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        from indexing.embedders import create_embedder

        self.embedder = create_embedder(name, **options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        _chaos("embed")
        decoded = [pickle.loads(p) for p in batch["payload"]]
        n, dim = len(decoded), self.embedder.dim
        vectors = np.zeros((n, dim), dtype=np.float32)
        errors = [d.error or "" for d in decoded]
        frames: list[bytes] = [b""] * n
        good = [(i, d) for i, d in enumerate(decoded) if d.error is None and d.data is not None]
        for i, d in enumerate(decoded):
            if d.error is None and d.data is None:
                errors[i] = "decoder returned no data"
        # The local run's isolation: one bad item fails itself, NaN or zero vectors included.
        embedded, failed = embed_isolated(self.embedder, good)
        for i, _, vector, item_frames in embedded:
            vectors[i] = vector
            if item_frames is not None and len(item_frames):
                frames[i] = _array_bytes(item_frames)
        for i, reason in failed:
            errors[i] = reason
        return {"item_id": batch["item_id"], "version": batch["version"],
                "content_hash": batch["content_hash"], "vector": vectors,
                "error": _objects(errors), "frames": _objects(frames),
                "thumbnail": _objects([d.thumbnail or b"" for d in decoded])}


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _array_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return np.asarray(a.shape, dtype=np.int64).tobytes() + a.tobytes()


def _bytes_array(data: bytes) -> np.ndarray:
    n, dim = np.frombuffer(data[:16], dtype=np.int64)
    return np.frombuffer(data[16:], dtype=np.float32).reshape(int(n), int(dim))


# --- driver side --------------------------------------------------------------------------------


class RaySession:
    """Connect to (or start) a Ray cluster for one run; disconnects only what it connected."""

    def __init__(self, address: Optional[str]) -> None:
        self.address = address
        self._owned = False

    def __enter__(self) -> RaySession:
        try:
            import ray
        except ImportError as exc:
            raise CuratorError("running on Ray needs Ray installed",
                               hint="pip install 'curator[ray]' (or pip install 'ray[data]')",
                               option="ray") from exc
        if not ray.is_initialized():
            self._connect(ray)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        # Ray Data's own progress log lines would bury ours; warnings still come through.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return self

    def _connect(self, ray: Any) -> None:
        quiet = {"logging_level": logging.WARNING, "log_to_driver": False,
                 "configure_logging": False}
        address = self.address
        if address in (None, "", "auto", "local"):
            try:
                ray.init(address="auto", **quiet)
            except (ConnectionError, RuntimeError):
                log.info("no running Ray cluster found; starting a local one")
                ray.init(include_dashboard=False, **quiet)
        else:
            try:
                ray.init(address=address, **quiet)
            except (ConnectionError, RuntimeError) as exc:
                raise CuratorError(f"cannot connect to the Ray cluster at {address}: {exc}; "
                                   "check the address (`ray status` on the head node)") from exc
        self._owned = True

    def __exit__(self, *exc: Any) -> None:
        if self._owned:
            import ray

            ray.shutdown()


def cluster_info() -> dict[str, Any]:
    """The connected cluster's size and devices, as recorded in the run."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    gpu_types = sorted({k.split(":", 1)[1] for n in nodes for k in n.get("Resources", {})
                        if k.startswith("accelerator_type:")})
    return {"nodes": len(nodes), "cpus": int(total.get("CPU", 0)),
            "gpus": int(total.get("GPU", 0)), "gpu_types": gpu_types,
            "ray_version": ray.__version__}


def _input_blocks(tasks: Iterator[_Task], path_map: Sequence[tuple[str, str]],
                  block_items: int) -> list[Any]:
    """Pending items as Arrow blocks put in the object store; the driver keeps only refs."""
    import pyarrow as pa
    import ray

    refs: list[Any] = []
    columns: dict[str, list] = {k: [] for k in ("item_id", "path", "modality", "version",
                                                "content_hash", "thumbnail")}

    def flush() -> None:
        if columns["item_id"]:
            refs.append(ray.put(pa.table({
                "item_id": pa.array(columns["item_id"], pa.int64()),
                "path": pa.array(columns["path"], pa.string()),
                "modality": pa.array(columns["modality"], pa.string()),
                "version": pa.array(columns["version"], pa.int64()),
                "content_hash": pa.array(columns["content_hash"], pa.string()),
                "thumbnail": pa.array(columns["thumbnail"], pa.bool_()),
            })))
            for values in columns.values():
                values.clear()

    for t in tasks:
        columns["item_id"].append(t.item_id)
        columns["path"].append(map_path(t.path, path_map))
        columns["modality"].append(t.modality)
        columns["version"].append(t.version)
        columns["content_hash"].append(t.content_hash)
        columns["thumbnail"].append(t.thumbnail)
        if len(columns["item_id"]) >= block_items:
            flush()
    flush()
    return refs


def _pool_size(opts: RayOptions, info: dict[str, Any], gpus_per_actor: float) -> tuple[int, int]:
    if opts.max_actors is not None:
        top = opts.max_actors
    elif gpus_per_actor > 0:
        top = max(1, int(info["gpus"] / gpus_per_actor))
    else:
        top = max(1, info["cpus"] // 2)
    return min(max(1, opts.min_actors), top), top


class _DriverWriter(ShardOutputs):
    """Writes what the workers send back, exactly as a local run does, each item once."""

    def __init__(self, catalog: Catalog, embedder: Any, run_id: int, folder: Path,
                 thumbnails: bool) -> None:
        self.catalog, self.space, self.dim = catalog, embedder.space, embedder.dim
        self.run_id = run_id
        self.folder = folder
        self.shard_name = f"run{run_id:06d}-{os.getpid()}.f16"
        self.writer = ShardWriter(folder / "shards" / self.shard_name, self.dim)
        self.frames_writer: Optional[ShardWriter] = None
        self.thumbs = ThumbnailStore(catalog.root / THUMBS_DIR) if thumbnails else None
        top = catalog.db.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0]
        self.seen = bytearray(top + 1)
        self.embedded = self.errors = self.duplicates = 0

    def write(self, batch: dict[str, np.ndarray]) -> int:
        """Write one batch from the workers; returns how many items it settled."""
        ids = np.asarray(batch["item_id"], dtype=np.int64)
        fresh = [i for i, item_id in enumerate(ids) if not self.seen[item_id]]
        self.duplicates += len(ids) - len(fresh)
        errors = [i for i in fresh if batch["error"][i]]
        good = [i for i in fresh if not batch["error"][i]]
        rows: list[tuple] = []
        if good:
            first = self.writer.append(np.asarray(batch["vector"], dtype=np.float32)[good])
            for k, i in enumerate(good):
                f_shard = f_row = f_count = None
                if batch["frames"][i]:
                    frames = _bytes_array(batch["frames"][i])
                    if self.frames_writer is None:
                        self.frames_writer = ShardWriter(
                            self.folder / "shards" / ("frames-" + self.shard_name), self.dim)
                    f_row = self.frames_writer.append(frames)
                    f_shard, f_count = "frames-" + self.shard_name, len(frames)
                digest = batch["content_hash"][i]
                rows.append((int(ids[i]), self.space, self.shard_name, first + k, f_shard, f_row,
                             f_count, int(batch["version"][i]), digest or None, self.run_id,
                             utcnow()))
                if self.thumbs is not None and batch["thumbnail"][i]:
                    self.thumbs.put(int(ids[i]), bytes(batch["thumbnail"][i]),
                                    int(batch["version"][i]))
        record_embeddings(self.catalog, rows)
        for i in errors:
            _mark_error(self.catalog, int(ids[i]), str(batch["error"][i]))
        for i in fresh:
            self.seen[ids[i]] = 1
        self.embedded += len(good)
        self.errors += len(errors)
        return len(fresh)


def embed_space_ray(
    catalog: Catalog,
    embedder: Any,
    run_id: int,
    factory: tuple[str, dict[str, Any]],
    ray_options: RayOptions,
    *,
    batch_size: int = 64,
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
    thumbnails: bool = True,
    options: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Embed every pending item of `embedder`'s modalities into its space on a Ray cluster.

    Args:
        embedder: a driver-side instance (its space, dimension, modalities and decoder are used;
            its model is not run here).
        factory: (registry name, create_embedder options) that rebuild the model in each actor;
            the device is chosen per actor (cuda where the actor holds a GPU).
        ray_options: the cluster address, path map and pool sizes.

    Returns:
        The same counts as `curator.embed.embed_space`, plus `cluster` (nodes, cpus, gpus,
        gpu_types) and `duplicates` (retried items received twice and written once).
    """
    progress = progress or no_progress
    folder = register_space(catalog, embedder, options)
    modalities = sorted(embedder.modalities)
    total = count_pending(catalog, embedder.space, modalities)
    stage = f"embed {embedder.space}"
    counts: dict[str, Any] = {"embedded": 0, "errors": 0, "pending": total, "cancelled": False}
    progress(ProgressEvent(stage, 0, total, "items"))
    if total == 0:
        counts.update(seconds=0.0, items_per_second=0.0)
        return counts
    started = time.monotonic()
    with RaySession(ray_options.address):
        info = cluster_info()
        counts["cluster"] = info
        writer = _DriverWriter(catalog, embedder, run_id, folder, thumbnails)
        try:
            ds = _build_dataset(catalog, embedder, factory, ray_options, info, batch_size,
                                writer.thumbs)
            counts["actors"] = ds[1]
            done = 0
            # Batches of `batch_size` as in a local run: each is durable before the next, so a
            # killed driver loses at most the batch it was writing.
            for batch in ds[0].iter_batches(batch_size=batch_size, batch_format="numpy",
                                            prefetch_batches=2):
                done += writer.write(batch)
                _chaos("driver")
                elapsed = time.monotonic() - started
                rate = done / elapsed if elapsed > 0 else 0.0
                eta = (total - done) / rate if rate > 0 else 0.0
                progress(ProgressEvent(stage, done, total, "items",
                                       f"{rate:.1f} items/s, ETA {_clock(eta)}"))
                if is_cancelled(cancel):
                    break
        finally:
            writer.close()
    seconds = time.monotonic() - started
    counts.update(embedded=writer.embedded, errors=writer.errors, duplicates=writer.duplicates,
                  cancelled=is_cancelled(cancel), seconds=round(seconds, 2),
                  items_per_second=round(writer.embedded / seconds, 2) if seconds else 0.0)
    return counts


def _build_dataset(catalog: Catalog, embedder: Any, factory: tuple[str, dict[str, Any]],
                   opts: RayOptions, info: dict[str, Any], batch_size: int,
                   thumbs: Optional[ThumbnailStore]) -> tuple[Any, dict[str, Any]]:
    import ray.data
    from ray.data import ActorPoolStrategy

    tasks: Iterator[_Task] = pending_items(catalog, embedder.space, sorted(embedder.modalities))
    if thumbs is not None:
        tasks = (_with_thumb_flag(t, thumbs) for t in tasks)
    refs = _input_blocks(tasks, opts.path_map, opts.decode_items)
    plan = actor_plan(embedder, factory, opts, info)
    ds = ray.data.from_arrow_refs(refs)
    ds = ds.map_batches(decode_block, fn_kwargs={"decoder": plan.decoder},
                        batch_size=None, batch_format="numpy", num_cpus=1)
    ds = ds.map_batches(EmbedActor, fn_constructor_kwargs={"name": plan.name,
                                                           "options": plan.options},
                        batch_size=batch_size, batch_format="numpy",
                        compute=ActorPoolStrategy(min_size=plan.min_actors,
                                                  max_size=plan.max_actors),
                        num_gpus=plan.gpus or None, num_cpus=0 if plan.gpus else 1)
    # Ray's defaults are what a killed worker needs: a decode task is retried (3 times), a model
    # actor restarts without limit and its call is retried (Ray Data sets max_restarts=-1).
    return ds, {"min": plan.min_actors, "max": plan.max_actors, "gpus_per_actor": plan.gpus,
                "device": plan.options["device"], "decoder": type(plan.decoder).__name__}


@dataclass
class ActorPlan:
    """What the model actors hold and how the decode tasks feed them."""

    name: str
    options: dict[str, Any]
    gpus: float
    min_actors: int
    max_actors: int
    decoder: Any


def actor_plan(embedder: Any, factory: tuple[str, dict[str, Any]], opts: RayOptions,
               info: dict[str, Any]) -> ActorPlan:
    """GPUs per actor, the actor's device, the pool size and the decoder for a cluster.

    A neural network gets one GPU per actor where the cluster has GPUs (a weight-free embedder
    never does); an actor holding a GPU runs on "cuda" (Ray gives it its GPU as device 0) and its
    decode tasks ship JPEGs encoded for nvJPEG; without a GPU the actor runs on cpu.
    """
    name, kwargs = factory
    gpus = opts.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if info["gpus"] > 0 and getattr(embedder, "compute_bound", True) else 0.0
    kwargs = dict(kwargs)
    if gpus > 0:
        kwargs["device"] = "cuda"
    elif str(kwargs.get("device", "auto")).startswith(("cuda", "auto")):
        kwargs["device"] = "cpu"
    decoder = embedder.decoder()
    if gpus > 0 and hasattr(embedder, "gpu_decoder"):
        # The driver's copy is on cpu, the actors on GPUs: JPEGs travel encoded and the actors
        # decode them in batches with nvJPEG (indexing.gpu_decode).
        decoder = embedder.gpu_decoder()
    low, high = _pool_size(opts, info, gpus)
    return ActorPlan(name, kwargs, gpus, low, high, decoder)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


# --- scan ---------------------------------------------------------------------------------------


def probe_chunk(probe: Callable[[tuple[str, int | None]], dict[str, Any]],
                tasks: list[tuple[str, str, int | None]]) -> list[tuple[str, dict[str, Any]]]:
    """Ray task: hash and probe files (as the workers see them) with the scan's `probe`
    function; keyed by the driver's path."""
    _chaos("probe")
    return [(key, probe((path, size))) for key, path, size in tasks]


def ray_probe(tasks: Iterator[tuple[str, int | None]],
              probe: Callable[[tuple[str, int | None]], dict[str, Any]], ray_options: RayOptions,
              cancel: Callable[[], bool] | None = None,
              chunk: int = 64) -> Iterator[tuple[tuple[str, int | None], dict[str, Any]]]:
    """Probe files on the cluster's workers, yielding ((path, size), catalog columns) as chunks
    finish, in any order: the same contract as `indexing.workers.imap_robust`.

    At most two chunks per cluster CPU are in flight, so the driver's memory stays bounded; a
    killed worker's chunk is retried by Ray.
    """
    import ray

    with RaySession(ray_options.address):
        remote = ray.remote(num_cpus=1, max_retries=3)(probe_chunk)
        limit = max(2, 2 * cluster_info()["cpus"])
        sizes: dict[str, int | None] = {}
        in_flight: list[Any] = []
        batch: list[tuple[str, str, int | None]] = []
        source = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < limit and not is_cancelled(cancel):
                for path, size in source:
                    sizes[path] = size
                    batch.append((path, map_path(path, ray_options.path_map), size))
                    if len(batch) >= chunk:
                        break
                else:
                    exhausted = True
                if batch:
                    in_flight.append(remote.remote(probe, batch))
                    batch = []
            if not in_flight:
                return
            done, in_flight = ray.wait(in_flight, num_returns=1)
            for key, row in ray.get(done[0]):
                yield (key, sizes.pop(key)), row
            if is_cancelled(cancel):
                for ref in in_flight:
                    ray.cancel(ref, force=True)
                return
