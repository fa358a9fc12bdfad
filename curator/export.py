"""What leaves the app for training: exporters, duplicate-aware stratified splits, atomic output.

Every export is built in a sibling folder `OUT.tmp-<pid>` and renamed to OUT only when complete,
so a crash, a cancel or a full disk leaves no half-written export. Each export carries a
`manifest.json` (counts, taxonomy, the runs it came from, checksums of its metadata files) that
also marks the folder as a Curator export, which is what allows a later export to replace it.

Rows stream from one read snapshot of the catalog in chunks, so a million items never sit in
memory as Python objects at once. Splits are computed first over the exported selection: whole
duplicate groups (exact and near, see `curator.dedup`) are assigned as units, largest first, to
the split furthest below its target within the label's stratum, so no duplicate straddles train
and test.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import logging
import math
import operator
import os
import re
import shutil
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Optional, Sequence

import numpy as np

from curator import __version__
from curator.catalog import connect, utcnow
from curator.errors import CuratorError, UsageError
from indexing.progress import Progress, ProgressEvent, check_cancel, no_progress

if TYPE_CHECKING:
    from curator.project import Project

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_MARK = "curator_export"
MANIFEST_VERSION = 1
CHUNK_ROWS = 50_000
MODES = ("copy", "symlink", "hardlink")
# Stratum keys for items without a label; label ids are positive.
NOISE, MIXED, UNLABELLED = -1, -2, -3
_STATE_KEY = {"noise": NOISE, "mixed": MIXED}
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class ExportRow(NamedTuple):
    """One exported item; the columns of the jsonl, csv and parquet formats, in order."""

    item_id: int
    path: str  # absolute
    rel_path: str  # relative to its source folder
    source: str
    content_hash: Optional[str]
    modality: Optional[str]
    format: Optional[str]
    size: Optional[int]
    width: Optional[int]
    height: Optional[int]
    duration: Optional[float]
    label: Optional[str]  # the label's own name
    label_path: Optional[str]  # its full path through parents ("animal/cat")
    label_id: Optional[int]
    label_state: str  # labelled, noise, mixed or unlabelled
    label_source: Optional[str]  # group, manual, propagated, imported
    annotator: Optional[str]
    labelled_at: Optional[str]
    event_id: Optional[int]
    confirmed: bool
    group_id: Optional[int]
    cluster_run: Optional[int]
    embedding_spaces: list
    split: Optional[str]
    duplicate_group: Optional[int]  # the smallest item id of the item's duplicate group


COLUMNS: tuple[str, ...] = ExportRow._fields


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote."""

    out: str
    format: str
    items: int
    counts: dict[str, dict[str, int]]  # split ("all" without splits) -> label path or state -> n
    skipped: dict[str, int]
    files: dict[str, str]  # metadata file (relative) -> sha256
    notes: tuple[str, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"out": self.out, "format": self.format, "items": self.items,
                "counts": self.counts, "skipped": self.skipped, "files": self.files,
                "notes": list(self.notes), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Exporter:
    """A registered export format.

    Attributes:
        name: the format name given to `export`.
        write: fills the export folder from `ctx.chunks()`; see ExportContext.
        description: one line for help texts.
        modalities: only items of these modalities are exported (None: all).
        needs_label: only labelled items are exported (class folders need a class).
        places_files: the format copies or links media files (so `mode` matters).
    """

    name: str
    write: Callable[["ExportContext"], None]
    description: str
    modalities: Optional[tuple[str, ...]] = None
    needs_label: bool = False
    places_files: bool = False


EXPORTERS: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter) -> Exporter:
    """Add (or replace) an export format; built-ins register the same way a plugin would."""
    EXPORTERS[exporter.name] = exporter
    return exporter


def exporters() -> list[Exporter]:
    return [EXPORTERS[name] for name in sorted(EXPORTERS)]


# --- splits -----------------------------------------------------------------------------------


def parse_split(spec: Optional[str | dict[str, float]]) -> Optional[dict[str, float]]:
    """Parse `train=0.8,val=0.1,test=0.1` strictly.

    Returns:
        Split name -> fraction in the order given, or None when `spec` is empty.

    Raises:
        UsageError: a malformed part, an unsafe or repeated name, a fraction that is not a
            positive number, or fractions that do not sum to 1 (within 1e-6).
    """
    if spec is None or spec == "" or spec == {}:
        return None
    if isinstance(spec, dict):
        parts = [(str(k), v) for k, v in spec.items()]
    else:
        parts = []
        for part in str(spec).split(","):
            if part.count("=") != 1:
                raise UsageError(f"--split part {part.strip()!r} must look like name=fraction "
                                 "(e.g. train=0.8,val=0.1,test=0.1)")
            name, value = part.split("=")
            parts.append((name.strip(), value.strip()))
    out: dict[str, float] = {}
    for name, value in parts:
        if not _SPLIT_NAME.match(name):
            raise UsageError(f"split name {name!r} must be letters, digits, - or _ "
                             "(at most 32, starting with a letter or digit)")
        if name.casefold() in {n.casefold() for n in out}:
            raise UsageError(f"split {name!r} is given twice")
        try:
            fraction = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"split {name!r} has fraction {value!r}; give a number such as 0.8")
        if not math.isfinite(fraction) or fraction <= 0:
            raise UsageError(f"split {name!r} needs a positive fraction, not {value!r}")
        out[name] = fraction
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"split fractions sum to {total:g}, not 1 "
                         f"({', '.join(f'{k}={v:g}' for k, v in out.items())})")
    return out


