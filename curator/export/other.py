"""Formats people also expect: YOLO classification, WebDataset shards, NeMo manifests.

- `yolo`: `<split>/<class>/<image>` (Ultralytics classification: train/, val/, test/), plus
  `classes.txt` in the class order.
- `webdataset`: tar shards `shards/<split>-000000.tar` of `shard_size` samples each; a sample
  is `<key>.<ext>` (the media bytes), `<key>.json` (the row) and `<key>.cls` (the class index in
  the order of `classes.txt`, labelled items only); the key is the item id, zero-padded.
- `nemo`: NeMo audio classification manifests, a JSON line per clip (`audio_filepath`,
  `duration`, `label`, `offset`), one file per split (`<split>_manifest.json`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from typing import IO, Any, Optional

from curator.export.core import ExportContext, ExportRow
from curator.export.fiftyone import _base, _missing
from curator.export.hf import UNASSIGNED


def _classes_txt(ctx: ExportContext) -> None:
    with ctx.open("classes.txt") as fh:
        fh.writelines(f"{name}\n" for name in ctx.class_names())


def write_yolo(ctx: ExportContext) -> None:
    if not ctx.splits:
        ctx.notes.append("no split assignment: every image went to train/ (Ultralytics also "
                         "wants val/); assign splits with `curator splits assign`")
    for chunk in ctx.chunks():
        for row in chunk:
            base = _base(ctx, row)
            if base is None:
                continue
            if ctx.place(row.path, *(base or ("train",)),
                         ctx.classes[row.label_path or ""]) is None:
                _missing(ctx, row)
    _classes_txt(ctx)


def _row_json(row: ExportRow) -> dict[str, Any]:
    return {"item_id": row.item_id, "label": row.label_path, "label_state": row.label_state,
            "split": row.split, "modality": row.modality, "rel_path": row.rel_path,
            "content_hash": row.content_hash, "width": row.width, "height": row.height,
            "duration": row.duration, "event_id": row.event_id, "annotator": row.annotator,
            "labelled_at": row.labelled_at, "label_source": row.label_source,
            "duplicate_group": row.duplicate_group}


class _Shards:
    """Tar shards of one split, a new one every `size` samples."""

    def __init__(self, ctx: ExportContext, split: Optional[str], size: int) -> None:
        self.ctx, self.split, self.size = ctx, split, size
        self.tar: Optional[tarfile.TarFile] = None
        self.count = 0
        self.names: list[str] = []

    def add(self, key: str, members: list[tuple[str, Any]]) -> None:
        if self.tar is None or self.count % self.size == 0:
            self.close()
            stem = self.split or (UNASSIGNED if self.ctx.splits else "data")
            name = f"{stem}-{len(self.names):06d}.tar"
            self.names.append(name)
            path = self.ctx.target("shards", name)
            path.parent.mkdir(exist_ok=True)
            # Open across calls: one shard takes many items; `close` ends it.
            self.tar = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        for suffix, payload in members:
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.mtime, info.mode = 0, 0o644
            if isinstance(payload, bytes):
                info.size = len(payload)
                self.tar.addfile(info, io.BytesIO(payload))
            else:
                with open(payload, "rb") as fh:
                    info.size = os.fstat(fh.fileno()).st_size
                    self.tar.addfile(info, fh)
        self.count += 1

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None


def write_webdataset(ctx: ExportContext) -> None:
    index = {name: i for i, name in enumerate(ctx.class_names())}
    shards: dict[Optional[str], _Shards] = {}
    copied = 0
    try:
        for chunk in ctx.chunks():
            for row in chunk:
                shard = shards.get(row.split)
                if shard is None:
                    shard = shards[row.split] = _Shards(ctx, row.split, ctx.options.shard_size)
                ext = os.path.splitext(row.path)[1].lstrip(".").lower() or "bin"
                members: list[tuple[str, Any]] = [
                    (ext, row.path),
                    ("json", json.dumps(_row_json(row), ensure_ascii=False).encode("utf-8"))]
                if row.label_state == "labelled" and row.label_path:
                    members.append(("cls", str(index[ctx.classes[row.label_path]]).encode()))
                try:
                    shard.add(f"{row.item_id:010d}", members)
                except FileNotFoundError:
                    _missing(ctx, row)
                    continue
                copied += row.size or 0
    finally:
        for shard in shards.values():
            shard.close()
    _classes_txt(ctx)
    with ctx.open("shards.json") as fh:
        json.dump({"shards": {s or "all": [f"shards/{n}" for n in shard.names]
                              for s, shard in shards.items()},
                   "samples": {s or "all": shard.count for s, shard in shards.items()},
                   "media_bytes": copied}, fh, indent=2)


def write_nemo(ctx: ExportContext) -> None:
    handles: dict[Optional[str], IO[str]] = {}
    with contextlib.ExitStack() as stack:
        for chunk in ctx.chunks():
            for row in chunk:
                if row.split not in handles:
                    # Not "manifest.json": that name is the export's own manifest.
                    handles[row.split] = stack.enter_context(ctx.open(
                        f"{row.split}_manifest.json" if row.split else "nemo_manifest.json"))
                handles[row.split].write(json.dumps(
                    {"audio_filepath": ctx.relative(row.path), "duration": row.duration,
                     "label": row.label_path, "offset": 0.0, "item_id": row.item_id},
                    ensure_ascii=False) + "\n")
