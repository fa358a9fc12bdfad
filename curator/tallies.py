"""Per-group counts of the members' decisions, kept per clustering run and caught up lazily.

`group_tallies` holds, for each group of a run, how many members carry each (state, label);
`tally_marks` says up to which event a run's tallies are true. A labelling write costs nothing
extra: a reader replays the `event_items` written since (each row is one item's transition
from its before-value to its after-value), so reading the status of 3,000 groups at a million
items costs one small indexed read plus the changes since the last reader. A split or a merge
re-counts only the groups it touched. `group_summaries` holds one row of sums per group (labelled,
noise, mixed, duplicate, dominant label), rewritten only for the groups a catch-up touched, so
the review queue reads one row per group.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Optional

import numpy as np

from curator.catalog import Catalog
from curator.migrations import NO_VALUE
from curator.migrations import STATE_CODES as STORED_CODES

log = logging.getLogger(__name__)

STATE_CODES = {"labelled": 1, "noise": 2, "mixed": 3, "duplicate": 4}
STATE_NAMES = {v: k for k, v in STATE_CODES.items()}
# The tally's codes are the stored ones plus one (0 is "no decision"), read straight from
# `item_states` without naming each state.
assert all(STATE_CODES[k] == v + 1 for k, v in STORED_CODES.items())


def _as_of(db: Any, run_id: int) -> Optional[int]:
    row = db.execute("SELECT as_of FROM tally_marks WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else int(row[0])


def _max_event(db: Any) -> int:
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def tally_run(catalog: Catalog, run_id: int) -> None:
    """Count every group's decisions of a run from scratch (once per run, at clustering).

    The run's assignments and the decided items are read in one snapshot, each column as one
    text value (`group_concat`, parsed by NumPy: no Python object per row), counted with one
    `np.bincount` over a (group, state, label) key, and summarised per group in NumPy; the
    mark is the newest event of that snapshot, so an event committed meanwhile is replayed by
    the next catch-up, never counted twice.
    """
    db = catalog.db
    db.execute("BEGIN")
    try:
        as_of = _max_event(db)
        items, groups = _columns(db, "SELECT group_concat(item_id), group_concat(group_id) FROM "
                                     "assignments WHERE run_id = ? AND group_id >= 0", [run_id])
        decided = _columns(db, "SELECT group_concat(item_id), group_concat(code + 1), "
                               "group_concat(COALESCE(label_id, 0)) FROM item_states "
                               f"WHERE code < {NO_VALUE}", [])
    finally:
        db.execute("COMMIT")
    g, st, lab, n = _count(items, groups, *decided)
    names = np.array([""] + [STATE_NAMES[c] for c in sorted(STATE_NAMES)], dtype=object)
    with catalog.write() as wdb:
        wdb.execute("DELETE FROM group_tallies WHERE run_id = ?", [run_id])
        wdb.conn.executemany("INSERT INTO group_tallies (run_id, group_id, state, label_id, n) "
                             "VALUES (?, ?, ?, ?, ?)",
                             zip([run_id] * len(g), g.tolist(), names[st].tolist(),
                                 lab.tolist(), n.tolist()))
        wdb.execute("INSERT OR REPLACE INTO tally_marks (run_id, as_of) VALUES (?, ?)",
                    [run_id, as_of])
        wdb.execute("DELETE FROM group_summaries WHERE run_id = ?", [run_id])
        wdb.conn.executemany("INSERT INTO group_summaries (run_id, group_id, labelled, noise, "
                             "mixed, duplicate, top_label, top_n, n_labels) VALUES "
                             "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             ((run_id, *row) for row in _summary_rows(g, st, lab, n)))
    catch_up(catalog, run_id)


def _columns(db: Any, sql: str, args: list) -> list[np.ndarray]:
    """The integer columns of a one-row query of `group_concat`s, as arrays (in the order
    SQLite scanned the rows, the same for every column of the query)."""
    row = db.execute(sql, args).fetchone()
    return [np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, np.int64)
            for text in row]


def _count(items: np.ndarray, groups: np.ndarray, ids: np.ndarray, states: np.ndarray,
           labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(group, state code, label, count) columns, sorted in that order, from (item, group) and
    (item, state, label) columns."""
    if not len(items) or not len(ids):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty
    top = int(max(items.max(), ids.max()))
    if top <= 64 * len(items) + 1_000_000:  # item ids are dense: one lookup array, no search
        group_of = np.full(top + 1, -1, dtype=np.int64)
        group_of[items] = groups
        found = group_of[ids]
        ok = found >= 0
        group = found[ok]
    else:
        if len(items) > 1 and not bool(np.all(items[1:] > items[:-1])):
            order = np.argsort(items, kind="stable")
            items, groups = items[order], groups[order]
        pos = np.clip(np.searchsorted(items, ids), 0, len(items) - 1)
        ok = items[pos] == ids
        group = groups[pos[ok]]
    label = labels[ok]
    span = int(label.max()) + 1 if len(label) else 1
    # One integer key per (group, state, label): counted in one pass by bincount when the key
    # space is small enough, else by a 1-D unique (both many times faster than rows).
    keys = (group * 8 + states[ok]) * span + label
    size = int(keys.max()) + 1 if len(keys) else 0
    if size <= 8 * len(keys) + 4_000_000:
        counts = np.bincount(keys, minlength=size)
        uniq = np.flatnonzero(counts)
        counts = counts[uniq]
    else:
        uniq, counts = np.unique(keys, return_counts=True)
    rest = uniq // span
    return rest // 8, rest % 8, uniq % span, counts


