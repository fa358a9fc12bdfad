"""The export's manifest.json: counts per split x label, names, the split assignment, runs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

from curator import __version__
from curator.connection import utcnow
from curator.export.output import MANIFEST_MARK
from curator.splits import MIXED, NOISE, UNLABELLED, SplitAssignment

MANIFEST_VERSION = 2
TABULAR = ("jsonl", "csv", "parquet")


def counts(ids: np.ndarray, strata: np.ndarray, split_names: list[Optional[str]],
           labels: dict[int, tuple[str, str]], dropped: Counter) -> dict[str, dict[str, int]]:
    """split ("all" without splits, "unassigned" for items outside the assignment) -> label -> n."""
    state = {NOISE: "noise", MIXED: "mixed", UNLABELLED: "unlabelled"}
    out: dict[str, dict[str, int]] = {}
    if len(ids):
        # Whether any item has a split is asked once: inside the comprehension it made the
        # manifest quadratic (200,000 rows took minutes).
        unsplit = "unassigned" if any(split_names) else "all"
        keys = [s or unsplit for s in split_names]
        pair = Counter(zip(keys, strata.tolist()))
        for (split, stratum), n in pair.items():
            label = state[stratum] if stratum < 0 else labels.get(stratum, (str(stratum),) * 2)[1]
            out.setdefault(split, {})[label] = n
    for (split, label), n in dropped.items():
        bucket = out.setdefault(split if split is not None else
                                ("all" if "all" in out else "unassigned"), {})
        bucket[label] = bucket.get(label, 0) - n
        if bucket[label] <= 0:
            del bucket[label]
    return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runs_used(db: Any) -> dict[str, Any]:
    out = {}
    for kind in ("scan", "embed", "cluster", "dedup"):
        row = db.execute("SELECT id, params, started_at, ended_at FROM runs WHERE kind = ? AND "
                         "status = 'ok' ORDER BY id DESC LIMIT 1", [kind]).fetchone()
        if row:
            out[kind] = {"id": row[0], "params": json.loads(row[1] or "{}"),
                         "started_at": row[2], "ended_at": row[3]}
    return out


def build(*, fmt: str, project: str, options: dict[str, Any],
          assignment: Optional[SplitAssignment], by_split: dict[str, dict[str, int]],
          items: int, skipped: dict[str, int], files: dict[str, str],
          classes: dict[str, str], taxonomy: list[dict[str, Any]], runs: dict[str, Any],
          notes: list[str], parts: list[str], columns: Optional[list[str]]) -> dict[str, Any]:
    """The manifest as a dict (written as manifest.json)."""
    by_label: Counter = Counter()
    for c in by_split.values():
        by_label.update(c)
    return {
        MANIFEST_MARK: MANIFEST_VERSION,
        "format": fmt,
        "project": project,
        "created": utcnow(),
        "app_version": __version__,
        "options": options,
        "split_assignment": assignment.to_json() if assignment else None,
        "columns": columns,
        "counts": {"items": items, "by_split": by_split,
                   "by_label": dict(sorted(by_label.items())), "skipped": skipped},
        # The export name of each label (folder, category, ClassLabel name) -> its label path.
        "label_names": {name: path for path, name in sorted(classes.items())},
        "taxonomy": taxonomy,
        "parts": parts,
        "runs": runs,
        "checksums": {"sha256": files},
        "notes": notes,
    }
