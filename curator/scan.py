"""The scanner: walks every source, probes new and changed files in worker processes, updates the catalog.

A scan never deletes an item. New files are added, changed files get a new hash and a new content
version (so later stages see them as stale), vanished files become `missing`, a file moved within its
source keeps its item (and so its labels), and every bad file becomes one `error` item with a reason.
Results are committed in short batches: a scan killed at any point leaves a consistent catalog and
the next scan finishes the job without duplicating an item.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from curator.catalog import Catalog, utcnow
from indexing.media import MEDIA_EXTENSIONS
from indexing.progress import Cancelled, Progress, ProgressEvent, is_cancelled, no_progress

log = logging.getLogger(__name__)

# Files with these extensions are never media; skipping them unread keeps listing fast.
NON_MEDIA_EXTENSIONS = frozenset(
    "txt csv tsv json jsonl md rst xml yaml yml toml ini cfg log py ipynb sh html htm css js pdf doc "
    "docx xls xlsx ppt pptx zip tar gz tgz bz2 xz 7z rar db sqlite npy npz pkl pt pth safetensors "
    "parquet srt vtt sub ass lrc cue nfo exe dll so".split()
)

COMMIT_EVERY = 500
COMMIT_SECONDS = 2.0


@dataclass(frozen=True)
class ScanOptions:
    """What to walk and how.

    Attributes:
        include: glob patterns (on the path relative to the source, `**` allowed); when given,
            only matching files are items.
        exclude: glob patterns for files or folders to leave out.
        hidden: also walk hidden folders and files (names starting with a dot).
        workers: probing processes; None = one per core, 0 = in this process.
        timeout: seconds one file may take to probe before it is an error item.
        ray: probe and hash on a Ray cluster's workers (curator.distributed.RayOptions); the
            catalog is still written here, in batches.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    workers: Optional[int] = None
    timeout: float = 120.0
    ray: Optional[Any] = None  # curator.distributed.RayOptions: probe on a Ray cluster


@dataclass
class ScanReport:
    """What a scan found and changed, per source and in total."""

    run_id: int = 0
    listed: int = 0
    new: int = 0
    changed: int = 0
    touched: int = 0
    unchanged: int = 0
    renamed: int = 0
    reappeared: int = 0
    missing: int = 0
    errors: int = 0
    probed: int = 0
    skipped: int = 0
    unreachable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.listed / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("run_id")
        data["files_per_second"] = round(self.files_per_second, 1)
        return data


@dataclass(slots=True)
class _Entry:
    """One file found by the walk."""

    source_id: int
    rel: str
    abs: str
    size: Optional[int] = None
    mtime_ns: Optional[int] = None
    error: Optional[str] = None


@dataclass(slots=True)
class _Known:
    id: int
    size: Optional[int]
    mtime_ns: Optional[int]
    status: str
    content_hash: Optional[str]
    error: Optional[str] = None


# Errors that say nothing about the file's content: a rescan tries these files again even when
# their size and mtime are the same. Any other error stays until the file changes.
TRANSIENT_ERRORS = ("permission denied", "vanished", "cannot read", "timed out", "crashed",
                    "cannot stat", "cannot list")


def _transient(error: Optional[str]) -> bool:
    return error is None or any(part in error for part in TRANSIENT_ERRORS)


# --- globs ------------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern:
    """Translate a glob with `**` (any depth) and `*` (within one folder) to a regex."""
    pattern = pattern.strip().lstrip("/")
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i)
            if j == -1:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(fnmatch.translate(pattern[i : j + 1])[4:-3])
                i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    body = "".join(out)
    if "/" not in pattern:
        # A pattern without a slash matches a name at any depth, like .gitignore.
        body = "(?:.*/)?" + body
    return re.compile(body + "(?:/.*)?$" if not pattern.endswith("/") else body + ".*$")


class _Globs:
    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.regexes = [_glob_regex(p) for p in patterns if p.strip()]

    def __bool__(self) -> bool:
        return bool(self.regexes)

    def match(self, rel: str) -> bool:
        return any(r.match(rel) for r in self.regexes)


# --- the walk ---------------------------------------------------------------------------------


