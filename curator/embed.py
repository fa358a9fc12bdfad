"""The embedding stage: decode in worker processes, embed in batches, write vectors and thumbnails.

Decoding overlaps inference: a reader thread drains the decode workers into a bounded prefetch
queue while the main thread runs the model. Each batch's vectors are fsynced to the run's shard
before its catalog rows commit, so a kill loses at most the batch in flight and the next run
continues from there. Memory stays flat: items stream from the catalog, the queue is bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypedDict

import numpy as np

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.stores import (
    ShardOutputs,
    ShardWriter,
    ThumbnailStore,
    VectorStore,
    read_shard_rows,
    space_slug,
)
from indexing.progress import Progress, ProgressEvent, check_cancel, is_cancelled, no_progress

if TYPE_CHECKING:
    from indexing.embedders import EmbedderSpec

log = logging.getLogger(__name__)

VECTORS_DIR = "vectors"
THUMBS_DIR = "thumbs"




@dataclass
class EmbedReport:
    """What one embedding run did, per space."""

    run_id: int = 0
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    embedded: int = 0
    errors: int = 0
    unavailable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, Any]:
        return {
            "embedded": self.embedded,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "items_per_second": round(self.items_per_second, 2),
            "spaces": self.spaces,
        }


@dataclass(frozen=True)
class _Task:
    item_id: int
    path: str
    modality: str
    version: int
    content_hash: str | None
    thumbnail: bool


class _DecodeTask:
    """Picklable worker function: decode one task with the embedder's decoder."""

    def __init__(self, decoder: Callable[..., Any]) -> None:
        self.decoder = decoder

    def __call__(self, task: _Task) -> Any:
        return self.decoder(task.item_id, task.path, task.modality, task.thumbnail)


def pending_items(catalog: Catalog, space: str, modalities: Sequence[str]) -> Iterator[_Task]:
    """Ok items of these modalities without a vector in `space` for their current version."""
    marks = ",".join("?" * len(modalities))
    sql = (
        "SELECT items.id, sources.root, items.path, items.modality, items.version, "
        "items.content_hash FROM items JOIN sources ON sources.id = items.source_id "
        "LEFT JOIN embeddings e ON e.item_id = items.id AND e.space = ? "
        f"WHERE items.status = 'ok' AND items.modality IN ({marks}) "
        "AND (e.item_id IS NULL OR e.item_version < items.version) ORDER BY items.id"
    )
    # A separate connection so the long read does not hold the writer's connection.
    from curator.connection import connect

    reader = connect(catalog.path)
    try:
        for item_id, root, path, modality, version, digest in reader.execute(
            sql, [space, *modalities]
        ):
            yield _Task(item_id, os.path.join(root, path), modality, version or 1, digest, True)
    finally:
        reader.conn.close()


def count_pending(catalog: Catalog, space: str, modalities: Sequence[str]) -> int:
    marks = ",".join("?" * len(modalities))
    return catalog.db.execute(
        "SELECT COUNT(*) FROM items LEFT JOIN embeddings e ON e.item_id = items.id AND e.space = ? "
        f"WHERE items.status = 'ok' AND items.modality IN ({marks}) "
        "AND (e.item_id IS NULL OR e.item_version < items.version)",
        [space, *modalities],
    ).fetchone()[0]


def register_space(catalog: Catalog, embedder: Any, options: dict | None = None) -> Path:
    """Record the space an embedder writes to; refuses a space whose dimension changed."""
    folder = Path(VECTORS_DIR) / space_slug(embedder.space)
    row = catalog.db.execute("SELECT dim FROM spaces WHERE space = ?", [embedder.space]).fetchone()
    if row is not None and row[0] != embedder.dim:
        from curator.errors import CuratorError

        raise CuratorError(
            f"space {embedder.space} holds {row[0]}-d vectors but the model gives {embedder.dim}-d"
        )
    if row is not None:
        known = set(json.loads(catalog.db.execute(
            "SELECT modalities FROM spaces WHERE space = ?", [embedder.space]).fetchone()[0]))
        if not set(embedder.modalities) <= known:
            with catalog.write() as db:
                db.execute("UPDATE spaces SET modalities = ? WHERE space = ?",
                           [json.dumps(sorted(known | set(embedder.modalities))), embedder.space])
    if row is None:
        with catalog.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO spaces (space, embedder, model, dim, modalities, preprocess,"
                " options, folder, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [embedder.space, embedder.name, embedder.model_string, embedder.dim,
                 json.dumps(sorted(embedder.modalities)), embedder.preprocess,
                 json.dumps(options or {}, sort_keys=True), str(folder), utcnow()],
            )
    return catalog.root / folder