def assign_splits(
    item_ids: np.ndarray,
    strata: np.ndarray,
    duplicate_groups: Sequence[Sequence[int]],
    fractions: dict[str, float],
    seed: int = 0,
) -> np.ndarray:
    """Assign each item a split, stratified by label and keeping duplicate groups together.

    Args:
        item_ids: sorted unique item ids of the exported selection.
        strata: one stratum key per item (its label; noise, mixed, unlabelled apart).
        duplicate_groups: item ids that must share a split (ids outside the selection are
            ignored; overlapping groups are joined).
        fractions: split name -> target fraction, summing to 1.
        seed: the same seed gives the same assignment.

    Returns:
        int8 index into `list(fractions)` per item.
    """
    n = len(item_ids)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    strata = np.asarray(strata, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int8)
    if n == 0:
        return out
    targets = np.array(list(fractions.values()), dtype=np.float64)
    unit = np.arange(n, dtype=np.int64)  # each item its own unit unless in a duplicate group
    parent = unit.copy()

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for group in duplicate_groups:
        ids = np.asarray(group, dtype=np.int64)
        pos = np.searchsorted(item_ids, ids)
        inside = pos < n
        pos, ids = pos[inside], ids[inside]
        pos = pos[item_ids[pos] == ids]
        if len(pos) < 2:
            continue
        root = find(int(pos[0]))
        for p in pos[1:]:
            other = find(int(p))
            if other != root:
                parent[other] = root
    multi = np.flatnonzero(parent != unit)
    for p in multi:
        unit[p] = find(int(p))
    rng = np.random.default_rng(seed)
    keys, stratum = np.unique(strata, return_inverse=True)
    goal = np.bincount(stratum, minlength=len(keys))[:, None] * targets[None, :]
    have = np.zeros_like(goal)
    # Duplicate groups first, as whole units, largest first (the seed orders equal sizes);
    # each goes to the split furthest below target in the stratum most of its members are in.
    members: dict[int, list[int]] = {}
    for p in np.flatnonzero(np.isin(unit, unit[multi])) if len(multi) else []:
        members.setdefault(int(unit[p]), []).append(int(p))
    groups = [members[root] for root in sorted(members)]
    order = sorted(rng.permutation(len(groups)).tolist(), key=lambda i: -len(groups[i]))
    single = np.ones(n, dtype=bool)
    for i in order:
        rows = np.asarray(groups[i], dtype=np.int64)
        where, counts = np.unique(stratum[rows], return_counts=True)
        home = int(where[np.argmax(counts)])  # ties: the smallest stratum key
        pick = int(np.argmax(goal[home] - have[home]))  # ties: the split named first
        out[rows] = pick
        np.add.at(have, (stratum[rows], pick), 1)
        single[rows] = False
    # Then the single items of each stratum fill what is left of each split's target.
    lone = np.flatnonzero(single)
    lone = lone[np.argsort(stratum[lone], kind="stable")]
    bounds = np.searchsorted(stratum[lone], np.arange(len(keys) + 1))
    for s in range(len(keys)):
        rows = lone[bounds[s]:bounds[s + 1]]
        if len(rows):
            alloc = _allocate(np.maximum(goal[s] - have[s], 0.0), len(rows), targets)
            shuffled = rows[rng.permutation(len(rows))]
            out[shuffled] = np.repeat(np.arange(len(targets), dtype=np.int8), alloc)
    return out


def _allocate(deficit: np.ndarray, n: int, fallback: np.ndarray) -> np.ndarray:
    """Split n items over bins in proportion to their deficits (largest remainders)."""
    weights = deficit if deficit.sum() > 0 else fallback
    exact = weights / weights.sum() * n
    alloc = np.floor(exact).astype(np.int64)
    rest = n - int(alloc.sum())
    if rest:
        # Largest remainder first; equal remainders go to the bin named first.
        order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - alloc[i]), i))
        for i in order[:rest]:
            alloc[i] += 1
    return alloc


# --- safe names -------------------------------------------------------------------------------

_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in range(10)] + [f"LPT{i}" for i in range(10)]
    + [f"COM{c}" for c in "¹²³"] + [f"LPT{c}" for c in "¹²³"])
_UNSAFE_CHARS = set('<>:"/\\|?*')
MAX_NAME_BYTES = 120


def safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file or folder name that is safe on Linux, macOS and Windows, derived deterministically.

    Separators, characters Windows refuses, control and format characters become `_`;
    `.`/`..`, empty names, Windows device names (CON, NUL, COM1, ...) and trailing dots or
    spaces are altered; over-long names are cut. A name that had to change gets a short hash
    of the original appended, so two different names never end up the same.
    """
    original = name
    text = unicodedata.normalize("NFC", str(name))
    text = "".join("_" if (ch in _UNSAFE_CHARS or unicodedata.category(ch) in ("Cc", "Cf", "Cs",
                                                                              "Zl", "Zp"))
                   else ch for ch in text)
    text = text.strip(" ").rstrip(".")
    if text in ("", ".", ".."):
        text = "_"
    stem = text.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _WINDOWS_RESERVED:
        text = "_" + text
    if text == original and len(text.encode("utf-8")) <= max_bytes:
        return text
    digest = hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    room = max_bytes - len(digest) - 1
    cut = text.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .") or "_"
    return f"{cut}-{digest}"


def safe_file_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """safe_name for a file: the extension is kept apart so it survives shortening."""
    stem, ext = os.path.splitext(name)
    if not stem or len(ext) > 16 or not re.match(r"^\.[A-Za-z0-9_-]+$", ext or ".x"):
        return safe_name(name, max_bytes)
    return safe_name(stem, max_bytes - len(ext)) + ext


RESERVED_NAMES = ("manifest.json", "metadata.jsonl")


def label_folders(paths: Sequence[str], names: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Folder name for each label path: its own name made safe, unique case-insensitively.

    Args:
        paths: label paths ("animal/cat"), the ones to keep their plain names first.
        names: label path -> the label's own name (default: the last path part).
    """
    names = names or {}
    out: dict[str, str] = {}
    used: set[str] = {name.casefold() for name in RESERVED_NAMES}  # files beside the folders
    for path in paths:
        if path in out:
            continue
        base = safe_name(names.get(path, path.rsplit("/", 1)[-1]))
        folder, n = base, 1
        while folder.casefold() in used:
            n += 1
            folder = safe_name(f"{base}~{n}")
        used.add(folder.casefold())
        out[path] = folder
    return out


# --- the export context -----------------------------------------------------------------------


