"""Layouts FiftyOne imports with their labels: image classification, a video tree, COCO.

- `fiftyone`, images: FiftyOneImageClassificationDataset per split (`[<split>/]data/<uuid>.<ext>`
  and `labels.json` with `classes` and `labels: {uuid: class index}`).
- `fiftyone`, videos, and `videofolder`: VideoClassificationDirectoryTree per split
  (`[<split>/]<class>/<video>`) with a Kinetics-style `kinetics.csv`
  (label, youtube_id, time_start, time_end, split, plus path and item_id).
  FiftyOne has no audio media type, so `fiftyone` leaves audio out and says so.
- `coco`: per split `[<split>/]data/` and `[<split>/]labels.json`. An image classification in
  COCO is one annotation per labelled image whose box is the whole image
  (`bbox [0, 0, width, height]`, `area` width x height, `iscrowd 0`): FiftyOne's COCO importer
  and pycocotools read it with its category.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any, Optional

from curator import __version__
from curator.connection import utcnow
from curator.export.core import ExportContext, ExportRow
from curator.export.hf import NO_SPLIT, UNASSIGNED


def _base(ctx: ExportContext, row: ExportRow) -> Optional[tuple[str, ...]]:
    """The split folder of a row ((), or None when the row must be dropped).

    Unlabelled items have no split: with splits they go in `unassigned/`.
    """
    if ctx.splits and row.split is None and row.label_state == "unlabelled":
        return (UNASSIGNED,)
    if ctx.splits and row.split is None:
        ctx.drop(row, NO_SPLIT)
        return None
    return (row.split,) if row.split else ()


def _missing(ctx: ExportContext, row: ExportRow) -> None:
    ctx.drop(row, "file missing")
    if ctx.skipped["file missing"] == 1:
        ctx.notes.append(f"files that were gone were left out, e.g. {row.path}; run "
                         "`curator scan` to update the catalog")


def write_fiftyone(ctx: ExportContext) -> None:
    if ctx.modality == "video":
        write_video_tree(ctx)
    elif ctx.modality == "image":
        write_image_classification(ctx)
    else:
        for chunk in ctx.chunks():
            for row in chunk:
                ctx.drop(row, "FiftyOne has no audio media type")
        ctx.notes.append("FiftyOne has no audio media type: audio items were left out "
                         "(export them as audiofolder)")


def write_image_classification(ctx: ExportContext) -> None:
    """FiftyOneImageClassificationDataset: data/ and labels.json (uuid -> class index)."""
    classes = ctx.class_names()
    index = {name: i for i, name in enumerate(classes)}
    labels: dict[tuple[str, ...], dict[str, int]] = {}
    for chunk in ctx.chunks():
        for row in chunk:
            base = _base(ctx, row)
            if base is None:
                continue
            # The uuid is the file name without extension, so it carries the item id.
            name = f"{row.item_id}-{os.path.basename(row.path)}"
            rel = ctx.place(row.path, *base, "data", name=name)
            if rel is None:
                _missing(ctx, row)
                continue
            uuid = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
            labels.setdefault(base, {})[uuid] = index[ctx.classes[row.label_path or ""]]
    for base, found in sorted(labels.items()):
        with ctx.open(*base, "labels.json") as fh:
            json.dump({"classes": classes, "labels": found}, fh, ensure_ascii=False)


def write_video_tree(ctx: ExportContext) -> None:
    """VideoClassificationDirectoryTree per split, and kinetics.csv for all of them."""
    with ctx.open("kinetics.csv", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split", "path",
                         "item_id"])
        for chunk in ctx.chunks():
            for row in chunk:
                base = _base(ctx, row)
                if base is None:
                    continue
                folder = ctx.classes[row.label_path or ""]
                rel = ctx.place(row.path, *base, folder)
                if rel is None:
                    _missing(ctx, row)
                    continue
                stem = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
                end = int(round(row.duration)) if row.duration else 0
                writer.writerow([folder, stem, 0, end, row.split or "train", rel, row.item_id])


def _image_size(row: ExportRow) -> tuple[int, int]:
    if row.width and row.height:
        return int(row.width), int(row.height)
    from PIL import Image

    with Image.open(row.path) as image:
        return image.size


def write_coco(ctx: ExportContext) -> None:
    """COCO per split: data/ with the images and labels.json with whole-image boxes."""
    classes = ctx.class_names()
    by_name = {name: path for path, name in ctx.classes.items()}
    category = {name: i + 1 for i, name in enumerate(classes)}
    categories = []
    for name in classes:
        path = by_name[name]
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        categories.append({"id": category[name], "name": name,
                           "supercategory": ctx.classes.get(parent, "") if parent else "",
                           "label_path": path})
    parts: dict[tuple[str, ...], tuple[IO[str], IO[str], list[int]]] = {}
    with contextlib.ExitStack() as stack:
        for chunk in ctx.chunks():
            for row in chunk:
                base = _base(ctx, row)
                if base is None:
                    continue
                rel = ctx.place(row.path, *base, "data", name=f"{row.item_id}-"
                                f"{os.path.basename(row.path)}")
                if rel is None:
                    _missing(ctx, row)
                    continue
                if base not in parts:
                    parts[base] = (
                        stack.enter_context(open(ctx.target(*base, ".images.part"), "w",
                                                 encoding="utf-8")),
                        stack.enter_context(open(ctx.target(*base, ".annotations.part"), "w",
                                                 encoding="utf-8")), [0, 0])
                images, notes, seen = parts[base]
                width, height = _image_size(row)
                image = {"id": row.item_id, "file_name": rel.rsplit("/", 1)[-1],
                         "width": width, "height": height, "item_id": row.item_id,
                         "rel_path": row.rel_path, "content_hash": row.content_hash,
                         "split": row.split, "duplicate_group": row.duplicate_group}
                images.write((",\n" if seen[0] else "") + json.dumps(image, ensure_ascii=False))
                seen[0] += 1
                if row.label_state == "labelled" and row.label_path:
                    note = {"id": row.item_id, "image_id": row.item_id,
                            "category_id": category[ctx.classes[row.label_path]],
                            "bbox": [0, 0, width, height], "area": width * height,
                            "iscrowd": 0, "label_path": row.label_path,
                            "label_source": row.label_source, "annotator": row.annotator,
                            "event_id": row.event_id}
                    notes.write((",\n" if seen[1] else "") + json.dumps(note, ensure_ascii=False))
                    seen[1] += 1
    info = {"description": f"Curator export of {ctx.project}", "version": __version__,
            "date_created": utcnow()}
    for base in sorted(parts) or [()]:
        if base in parts:
            for handle in parts[base][:2]:
                handle.close()
        _assemble(ctx, base, info, categories)


def _assemble(ctx: ExportContext, base: tuple[str, ...], info: dict[str, Any],
              categories: list[dict[str, Any]]) -> None:
    images, notes = ctx.target(*base, ".images.part"), ctx.target(*base, ".annotations.part")
    with ctx.open(*base, "labels.json") as fh:
        fh.write('{"info": ' + json.dumps(info) + ', "licenses": [], "categories": '
                 + json.dumps(categories, ensure_ascii=False) + ', "images": [\n')
        _append(fh, images)
        fh.write('\n], "annotations": [\n')
        _append(fh, notes)
        fh.write("\n]}\n")
    for path in (images, notes):
        if path.exists():
            os.remove(path)


def _append(out: IO[str], path: Path) -> None:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as part:
        shutil.copyfileobj(part, out, 1 << 20)
