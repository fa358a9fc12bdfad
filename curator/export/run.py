"""One export: check OUT, settle the splits, stream rows to the format, write the manifest, swap."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np

from curator import splits as splits_mod
from curator.catalog import Catalog
from curator.connection import connect
from curator.errors import UsageError
from curator.export import manifest as manifest_mod
from curator.export.core import (
    COLUMNS,
    EXPORTERS,
    MODALITIES,
    MODES,
    ExportContext,
    Exporter,
    ExportOptions,
    ExportReport,
)
from curator.export.names import label_folders
from curator.export.output import (
    MANIFEST,
    check_place,
    check_replace,
    commit,
    recover,
    staging,
    target_of,
    write_files_list,
)
from curator.export.selection import (
    MODALITY_CODES,
    Filter,
    Rows,
    duplicate_ids,
    ids_and_strata,
    label_paths,
    skipped,
)
from indexing.progress import Progress, check_cancel, no_progress

log = logging.getLogger(__name__)
_ELSEWHERE = ("images: imagefolder, coco, yolo; audio: audiofolder, nemo; video: videofolder; "
              "every modality: jsonl, csv, parquet, labelstudio, webdataset")


def export(
    catalog: Catalog | Any,
    fmt: str,
    out: Path | str,
    split: Optional[str | dict[str, float]] = None,
    seed: int = 0,
    only_labeled: bool = False,
    mode: str = "copy",
    *,
    modality: Optional[str] = None,
    force: bool = False,
    resplit: bool = False,
    use_splits: bool = True,
    relative_to: Optional[str] = None,
    url_prefix: Optional[str] = None,
    ls_as: str = "predictions",
    shard_size: int = 1000,
    annotator: str = "",
    progress: Optional[Progress] = None,
    cancel: Optional[Callable[[], bool]] = None,
) -> ExportReport:
    """Export the catalog's items and labels in a format, atomically, with a manifest.

    Args:
        catalog: the project's Catalog (a Project is accepted and its catalog used).
        fmt: a registered format (see `exporters()`).
        out: the export folder: new, empty, or a previous export (replaced). A folder holding
            anything else is refused with the list of those files unless `force`.
        split: e.g. "train=0.8,val=0.1,test=0.1". Creates the project's split assignment when
            there is none; must match the stored one otherwise (or pass `resplit`). Without it,
            a stored assignment is used.
        seed: makes a new split assignment reproducible.
        only_labeled: only items whose current state is labelled (not noise or mixed).
        mode: copy, symlink or hardlink, for formats that place media files.
        modality: image, audio or video: only that modality (formats with one layout per
            modality then write a single layout).
        force: replace OUT even when it holds files no previous export wrote.
        resplit: compute a new split assignment from `split` and `seed`.
        use_splits: False ignores the stored split assignment for this export.
        relative_to: tabular and NeMo formats write media paths relative to this folder.
        url_prefix: Label Studio: media URLs under this prefix instead of local-files serving.
        ls_as: Label Studio: the labels as `predictions` or `annotations`.
        shard_size: WebDataset: samples per tar shard.
        annotator: recorded on a new split assignment.

    Returns:
        An ExportReport (also summarised in OUT/manifest.json).

    Raises:
        UsageError: an unknown format, mode or modality, bad splits, or an OUT that may not be
            replaced.
    """
    started = time.monotonic()
    catalog = getattr(catalog, "catalog", catalog)
    progress = progress or no_progress
    exporter, fractions = _checked_request(fmt, mode, ls_as, shard_size, modality, split,
                                           use_splits)
    out = Path(os.path.abspath(os.path.expanduser(str(out))))
    target, notes = _settled_target(catalog, out, force)
    options = _options(mode, relative_to, url_prefix, ls_as, shard_size)
    assignment = (splits_mod.prepare(catalog, fractions, seed, resplit, annotator)
                  if use_splits else None)
    dup_of = _duplicates(catalog)
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = connect(catalog.path)
    reader.execute("PRAGMA mmap_size = 1073741824")
    rows: Optional[Rows] = None
    tmp = staging(target)
    try:
        # One read snapshot for the selection, the splits and the rows, so they agree.
        reader.execute("BEGIN")
        mods = (modality,) if modality else exporter.modalities
        flt = Filter(mods, only_labeled or exporter.needs_label)
        ids, strata, modal = ids_and_strata(reader, flt)
        labels, rows = _open_rows(reader, flt, ids, modal, assignment, dup_of)
        check_cancel(cancel)
        from curator.labels import export_taxonomy

        taxonomy = export_taxonomy(catalog)
        classes = _classes(labels)
        parts = _parts(exporter, modality, modal)
        _fresh_dir(tmp)
        try:
            result = _write(exporter, tmp, parts, modality, assignment, options, rows, ids,
                            classes, taxonomy, str(catalog.root.resolve()), progress, cancel)
            files, dropped, skips, more_notes = result
            notes.extend(more_notes)
            _part_note(notes, parts, fmt)
            split_of = rows.splits_of(ids) if assignment else [None] * len(ids)
            counts = manifest_mod.counts(ids, strata, split_of, labels, dropped)
            skip = dict(skipped(reader, flt))
            skip.update(skips)
            _other_modalities_note(notes, skip, mods, modality, fmt)
            items = sum(sum(c.values()) for c in counts.values())
            checksums = _write_manifest(
                tmp, reader, fmt, str(catalog.root.resolve()),
                _manifest_options(fmt, exporter, assignment, options, only_labeled, modality),
                assignment, counts, items, skip, files, classes, taxonomy, notes, parts)
            write_files_list(tmp)
            reader.execute("COMMIT")
            commit(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        if rows is not None:
            rows.close()
        reader.conn.close()
    report = ExportReport(str(out), fmt, items, counts, skip, checksums, tuple(notes),
                          time.monotonic() - started, assignment.id if assignment else None,
                          tuple(parts))
    log.info("exported %d items as %s to %s in %.1f s", items, fmt, out, report.seconds)
    return report


def _checked_request(fmt: str, mode: str, ls_as: str, shard_size: int, modality: Optional[str],
                     split: Optional[str | dict[str, float]], use_splits: bool
                     ) -> tuple[Exporter, Optional[dict[str, float]]]:
    """The format's exporter and the parsed split fractions, or a UsageError naming the flag."""
    if fmt not in EXPORTERS:
        raise UsageError(f"unknown export format {fmt!r}; one of {', '.join(sorted(EXPORTERS))}")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    if ls_as not in ("predictions", "annotations"):
        raise UsageError(f"Label Studio labels go in as predictions or annotations, not {ls_as!r}")
    if shard_size < 1:
        raise UsageError("a WebDataset shard holds at least one sample")
    exporter = EXPORTERS[fmt]
    if modality is not None and (modality not in MODALITIES or (
            exporter.modalities and modality not in exporter.modalities)):
        allowed = exporter.modalities or MODALITIES
        raise UsageError(f"format {fmt} exports {', '.join(allowed)}, not {modality!r}")
    fractions = splits_mod.parse_split(split)
    if fractions and not use_splits:
        raise UsageError("splits were both asked for and turned off")
    return exporter, fractions