def _summary_rows(g: np.ndarray, st: np.ndarray, lab: np.ndarray, n: np.ndarray
                  ) -> list[tuple]:
    """One summary row per group from the counted (group, state code, label, n) columns
    (sorted by group, state, label), as `_summarise` writes them: (group, labelled, noise,
    mixed, duplicate, dominant label or None, its count, labels seen)."""
    if not len(g):
        return []
    groups, at = np.unique(g, return_inverse=True)
    sums = np.zeros((len(groups), 5), dtype=np.int64)
    np.add.at(sums, (at, np.minimum(st, 4)), n)
    top_label = np.zeros(len(groups), dtype=np.int64)
    top_n = np.zeros(len(groups), dtype=np.int64)
    n_labels = np.zeros(len(groups), dtype=np.int64)
    sel = np.flatnonzero(st == STATE_CODES["labelled"])
    if len(sel):
        # The dominant label of each group: the largest count, the lowest label id among equals.
        order = sel[np.lexsort((lab[sel], -n[sel], g[sel]))]
        first = np.ones(len(order), dtype=bool)
        first[1:] = g[order][1:] != g[order][:-1]
        heads = order[first]
        top_label[at[heads]] = lab[heads]
        top_n[at[heads]] = n[heads]
        n_labels += np.bincount(at[sel], minlength=len(groups))
    top = [None if v == 0 else v for v in top_label.tolist()]
    return list(zip(groups.tolist(), *sums[:, 1:].T.tolist(), top, top_n.tolist(),
                    n_labels.tolist()))


def _summarise(db: Any, run_id: int, touched: Optional[str]) -> None:
    """Rewrite the summaries of a run's groups from their tallies: all of them, or those in the
    temp table named by `touched` (column g)."""
    only = "" if touched is None else f" AND group_id IN (SELECT g FROM {touched})"
    db.execute(f"DELETE FROM group_summaries WHERE run_id = ?{only}", [run_id])
    # SQLite returns the bare column of the row holding MAX(n): the dominant label (the lowest
    # label id among equals, the tallies being read in key order).
    db.execute(
        f"WITH t AS (SELECT group_id, state, label_id, n FROM group_tallies WHERE run_id = :run"
        f"{only}), top AS (SELECT group_id, label_id, MAX(n) AS n, COUNT(*) AS k FROM t "
        "WHERE state = 'labelled' GROUP BY group_id) "
        "INSERT INTO group_summaries (run_id, group_id, labelled, noise, mixed, duplicate, "
        "top_label, top_n, n_labels) SELECT :run, t.group_id, "
        "SUM(CASE t.state WHEN 'labelled' THEN t.n ELSE 0 END), "
        "SUM(CASE t.state WHEN 'noise' THEN t.n ELSE 0 END), "
        "SUM(CASE t.state WHEN 'mixed' THEN t.n ELSE 0 END), "
        "SUM(CASE t.state WHEN 'duplicate' THEN t.n ELSE 0 END), "
        "NULLIF(top.label_id, 0), COALESCE(top.n, 0), COALESCE(top.k, 0) "
        "FROM t LEFT JOIN top ON top.group_id = t.group_id GROUP BY t.group_id",
        {"run": run_id})


