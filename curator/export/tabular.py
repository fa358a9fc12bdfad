"""Tabular formats: jsonl, csv and parquet, one row per item of every modality.

`relative_to` writes media paths relative to a folder. CSV cells that a spreadsheet would run as a
formula (starting with =, +, -, @, tab or carriage return) get a leading apostrophe. Parquet types
`labelled_at` as a UTC timestamp.
"""

from __future__ import annotations

import csv
import json
import math
from typing import Any

from curator.export.core import COLUMNS, ExportContext

_INT_COLUMNS = ("item_id", "size", "width", "height", "label_id", "event_id", "group_id",
                "cluster_run", "duplicate_group")
_FEW_VALUES = ("source", "modality", "format", "label", "label_path", "label_state",
               "label_source", "annotator", "labelled_at", "split")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _relative(ctx: ExportContext, columns: dict[str, list]) -> None:
    if ctx.options.relative_to:
        columns["path"] = [ctx.relative(p) for p in columns["path"]]


def _json_column(name: str, values: list, columns: dict[str, list],
                 encoded: dict[str, list[str]], relative: bool) -> list[str]:
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
    if name == "path" and not relative:
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


def write_jsonl(ctx: ExportContext) -> None:
    relative = bool(ctx.options.relative_to)
    with ctx.open("items.jsonl") as fh:
        for columns in ctx.column_chunks():
            _relative(ctx, columns)
            encoded: dict[str, list[str]] = {}
            for name in _JSON_ORDER:
                encoded[name] = _json_column(name, columns[name], columns, encoded, relative)
            fh.write("".join([_JSONL_TEMPLATE % row for row in
                              zip(*(encoded[name] for name in COLUMNS))]))


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text, never runs as a formula (OWASP advice)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_TEXT_COLUMNS = ("path", "rel_path", "source", "format", "label", "label_path", "annotator",
                 "content_hash", "split", "embedding_spaces")


def write_csv(ctx: ExportContext) -> None:
    with ctx.open("items.csv", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for columns in ctx.column_chunks():
            _relative(ctx, columns)
            # csv writes None as an empty cell; lists become "a;b".
            columns["embedding_spaces"] = [";".join(v) for v in columns["embedding_spaces"]]
            for name in _TEXT_COLUMNS:
                values = columns[name]
                if any(isinstance(v, str) and v.startswith(_FORMULA_START) for v in values):
                    columns[name] = [csv_cell(v) for v in values]
            writer.writerows(zip(*(columns[name] for name in COLUMNS)))


def parquet_schema() -> Any:
    import pyarrow as pa

    types = {
        "item_id": pa.int64(), "label_id": pa.int64(), "size": pa.int64(),
        "width": pa.int32(), "height": pa.int32(),
        "duration": pa.float64(), "event_id": pa.int64(), "confirmed": pa.bool_(),
        "group_id": pa.int64(), "cluster_run": pa.int64(), "duplicate_group": pa.int64(),
        "embedding_spaces": pa.list_(pa.string()),
        "labelled_at": pa.timestamp("ms", tz="UTC"),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS])


def _timestamps(values: list) -> Any:
    """ISO 8601 UTC strings (the catalog's one time format) as a timestamp array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pa.array(values, type=pa.string()), pa.timestamp("ms", tz="UTC"))


def write_parquet(ctx: ExportContext) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    path = ctx.target("items.parquet")
    # Dictionary encoding only where values repeat: paths and hashes are unique, and building
    # dictionaries for them costs time for nothing.
    few = [name for name in _FEW_VALUES if name != "labelled_at"]
    with pq.ParquetWriter(str(path), schema, compression="zstd",
                          use_dictionary=[*few, "embedding_spaces"]) as writer:
        for columns in ctx.column_chunks():
            _relative(ctx, columns)
            arrays = [_timestamps(columns[name]) if name == "labelled_at"
                      else pa.array(columns[name], type=schema.field(name).type)
                      for name in COLUMNS]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        if ctx.total == 0:
            writer.write_table(schema.empty_table())
    ctx.register("items.parquet")
