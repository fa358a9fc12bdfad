"""Which items an export holds, and their rows, streamed in chunks from one read snapshot.

Provenance comes from the labelling event: the event id, its time, annotator and source, and the
clustering run and group recorded on that event. The current clustering never rewrites a row. A
`confirm` event only marks a label as checked, so the row names the event that set the label.
"""

from __future__ import annotations

import operator
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from curator.errors import CuratorError
from curator.splits import MIXED, NOISE, UNLABELLED

CHUNK_ROWS = 50_000
_NO_EVENT = (None, None, None, None, None, None)


@dataclass(frozen=True)
class Filter:
    """The selection: modalities (None: all), labelled only."""

    modalities: Optional[tuple[str, ...]]
    labelled_only: bool

    def where(self) -> tuple[str, list[Any]]:
        parts = ["items.status = 'ok'"]
        args: list[Any] = []
        if self.modalities:
            parts.append(f"items.modality IN ({','.join('?' * len(self.modalities))})")
            args.extend(self.modalities)
        return " AND ".join(parts), args


def label_paths(db: Any) -> dict[int, tuple[str, str]]:
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


def ids_and_strata(db: Any, flt: Filter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selected item ids (sorted), each one's stratum (label id, NOISE, MIXED, UNLABELLED) and
    modality code (index into MODALITY_CODES). Narrow scans merged in NumPy."""
    where, args = flt.where()
    rows = db.execute(f"SELECT items.id, items.modality FROM items WHERE {where} "
                      "ORDER BY items.id", args).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    codes = {m: i for i, m in enumerate(MODALITY_CODES)}
    modal = np.fromiter((codes.get(r[1], len(MODALITY_CODES)) for r in rows), dtype=np.int8,
                        count=len(rows))
    pairs = np.array(db.execute(
        "SELECT item_id, CASE state WHEN 'labelled' THEN label_id WHEN 'noise' THEN "
        f"{NOISE} WHEN 'mixed' THEN {MIXED} ELSE {UNLABELLED} END FROM item_labels "
        "ORDER BY item_id").fetchall(), dtype=np.int64).reshape(-1, 2)
    strata = np.full(len(ids), UNLABELLED, dtype=np.int64)
    if len(pairs) and len(ids):
        pos = np.minimum(np.searchsorted(pairs[:, 0], ids), len(pairs) - 1)
        hit = pairs[pos, 0] == ids
        strata[hit] = pairs[pos[hit], 1]
    if flt.labelled_only:
        keep = strata > 0
        ids, strata, modal = ids[keep], strata[keep], modal[keep]
    return ids, strata, modal


MODALITY_CODES = ("image", "audio", "video")


def skipped(db: Any, flt: Filter) -> Counter:
    """Why ok items were left out by this selection."""
    out: Counter = Counter()
    mods = list(flt.modalities or ())
    marks = ",".join("?" * len(mods))
    if flt.labelled_only:
        n = db.execute(
            "SELECT COUNT(*) FROM items LEFT JOIN item_labels il ON il.item_id = items.id "
            "WHERE items.status = 'ok' AND (il.state IS NULL OR il.state != 'labelled')"
            + (f" AND items.modality IN ({marks})" if mods else ""), mods).fetchone()[0]
        if n:
            out["not labelled"] = n
    if mods:
        n = db.execute("SELECT COUNT(*) FROM items WHERE status = 'ok' AND (modality IS NULL OR "
                       f"modality NOT IN ({marks}))", mods).fetchone()[0]
        if n:
            out[f"not {'/'.join(mods)}"] = n
    return out


class Provenance:
    """Looks up labelling events for rows: (source, annotator, time, run, group, action)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.cache: dict[Any, tuple] = {None: _NO_EVENT}

    def _load(self, wanted: set) -> None:
        ordered = sorted(wanted - set(self.cache))
        for start in range(0, len(ordered), 900):
            part = ordered[start:start + 900]
            for row in self.db.execute(
                    "SELECT id, source, annotator, time, run_id, group_id, action FROM events "
                    f"WHERE id IN ({','.join('?' * len(part))})", part):
                self.cache[row[0]] = tuple(row[1:])
        for event_id in ordered:
            self.cache.setdefault(event_id, _NO_EVENT)

    def setting_events(self, item_ids: list[int], event_ids: list[Any]) -> list[Any]:
        """Per row, the event that set the label (walking back through confirm events)."""
        if len(self.cache) > 200_000:
            self.cache = {None: _NO_EVENT}
        self._load(set(event_ids))
        out = list(event_ids)
        for _ in range(16):
            pending: dict[int, list[int]] = {}
            for k, eid in enumerate(out):
                if self.cache[eid][5] == "confirm":
                    pending.setdefault(eid, []).append(k)
            if not pending:
                break
            for eid, rows in pending.items():
                before = dict(self.db.execute(
                    "SELECT item_id, before_event FROM event_items WHERE event_id = ?", [eid]))
                for k in rows:
                    out[k] = before.get(item_ids[k])
            self._load({e for e in out if e is not None})
        return out


class Rows:
    """The rows of a selection as chunks of columns; joins in SQL, per-column work in Python."""

    def __init__(self, db: Any, flt: Filter, ids: np.ndarray, modal: np.ndarray,
                 labels: dict[int, tuple[str, str]],
                 split_ids: np.ndarray, split_index: np.ndarray, split_names: Sequence[str],
                 duplicate_of: dict[int, int]) -> None:
        self.db = db
        self.flt = flt
        self.ids = ids
        self.modal = modal
        self.labels = labels
        self.split_ids = split_ids
        self.split_index = split_index
        self.split_names = np.asarray([*split_names, None], dtype=object)
        self.duplicate_of = duplicate_of
        self.prefetchers: list[Prefetch] = []

    def close(self) -> None:
        for prefetch in self.prefetchers:
            prefetch.close()

    def splits_of(self, chunk_ids: np.ndarray) -> list[Optional[str]]:
        """Split name per item (None: not in the assignment)."""
        code = np.full(len(chunk_ids), len(self.split_names) - 1, dtype=np.int64)
        if len(self.split_ids):
            pos = np.minimum(np.searchsorted(self.split_ids, chunk_ids), len(self.split_ids) - 1)
            hit = self.split_ids[pos] == chunk_ids
            code[hit] = self.split_index[pos[hit]]
        return self.split_names[code].tolist()

    def columns(self, modality: Optional[str] = None) -> Iterator[dict[str, list]]:
        """Chunks of columns in item id order, restricted to one modality when given."""
        db = self.db
        where, args = self.flt.where()
        ids = self.ids
        if modality is not None:
            where += " AND items.modality = ?"
            args = [*args, modality]
            ids = ids[self.modal == MODALITY_CODES.index(modality)]
        prefix, roots = _source_prefixes(db)
        spaces, holders = _space_holders(db)
        combos: dict[int, list[str]] = {}
        name_of = {k: v[0] for k, v in self.labels.items()}
        path_of = {k: v[1] for k, v in self.labels.items()}
        cursor = self._cursor(where, args)
        provenance = Provenance(db)
        at = 0
        prefetch = Prefetch(_fetcher(cursor, provenance))
        self.prefetchers.append(prefetch)
        for raw, setting, info in prefetch:
            n = len(raw)
            (item_id, source_id, rel, digest, modal, fmt, size, width, height, duration,
             label_id, state, _, confirmed) = [list(map(get, raw)) for get in _GETTERS]
            label_source, annotator, labelled_at, run_id, group_id = [
                list(map(get, info)) for get in _GETTERS[:5]]
            chunk_ids = np.asarray(item_id, dtype=np.int64)
            if at + n > len(ids) or not np.array_equal(ids[at:at + n], chunk_ids):
                raise CuratorError("the catalog changed while exporting; run the export again")
            codes = _space_codes(holders, chunk_ids)
            for c in set(codes) - set(combos):
                combos[c] = [space for k, space in enumerate(spaces) if c >> k & 1]
            path, source = _paths(prefix, roots, source_id, rel)
            yield {
                "item_id": item_id, "path": path, "rel_path": rel, "source": source,
                "content_hash": digest, "modality": modal, "format": fmt, "size": size,
                "width": width, "height": height, "duration": duration,
                "label": list(map(name_of.get, label_id)),
                "label_path": list(map(path_of.get, label_id)),
                "label_id": label_id,
                "label_state": [s or "unlabelled" for s in state],
                "label_source": label_source, "annotator": annotator,
                "labelled_at": labelled_at, "event_id": setting,
                "confirmed": [c == 1 for c in confirmed],
                "group_id": group_id, "cluster_run": run_id,
                "embedding_spaces": list(map(combos.__getitem__, codes)),
                "split": self.splits_of(chunk_ids),
                "duplicate_group": (list(map(self.duplicate_of.get, item_id))
                                    if self.duplicate_of else [None] * n),
            }
            at += n
        prefetch.close()
        if at != len(ids):
            raise CuratorError("the catalog changed while exporting; run the export again")

    def _cursor(self, where: str, args: list[Any]) -> Any:
        """The selection's items joined with their labels, in item id order."""
        labelled_only = " AND il.state = 'labelled'" if self.flt.labelled_only else ""
        return self.db.execute(
            "SELECT items.id, items.source_id, items.path, items.content_hash, items.modality, "
            "items.format, items.size, items.width, items.height, items.duration, "
            "il.label_id, il.state, il.event_id, il.confirmed FROM items "
            "LEFT JOIN item_labels il ON il.item_id = items.id "
            f"WHERE {where}{labelled_only} ORDER BY items.id", args)


def _fetcher(cursor: Any, provenance: Provenance
             ) -> Callable[[], Optional[tuple[list, list, list]]]:
    """The prefetch thread's step: a chunk of rows, their setting events and those events."""

    def fetch() -> Optional[tuple[list, list, list]]:
        # Runs on the prefetch thread, the only user of this connection meanwhile.
        raw = cursor.fetchmany(CHUNK_ROWS)
        if not raw:
            return None
        item_ids = [r[0] for r in raw]
        setting = provenance.setting_events(item_ids, [r[12] for r in raw])
        return raw, setting, [provenance.cache[e] for e in setting]

    return fetch


def _source_prefixes(db: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Per source id, its root with a trailing separator, and the root as the source column."""
    prefix = {sid: root if root.endswith(os.sep) else root + os.sep
              for sid, root in db.execute("SELECT id, root FROM sources")}
    roots = {sid: p.rstrip(os.sep) or os.sep for sid, p in prefix.items()}
    return prefix, roots


def _space_holders(db: Any) -> tuple[list[str], list[np.ndarray]]:
    """The embedding spaces and, for each, the sorted ids of the items embedded in it."""
    spaces = [r[0] for r in db.execute("SELECT space FROM spaces ORDER BY space")]
    holders = [np.fromiter((r[0] for r in db.execute(
        "SELECT item_id FROM embeddings WHERE space = ? ORDER BY item_id", [space])),
        dtype=np.int64) for space in spaces]
    return spaces, holders


def _space_codes(holders: list[np.ndarray], chunk_ids: np.ndarray) -> list[int]:
    """Per item, a bit mask of the spaces (in `holders` order) that hold its vector."""
    code = np.zeros(len(chunk_ids), dtype=np.int64)
    for k, held in enumerate(holders):
        if len(held):
            pos = np.minimum(np.searchsorted(held, chunk_ids), len(held) - 1)
            code |= (held[pos] == chunk_ids).astype(np.int64) << k
    return code.tolist()


def _paths(prefix: dict[int, str], roots: dict[int, str], source_id: list[int],
           rel: list[str]) -> tuple[list[str], list[str]]:
    """Each item's absolute path and its source's root."""
    if len(prefix) == 1:
        (only_prefix,), (only_root,) = prefix.values(), roots.values()
        return list(map(only_prefix.__add__, rel)), [only_root] * len(rel)
    path = [prefix[s] + r for s, r in zip(source_id, rel)]
    return path, list(map(roots.__getitem__, source_id))


_GETTERS = [operator.itemgetter(k) for k in range(14)]


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class Prefetch:
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


def duplicate_ids(groups: Sequence[Sequence[int]]) -> dict[int, int]:
    """item id -> its duplicate group's id (the group's smallest item id), for grouped items."""
    out: dict[int, int] = {}
    for group in groups:
        members = [int(i) for i in group]
        first = min(members)
        for i in members:
            out[i] = first
    return out