def _is_utf8(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def display_path(name: str) -> str:
    """A name as the catalog can store it: undecodable bytes shown as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _media_extension(name: str) -> Optional[bool]:
    """True for a media extension, False for a known non-media one, None when unknown."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in MEDIA_EXTENSIONS:
        return True
    if ext in NON_MEDIA_EXTENSIONS:
        return False
    return None


def walk_source(
    source_id: int,
    root: str,
    options: ScanOptions,
    cancel: Optional[Callable[[], bool]] = None,
) -> Iterator[_Entry]:
    """Yield every candidate media file under `root` (and one error entry per unreadable thing).

    Folder symlinks are followed once; a link back to one of its own ancestors is a loop and
    becomes one error entry instead of an endless walk.
    """
    from indexing.media import is_media_candidate

    include = _Globs(options.include)
    exclude = _Globs(options.exclude)
    try:
        root_stat = os.stat(root)
    except OSError:
        return  # the caller checks reachability and reports it; nothing here is missing
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    # Stack of (absolute dir, relative dir, ancestor identities).
    stack: list[tuple[str, str, frozenset]] = [
        (root, "", frozenset({(root_stat.st_dev, root_stat.st_ino)}))
    ]
    while stack:
        if is_cancelled(cancel):
            return
        abs_dir, rel_dir, ancestors = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror
            yield _Entry(source_id, rel_dir or ".", abs_dir,
                         error=f"cannot list folder: {reason}; its files were skipped")
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not options.hidden and name.startswith("."):
                continue
            if not _is_utf8(name):
                if exclude and exclude.match(display_path(rel)):
                    continue
                yield _Entry(
                    source_id, display_path(rel), entry.path,
                    error="file name is not valid UTF-8; rename it to index this file",
                )
                continue
            if exclude and exclude.match(rel):
                continue
            try:
                is_link = entry.is_symlink()
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    yield _Entry(source_id, rel, entry.path,
                                 error="symlink loop: the link resolves to itself; fix or remove it")
                elif is_link and isinstance(exc, FileNotFoundError):
                    try:
                        target = os.readlink(entry.path)
                    except OSError:
                        target = "?"
                    if _media_extension(name) is not False:
                        yield _Entry(source_id, rel, entry.path,
                                     error=f"broken symlink: target {target} does not exist")
                elif isinstance(exc, FileNotFoundError):
                    continue  # vanished between listing and stat: it was never there for us
                else:
                    yield _Entry(source_id, rel, entry.path, error=f"cannot stat: {exc.strerror}")
                continue
            if stat.S_ISDIR(st.st_mode):
                identity = (st.st_dev, st.st_ino)
                if identity in ancestors:
                    yield _Entry(source_id, rel, entry.path,
                                 error="symlink loop: folder link points back to a parent folder; "
                                 "skipped")
                    continue
                if identity in visited:
                    log.info("%s: folder already walked through another link; skipped", entry.path)
                    continue
                visited.add(identity)
                subdirs.append((entry.path, rel, ancestors | {identity}))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # sockets, fifos, devices: never media, and reading a fifo would hang
            if include and not include.match(rel):
                continue
            claim = _media_extension(name)
            if claim is False:
                continue
            if claim is None and st.st_size > 0:
                try:
                    with open(entry.path, "rb") as fh:
                        head = fh.read(4096)
                except OSError:
                    head = b""
                if not is_media_candidate(name, head):
                    continue
            elif claim is None:
                continue
            yield _Entry(source_id, rel, entry.path, st.st_size, st.st_mtime_ns)
        # Depth-first in name order, so the walk is deterministic.
        stack.extend(reversed(subdirs))


# --- the probe (runs in worker processes) -----------------------------------------------------


def probe_task(task: tuple[str, Optional[int]]) -> dict[str, Any]:
    """Hash and probe one file; returns catalog columns. Never raises for a bad file."""
    from indexing.media import hash_file, probe_file

    path, size = task
    if size == 0:
        return {"status": "error", "error": "empty file (0 bytes)", "content_hash": None,
                "modality": _claimed_modality(path)}
    try:
        digest = hash_file(path)
    except FileNotFoundError:
        return {"status": "error", "error": "file vanished during the scan", "content_hash": None}
    except PermissionError:
        return {"status": "error", "content_hash": None,
                "error": "permission denied: cannot read this file (check its permissions)"}
    except OSError as exc:
        return {"status": "error", "error": f"cannot read: {exc.strerror}", "content_hash": None}
    info = probe_file(path)
    row = {
        "content_hash": digest,
        "modality": info.modality,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
        "fps": info.fps,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "codec": info.codec,
        "mode": info.mode,
        "frames": info.frames,
        "orientation": info.orientation,
        "has_audio": None if info.has_audio is None else int(info.has_audio),
        "status": "ok" if info.error is None else "error",
        "error": info.error,
    }
    return row


def _claimed_modality(path: str) -> Optional[str]:
    """The modality a file's extension claims (for error items that have no content to sniff)."""
    from indexing.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    ext = path.rsplit(".", 1)[-1].lower() if "." in os.path.basename(path) else ""
    for modality, extensions in (("image", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS),
                                 ("video", VIDEO_EXTENSIONS)):
        if ext in extensions:
            return modality
    return None


PROBE_COLUMNS = (
    "content_hash", "modality", "format", "width", "height", "duration", "fps", "sample_rate",
    "channels", "codec", "mode", "frames", "orientation", "has_audio", "status", "error",
)


# --- the scan ---------------------------------------------------------------------------------


@dataclass
class _Pending:
    """Catalog writes waiting for the next short transaction."""

    inserts: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    renames: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.renames)