def _settled_target(catalog: Catalog, out: Path, force: bool) -> tuple[Path, list[str]]:
    """The export's final folder, once OUT is known safe to replace; notes from a recovery."""
    sources = [root for (root,) in catalog.db.execute("SELECT root FROM sources")]
    check_place(out, catalog.root, sources)
    target = target_of(out)
    notes = recover(target)
    check_replace(target, force)
    return target, notes


def _options(mode: str, relative_to: Optional[str], url_prefix: Optional[str], ls_as: str,
             shard_size: int) -> ExportOptions:
    """The format options, with `relative_to` made absolute."""
    return ExportOptions(mode=mode, relative_to=os.path.abspath(relative_to)
                         if relative_to else None, url_prefix=url_prefix, ls_as=ls_as,
                         shard_size=shard_size)


def _duplicates(catalog: Catalog) -> dict[int, int]:
    """item id -> its duplicate group's id, for the rows' duplicate column."""
    from curator.dedup import duplicate_groups

    return duplicate_ids(duplicate_groups(catalog, db=catalog.db))


def _open_rows(reader: Any, flt: Filter, ids: np.ndarray, modal: np.ndarray,
               assignment: Optional[splits_mod.SplitAssignment], dup_of: dict[int, int]
               ) -> tuple[dict[int, tuple[str, str]], Rows]:
    """The label paths and the row stream, read inside the caller's snapshot."""
    if assignment is not None:
        split_ids, split_index = splits_mod.stored(reader)
    else:
        split_ids, split_index = np.zeros(0, np.int64), np.zeros(0, np.int8)
    labels = label_paths(reader)
    rows = Rows(reader, flt, ids, modal, labels, split_ids, split_index,
                assignment.names if assignment else [], dup_of)
    return labels, rows


def _classes(labels: dict[int, tuple[str, str]]) -> dict[str, str]:
    """Each label path's folder name, unique across the export."""
    by_path = {path: name for name, path in labels.values()}
    return label_folders(sorted(by_path), by_path)


