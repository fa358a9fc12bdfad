"""The exporter registry and what an exporter gets: rows, names, checked paths, file placing."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, Optional

from curator.errors import CuratorError
from curator.export.names import safe_file_name
from indexing.progress import Progress, ProgressEvent, check_cancel

log = logging.getLogger(__name__)

MODES = ("copy", "symlink", "hardlink")
MODALITIES = ("image", "audio", "video")


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
    label_source: Optional[str]  # of the labelling event: group, manual, propagated, imported
    annotator: Optional[str]  # of the labelling event
    labelled_at: Optional[str]  # the labelling event's time, ISO 8601 UTC
    event_id: Optional[int]  # the event that set the label
    confirmed: bool
    group_id: Optional[int]  # the group recorded on the labelling event
    cluster_run: Optional[int]  # the clustering run recorded on the labelling event
    embedding_spaces: list
    split: Optional[str]  # from the project's stored split assignment
    duplicate_group: Optional[int]  # the smallest item id of the item's duplicate group


COLUMNS: tuple[str, ...] = ExportRow._fields


@dataclass(frozen=True)
class ExportOptions:
    """Format options; each format reads the ones it knows."""

    mode: str = "copy"
    relative_to: Optional[str] = None  # tabular, NeMo: paths relative to this folder
    url_prefix: Optional[str] = None  # Label Studio: media served under this URL
    ls_as: str = "predictions"  # Label Studio: predictions or annotations
    shard_size: int = 1000  # WebDataset: samples per shard


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
    split_assignment: Optional[int] = None
    parts: tuple[str, ...] = ()  # sub-exports, one per modality, when the format needs it

    def to_json(self) -> dict[str, Any]:
        return {"out": self.out, "format": self.format, "items": self.items,
                "counts": self.counts, "skipped": self.skipped, "files": self.files,
                "notes": list(self.notes), "seconds": round(self.seconds, 3),
                "split_assignment": self.split_assignment, "parts": list(self.parts)}


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
        per_modality: a project with several modalities gets one sub-export per modality.
    """

    name: str
    write: Callable[[ExportContext], None]
    description: str
    modalities: Optional[tuple[str, ...]] = None
    needs_label: bool = False
    places_files: bool = False
    per_modality: bool = False


EXPORTERS: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter) -> Exporter:
    """Add (or replace) an export format; built-ins register the same way a plugin would."""
    EXPORTERS[exporter.name] = exporter
    return exporter


def exporters() -> list[Exporter]:
    return [EXPORTERS[name] for name in sorted(EXPORTERS)]


@dataclass
class ExportContext:
    """What an exporter gets: rows in chunks, checked paths inside the export, file placing.

    Every path an exporter writes goes through `target` (or `open`/`place`, which use it), which
    refuses anything that would resolve outside the export folder.

    Attributes:
        root: the (sub-)export folder being written.
        modality: the one modality of this (sub-)export, or None for all.
        splits: the split names of the project's assignment, or None without one.
        classes: label path -> export name, for every label, in the fixed class order.
        taxonomy: the live taxonomy (export_taxonomy entries).
    """

    root: Path
    exporter: Exporter
    modality: Optional[str]
    splits: Optional[list[str]]
    options: ExportOptions
    total: int
    classes: dict[str, str]
    taxonomy: list[dict[str, Any]]
    project: str
    rows: Callable[[], Iterator[dict[str, list]]]
    progress: Progress
    cancel: Optional[Callable[[], bool]]
    done_before: int = 0
    grand_total: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # (split, label key) -> n left out
    skipped: Counter = field(default_factory=Counter)
    _used: dict[str, set[str]] = field(default_factory=dict)
    _fallbacks: int = 0

    @property
    def mode(self) -> str:
        return self.options.mode

    def column_chunks(self) -> Iterator[dict[str, list]]:
        """The exported rows in item id order as columns (name -> list), a chunk at a time."""
        done = self.done_before
        total = self.grand_total or self.total
        self.progress(ProgressEvent("export", done, total, "items"))
        for columns in self.rows():
            check_cancel(self.cancel)
            yield columns
            done += len(columns["item_id"])
            self.progress(ProgressEvent("export", done, total, "items"))

    def chunks(self) -> Iterator[list[ExportRow]]:
        """The exported rows in item id order, a list of ExportRow at a time."""
        make = ExportRow._make
        for columns in self.column_chunks():
            yield list(map(make, zip(*(columns[name] for name in COLUMNS))))

    def split_names(self) -> list[Optional[str]]:
        return list(self.splits) if self.splits else [None]

    def class_names(self) -> list[str]:
        """Export names of every label, in the one fixed order (sorted by label path)."""
        return [self.classes[path] for path in sorted(self.classes)]

    def drop(self, row: ExportRow, reason: str) -> None:
        """Leave a row out after all (its file is gone, ...); counted in the manifest."""
        self.dropped[(row.split, count_key(row))] += 1
        self.skipped[reason] += 1

    def relative(self, path: str) -> str:
        """A media path as the tabular and NeMo formats write it (`relative_to`)."""
        if not self.options.relative_to:
            return path
        return os.path.relpath(path, self.options.relative_to).replace(os.sep, "/")

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
        real, root = os.path.realpath(path), os.path.realpath(self.root)
        if os.path.commonpath([real, root]) != root or real == root:
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
        used = self._used.setdefault("/".join(folders), set())
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


def count_key(row: ExportRow) -> str:
    return row.label_path if row.label_state == "labelled" and row.label_path else row.label_state
