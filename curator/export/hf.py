"""Hugging Face `datasets` layouts: imagefolder (images) and audiofolder (audio).

    OUT/README.md                       dataset card: configs/data_files and dataset_info
    OUT/data/<split>/metadata.parquet   file_name relative to it, typed columns, ClassLabel
    OUT/data/<split>/<class>/<file>

Without splits the split level is left out and the card names one split, `train`. The card lists
the data files of each split explicitly, so `datasets` never reads a folder name as a split, and
declares `label` a ClassLabel whose names are in one fixed order (label paths sorted), the same in
every split. The metadata files are parquet with the `datasets` features in their schema, so
every split has the same columns and types and `label` is that ClassLabel.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Optional

from curator.export.core import ExportContext, ExportRow

# (column, datasets dtype) of metadata.jsonl after file_name, in order.
METADATA_COLUMNS = (("label", "class_label"), ("label_path", "string"), ("item_id", "int64"),
                    ("split", "string"), ("rel_path", "string"), ("content_hash", "string"),
                    ("duplicate_group", "int64"), ("event_id", "int64"),
                    ("label_source", "string"), ("annotator", "string"),
                    ("labelled_at", "string"))
BASE_COLUMN = {"image": "image", "audio": "audio", "video": "video"}
UNASSIGNED = "unassigned"  # where items outside the split assignment (unlabelled) go
NO_SPLIT = "labelled while the export ran (no split yet)"
BUILDER = {"image": "imagefolder", "audio": "audiofolder", "video": "videofolder"}


def metadata_record(ctx: ExportContext, row: ExportRow, file_name: str) -> dict:
    """One metadata.jsonl line: never a null, so every split infers the same features."""
    return {"file_name": file_name, "label": ctx.classes[row.label_path or ""],
            "label_path": row.label_path or "", "item_id": row.item_id,
            "split": row.split or "train", "rel_path": row.rel_path,
            "content_hash": row.content_hash or "",
            "duplicate_group": row.duplicate_group if row.duplicate_group is not None
            else row.item_id, "event_id": row.event_id if row.event_id is not None else -1,
            "label_source": row.label_source or "", "annotator": row.annotator or "",
            "labelled_at": row.labelled_at or ""}


def _y(value: object) -> str:
    """A YAML scalar: JSON text is valid YAML (ASCII-escaped, double-quoted strings)."""
    return json.dumps(value)


def dataset_card(ctx: ExportContext, rows_per_split: dict[str, tuple[int, int]],
                 title: str) -> str:
    """The README.md of a `datasets` export: YAML header with configs and dataset_info."""
    modality = ctx.modality or "image"
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in rows_per_split:
        folder = f"data/{split}/**" if ctx.splits else "data/**"
        lines += [f"  - split: {_y(split)}", f"    path: {_y(folder)}"]
    lines += ["dataset_info:", "  features:", f"  - name: {BASE_COLUMN[modality]}",
              f"    dtype: {modality}"]
    for name, dtype in METADATA_COLUMNS:
        lines.append(f"  - name: {name}")
        if dtype == "class_label":
            lines += ["    dtype:", "      class_label:", "        names:"]
            lines += [f"          {_y(str(i))}: {_y(n)}" for i, n in enumerate(ctx.class_names())]
        else:
            lines.append(f"    dtype: {dtype}")
    lines.append("  splits:")
    for split, (n, size) in rows_per_split.items():
        lines += [f"  - name: {_y(split)}", f"    num_bytes: {size}", f"    num_examples: {n}"]
    lines += ["---", "", f"# {title}", "",
              f"Exported by Curator from `{ctx.project}` as a `datasets` {BUILDER[modality]}.",
              "", "```python", "from datasets import load_dataset", "",
              'ds = load_dataset("path/to/this/folder")  # reads this card: splits, ClassLabel',
              "```", "", "`label` is a ClassLabel; `label_path` is the label's full path in the "
              "taxonomy (manifest.json maps each class name to it).", ""]
    return "\n".join(lines)


def _schema(ctx: ExportContext) -> Any:
    """metadata.parquet's schema, carrying the `datasets` features (ClassLabel) in its metadata.

    `datasets` takes a folder's features from its metadata file (the card's `dataset_info` is
    overridden for folder layouts); a parquet schema with `huggingface` metadata gives it the
    ClassLabel, in the one fixed order, for every split.
    """
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "class_label": pa.int64()}
    fields = [("file_name", pa.string())] + [(n, types[t]) for n, t in METADATA_COLUMNS]
    features: dict[str, Any] = {"file_name": {"dtype": "string", "_type": "Value"}}
    for name, dtype in METADATA_COLUMNS:
        features[name] = ({"names": ctx.class_names(), "_type": "ClassLabel"}
                          if dtype == "class_label" else {"dtype": dtype, "_type": "Value"})
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(fields, metadata=meta)


class _Metadata:
    """metadata.parquet of one split, written in batches."""

    def __init__(self, ctx: ExportContext, parts: tuple[str, ...], schema: Any) -> None:
        import pyarrow.parquet as pq

        self.ctx, self.parts, self.schema = ctx, parts, schema
        self.writer = pq.ParquetWriter(str(ctx.target(*parts, "metadata.parquet")), schema)
        self.rows: list[dict] = []

    def add(self, record: dict) -> None:
        self.rows.append(record)
        if len(self.rows) >= 20_000:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.ctx.register(*self.parts, "metadata.parquet")


def write_folder(ctx: ExportContext) -> None:
    """`data/<split>/<class>/<file>` with metadata.parquet per split, and the dataset card."""
    splits = ctx.split_names()
    rows_per_split: Counter = Counter()
    bytes_per_split: Counter = Counter()
    schema = _schema(ctx)
    class_index = {name: i for i, name in enumerate(ctx.class_names())}
    handles: dict[Optional[str], _Metadata] = {}
    missing = []
    try:
        for chunk in ctx.chunks():
            for row in chunk:
                if ctx.splits and row.split is None:
                    ctx.drop(row, NO_SPLIT)
                    continue
                base = ("data", row.split) if row.split else ("data",)
                rel = ctx.place(row.path, *base, ctx.classes[row.label_path or ""])
                if rel is None:
                    ctx.drop(row, "file missing")
                    missing.append(row.path)
                    continue
                if row.split not in handles:
                    handles[row.split] = _Metadata(ctx, base, schema)
                record = metadata_record(ctx, row, rel[len("/".join(base)) + 1:])
                record["label"] = class_index[record["label"]]
                handles[row.split].add(record)
                rows_per_split[row.split or "train"] += 1
                bytes_per_split[row.split or "train"] += row.size or 0
    finally:
        for handle in handles.values():
            handle.close()
    if missing:
        ctx.notes.append(f"{len(missing)} file(s) were gone and left out, e.g. {missing[0]}; "
                         "run `curator scan` to update the catalog")
    ordered = {s or "train": (rows_per_split[s or "train"], bytes_per_split[s or "train"])
               for s in splits if rows_per_split.get(s or "train", 0)}
    with ctx.open("README.md") as fh:
        fh.write(dataset_card(ctx, ordered, f"Curator export ({ctx.modality})"))