def _reader_thread(
    stream: Iterator[tuple[Any, Any]], out: queue.Queue[Any], stop: threading.Event
) -> None:
    try:
        for item in stream:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                break
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
        out.put(("__error__", exc))
    finally:
        if hasattr(stream, "close"):
            stream.close()
        out.put(None)


def embed_space(
    catalog: Catalog,
    embedder: Any,
    run_id: int,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    prefetch: int | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    thumbnails: bool = True,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Embed every pending item of one embedder's modalities into its space.

    Returns:
        Counts for this space: embedded, errors, seconds, items_per_second.

    Raises:
        Cancelled: `cancel` said stop; every finished batch is written.
    """
    from indexing.workers import TaskFailure, imap_robust

    progress = progress or no_progress
    folder = register_space(catalog, embedder, options)
    modalities = sorted(embedder.modalities)
    total = count_pending(catalog, embedder.space, modalities)
    counts: dict[str, Any] = {"embedded": 0, "errors": 0, "pending": total}
    stage = f"embed {embedder.space}"
    progress(ProgressEvent(stage, 0, total, "items"))
    if total == 0:
        counts.update(seconds=0.0, items_per_second=0.0)
        return counts

    workers = _worker_count(embedder, workers)
    prefetch = prefetch or max(2 * batch_size, 16)
    thumbs = ThumbnailStore(catalog.root / THUMBS_DIR) if thumbnails else None
    sink = _BatchSink(catalog, embedder, run_id, folder, thumbs, counts, progress, stage, total)

    tasks = pending_items(catalog, embedder.space, modalities)
    if thumbs is not None:
        tasks = (_with_thumb_flag(t, thumbs) for t in tasks)
    stream = imap_robust(
        _DecodeTask(embedder.decoder()), tasks, workers, timeout=300, chunk_size=1,
        max_in_flight=prefetch, cancel=cancel,
    )
    q: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    reader = threading.Thread(target=_reader_thread, args=(stream, q, stop), daemon=True)
    started = time.monotonic()
    reader.start()
    try:
        _consume(q, sink, catalog, counts, batch_size, started, cancel, TaskFailure)
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        reader.join()
        sink.close()
    seconds = time.monotonic() - started
    check_cancel(cancel)
    counts["seconds"] = round(seconds, 2)
    counts["items_per_second"] = round(counts["embedded"] / seconds, 2) if seconds else 0.0
    return counts


def _worker_count(embedder: Any, workers: int | None) -> int:
    """The decode workers asked for, or a default that leaves the model a core."""
    from indexing.workers import default_workers

    if workers is None:
        # A neural network needs a core of its own; classic's features are cheap beside decoding.
        cores = default_workers()
        workers = max(1, cores - 1) if getattr(embedder, "compute_bound", True) else cores
    return workers


def _consume(q: queue.Queue[Any], sink: _BatchSink, catalog: Catalog, counts: dict[str, Any],
             batch_size: int, started: float, cancel: Callable[[], bool] | None,
             task_failure: type) -> None:
    """Gather decoded items from the prefetch queue into batches and hand each to the sink."""
    batch: list[tuple[_Task, Any]] = []
    while True:
        got = q.get()
        if got is None:
            break
        if isinstance(got, tuple) and len(got) == 2 and got[0] == "__error__":
            raise got[1]
        task, decoded = got
        reason = _decode_failure(decoded, task_failure)
        if reason is not None:
            _mark_error(catalog, task.item_id, reason)
            counts["errors"] += 1
            batch.append((task, None))
        else:
            batch.append((task, decoded))
        if len(batch) >= batch_size:
            sink.write(batch, started)
        if is_cancelled(cancel):
            break
    if batch and not is_cancelled(cancel):
        sink.write(batch, started)


class _BatchSink(ShardOutputs):
    """Embeds one batch at a time and writes its vectors, frames, thumbnails and catalog rows."""

    def __init__(self, catalog: Catalog, embedder: Any, run_id: int, folder: Path,
                 thumbs: ThumbnailStore | None, counts: dict[str, Any], progress: Progress,
                 stage: str, total: int) -> None:
        self.catalog, self.embedder, self.run_id, self.folder = catalog, embedder, run_id, folder
        self.thumbs, self.counts, self.progress = thumbs, counts, progress
        self.stage, self.total, self.done = stage, total, 0
        self.shard_name = f"run{run_id:06d}-{os.getpid()}.f16"
        self.writer = ShardWriter(folder / "shards" / self.shard_name, embedder.dim)
        self.frames_writer: ShardWriter | None = None

    def write(self, batch: list[tuple[_Task, Any]], started: float) -> None:
        """Embed the batch's decoded items, record them and the failures; empties `batch`."""
        good = [(t, d) for t, d in batch if d is not None]
        embedded, failed = embed_isolated(self.embedder, good)
        rows = self._store(embedded)
        with self.catalog.write() as db:
            if rows:
                db.conn.executemany(_UPSERT_EMBEDDING, rows)
            for task, reason in failed:
                db.execute("UPDATE items SET status = 'error', error = ? WHERE id = ?",
                           [reason[:300], task.item_id])
        self.counts["embedded"] += len(rows)
        self.counts["errors"] += len(failed)
        self.done += len(batch)
        batch.clear()
        elapsed = time.monotonic() - started
        rate = self.counts["embedded"] / elapsed if elapsed > 0 else 0.0
        self.progress(ProgressEvent(self.stage, self.done, self.total, "items",
                                    f"{rate:.1f} items/s"))

    def _store(self, embedded: list[tuple[_Task, Any, np.ndarray, Any]]) -> list[tuple]:
        """Append the vectors (and frames) to the shards, put thumbnails; the catalog rows."""
        rows: list[tuple] = []
        if not embedded:
            return rows
        first = self.writer.append(np.stack([vector for _, _, vector, _ in embedded]))
        for i, (task, decoded, _vector, frames) in enumerate(embedded):
            f_shard, f_row, f_count = self._store_frames(frames)
            rows.append((task.item_id, self.embedder.space, self.shard_name, first + i, f_shard,
                         f_row, f_count, task.version, task.content_hash, self.run_id, utcnow()))
            if self.thumbs is not None and decoded.thumbnail:
                self.thumbs.put(task.item_id, decoded.thumbnail, task.version)
        return rows

    def _store_frames(self, frames: Any) -> tuple[str | None, int | None, int | None]:
        """A video's frame vectors in the run's frames shard: shard, first row, count."""
        if frames is None or not len(frames):
            return None, None, None
        if self.frames_writer is None:
            self.frames_writer = ShardWriter(
                self.folder / "shards" / ("frames-" + self.shard_name), self.embedder.dim)
        f_row = self.frames_writer.append(frames)
        return "frames-" + self.shard_name, f_row, len(frames)

_UPSERT_EMBEDDING = (
    "INSERT INTO embeddings (item_id, space, shard, row, frames_shard, frames_row,"
    " frames_count, item_version, content_hash, run_id, created_at) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, space) DO UPDATE SET "
    "shard = excluded.shard, row = excluded.row, frames_shard = "
    "excluded.frames_shard, frames_row = excluded.frames_row, frames_count = "
    "excluded.frames_count, item_version = excluded.item_version, content_hash = "
    "excluded.content_hash, run_id = excluded.run_id, created_at = "
    "excluded.created_at"
)

def record_embeddings(catalog: Catalog, rows: Sequence[tuple]) -> None:
    """Commit embedding rows (item_id, space, shard, row, frames_shard, frames_row, frames_count,
    item_version, content_hash, run_id, created_at) in one write; the shard bytes must already be
    durable. For writers other than `embed_space`: the Ray driver (curator.distributed)."""
    if rows:
        with catalog.write() as db:
            db.conn.executemany(_UPSERT_EMBEDDING, rows)


EMBED_ERROR_PREFIX = "embedding failed"
"""How an item's error starts when the model, not the decoder, failed on it (a rescan retries)."""


def _decode_failure(decoded: Any, task_failure: type) -> str | None:
    """The reason a decode result is unusable, or None when it can be embedded."""
    if isinstance(decoded, task_failure):
        return decoded.reason
    if not hasattr(decoded, "error") or not hasattr(decoded, "data"):
        return f"decoder returned {type(decoded).__name__}, not a decoded item"
    if decoded.error is not None:
        return str(decoded.error)
    if decoded.data is None:
        return "decoder returned no data"
    return None


def _one_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{EMBED_ERROR_PREFIX} ({type(exc).__name__}: {text})"[:300]


def _checked(result: Any, n: int, dim: int) -> tuple[np.ndarray, dict[int, Any]]:
    """The batch's vectors as (n, dim) float32 and its frame vectors; raises when malformed."""
    vectors = np.asarray(result.vectors, dtype=np.float32)
    if vectors.shape != (n, dim):
        raise ValueError(f"the model returned vectors of shape {vectors.shape} for {n} items "
                         f"of dimension {dim}")
    return vectors, dict(getattr(result, "frames", None) or {})


def _vector_problem(vector: np.ndarray, frames: Any, dim: int) -> str | None:
    if not np.all(np.isfinite(vector)):
        return f"{EMBED_ERROR_PREFIX} (the model returned a vector with NaN or infinite values)"
    if not np.any(vector):
        return f"{EMBED_ERROR_PREFIX} (the model returned an all-zero vector)"
    if frames is not None:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != dim or not np.all(np.isfinite(frames)):
            return f"{EMBED_ERROR_PREFIX} (the model returned malformed frame vectors)"
    return None


def embed_isolated(
    embedder: Any, good: list[tuple[Any, Any]]
) -> tuple[list[tuple[Any, Any, np.ndarray, Any]], list[tuple[Any, str]]]:
    """Embed a batch so that one bad item costs only itself.

    The batch is embedded at once; when that raises (any exception, any embedder) or returns
    malformed vectors, it is retried item by item, and each item that still fails becomes an
    error with its reason. A NaN, infinite or all-zero vector fails its item only.

    Args:
        embedder: the embedder.
        good: (task, decoded) pairs that decoded fine.

    Returns:
        (embedded, failed): embedded as (task, decoded, vector, frames or None) in input order,
        failed as (task, reason).
    """
    if not good:
        return [], []
    try:
        vectors, frames = _checked(embedder.embed_batch([d for _, d in good]), len(good),
                                   embedder.dim)
    except Exception as exc:  # any model failure is isolated to its items
        if len(good) == 1:
            log.info("item %s: %s", getattr(good[0][0], "item_id", "?"), exc, exc_info=True)
            return [], [(good[0][0], _one_reason(exc))]
        log.warning("a batch of %d items failed to embed (%s: %s); retrying item by item",
                    len(good), type(exc).__name__, exc)
        embedded: list[tuple[Any, Any, np.ndarray, Any]] = []
        failed: list[tuple[Any, str]] = []
        for pair in good:
            ok, bad = embed_isolated(embedder, [pair])
            embedded += ok
            failed += bad
        return embedded, failed
    embedded, failed = [], []
    for i, (task, decoded) in enumerate(good):
        problem = _vector_problem(vectors[i], frames.get(i), embedder.dim)
        if problem is None:
            item_frames = frames.get(i)
            if item_frames is not None:
                item_frames = np.asarray(item_frames, dtype=np.float32)
            embedded.append((task, decoded, vectors[i], item_frames))
        else:
            failed.append((task, problem))
    return embedded, failed


def _with_thumb_flag(task: _Task, thumbs: ThumbnailStore) -> _Task:
    # Thumbnails are per item, not per space: skip the work when this version already has one.
    if thumbs.version(task.item_id) == (task.version & 0xFFFF):
        return _Task(task.item_id, task.path, task.modality, task.version, task.content_hash, False)
    return task


def _mark_error(catalog: Catalog, item_id: int, reason: str) -> None:
    with catalog.write() as db:
        db.execute("UPDATE items SET status = 'error', error = ? WHERE id = ?",
                   [reason[:300], item_id])


def compact_space(catalog: Catalog, space: str, chunk: int = 65536) -> int:
    """Rebuild the space's memory-mapped store from the catalog's current vectors (ok items only).

    Returns:
        Number of vectors in the store.
    """
    row = catalog.db.execute("SELECT dim, folder FROM spaces WHERE space = ?", [space]).fetchone()
    if row is None:
        return 0
    dim, folder = row
    folder = catalog.root / folder
    sql_count = (
        "SELECT COUNT(*) FROM embeddings e JOIN items i ON i.id = e.item_id "
        "WHERE e.space = ? AND i.status = 'ok' AND e.item_version = i.version"
    )
    db = catalog.db
    # One read snapshot for the count and the rows: another process may mark items missing or
    # re-embed them meanwhile, and the store must hold exactly the rows it announced.
    snapshot = not db.conn.in_transaction
    if snapshot:
        db.execute("BEGIN")
    try:
        count = db.execute(sql_count, [space]).fetchone()[0]
        _write_store(catalog, folder, space, dim, count, chunk)
    finally:
        if snapshot:
            db.execute("COMMIT")
    return count


def _write_store(catalog: Catalog, folder: Path, space: str, dim: int, count: int,
                 chunk: int) -> None:
    """Write the ok, current vectors of a space (read in `chunk`s) to its memory-mapped store."""

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cursor = catalog.db.execute(
            "SELECT e.item_id, e.shard, e.row FROM embeddings e JOIN items i ON i.id = e.item_id "
            "WHERE e.space = ? AND i.status = 'ok' AND e.item_version = i.version "
            "ORDER BY e.item_id",
            [space],
        )
        while True:
            rows = cursor.fetchmany(chunk)
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            out = np.empty((len(rows), dim), dtype=np.float16)
            shards = np.array([r[1] for r in rows])
            positions = np.array([r[2] for r in rows], dtype=np.int64)
            for shard in np.unique(shards):
                mask = shards == shard
                out[mask] = read_shard_rows(folder / "shards" / shard, dim, positions[mask])
            yield ids, out

    VectorStore(folder).write(chunks(), count, dim)


def space_store(catalog: Catalog, space: str) -> VectorStore:
    row = catalog.db.execute("SELECT folder FROM spaces WHERE space = ?", [space]).fetchone()
    if row is None:
        from curator.errors import UsageError

        raise UsageError(f"no embedding space {space!r}", hint="run `curator embed` first")
    return VectorStore(catalog.root / row[0])


class SpaceRow(TypedDict):
    """One embedding space as the catalog holds it (every column of `spaces`) and its size."""

    space: str  # e.g. "clip:ViT-B-32/laion2b_s34b_b79k"
    embedder: str
    model: str
    dim: int
    modalities: str  # comma-separated, e.g. "image,video"
    preprocess: str  # JSON
    options: str  # JSON: the saved embedder spec
    folder: str  # relative to the project
    created_at: str
    count: int  # vectors stored


def spaces(catalog: Catalog) -> list[SpaceRow]:
    """The embedding spaces of a project (every column of `spaces`) with their vector counts."""
    counts = dict(catalog.db.execute(
        "SELECT space, COUNT(*) FROM embeddings GROUP BY space").fetchall())
    rows = [dict(r) for r in catalog.db.query("SELECT * FROM spaces ORDER BY space")]
    return [SpaceRow(**row, count=counts.get(row["space"], 0)) for row in rows]


def vectors(catalog: Catalog, space: str) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, float16 vectors) of a space, memory-mapped, sorted by item id."""
    store = space_store(catalog, space)
    if not store.exists():
        compact_space(catalog, space)
    return store.load()


def space_spec(catalog: Catalog, space: str) -> EmbedderSpec:
    """The embedder spec a space was made with, as saved in the catalog (see `from_saved`)."""
    from indexing.embedders import from_saved

    row = catalog.db.execute("SELECT embedder, options FROM spaces WHERE space = ?",
                             [space]).fetchone()
    if row is None:
        from curator.errors import UsageError

        raise UsageError(f"no embedding space {space!r}", hint="run `curator embed` first")
    saved = json.loads(row[1] or "{}")
    return from_saved({"name": row[0], **saved})


def space_has_text(catalog: Catalog, space: str) -> bool:
    """Whether a space's embedder has a text tower here; False for a space made by a plug-in
    that is not installed in this environment (its vectors still serve search by example)."""
    try:
        return space_spec(catalog, space).capabilities.has_text
    except (KeyError, ValueError) as exc:
        log.info("space %s: its embedder is not available here (%s)", space, exc)
        return False


def frame_vectors(catalog: Catalog, space: str, item_id: int) -> Optional[np.ndarray]:
    """The per-frame vectors kept beside a video's item vector, or None."""
    row = catalog.db.execute(
        "SELECT s.dim, s.folder, e.frames_shard, e.frames_row, e.frames_count FROM embeddings e "
        "JOIN spaces s ON s.space = e.space WHERE e.item_id = ? AND e.space = ?",
        [item_id, space],
    ).fetchone()
    if row is None or row[2] is None:
        return None
    dim, folder, shard, first, n = row
    rows = np.arange(first, first + n)
    return read_shard_rows(catalog.root / folder / "shards" / shard, dim, rows).astype(np.float32)