def _fresh_dir(tmp: Path) -> None:
    """An empty staging folder, clearing what an interrupted export left there."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()


def _part_note(notes: list[str], parts: list[str], fmt: str) -> None:
    """Say first that a mixed project became one sub-export per modality."""
    if len(parts) > 1:
        notes.insert(0, f"the project holds {', '.join(parts)}: {fmt} has one layout "
                        "per modality, so each is a sub-export of its own: "
                     + ", ".join(f"{p}/" for p in parts))


def _other_modalities_note(notes: list[str], skip: dict, mods: Any, modality: Optional[str],
                           fmt: str) -> None:
    """Say where the items of modalities this format cannot hold can go instead."""
    other = skip.get(f"not {'/'.join(mods)}") if mods and not modality else None
    if other:
        notes.append(f"{other} item(s) of other modalities are not in {fmt}, which holds "
                     f"{'/'.join(mods)} only; {_ELSEWHERE}")


def _manifest_options(fmt: str, exporter: Exporter,
                      assignment: Optional[splits_mod.SplitAssignment], options: ExportOptions,
                      only_labeled: bool, modality: Optional[str]) -> dict[str, Any]:
    """The options the manifest records, None where the format does not use one."""
    return {"split": assignment.fractions if assignment else None,
            "seed": assignment.seed if assignment else None,
            "only_labeled": only_labeled, "modality": modality,
            "mode": options.mode if exporter.places_files else None,
            "relative_to": options.relative_to, "url_prefix": options.url_prefix,
            "labelstudio_as": options.ls_as if fmt == "labelstudio" else None,
            "shard_size": options.shard_size if fmt == "webdataset" else None}


def _write_manifest(tmp: Path, reader: Any, fmt: str, project: str, options: dict[str, Any],
                    assignment: Optional[splits_mod.SplitAssignment],
                    counts: dict[str, dict[str, int]], items: int, skip: dict[str, int],
                    files: list[str], classes: dict[str, str], taxonomy: list[dict[str, Any]],
                    notes: list[str], parts: list[str]) -> dict[str, str]:
    """OUT/manifest.json, synced to disk before the swap; returns each file's checksum."""
    checksums = {rel: manifest_mod.sha256(tmp / rel) for rel in files}
    doc = manifest_mod.build(
        fmt=fmt, project=project, options=options,
        assignment=assignment, by_split=counts, items=items, skipped=skip,
        files=checksums, classes=classes, taxonomy=taxonomy,
        runs=manifest_mod.runs_used(reader), notes=notes, parts=parts,
        columns=list(COLUMNS) if fmt in manifest_mod.TABULAR else None)
    with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    return checksums


def _parts(exporter: Exporter, modality: Optional[str], modal: np.ndarray) -> list[str]:
    """The sub-exports: one per modality present, for formats with one layout per modality."""
    if not exporter.per_modality or modality is not None:
        return []
    present = [MODALITY_CODES[c] for c in np.unique(modal).tolist() if c < len(MODALITY_CODES)]
    present = [m for m in present if not exporter.modalities or m in exporter.modalities]
    return present if len(present) > 1 else []


def _write(exporter: Exporter, tmp: Path, parts: list[str], modality: Optional[str],
           assignment: Optional[splits_mod.SplitAssignment], options: ExportOptions, rows: Rows,
           ids: np.ndarray, classes: dict[str, str], taxonomy: list[dict[str, Any]],
           project: str, progress: Progress, cancel: Optional[Callable[[], bool]]
           ) -> tuple[list[str], Counter, Counter, list[str]]:
    """Run the format's writer once, or once per modality part."""
    files: list[str] = []
    dropped: Counter = Counter()
    skips: Counter = Counter()
    notes: list[str] = []
    done = 0
    if not parts and modality is None and exporter.modalities and len(exporter.modalities) == 1:
        modality = exporter.modalities[0]
    if not parts and modality is None and exporter.per_modality:
        present = np.unique(rows.modal).tolist()
        if len(present) == 1 and present[0] < len(MODALITY_CODES):
            modality = MODALITY_CODES[present[0]]
    for part in parts or [None]:
        root = tmp / part if part else tmp
        root.mkdir(exist_ok=True)
        this = part or modality
        total = int((rows.modal == MODALITY_CODES.index(part)).sum()) if part else len(ids)
        ctx = ExportContext(
            root=root, exporter=exporter, modality=this,
            splits=assignment.names if assignment else None, options=options, total=total,
            classes=classes, taxonomy=taxonomy, project=project,
            rows=(lambda p=part: rows.columns(p)), progress=progress, cancel=cancel,
            done_before=done, grand_total=len(ids))
        exporter.write(ctx)
        ctx.finish_notes()
        done += total
        prefix = f"{part}/" if part else ""
        files.extend(prefix + rel for rel in ctx.files)
        dropped.update(ctx.dropped)
        skips.update(ctx.skipped)
        notes.extend(ctx.notes)
    return files, dropped, skips, notes