def scan_catalog(
    catalog: Catalog,
    options: ScanOptions = ScanOptions(),
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
    run_id: Optional[int] = None,
) -> ScanReport:
    """Bring the catalog in line with the files under every source.

    Args:
        catalog: the project's catalog.
        options: globs, hidden files, workers.
        progress: receives "listing" then "probing" events (files).
        cancel: checked between files; a cancelled scan keeps everything committed so far.

    Raises:
        Cancelled: `cancel` said stop (after committing what was probed).
        run_id: the run this scan is recorded under.

    Returns:
        A ScanReport.
    """
    from indexing.workers import TaskFailure, imap_robust

    progress = progress or no_progress
    report = ScanReport(run_id=run_id or 0)
    started = time.monotonic()
    db = catalog.db
    sources = list(db.execute("SELECT id, root FROM sources ORDER BY id").fetchall())
    now = utcnow()

    # 1. Walk every source and sort each file into unchanged / to probe / walk error.
    known: dict[tuple[int, str], _Known] = {}
    for row in db.execute(
        "SELECT id, source_id, path, size, mtime_ns, status, error FROM items"
    ):
        known[(row[1], row[2])] = _Known(row[0], row[3], row[4], row[5], None, row[6])
    seen: set[tuple[int, str]] = set()
    to_probe: list[_Entry] = []
    pending = _Pending()
    walk_errors: list[_Entry] = []
    for source_id, root in sources:
        if not os.path.isdir(root):
            # An unmounted disk is not a deletion: its items keep their status.
            log.warning("source %s is not reachable; its items are left as they are", root)
            report.unreachable.append(root)
            continue
        for entry in walk_source(source_id, root, options, cancel):
            key = (source_id, entry.rel)
            if key in seen:
                continue
            seen.add(key)
            report.listed += 1
            if report.listed % 500 == 0:
                progress(ProgressEvent("listing", report.listed, None, "files"))
            if entry.error is not None:
                walk_errors.append(entry)
                continue
            old = known.get(key)
            if (
                old is not None
                and old.size == entry.size
                and old.mtime_ns == entry.mtime_ns
                and (old.status == "ok" or (old.status == "error" and not _transient(old.error)))
            ):
                # Its last_seen is set for the whole source in one statement at the end.
                report.unchanged += 1
            else:
                to_probe.append(entry)
    progress(ProgressEvent("listing", report.listed, report.listed, "files"))
    cancelled = is_cancelled(cancel)
    walk_complete = not cancelled

    # Re-probed items need their old hash to tell a content change from a touch.
    reprobe = {known[(e.source_id, e.rel)].id: known[(e.source_id, e.rel)]
               for e in to_probe if (e.source_id, e.rel) in known}
    _load_hashes(db, reprobe)

    # Items not seen by a complete walk may have vanished; their hashes let a moved file keep
    # its item (and its labels) instead of becoming a new one.
    vanished: dict[tuple[int, str], _Known] = {}
    roots = dict(sources)
    if walk_complete:
        for key, old in known.items():
            if key in seen or old.status == "missing":
                continue
            root = roots.get(key[0])
            if root in report.unreachable:
                continue
            if root is None or not os.path.lexists(os.path.join(root, key[1])):
                vanished[key] = old
    by_hash: dict[tuple[int, str], list[tuple[int, str]]] = {}
    _load_hashes(db, {old.id: old for old in vanished.values()})
    for key, old in vanished.items():
        if old.content_hash:
            by_hash.setdefault((key[0], old.content_hash), []).append(key)

    last_commit = time.monotonic()

    def flush() -> None:
        nonlocal last_commit
        if not len(pending):
            return
        with catalog.write() as wdb:
            cols = ", ".join(PROBE_COLUMNS)
            marks = ", ".join("?" * len(PROBE_COLUMNS))
            if pending.inserts:
                wdb.conn.executemany(
                    f"INSERT INTO items (source_id, path, size, mtime, mtime_ns, {cols}, "
                    f"first_seen, last_seen, version, changed_at) VALUES (?, ?, ?, ?, ?, {marks}, "
                    f"?, ?, 1, ?) ON CONFLICT (source_id, path) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in
                                ("size", "mtime", "mtime_ns", *PROBE_COLUMNS, "last_seen")),
                    pending.inserts,
                )
            if pending.updates:
                sets = ", ".join(f"{c} = ?" for c in PROBE_COLUMNS)
                wdb.conn.executemany(
                    f"UPDATE items SET size = ?, mtime = ?, mtime_ns = ?, {sets}, last_seen = ?, "
                    "version = version + ?, changed_at = CASE WHEN ? THEN ? ELSE changed_at END "
                    "WHERE id = ?",
                    pending.updates,
                )
            if pending.renames:
                sets = ", ".join(f"{c} = ?" for c in PROBE_COLUMNS)
                wdb.conn.executemany(
                    f"UPDATE items SET path = ?, size = ?, mtime = ?, mtime_ns = ?, {sets}, "
                    "last_seen = ? WHERE id = ?",
                    pending.renames,
                )
        pending.inserts.clear()
        pending.updates.clear()
        pending.renames.clear()
        last_commit = time.monotonic()

    def record(entry: _Entry, row: dict[str, Any]) -> None:
        key = (entry.source_id, entry.rel)
        old = known.get(key)
        values = tuple(row.get(c) for c in PROBE_COLUMNS)
        mtime = entry.mtime_ns / 1e9 if entry.mtime_ns is not None else None
        if row["status"] == "error":
            report.errors += 1
        if old is None:
            move_key = None
            digest = row.get("content_hash")
            if digest and row["status"] == "ok":
                candidates = by_hash.get((entry.source_id, digest))
                if candidates:
                    move_key = candidates.pop(0)
            if move_key is not None:
                moved = vanished.pop(move_key)
                report.renamed += 1
                pending.renames.append((entry.rel, entry.size, mtime, entry.mtime_ns, *values,
                                        now, moved.id))
            else:
                report.new += 1
                pending.inserts.append((entry.source_id, entry.rel, entry.size, mtime,
                                        entry.mtime_ns, *values, now, now, now))
        else:
            content_changed = bool(
                old.content_hash and row.get("content_hash")
                and old.content_hash != row.get("content_hash")
            )
            if old.status == "missing":
                report.reappeared += 1
            elif content_changed:
                report.changed += 1
            elif old.status == "ok":
                report.touched += 1
            pending.updates.append((entry.size, mtime, entry.mtime_ns, *values, now,
                                    int(content_changed), int(content_changed), now, old.id))
        if len(pending) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_SECONDS:
            flush()

    # 2. Walk errors need no probe.
    for entry in walk_errors:
        record(entry, {"status": "error", "error": entry.error})

    # 3. Probe new and changed files in worker processes, committing in short batches.
    total = len(to_probe)
    progress(ProgressEvent("probing", 0, total, "files"))
    tasks = ((e.abs, e.size) for e in to_probe)
    entries_by_path = {e.abs: e for e in to_probe}
    workers = options.workers
    if workers is None and total < 64:
        workers = 0 if total < 8 else min(2, os.cpu_count() or 1)
    done = 0
    if options.ray is not None and total:
        from curator.distributed import ray_probe

        stream = ray_probe(tasks, options.ray, cancel)
    else:
        stream = imap_robust(probe_task, tasks, workers, timeout=options.timeout, cancel=cancel)
    for (path, _), result in stream:
        entry = entries_by_path[path]
        if isinstance(result, TaskFailure):
            result = {"status": "error", "error": result.reason, "content_hash": None}
        record(entry, result)
        done += 1
        report.probed += 1
        progress(ProgressEvent("probing", done, total, "files"))
    cancelled = cancelled or is_cancelled(cancel)
    flush()
    if cancelled:
        # Everything probed so far is committed; the next scan goes on from there.
        raise Cancelled()

    # 4. After a complete scan, vanished files become `missing` (their history stays), and
    # everything else that is there was seen now.
    if walk_complete:
        ids = [old.id for old in vanished.values()]
        with catalog.write() as wdb:
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                wdb.conn.execute(
                    f"UPDATE items SET status = 'missing' WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            for source_id, root in sources:
                if root not in report.unreachable:
                    wdb.conn.execute("UPDATE items SET last_seen = ? WHERE source_id = ? AND "
                                     "status != 'missing' AND last_seen != ?",
                                     [now, source_id, now])
        report.missing = len(ids)
    report.seconds = time.monotonic() - started
    return report


def _load_hashes(db: Any, items: dict[int, _Known]) -> None:
    """Fill in the stored content hash of these items (loaded only where a scan needs it)."""
    ids = list(items)
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for item_id, digest in db.execute(
                f"SELECT id, content_hash FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                chunk):
            items[item_id].content_hash = digest


def source_root(path: Path) -> str:
    """The absolute, normalised form a source root is stored in (symlinks kept as given)."""
    return os.path.abspath(os.path.expanduser(str(path)))