class ExportContext:
    """What an exporter gets: rows in chunks, checked paths inside the export, file placing.

    Every path an exporter writes goes through `target` (or `open`/`place`, which use it), which
    refuses anything that would resolve outside the export folder.
    """

    def __init__(self, project: "Project", root: Path, exporter: Exporter, fractions:
                 Optional[dict[str, float]], mode: str, rows: Callable[[], Iterator[dict]],
                 total: int, labels: dict[int, tuple[str, str]], progress: Progress,
                 cancel: Optional[Callable[[], bool]]) -> None:
        self.project = project
        self.root = root
        self._real_root = os.path.realpath(root)
        self.exporter = exporter
        self.splits: Optional[list[str]] = list(fractions) if fractions else None
        self.mode = mode
        self.total = total
        self.labels = labels  # label id -> (name, path)
        self.progress = progress
        self.cancel = cancel
        self.files: list[str] = []
        self.notes: list[str] = []
        self.dropped: Counter = Counter()  # (split, label key) -> n left out while writing
        self.skipped: Counter = Counter()
        self._rows = rows
        self._folders: Optional[dict[str, str]] = None
        self._used: dict[str, set[str]] = {}
        self._fallbacks = 0

    # rows

    def column_chunks(self) -> Iterator[dict[str, list]]:
        """The exported rows in item id order as columns (name -> list), a chunk at a time.

        The fast path for tabular formats: no object per row. Checks cancel per chunk.
        """
        done = 0
        self.progress(ProgressEvent("export", 0, self.total, "items"))
        for columns in self._rows():
            check_cancel(self.cancel)
            yield columns
            done += len(columns["item_id"])
            self.progress(ProgressEvent("export", done, self.total, "items"))

    def chunks(self) -> Iterator[list[ExportRow]]:
        """The exported rows in item id order, a list of ExportRow at a time."""
        make = ExportRow._make
        for columns in self.column_chunks():
            yield list(map(make, zip(*(columns[name] for name in COLUMNS))))

    def split_names(self) -> list[Optional[str]]:
        return list(self.splits) if self.splits else [None]

    def drop(self, row: ExportRow, reason: str) -> None:
        """Leave a row out after all (its file is gone, ...); counted in the manifest."""
        self.dropped[(row.split, _count_key(row))] += 1
        self.skipped[reason] += 1

    # names and paths

    @property
    def folders(self) -> dict[str, str]:
        """Label path -> safe folder name, for every label of the taxonomy."""
        if self._folders is None:
            by_path: dict[str, str] = {}
            for name, path in self.labels.values():
                by_path.setdefault(path, name)
            self._folders = label_folders(list(by_path), by_path)
        return self._folders

    def target(self, *parts: str) -> Path:
        """A path inside the export folder from plain name parts.

        Raises:
            CuratorError: a part is not a single safe name, or the path resolves outside.
        """
        for part in parts:
            if (not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part
                    or os.path.isabs(part)):
                raise CuratorError(f"export refused the unsafe name {part!r}")
        path = self.root.joinpath(*parts)
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._real_root]) != self._real_root or real == \
                self._real_root:
            raise CuratorError(f"export refused {path}: it lies outside {self.root}")
        return path

    @contextlib.contextmanager
    def open(self, *parts: str, newline: Optional[str] = None) -> Iterator[IO[str]]:
        """Open a metadata file for writing (UTF-8); its checksum goes in the manifest."""
        path = self.target(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
        self.register(*parts)

    def register(self, *parts: str) -> None:
        """Record a metadata file written by other means (e.g. parquet) for the checksums."""
        rel = "/".join(parts)
        if rel not in self.files:
            self.files.append(rel)

    def place(self, source: str, *folders: str, name: Optional[str] = None) -> Optional[str]:
        """Copy or link a media file into a folder of the export under a unique safe name.

        Returns:
            The path written, relative to the export root ('/'-separated), or None when the
            source file could not be read (the caller drops the row).
        """
        folder = self.target(*folders) if folders else self.root
        key = "/".join(folders)
        used = self._used.setdefault(key, set())
        base = safe_file_name(name or os.path.basename(source))
        stem, ext = os.path.splitext(base)
        candidate, n = base, 1
        while candidate.casefold() in used:
            n += 1
            candidate = f"{stem}-{n}{ext}"
        used.add(candidate.casefold())
        dest = self.target(*folders, candidate)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self._put(source, dest)
        except FileNotFoundError:
            return None
        return "/".join([*folders, candidate])

    def _put(self, source: str, dest: Path) -> None:
        if self.mode == "symlink":
            if not os.path.exists(source):
                raise FileNotFoundError(source)
            os.symlink(os.path.abspath(source), dest)
            return
        if self.mode == "hardlink":
            try:
                os.link(source, dest)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK,
                                     errno.EOPNOTSUPP):
                    raise
                self._fallbacks += 1
                if self._fallbacks == 1:
                    log.warning("hard links are not possible from %s to %s (%s); copying instead",
                                source, dest.parent, exc.strerror)
        shutil.copy2(source, dest)

    def finish_notes(self) -> None:
        if self._fallbacks:
            self.notes.append(f"hardlink was not possible for {self._fallbacks} file(s) "
                              "(another device or file system); they were copied instead")


def _count_key(row: ExportRow) -> str:
    return row.label_path if row.label_state == "labelled" and row.label_path else row.label_state


# --- the export -------------------------------------------------------------------------------


