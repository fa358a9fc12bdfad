"""Per-group counts of the members' decisions, kept per clustering run and caught up lazily.

`group_tallies` holds, for each group of a run, how many members carry each (state, label);
`tally_marks` says up to which event a run's tallies are true. A labelling write costs nothing
extra: a reader replays the `event_items` written since (each row is one item's transition
from its before-value to its after-value), so reading the status of 3,000 groups at a million
items costs one small indexed read plus the changes since the last reader. A split or a merge
re-counts only the groups it touched.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog

log = logging.getLogger(__name__)

STATE_CODES = {"labelled": 1, "noise": 2, "mixed": 3, "duplicate": 4}
STATE_NAMES = {v: k for k, v in STATE_CODES.items()}


def create_tally_tables(db: Any) -> None:
    """Tables of the tallies (part of migration 006_triage_changes)."""
    db.execute("CREATE TABLE group_tallies (run_id INTEGER NOT NULL, group_id INTEGER NOT NULL, "
               "state TEXT NOT NULL, label_id INTEGER NOT NULL DEFAULT 0, n INTEGER NOT NULL, "
               "PRIMARY KEY (run_id, group_id, state, label_id)) WITHOUT ROWID")
    db.execute("CREATE TABLE tally_marks (run_id INTEGER PRIMARY KEY, as_of INTEGER NOT NULL)")


def _as_of(db: Any, run_id: int) -> Optional[int]:
    row = db.execute("SELECT as_of FROM tally_marks WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else int(row[0])


def _max_event(db: Any) -> int:
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def tally_run(catalog: Catalog, run_id: int) -> None:
    """Count every group's decisions of a run from scratch (once per run, at clustering).

    The counts are read in one snapshot with the newest event id of that snapshot, so any event
    committed meanwhile is replayed by the next catch-up, never counted twice.
    """
    db = catalog.db
    db.execute("BEGIN")
    try:
        as_of = _max_event(db)
        pairs = _ints(db.execute("SELECT item_id, group_id FROM assignments WHERE run_id = ? "
                                 "AND group_id >= 0 ORDER BY item_id", [run_id]), 2)
        decided = _ints(db.execute(
            "SELECT item_id, CASE state WHEN 'labelled' THEN 1 WHEN 'noise' THEN 2 "
            "WHEN 'mixed' THEN 3 ELSE 4 END, COALESCE(label_id, 0) FROM item_labels "
            "ORDER BY item_id"), 3)
    finally:
        db.execute("COMMIT")
    rows = _count(pairs, decided)
    with catalog.write() as wdb:
        wdb.execute("DELETE FROM group_tallies WHERE run_id = ?", [run_id])
        wdb.conn.executemany("INSERT INTO group_tallies (run_id, group_id, state, label_id, n) "
                             "VALUES (?, ?, ?, ?, ?)",
                             [(run_id, g, STATE_NAMES[s], lab, n) for g, s, lab, n in rows])
        wdb.execute("INSERT OR REPLACE INTO tally_marks (run_id, as_of) VALUES (?, ?)",
                    [run_id, as_of])
    catch_up(catalog, run_id)


def _ints(cursor: Any, width: int) -> np.ndarray:
    """Rows of integers straight into an (n, width) array, without a list of tuples."""
    flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.int64)
    return flat.reshape(-1, width)


def _count(pairs: np.ndarray, decided: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(group, state code, label, count) from sorted (item, group) and (item, state, label)."""
    if not len(pairs) or not len(decided):
        return []
    pos = np.searchsorted(pairs[:, 0], decided[:, 0])
    ok = pos < len(pairs)
    ok[ok] = pairs[pos[ok], 0] == decided[ok, 0]
    groups = pairs[pos[ok], 1]
    labels = decided[ok, 2]
    span = int(labels.max()) + 1 if len(labels) else 1
    # One integer key per (group, state, label): a 1-D unique is many times faster than rows.
    keys = (groups * 8 + decided[ok, 1]) * span + labels
    uniq, counts = np.unique(keys, return_counts=True)
    lab = uniq % span
    rest = uniq // span
    return list(zip((rest // 8).tolist(), (rest % 8).tolist(), lab.tolist(), counts.tolist()))


_DELTAS = (
    "SELECT a.group_id AS g, ei.{side}_state AS s, COALESCE(ei.{side}_label, 0) AS l, {sign} AS d "
    "FROM event_items ei CROSS JOIN assignments a ON a.run_id = :run AND a.item_id = ei.item_id "
    "WHERE ei.event_id > :lo AND ei.event_id <= :hi AND ei.{side}_state IS NOT NULL "
    "AND a.group_id >= 0")


def catch_up(catalog: Catalog, run_id: int) -> bool:
    """Replay the events since a run's tallies were last true; False when it has none yet."""
    db = catalog.db
    if _as_of(db, run_id) is None:
        return False
    if _as_of(db, run_id) == _max_event(db):
        return True
    try:
        with catalog.write() as wdb:
            _catch_up_in(wdb, run_id)
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise
        return False  # a read-only catalog: the reader counts from scratch in memory
    return True


def _catch_up_in(db: Any, run_id: int) -> None:
    lo, hi = _as_of(db, run_id), _max_event(db)
    if lo is None or lo >= hi:
        return
    deltas = (_DELTAS.format(side="before", sign=-1) + " UNION ALL "
              + _DELTAS.format(side="after", sign=1))
    db.execute(
        "INSERT INTO group_tallies (run_id, group_id, state, label_id, n) "
        f"SELECT :run, g, s, l, SUM(d) FROM ({deltas}) GROUP BY g, s, l HAVING SUM(d) != 0 "
        "ON CONFLICT (run_id, group_id, state, label_id) DO UPDATE SET n = n + excluded.n",
        {"run": run_id, "lo": lo, "hi": hi})
    db.execute("DELETE FROM group_tallies WHERE run_id = ? AND n = 0", [run_id])
    db.execute("UPDATE tally_marks SET as_of = ? WHERE run_id = ?", [hi, run_id])


def recount_groups(db: Any, run_id: int, group_ids: list[int]) -> None:
    """After a split, merge or their undo (inside its transaction): count those groups anew."""
    if _as_of(db, run_id) is None:
        return
    _catch_up_in(db, run_id)
    marks = ",".join("?" * len(group_ids))
    db.execute(f"DELETE FROM group_tallies WHERE run_id = ? AND group_id IN ({marks})",
               [run_id, *group_ids])
    db.execute(
        "INSERT INTO group_tallies (run_id, group_id, state, label_id, n) "
        "SELECT a.run_id, a.group_id, l.state, COALESCE(l.label_id, 0), COUNT(*) "
        "FROM assignments a CROSS JOIN item_labels l ON l.item_id = a.item_id "
        f"WHERE a.run_id = ? AND a.group_id IN ({marks}) GROUP BY 1, 2, 3, 4",
        [run_id, *group_ids])


def tallies(catalog: Catalog, run_id: int, group_ids: Optional[list[int]] = None
            ) -> list[tuple[int, str, Optional[int], int]]:
    """(group, state, label id or None, count) rows of a run (or of some groups), true now."""
    if not catch_up(catalog, run_id):
        if _as_of(catalog.db, run_id) is None:
            try:
                tally_run(catalog, run_id)
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc):
                    raise
                return _count_in_memory(catalog, run_id)
        else:
            return _count_in_memory(catalog, run_id)
    sql, args = "SELECT group_id, state, label_id, n FROM group_tallies WHERE run_id = ?", [run_id]
    if group_ids is not None:
        sql += f" AND group_id IN ({','.join('?' * len(group_ids)) or 'NULL'})"
        args.extend(int(g) for g in group_ids)
    return [(g, s, lab or None, n) for g, s, lab, n in catalog.db.execute(sql, args)]


def group_summaries(catalog: Catalog, run_id: int, group_ids: Optional[list[int]] = None
                    ) -> dict[int, tuple[int, int, int, int, Optional[int], int, int]]:
    """group -> (labelled, noise, mixed, duplicate, top label, its count, labels) of a run."""
    if not catch_up(catalog, run_id):
        try:
            if _as_of(catalog.db, run_id) is not None:
                raise sqlite3.OperationalError("readonly: tallies cannot catch up")
            tally_run(catalog, run_id)
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            # A read-only catalog: count from scratch, in SQL, without storing.
            return _summaries_from_rows(_count_in_memory(catalog, run_id), group_ids)
    where, args = "run_id = ?", [run_id]
    if group_ids is not None:
        where += f" AND group_id IN ({','.join('?' * len(group_ids)) or 'NULL'})"
        args.extend(int(g) for g in group_ids)
    out: dict[int, list] = {}
    for g, lab, noi, mix, dup in catalog.db.execute(
            "SELECT group_id, SUM(CASE state WHEN 'labelled' THEN n ELSE 0 END), "
            "SUM(CASE state WHEN 'noise' THEN n ELSE 0 END), "
            "SUM(CASE state WHEN 'mixed' THEN n ELSE 0 END), "
            f"SUM(CASE state WHEN 'duplicate' THEN n ELSE 0 END) FROM group_tallies WHERE {where} "
            "GROUP BY group_id", args):
        out[g] = [lab, noi, mix, dup, None, 0, 0]
    # SQLite returns the bare column of the row holding MAX(n): the dominant label.
    for g, label_id, top, count in catalog.db.execute(
            f"SELECT group_id, label_id, MAX(n), COUNT(*) FROM group_tallies WHERE {where} "
            "AND state = 'labelled' GROUP BY group_id", args):
        if g in out:
            out[g][4:] = [label_id or None, top, count]
    return {g: tuple(v) for g, v in out.items()}


def _summaries_from_rows(rows: list, group_ids: Optional[list[int]]) -> dict[int, tuple]:
    wanted = None if group_ids is None else set(group_ids)
    acc: dict[int, list] = {}
    labels: dict[int, dict[int, int]] = {}
    index = {"labelled": 0, "noise": 1, "mixed": 2, "duplicate": 3}
    for g, state, label_id, n in rows:
        if wanted is not None and g not in wanted:
            continue
        acc.setdefault(g, [0, 0, 0, 0, None, 0, 0])[index.get(state, 2)] += n
        if state == "labelled" and label_id:
            labels.setdefault(g, {})[label_id] = labels.get(g, {}).get(label_id, 0) + n
    for g, by in labels.items():
        top = max(by.items(), key=lambda kv: (kv[1], -kv[0]))
        acc[g][4:] = [top[0], top[1], len(by)]
    return {g: tuple(v) for g, v in acc.items()}


def _count_in_memory(catalog: Catalog, run_id: int) -> list[tuple[int, str, Optional[int], int]]:
    rows = catalog.db.execute(
        "SELECT a.group_id, l.state, l.label_id, COUNT(*) FROM assignments a CROSS JOIN "
        "item_labels l ON l.item_id = a.item_id WHERE a.run_id = ? GROUP BY 1, 2, 3",
        [run_id]).fetchall()
    return [tuple(r) for r in rows]