# One join per event row (the item's group in the run), then each row's before-value counted
# -1 and its after-value +1 in its group: a label and its undo cancel out.
_DELTAS = (
    "WITH moves AS MATERIALIZED (SELECT a.group_id AS g, ei.before_state AS bs, "
    "COALESCE(ei.before_label, 0) AS bl, ei.after_state AS xs, COALESCE(ei.after_label, 0) AS xl, "
    "COUNT(*) AS k FROM event_items ei CROSS JOIN assignments a ON a.run_id = :run "
    "AND a.item_id = ei.item_id WHERE ei.event_id > :lo AND ei.event_id <= :hi "
    "AND a.group_id >= 0 GROUP BY 1, 2, 3, 4, 5) "
    "INSERT INTO tally_delta (g, s, l, d) SELECT g, s, l, SUM(d) FROM ("
    "SELECT g, bs AS s, bl AS l, -k AS d FROM moves WHERE bs IS NOT NULL UNION ALL "
    "SELECT g, xs, xl, k FROM moves WHERE xs IS NOT NULL) GROUP BY g, s, l HAVING SUM(d) != 0")


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
    db.execute("CREATE TEMP TABLE IF NOT EXISTS tally_delta (g INTEGER, s TEXT, l INTEGER, "
               "d INTEGER)")
    db.execute("DELETE FROM tally_delta")
    db.execute(_DELTAS, {"run": run_id, "lo": lo, "hi": hi})
    db.execute(
        "INSERT INTO group_tallies (run_id, group_id, state, label_id, n) "
        "SELECT ?, g, s, l, d FROM tally_delta WHERE 1 "
        "ON CONFLICT (run_id, group_id, state, label_id) DO UPDATE SET n = n + excluded.n",
        [run_id])
    db.execute("DELETE FROM group_tallies WHERE run_id = ? AND n = 0 AND (group_id, state, "
               "label_id) IN (SELECT g, s, l FROM tally_delta)", [run_id])
    db.execute("CREATE TEMP TABLE IF NOT EXISTS tally_touched (g INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM tally_touched")
    db.execute("INSERT OR IGNORE INTO tally_touched SELECT g FROM tally_delta")
    _summarise(db, run_id, "tally_touched")
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
    db.execute("CREATE TEMP TABLE IF NOT EXISTS tally_touched (g INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM tally_touched")
    db.conn.executemany("INSERT OR IGNORE INTO tally_touched VALUES (?)",
                        [(int(g),) for g in group_ids])
    _summarise(db, run_id, "tally_touched")


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
                    ) -> dict[int, tuple[int, int, int, int, int, Optional[int], int, int]]:
    """group -> (group, labelled, noise, mixed, duplicate, top label, its count, labels) of a run.

    One row per group from `group_summaries`, which the catch-up keeps true for the groups
    the new events touched (a 10,000-item label rewrites one summary row, not 3,000).
    """
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
    return {r[0]: r for r in catalog.db.execute(
        "SELECT group_id, labelled, noise, mixed, duplicate, top_label, top_n, n_labels "
        f"FROM group_summaries WHERE {where}", args)}


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
    return {g: (g, *v) for g, v in acc.items()}


def _count_in_memory(catalog: Catalog, run_id: int) -> list[tuple[int, str, Optional[int], int]]:
    rows = catalog.db.execute(
        "SELECT a.group_id, l.state, l.label_id, COUNT(*) FROM assignments a CROSS JOIN "
        "item_labels l ON l.item_id = a.item_id WHERE a.run_id = ? GROUP BY 1, 2, 3",
        [run_id]).fetchall()
    return [tuple(r) for r in rows]