def export(
    project: "Project",
    fmt: str,
    out: Path | str,
    split: Optional[str | dict[str, float]] = None,
    seed: int = 0,
    only_labeled: bool = False,
    mode: str = "copy",
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
) -> ExportReport:
    """Export the catalog's items and labels in a format, atomically, with a manifest.

    Args:
        project: an open Project.
        fmt: a registered format (jsonl, csv, parquet, imagefolder, coco, labelstudio, nemo).
        out: the export folder; replaced if it holds a previous Curator export, refused if it
            holds anything else.
        split: e.g. "train=0.8,val=0.1,test=0.1": stratified by label, duplicate-aware.
        seed: makes the split assignment reproducible.
        only_labeled: only items whose current state is labelled (not noise or mixed).
        mode: copy, symlink or hardlink, for formats that place media files.

    Returns:
        An ExportReport (also summarised in OUT/manifest.json).

    Raises:
        UsageError: an unknown format or mode, a bad split, or an OUT that may not be replaced.
    """
    started = time.monotonic()
    progress = progress or no_progress
    if fmt not in EXPORTERS:
        raise UsageError(f"unknown export format {fmt!r}; one of {', '.join(sorted(EXPORTERS))}")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    exporter = EXPORTERS[fmt]
    fractions = parse_split(split)
    out = Path(os.path.abspath(os.path.expanduser(str(out))))
    _check_out(project, out)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    _remove_stale_temps(out)
    if tmp.exists():
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    reader = connect(project.catalog.path)
    # A long sequential read: map the file rather than copy pages through the cache.
    reader.execute("PRAGMA mmap_size = 1073741824")
    selection: Optional[_Selection] = None
    try:
        # One read snapshot for the split computation and the rows, so they agree.
        reader.execute("BEGIN")
        selection = _Selection(reader, exporter, only_labeled)
        ids, strata = selection.ids_and_strata()
        split_index: Optional[np.ndarray] = None
        from curator.dedup import duplicate_groups

        dup_groups = duplicate_groups(project, db=reader)
        dup_id = _duplicate_ids(ids, dup_groups)
        if fractions:
            split_index = assign_splits(ids, strata, dup_groups, fractions, seed)
        check_cancel(cancel)
        labels = _label_paths(reader)
        run_id = _current_cluster_run(reader)
        names = list(fractions) if fractions else None

        def rows() -> Iterator[dict[str, list]]:
            return selection.columns(ids, split_index, names, dup_id, labels, run_id)

        tmp.mkdir()
        try:
            ctx = ExportContext(project, tmp, exporter, fractions, mode, rows, len(ids), labels,
                                progress, cancel)
            exporter.write(ctx)
            ctx.finish_notes()
            counts = _counts(ids, strata, split_index, names, labels, ctx.dropped)
            skipped = dict(selection.skipped())
            skipped.update(ctx.skipped)
            files = {rel: _sha256(tmp / rel) for rel in ctx.files}
            items = sum(sum(c.values()) for c in counts.values())
            manifest = _manifest(project, reader, exporter, out, fractions, seed, only_labeled,
                                 mode, counts, skipped, files, ctx, items, run_id)
            with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=2, ensure_ascii=False, sort_keys=False)
                fh.flush()
                os.fsync(fh.fileno())
            reader.execute("COMMIT")
            _commit(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        if selection is not None:
            selection.close()
        reader.conn.close()
    report = ExportReport(str(out), fmt, items, counts, skipped, files, tuple(ctx.notes),
                          time.monotonic() - started)
    log.info("exported %d items as %s to %s in %.1f s", items, fmt, out, report.seconds)
    return report


def _check_out(project: "Project", out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; give a folder for the export")
    for source in project.sources():
        root = os.path.realpath(source.root)
        real = os.path.realpath(out)
        if os.path.commonpath([real, root]) == root:
            raise UsageError(f"{out} is inside the source folder {source.root}, which Curator "
                             "never writes to; choose a folder elsewhere")
        if os.path.commonpath([real, root]) == real:
            raise UsageError(f"{out} holds the source folder {source.root}; choose another folder")
    if os.path.commonpath([os.path.realpath(out), os.path.realpath(project.root)]) == \
            os.path.realpath(out):
        raise UsageError(f"{out} holds the project itself; choose another folder")
    if out.is_dir() and any(out.iterdir()) and not is_export(out):
        raise UsageError(f"{out} is a folder that is not empty and not a Curator export; "
                         "choose a new or empty folder (a previous export is replaced)")


def is_export(folder: Path | str) -> bool:
    """True when the folder holds a Curator export (its manifest says so)."""
    try:
        with open(Path(folder) / MANIFEST, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get(MANIFEST_MARK) is not None


def _remove_stale_temps(out: Path) -> None:
    """Temporary folders left by exports to the same OUT that were killed."""
    from curator.catalog import _pid_alive

    if not out.parent.is_dir():
        return
    prefix = f"{out.name}.tmp-"
    for entry in out.parent.iterdir():
        if entry.name.startswith(prefix) and entry.name[len(prefix):].isdigit():
            pid = int(entry.name[len(prefix):])
            if pid != os.getpid() and not _pid_alive(pid) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def _commit(tmp: Path, out: Path) -> None:
    """Put the finished export in place; a previous one is swapped out, then removed."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _label_paths(db: Any) -> dict[int, tuple[str, str]]:
    """label id -> (name, full path) for every label ever made: live ones first, by path.

    Removed labels keep their names so an old id still reads; live names win any clash.
    """
    rows = {r[0]: (r[1], r[2], r[3] is None) for r in db.execute(
        "SELECT id, name, parent_id, removed_at FROM labels")}
    found = []
    for label_id, (name, _, live) in rows.items():
        parts, seen, current = [], set(), label_id
        while current is not None and current in rows and current not in seen:
            seen.add(current)
            parts.append(rows[current][0])
            current = rows[current][1]
        found.append((not live, "/".join(reversed(parts)), label_id, name))
    return {label_id: (name, path) for _, path, label_id, name in sorted(found)}


def _current_cluster_run(db: Any) -> Optional[int]:
    row = db.execute(
        "SELECT MAX(c.run_id) FROM clusterings c JOIN runs r ON r.id = c.run_id "
        "WHERE r.status = 'ok'").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _duplicate_ids(ids: np.ndarray, groups: Sequence[Sequence[int]]) -> dict[int, int]:
    """item id -> its duplicate group's id (the group's smallest item id), for grouped items."""
    out: dict[int, int] = {}
    for group in groups:
        members = [int(i) for i in group]
        first = min(members)
        for i in members:
            out[i] = first
    return out


class _Selection:
    """The exported items: status ok, filtered by format and options, in item id order."""

    def __init__(self, db: Any, exporter: Exporter, only_labeled: bool) -> None:
        self.db = db
        self.exporter = exporter
        self.labelled_only = only_labeled or exporter.needs_label
        where = ["items.status = 'ok'"]
        self.args: list[Any] = []
        if self.labelled_only:
            where.append("il.state = 'labelled'")
        if exporter.modalities:
            where.append(f"items.modality IN ({','.join('?' * len(exporter.modalities))})")
            self.args.extend(exporter.modalities)
        self.where = " AND ".join(where)
        self.prefetchers: list[_Prefetch] = []

    def close(self) -> None:
        for prefetch in self.prefetchers:
            prefetch.close()

    def ids_and_strata(self) -> tuple[np.ndarray, np.ndarray]:
        """Exported item ids (sorted) and each one's stratum: its label id, or NOISE, MIXED,
        UNLABELLED. Two narrow scans merged in NumPy, cheaper than one join at a million."""
        where = ["items.status = 'ok'"]
        if self.exporter.modalities:
            where.append(f"items.modality IN ({','.join('?' * len(self.exporter.modalities))})")
        ids = np.fromiter((r[0] for r in self.db.execute(
            f"SELECT items.id FROM items WHERE {' AND '.join(where)} ORDER BY items.id",
            list(self.exporter.modalities or ()))), dtype=np.int64)
        pairs = np.array(self.db.execute(
            "SELECT item_id, CASE state WHEN 'labelled' THEN label_id WHEN 'noise' THEN "
            f"{NOISE} WHEN 'mixed' THEN {MIXED} ELSE {UNLABELLED} END FROM item_labels "
            "ORDER BY item_id").fetchall(), dtype=np.int64).reshape(-1, 2)
        strata = np.full(len(ids), UNLABELLED, dtype=np.int64)
        if len(pairs) and len(ids):
            pos = np.minimum(np.searchsorted(pairs[:, 0], ids), len(pairs) - 1)
            hit = pairs[pos, 0] == ids
            strata[hit] = pairs[pos[hit], 1]
        if self.labelled_only:
            keep = strata > 0
            ids, strata = ids[keep], strata[keep]
        return ids, strata

    def skipped(self) -> Counter:
        """Why ok items were left out by this selection."""
        out: Counter = Counter()
        if self.labelled_only:
            n = self.db.execute(
                "SELECT COUNT(*) FROM items LEFT JOIN item_labels il ON il.item_id = items.id "
                "WHERE items.status = 'ok' AND (il.state IS NULL OR il.state != 'labelled')"
                + (f" AND items.modality IN ({','.join('?' * len(self.exporter.modalities))})"
                   if self.exporter.modalities else ""),
                list(self.exporter.modalities or ())).fetchone()[0]
            if n:
                out["not labelled"] = n
        if self.exporter.modalities:
            n = self.db.execute(
                "SELECT COUNT(*) FROM items WHERE status = 'ok' AND (modality IS NULL OR "
                f"modality NOT IN ({','.join('?' * len(self.exporter.modalities))}))",
                list(self.exporter.modalities)).fetchone()[0]
            if n:
                out[f"not {'/'.join(self.exporter.modalities)}"] = n
        return out

    def _load_events(self, wanted: set) -> dict[Any, tuple]:
        """(source, annotator, time) of the given events."""
        out: dict[Any, tuple] = {}
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 900):
            part = ordered[start:start + 900]
            for event_id, source, annotator, when in self.db.execute(
                    "SELECT id, source, annotator, time FROM events WHERE id IN "
                    f"({','.join('?' * len(part))})", part):
                out[event_id] = (source, annotator, when)
        for event_id in ordered:
            out.setdefault(event_id, (None, None, None))
        return out

    def columns(self, ids: np.ndarray, split_index: Optional[np.ndarray],
                names: Optional[list[str]], dup_id: dict[int, int],
                labels: dict[int, tuple[str, str]], run_id: Optional[int]
                ) -> Iterator[dict[str, list]]:
        """The rows in chunks of columns; joins in SQL, per-column work in Python."""
        db = self.db
        prefix = {sid: root if root.endswith(os.sep) else root + os.sep
                  for sid, root in db.execute("SELECT id, root FROM sources")}
        roots = {sid: p.rstrip(os.sep) or os.sep for sid, p in prefix.items()}
        # Which spaces hold which items: one sorted id array per space, looked up per chunk.
        spaces = [r[0] for r in db.execute("SELECT space FROM spaces ORDER BY space")]
        holders = [np.fromiter((r[0] for r in db.execute(
            "SELECT item_id FROM embeddings WHERE space = ? ORDER BY item_id", [space])),
            dtype=np.int64) for space in spaces]
        combos: dict[int, list[str]] = {}
        split_names = np.asarray(names if names else [None], dtype=object)
        name_of = {k: v[0] for k, v in labels.items()}
        path_of = {k: v[1] for k, v in labels.items()}
        # Events are looked up per chunk rather than joined: far fewer events than items,
        # so their strings are built once each instead of once per row.
        cursor = db.execute(
            "SELECT items.id, items.source_id, items.path, items.content_hash, items.modality, "
            "items.format, items.size, items.width, items.height, items.duration, "
            "il.label_id, il.state, il.event_id, il.confirmed, a.group_id FROM items "
            "LEFT JOIN item_labels il ON il.item_id = items.id "
            "LEFT JOIN assignments a ON a.run_id = ? AND a.item_id = items.id "
            f"WHERE {self.where} ORDER BY items.id", [run_id, *self.args])
        known: set[Any] = {None}  # events the reader thread has already sent

        def fetch() -> Optional[tuple[list, dict[Any, tuple]]]:
            # Runs on the prefetch thread, the only user of this connection meanwhile.
            raw = cursor.fetchmany(CHUNK_ROWS)
            if not raw:
                return None
            if len(known) > 200_000:
                known.clear()
                known.add(None)
            wanted = {row[12] for row in raw} - known
            found = self._load_events(wanted)
            known.update(wanted)
            return raw, found

        events: dict[Any, tuple] = {None: (None, None, None)}
        at = 0
        prefetch = _Prefetch(fetch)
        self.prefetchers.append(prefetch)
        for raw, found in prefetch:
            n = len(raw)
            # One C-level pass per column (zip(*raw) over 50,000 rows is slower).
            (item_id, source_id, rel, digest, modality, fmt, size, width, height, duration,
             label_id, state, event_id, confirmed, group_id) = [list(map(get, raw))
                                                                for get in _GETTERS]
            if len(events) > 200_000:
                events = {None: (None, None, None)}
            events.update(found)
            info = list(map(events.__getitem__, event_id))
            label_source, annotator, labelled_at = [list(map(get, info))
                                                    for get in _GETTERS[:3]]
            chunk_ids = np.asarray(item_id, dtype=np.int64)
            if at + n > len(ids) or not np.array_equal(ids[at:at + n], chunk_ids):
                raise CuratorError("the catalog changed while exporting; run the export again")
            code = np.zeros(n, dtype=np.int64)
            for k, held in enumerate(holders):
                if len(held):
                    pos = np.minimum(np.searchsorted(held, chunk_ids), len(held) - 1)
                    code |= (held[pos] == chunk_ids).astype(np.int64) << k
            codes = code.tolist()
            for c in set(codes) - set(combos):
                combos[c] = [space for k, space in enumerate(spaces) if c >> k & 1]
            if split_index is not None:
                split = split_names[split_index[at:at + n]].tolist()
            else:
                split = [None] * n
            if len(prefix) == 1:
                (only_prefix,), (only_root,) = prefix.values(), roots.values()
                path = list(map(only_prefix.__add__, rel))
                source = [only_root] * n
            else:
                path = [prefix[s] + r for s, r in zip(source_id, rel)]
                source = list(map(roots.__getitem__, source_id))
            yield {
                "item_id": item_id,
                "path": path,
                "rel_path": rel,
                "source": source,
                "content_hash": digest,
                "modality": modality,
                "format": fmt,
                "size": size,
                "width": width,
                "height": height,
                "duration": duration,
                "label": list(map(name_of.get, label_id)),
                "label_path": list(map(path_of.get, label_id)),
                "label_id": label_id,
                "label_state": [s or "unlabelled" for s in state],
                "label_source": label_source,
                "annotator": annotator,
                "labelled_at": labelled_at,
                "event_id": event_id,
                "confirmed": [c == 1 for c in confirmed],
                "group_id": group_id,
                "cluster_run": [None if g is None else run_id for g in group_id],
                "embedding_spaces": list(map(combos.__getitem__, codes)),
                "split": split,
                "duplicate_group": list(map(dup_id.get, item_id)) if dup_id else [None] * n,
            }
            at += n
        prefetch.close()


_GETTERS = [operator.itemgetter(k) for k in range(15)]


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Prefetch:
    """Calls `fetch` on a thread, a couple of chunks ahead of the writer, until it gives None.

    SQLite steps through the query without the GIL, so reading overlaps converting and
    compressing the previous chunk. `close` stops the thread; it must run before the
    connection closes.
    """

    def __init__(self, fetch: Callable[[], Any], depth: int = 2) -> None:
        import queue
        import threading

        self._queue: Any = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._fetch = fetch
        self._thread = threading.Thread(target=self._run, name="export-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import queue

        item: Any = None
        while not self._stop.is_set():
            try:
                item = self._fetch()
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
                item = _Failed(exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is None or isinstance(item, _Failed):
                return

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _counts(ids: np.ndarray, strata: np.ndarray, split_index: Optional[np.ndarray],
            names: Optional[list[str]], labels: dict[int, tuple[str, str]],
            dropped: Counter) -> dict[str, dict[str, int]]:
    state = {NOISE: "noise", MIXED: "mixed", UNLABELLED: "unlabelled"}
    splits = split_index if split_index is not None else np.zeros(len(ids), np.int8)
    split_names = names or ["all"]
    out: dict[str, dict[str, int]] = {name: {} for name in split_names}
    if len(ids):
        combined = splits.astype(np.int64) * (1 << 40) + (strata - UNLABELLED)
        keys, counts = np.unique(combined, return_counts=True)
        for key, n in zip(keys.tolist(), counts.tolist()):
            s, k = divmod(key, 1 << 40)
            k += UNLABELLED
            label = state[k] if k < 0 else labels.get(k, (str(k), str(k)))[1]
            out[split_names[s]][label] = n
    for (split, label), n in dropped.items():
        bucket = out[split if split is not None else "all"]
        bucket[label] = bucket.get(label, 0) - n
        if bucket[label] <= 0:
            del bucket[label]
    return {s: dict(sorted(c.items())) for s, c in out.items()}


def _runs_used(db: Any) -> dict[str, Any]:
    out = {}
    for kind in ("scan", "embed", "cluster", "dedup"):
        row = db.execute("SELECT id, params, started_at, ended_at FROM runs WHERE kind = ? AND "
                         "status = 'ok' ORDER BY id DESC LIMIT 1", [kind]).fetchone()
        if row:
            out[kind] = {"id": row[0], "params": json.loads(row[1] or "{}"),
                         "started_at": row[2], "ended_at": row[3]}
    return out


def _manifest(project: "Project", db: Any, exporter: Exporter, out: Path,
              fractions: Optional[dict[str, float]], seed: int, only_labeled: bool, mode: str,
              counts: dict[str, dict[str, int]], skipped: dict[str, int], files: dict[str, str],
              ctx: ExportContext, items: int, run_id: Optional[int]) -> dict[str, Any]:
    from curator.labels import export_taxonomy

    by_label: Counter = Counter()
    for c in counts.values():
        by_label.update(c)
    changed = {path: folder for path, folder in ctx.folders.items()
               if folder != path.rsplit("/", 1)[-1]}
    runs = _runs_used(db)
    if run_id is not None:
        runs["cluster"] = {**runs.get("cluster", {}), "id": run_id}
    return {
        MANIFEST_MARK: MANIFEST_VERSION,
        "format": exporter.name,
        "project": str(project.root),
        "created": utcnow(),
        "app_version": __version__,
        "options": {"split": fractions, "seed": seed, "only_labeled": only_labeled,
                    "mode": mode if exporter.places_files else None},
        "columns": list(COLUMNS) if exporter.name in ("jsonl", "csv", "parquet") else None,
        "counts": {"items": items, "by_split": counts, "by_label": dict(sorted(by_label.items())),
                   "skipped": skipped},
        "taxonomy": export_taxonomy(project.catalog),
        "label_folders": ctx.folders if exporter.places_files else {},
        "renamed_label_folders": changed if exporter.places_files else {},
        "runs": runs,
        "checksums": {"sha256": files},
        "notes": ctx.notes,
    }


# --- tabular formats --------------------------------------------------------------------------


_INT_COLUMNS = ("item_id", "size", "width", "height", "label_id", "event_id", "group_id",
                "cluster_run", "duplicate_group")
_FEW_VALUES = ("source", "modality", "format", "label", "label_path", "label_state",
               "label_source", "annotator", "labelled_at", "split")


def _json_column(name: str, values: list, columns: dict[str, list],
                 encoded: dict[str, list[str]]) -> list[str]:
    """JSON text of each value of a column, the same as json.dumps(..., ensure_ascii=False).

    Column-wise rather than per row, with repeated values encoded once: several times faster
    than one json.dumps per row, which matters at a million rows.
    """
    from json.encoder import encode_basestring

    if name == "item_id":
        return list(map(str, values))
    if name in _INT_COLUMNS:
        return ["null" if v is None else str(v) for v in values]
    if name == "duration":
        return ["null" if v is None else float.__repr__(float(v)) if math.isfinite(v)
                else json.dumps(float(v)) for v in values]
    if name == "confirmed":
        return ["true" if v else "false" for v in values]
    if name == "content_hash":
        # Hex digests need no escaping; anything else goes through the encoder.
        return ["null" if v is None else f'"{v}"' if v.isalnum() else encode_basestring(v)
                for v in values]
    if name == "path":
        # The source prefix is encoded once; JSON escaping works per character, so an encoded
        # prefix and the encoded relative path join into the encoded full path.
        rels = columns["rel_path"]
        enc_rels = encoded["rel_path"]
        memo: dict[str, str] = {}
        get = memo.get

        def encode_head(head: str) -> str:
            enc = memo[head] = encode_basestring(head)[:-1]
            return enc

        heads = [full[: len(full) - len(rel)] for full, rel in zip(values, rels)]
        return [(get(h) or encode_head(h)) + e[1:] for h, e in zip(heads, enc_rels)]
    if name in _FEW_VALUES or name == "embedding_spaces":
        lists = name == "embedding_spaces"  # shared list objects: keyed by identity
        cache: dict[Any, str] = {None: "null"}
        get = cache.get

        def encode(v: Any) -> str:
            enc = cache[id(v) if lists else v] = json.dumps(v, ensure_ascii=False)
            return enc

        if lists:
            return [get(id(v)) or encode(v) for v in values]
        return [get(v) or encode(v) for v in values]
    return ["null" if v is None else encode_basestring(v) for v in values]


_JSON_ORDER = ("rel_path", *(name for name in COLUMNS if name != "rel_path"))
_JSONL_TEMPLATE = "{" + ", ".join(f'"{name}": %s' for name in COLUMNS) + "}\n"


def _write_jsonl(ctx: ExportContext) -> None:
    with ctx.open("items.jsonl") as fh:
        for columns in ctx.column_chunks():
            encoded: dict[str, list[str]] = {}
            for name in _JSON_ORDER:
                encoded[name] = _json_column(name, columns[name], columns, encoded)
            fh.write("".join([_JSONL_TEMPLATE % row for row in
                              zip(*(encoded[name] for name in COLUMNS))]))


def _write_csv(ctx: ExportContext) -> None:
    with ctx.open("items.csv", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for columns in ctx.column_chunks():
            # csv writes None as an empty cell; lists become "a;b".
            columns["embedding_spaces"] = [";".join(v) for v in columns["embedding_spaces"]]
            writer.writerows(zip(*(columns[name] for name in COLUMNS)))


def parquet_schema() -> Any:
    import pyarrow as pa

    types = {
        "item_id": pa.int64(), "label_id": pa.int64(), "size": pa.int64(),
        "width": pa.int32(), "height": pa.int32(),
        "duration": pa.float64(), "event_id": pa.int64(), "confirmed": pa.bool_(),
        "group_id": pa.int64(), "cluster_run": pa.int64(), "duplicate_group": pa.int64(),
        "embedding_spaces": pa.list_(pa.string()),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS])


def _write_parquet(ctx: ExportContext) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    path = ctx.target("items.parquet")
    # Dictionary encoding only where values repeat: paths and hashes are unique, and building
    # dictionaries for them costs time for nothing.
    with pq.ParquetWriter(str(path), schema, compression="zstd",
                          use_dictionary=[*_FEW_VALUES, "embedding_spaces"]) as writer:
        for columns in ctx.column_chunks():
            arrays = [pa.array(columns[name], type=schema.field(name).type) for name in COLUMNS]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        if ctx.total == 0:
            writer.write_table(schema.empty_table())
    ctx.register("items.parquet")


# --- folder and tool formats ------------------------------------------------------------------


def _metadata_record(row: ExportRow, file_name: str) -> dict[str, Any]:
    return {"file_name": file_name, "label": row.label, "label_path": row.label_path,
            "item_id": row.item_id, "modality": row.modality, "content_hash": row.content_hash,
            "source_path": row.path, "duplicate_group": row.duplicate_group}


def _write_imagefolder(ctx: ExportContext) -> None:
    """`<split>/<label>/<file>` (or `<label>/<file>`) with metadata.jsonl beside the files.

    Hugging Face `datasets` (imagefolder, audiofolder, videofolder) reads `metadata.jsonl`
    next to the files it describes, with `file_name` relative to it.
    """
    with contextlib.ExitStack() as stack:
        handles: dict[Optional[str], IO[str]] = {}
        for split in ctx.split_names():
            parts = (split, "metadata.jsonl") if split else ("metadata.jsonl",)
            handles[split] = stack.enter_context(ctx.open(*parts))
        missing = []
        for chunk in ctx.chunks():
            for row in chunk:
                folder = ctx.folders[row.label_path]
                base = (row.split,) if row.split else ()
                rel = ctx.place(row.path, *base, folder)
                if rel is None:
                    ctx.drop(row, "file missing")
                    missing.append(row.path)
                    continue
                name = rel[len(row.split) + 1:] if row.split else rel
                handles[row.split].write(json.dumps(_metadata_record(row, name),
                                                    ensure_ascii=False) + "\n")
        if missing:
            ctx.notes.append(f"{len(missing)} file(s) were gone and left out, e.g. {missing[0]}; "
                             "run `curator scan` to update the catalog")


def _write_coco(ctx: ExportContext) -> None:
    """COCO-style classification: images, categories (the taxonomy), one annotation per image."""
    from curator.labels import labels as live_labels

    by_id = {lab.id: lab for lab in live_labels(ctx.project.catalog, with_counts=False)}
    categories = [{"id": lab.id, "name": lab.name, "supercategory":
                   by_id[lab.parent_id].name if lab.parent_id in by_id else "", "path": lab.path}
                  for lab in sorted(by_id.values(), key=lambda lab: lab.path)]
    parts: dict[Optional[str], tuple[IO[str], IO[str], list[int]]] = {}
    with contextlib.ExitStack() as stack:
        for split in ctx.split_names():
            stem = split or "annotations"
            images = stack.enter_context(open(ctx.target(f".{stem}.images.part"), "w",
                                              encoding="utf-8"))
            notes = stack.enter_context(open(ctx.target(f".{stem}.annotations.part"), "w",
                                             encoding="utf-8"))
            parts[split] = (images, notes, [0, 0])
        for chunk in ctx.chunks():
            for row in chunk:
                images, notes, seen = parts[row.split]
                image = {"id": row.item_id, "file_name": row.path, "rel_path": row.rel_path,
                         "width": row.width, "height": row.height,
                         "content_hash": row.content_hash, "duplicate_group": row.duplicate_group}
                images.write((",\n" if seen[0] else "") + json.dumps(image, ensure_ascii=False))
                seen[0] += 1
                if row.label_state == "labelled":
                    note = {"id": row.item_id, "image_id": row.item_id,
                            "category_id": row.label_id,
                            "label_source": row.label_source, "annotator": row.annotator}
                    notes.write((",\n" if seen[1] else "") + json.dumps(note, ensure_ascii=False))
                    seen[1] += 1
    info = {"description": f"Curator export of {ctx.project.root}", "version": __version__,
            "date_created": utcnow()}
    for split in ctx.split_names():
        stem = split or "annotations"
        with ctx.open(f"{stem}.json") as fh:
            fh.write('{"info": ' + json.dumps(info) + ', "licenses": [], "categories": '
                     + json.dumps(categories, ensure_ascii=False) + ', "images": [\n')
            _append(fh, ctx.target(f".{stem}.images.part"))
            fh.write('\n], "annotations": [\n')
            _append(fh, ctx.target(f".{stem}.annotations.part"))
            fh.write("\n]}\n")
        os.remove(ctx.target(f".{stem}.images.part"))
        os.remove(ctx.target(f".{stem}.annotations.part"))


def _append(out: IO[str], path: Path) -> None:
    with open(path, encoding="utf-8") as part:
        shutil.copyfileobj(part, out, 1 << 20)


def _live_taxonomy(ctx: ExportContext) -> list[dict[str, Any]]:
    from curator.labels import export_taxonomy

    return export_taxonomy(ctx.project.catalog)


LABELSTUDIO_KEYS = {"image": "image", "audio": "audio", "video": "video"}
LABELSTUDIO_TAGS = {"image": "Image", "audio": "Audio", "video": "Video"}


def _write_labelstudio(ctx: ExportContext) -> None:
    """Label Studio tasks with the current labels as pre-annotations (`predictions`, choices).

    Media are referenced through Label Studio's local file serving (`/data/local-files/?d=`),
    relative to `/`; start Label Studio with LOCAL_FILES_SERVING_ENABLED=true and
    LOCAL_FILES_DOCUMENT_ROOT=/ (or rewrite the `path` field to your own URLs).
    """
    from urllib.parse import quote

    handles: dict[Optional[str], IO[str]] = {}
    seen: Counter = Counter()
    with contextlib.ExitStack() as stack:
        for split in ctx.split_names():
            handles[split] = stack.enter_context(ctx.open(f"tasks-{split}.json" if split
                                                          else "tasks.json"))
            handles[split].write("[\n")
        for chunk in ctx.chunks():
            for row in chunk:
                key = LABELSTUDIO_KEYS.get(row.modality or "", "image")
                task: dict[str, Any] = {
                    "id": row.item_id,
                    "data": {key: "/data/local-files/?d=" + quote(row.path.lstrip("/")),
                             "path": row.path, "item_id": row.item_id, "modality": row.modality,
                             "split": row.split, "duplicate_group": row.duplicate_group},
                }
                if row.label_state == "labelled":
                    task["predictions"] = [{"model_version": f"curator-{__version__}",
                                            "result": [{"from_name": "label", "to_name": key,
                                                        "type": "choices",
                                                        "value": {"choices": [row.label_path]}}]}]
                elif row.label_state in ("noise", "mixed"):
                    task["data"]["state"] = row.label_state
                fh = handles[row.split]
                fh.write((",\n" if seen[row.split] else "") + json.dumps(task, ensure_ascii=False))
                seen[row.split] += 1
        for fh in handles.values():
            fh.write("\n]\n")
    from xml.sax.saxutils import quoteattr

    modalities = sorted({m for (m,) in ctx.project.catalog.db.execute(
        "SELECT DISTINCT modality FROM items WHERE status = 'ok' AND modality IS NOT NULL")}
        & set(LABELSTUDIO_KEYS)) or ["image"]
    choices = "\n".join(f"    <Choice value={quoteattr(t['path'])}/>" for t in
                        sorted(_live_taxonomy(ctx), key=lambda t: t["path"]))
    with ctx.open("labeling_config.xml") as fh:
        fh.write("<View>\n")
        for m in modalities:
            fh.write(f'  <{LABELSTUDIO_TAGS[m]} name="{m}" value="${m}"/>\n')
        fh.write(f'  <Choices name="label" toName="{",".join(modalities)}" choice="single">\n'
                 f"{choices}\n  </Choices>\n</View>\n")


def _write_nemo(ctx: ExportContext) -> None:
    """NeMo audio classification manifests: a JSON line per clip (path, duration, label)."""
    handles: dict[Optional[str], IO[str]] = {}
    with contextlib.ExitStack() as stack:
        for split in ctx.split_names():
            # Not "manifest.json": that name is the export's own manifest.
            handles[split] = stack.enter_context(ctx.open(f"{split}_manifest.json" if split
                                                          else "nemo_manifest.json"))
        for chunk in ctx.chunks():
            for row in chunk:
                handles[row.split].write(json.dumps(
                    {"audio_filepath": row.path, "duration": row.duration, "label": row.label_path,
                     "offset": 0.0, "item_id": row.item_id}, ensure_ascii=False) + "\n")


for _exporter in (
    Exporter("jsonl", _write_jsonl, "one JSON object per item (items.jsonl)"),
    Exporter("csv", _write_csv, "one row per item (items.csv)"),
    Exporter("parquet", _write_parquet, "one row per item (items.parquet, zstd)"),
    Exporter("imagefolder", _write_imagefolder, "class folders with metadata.jsonl for Hugging "
             "Face datasets (labelled items)", needs_label=True, places_files=True),
    Exporter("coco", _write_coco, "COCO-style classification JSON (images)",
             modalities=("image",)),
    Exporter("labelstudio", _write_labelstudio, "Label Studio tasks with pre-annotations"),
    Exporter("nemo", _write_nemo, "NeMo audio manifests (labelled audio)", modalities=("audio",),
             needs_label=True),
):
    register_exporter(_exporter)
