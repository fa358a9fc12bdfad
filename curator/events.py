"""Item events: one decision touching many items, recorded and applied (or reversed) atomically.

Every change of an item's label is an event that records, per touched item, the value before and
after (`event_items`); the current label of each item (`item_states`, read through the
`item_labels` view) is materialised from the log in the same transaction, so a kill leaves
either the whole event or none of it. The touched ids travel in a temp table and every step is
one set-based statement; a group decision reads its members from the run's assignments inside
the transaction, so no id makes a round trip through Python. Undo applies an event's
before-values to the items that still hold its after-values (a later change by someone else is
never clobbered); redo re-applies the after-values. `curator.history` decides what to undo;
`curator.labels` owns the taxonomy.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from curator.catalog import Catalog, utcnow
from curator.checkpoint import backup_soon, deferrable
from curator.checkpoint import request as request_checkpoint
from curator.errors import UsageError
from curator.eventlog import backup_event_log
from curator.migrations import NO_VALUE, STATE_CODES, state_code_sql, state_name_sql

ACTIONS = ("assign", "clear", "noise", "mixed", "confirm", "duplicate")
SOURCES = ("group", "manual", "propagated", "imported", "taxonomy")

_AFTER_CODE = {"assign": STATE_CODES["labelled"], "noise": STATE_CODES["noise"],
               "mixed": STATE_CODES["mixed"], "duplicate": STATE_CODES["duplicate"],
               "clear": NO_VALUE}
# An item's current value, read from its `item_states` row `st` (NULL where it has none).
_STATE = state_name_sql("st.code")
_AFTER_STATE = {"assign": "'labelled'", "clear": "NULL", "noise": "'noise'", "mixed": "'mixed'",
                "duplicate": "'duplicate'", "confirm": _STATE}
CACHE_KIB = 65536
"""Page cache of a connection that writes item events (KiB)."""
_GROUP_STATUS = {"assign": "labelled", "noise": "noise", "mixed": "mixed", "clear": "undecided"}


@contextlib.contextmanager
def event_write(catalog: Catalog) -> Iterator[Any]:
    """A write transaction for one event, with the touched item ids in a temp table.

    Foreign keys are checked by the code before writing (`_ids_exist`, or ids read from the
    catalog in the same transaction), so the per-row checks are switched off for this
    transaction: at 10,000 items they are a third of the cost. The pragma only takes effect
    outside a transaction, hence set before BEGIN. The WAL checkpoint of the event's pages
    happens on a background thread (`curator.checkpoint`), not inside the commit.
    """
    db = catalog.db
    nested = db.conn.in_transaction
    if not nested:
        db.execute("PRAGMA foreign_keys = OFF")
        # A 10,000-item event touches thousands of scattered pages of the current labels and
        # the event rows' item index; with SQLite's default 2 MB cache they are evicted, spilled
        # and read again within the one statement. 64 MB keeps them (a few tens of MB are used
        # at a million items), and keeps them between events.
        db.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
        # The commit leaves its pages in the WAL; a background thread checkpoints them (unless
        # a burst of events made the WAL big: then this commit checkpoints, as SQLite would).
        auto = db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        if deferrable(catalog.path):
            db.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        with catalog.write():
            db.execute("CREATE TEMP TABLE IF NOT EXISTS event_scope "
                       "(item_id INTEGER PRIMARY KEY, label_id INTEGER, keeper INTEGER)")
            db.execute("DELETE FROM event_scope")
            yield db
            db.execute("DELETE FROM event_scope")
    finally:
        if not nested:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute(f"PRAGMA wal_autocheckpoint = {int(auto)}")
            request_checkpoint(catalog.path)


def backup_after(catalog: Catalog) -> None:
    """Keep the rolling event-log backup current once the event is committed (see
    `curator.eventlog`), on the background thread: it only reads what is committed, and the
    catalog's close (or `curator.checkpoint.flush`) waits for it. Inside an outer transaction
    that may still roll back, the outermost caller does it."""
    if not catalog.db.conn.in_transaction:
        backup_soon(catalog.path, lambda: backup_event_log(catalog))


def _ids_exist(db: Any, count: int) -> None:
    # CROSS JOIN keeps the small temp table as the outer loop: without statistics on it the
    # planner may otherwise scan all of `items` (a third of a second at a million items).
    found = db.execute("SELECT COUNT(*) FROM event_scope s CROSS JOIN items i ON i.id = s.item_id"
                       ).fetchone()[0]
    if found != count:
        missing = [r[0] for r in db.execute(
            "SELECT s.item_id FROM event_scope s LEFT JOIN items i ON i.id = s.item_id "
            "WHERE i.id IS NULL ORDER BY s.item_id LIMIT 1000")]
        raise UsageError(f"no item with id {missing[0]}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                         hint="the project's item ids are in `curator status` (as JSON)")


def _check(action: str, source: str, label_id: Optional[int], per_item: bool) -> None:
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}")
    if action == "assign" and label_id is None and not per_item:
        raise UsageError("assign needs a label")


def apply_event(
    catalog: Catalog,
    action: str,
    item_ids: Sequence[int],
    *,
    label_id: Optional[int] = None,
    per_item_labels: Optional[dict[int, int]] = None,
    keepers: Optional[dict[int, int]] = None,
    source: str = "manual",
    annotator: str = "",
    run_id: Optional[int] = None,
    group_id: Optional[int] = None,
    note: str = "",
    details: Optional[dict[str, Any]] = None,
    group_labels: Optional[dict[int, int]] = None,
) -> int:
    """Record one event touching many items, and update their current labels, atomically.

    Args:
        action: assign, clear, noise, mixed, confirm or duplicate (a copy of the item that
            `keepers` names for it; never noise).
        item_ids: the items it touches (checked to exist).
        label_id: the label for assign (or per_item_labels for an import of many labels).
        source: group, manual, propagated or imported.
        run_id, group_id: the clustering run and group a group decision was made on; the group's
            status follows the event.
        group_labels: for an assign deciding many groups of `run_id` at once (accepted
            suggestions): group id -> label id; each group's status follows the event.

    Returns:
        The event id.
    """
    _check(action, source, label_id, bool(per_item_labels))
    keepers = {int(k): int(v) for k, v in (keepers or {}).items()}
    if action == "duplicate" and (set(keepers) != {int(i) for i in item_ids}
                                  or set(keepers) & set(keepers.values())):
        raise UsageError("a duplicate decision names one keeper per copy, and a keeper is never "
                         "a copy itself")
    per_item = per_item_labels or {}
    ids = sorted({int(i) for i in item_ids})
    if not ids:
        raise UsageError("no items to label")
    with event_write(catalog) as db:
        if per_item or keepers:
            db.conn.executemany(
                "INSERT INTO event_scope (item_id, label_id, keeper) VALUES (?, ?, ?)",
                [(i, per_item.get(i, label_id), keepers.get(i)) for i in ids])
        else:  # one label for all: the ids go in as one JSON array, without a row per call
            db.execute("INSERT INTO event_scope (item_id, label_id) SELECT value, ? FROM "
                       "json_each(?)", [label_id, json.dumps(ids)])
        _ids_exist(db, len(ids))
        event_id = _record(db, action, label_id, source, annotator, run_id, group_id, note,
                           dict(details or {}), group_labels)
    backup_after(catalog)
    return event_id


def apply_group_event(catalog: Catalog, action: str, run_id: int, group_id: int, *,
                      label_id: Optional[int] = None, exclude: Sequence[int] = (),
                      annotator: str = "", note: str = "") -> int:
    """Decide a whole group of a run (minus `exclude`) as one event, undone as one.

    The members are read from the run's assignments inside the write transaction (assignments
    only ever name catalog items), so a group of 10,000 items costs no per-item Python.

    Raises:
        UsageError: no such group, an excluded item that is not a member, or no items left.
    """
    _check(action, "group", label_id, False)
    excluded = sorted({int(i) for i in exclude})
    with event_write(catalog) as db:
        if db.execute("SELECT 1 FROM groups WHERE run_id = ? AND group_id = ?",
                      [run_id, group_id]).fetchone() is None:
            raise UsageError(f"no group {group_id} in clustering run {run_id}",
                             hint="see `curator queue`")
        if excluded:
            members = {r[0] for r in db.execute(
                "SELECT item_id FROM assignments WHERE run_id = ? AND group_id = ? AND item_id "
                "IN (SELECT value FROM json_each(?))", [run_id, group_id, json.dumps(excluded)])}
            unknown = [i for i in excluded if i not in members]
            if unknown:
                raise UsageError(f"item {unknown[0]} is not in group {group_id}")
        n = db.execute(
            "INSERT INTO event_scope (item_id, label_id) SELECT item_id, ? FROM assignments "
            "WHERE run_id = ? AND group_id = ? AND item_id NOT IN (SELECT value FROM "
            "json_each(?)) ORDER BY item_id", [label_id, run_id, group_id,
                                               json.dumps(excluded)]).rowcount
        if n <= 0:
            raise UsageError("no items to label")
        event_id = _record(db, action, label_id, "group", annotator, run_id, group_id, note,
                           {"excluded": excluded} if excluded else {}, None)
    backup_after(catalog)
    return event_id


def _record(db: Any, action: str, label_id: Optional[int], source: str, annotator: str,
            run_id: Optional[int], group_id: Optional[int], note: str, details: dict[str, Any],
            group_labels: Optional[dict[int, int]]) -> int:
    """Write the event for the items in `event_scope` (inside the event's transaction)."""
    if group_id is not None and run_id is not None:
        row = db.execute("SELECT status, label_id, decided_event FROM groups WHERE run_id = ? "
                         "AND group_id = ?", [run_id, group_id]).fetchone()
        if row is None:
            raise UsageError(f"no group {group_id} in clustering run {run_id}")
        details["group_before"] = list(row)
    if group_labels and run_id is not None:
        details["groups_before"] = _groups_state(db, run_id, group_labels)
        details["group_labels"] = {str(g): int(v) for g, v in group_labels.items()}
    cur = db.execute(
        "INSERT INTO events (time, annotator, action, label_id, source, run_id, group_id, "
        "note, item_count, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
        [utcnow(), annotator or "unknown", action, label_id, source, run_id, group_id, note,
         json.dumps(details)])
    event_id = int(cur.lastrowid)
    after_label = {"assign": "s.label_id", "confirm": "st.label_id"}.get(action, "NULL")
    # confirm keeps each item's value and only marks it checked: items without one are skipped.
    where = f"WHERE st.code < {NO_VALUE}" if action == "confirm" else ""
    after_keeper = {"duplicate": "s.keeper", "confirm": "st.keeper_id"}.get(action, "NULL")
    # `before_event` is the item's newest event so far (kept in its `item_states` row even where
    # it left no value): an item's history follows these links, with no index by item.
    count = db.execute(
        "INSERT INTO event_items (event_id, item_id, before_state, before_label, before_event,"
        " after_state, after_label, before_keeper, after_keeper) SELECT ?, s.item_id, "
        f"{_STATE}, st.label_id, st.event_id, {_AFTER_STATE[action]}, {after_label}, "
        f"st.keeper_id, {after_keeper} FROM event_scope s "
        f"LEFT JOIN item_states st ON st.item_id = s.item_id {where} ORDER BY s.item_id",
        [event_id]).rowcount
    _write_current(db, action, event_id)
    if action == "assign":
        # Say in the event itself how many items it took from another label.
        relabelled = db.execute(
            "SELECT COUNT(*) FROM event_items WHERE event_id = ? AND before_state = "
            "'labelled' AND before_label IS NOT after_label", [event_id]).fetchone()[0]
        if relabelled:
            details["relabelled"] = relabelled
    db.execute("UPDATE events SET item_count = ?, details = ? WHERE id = ?",
               [count, json.dumps(details), event_id])
    status = _GROUP_STATUS.get(action)
    if group_id is not None and run_id is not None and status is not None:
        db.execute("UPDATE groups SET status = ?, label_id = ?, decided_event = ? "
                   "WHERE run_id = ? AND group_id = ?",
                   [status, label_id if action == "assign" else None, event_id, run_id,
                    group_id])
    if group_labels and run_id is not None:
        _set_groups(db, run_id, details["group_labels"], event_id)
    return event_id


def _write_current(db: Any, action: str, event_id: int) -> None:
    """Materialise the event's after-values into the current labels (`item_states`, whose
    `item_labels` view the readers use). An item left without a value keeps its row, with
    this event as its newest."""
    if action == "confirm":
        db.execute(f"UPDATE item_states SET confirmed = 1, event_id = ? WHERE code < {NO_VALUE} "
                   "AND item_id IN (SELECT item_id FROM event_scope)", [event_id])
        return
    db.execute(
        "INSERT INTO item_states (item_id, code, label_id, event_id, confirmed, "
        f"keeper_id) SELECT s.item_id, {_AFTER_CODE[action]}, "
        f"{'s.label_id' if action == 'assign' else 'NULL'}, ?, 0, "
        f"{'s.keeper' if action == 'duplicate' else 'NULL'} FROM event_scope s "
        "WHERE 1 ON CONFLICT (item_id) DO UPDATE SET "
        "code = excluded.code, label_id = excluded.label_id, "
        "event_id = excluded.event_id, confirmed = 0, keeper_id = excluded.keeper_id",
        [event_id])


def _groups_state(db: Any, run_id: int, group_labels: dict[int, int]) -> dict[str, list]:
    out = {}
    for gid in group_labels:
        row = db.execute("SELECT status, label_id, decided_event FROM groups WHERE run_id = ? "
                         "AND group_id = ?", [run_id, int(gid)]).fetchone()
        if row is None:
            raise UsageError(f"no group {gid} in clustering run {run_id}")
        out[str(gid)] = list(row)
    return out


def _set_groups(db: Any, run_id: int, group_labels: dict[str, int], event_id: int) -> None:
    db.conn.executemany("UPDATE groups SET status = 'labelled', label_id = ?, decided_event = ? "
                        "WHERE run_id = ? AND group_id = ?",
                        [(label, event_id, run_id, int(g)) for g, label in group_labels.items()])


def reverse_items(db: Any, target: int, annotator: str, redo: bool) -> dict[str, Any]:
    """Undo (or redo) one item event inside the caller's `event_write` transaction: restore the
    items that still hold the value it left (or found); returns what it did."""
    ev = db.execute("SELECT action, undone, run_id, group_id, details, label_id "
                    "FROM events WHERE id = ?", [target]).fetchone()
    if ev is None:
        raise UsageError(f"no event {target}")
    action, undone, run_id, group_id, details_json, ev_label = ev
    if action not in ACTIONS:
        raise UsageError("pick the original event")
    if redo and not undone:
        raise UsageError(f"event {target} is not undone; nothing to redo")
    if not redo and undone:
        raise UsageError(f"event {target} is already undone")
    cur = db.execute(
        "INSERT INTO events (time, annotator, action, label_id, source, run_id, group_id, "
        "note, item_count, target, details) SELECT ?, ?, ?, label_id, source, run_id, "
        "group_id, '', 0, ?, '{}' FROM events WHERE id = ?",
        [utcnow(), annotator or "unknown", "redo" if redo else "undo", target, target])
    new_event = int(cur.lastrowid)
    restored, skipped = _restore(db, target, new_event, redo)
    details = json.loads(details_json or "{}")
    _reverse_group_status(db, action, run_id, group_id, ev_label, details, target, redo)
    db.execute("UPDATE events SET item_count = ?, details = ? WHERE id = ?",
               [restored, json.dumps({"skipped": skipped}), new_event])
    db.execute("UPDATE events SET undone = ? WHERE id = ?", [0 if redo else 1, target])
    return {"event": new_event, "target": target, "restored": restored, "skipped": skipped,
            "action": "redo" if redo else "undo"}


def _restore(db: Any, target: int, new_event: int, redo: bool) -> tuple[int, int]:
    # Items still holding the value the event left (undo) or found (redo); any other was
    # changed by a later event and is never clobbered.
    frm, to = ("before", "after") if redo else ("after", "before")
    total = db.execute("SELECT COUNT(*) FROM event_items WHERE event_id = ?",
                       [target]).fetchone()[0]
    db.execute("CREATE TEMP TABLE IF NOT EXISTS event_restore (item_id INTEGER PRIMARY KEY, "
               "state TEXT, label_id INTEGER, keeper INTEGER, b_state TEXT, b_label INTEGER, "
               "b_event INTEGER, b_keeper INTEGER)")
    db.execute("DELETE FROM event_restore")
    # One pass over the event's rows and the current labels keeps both the value to restore
    # and the value found (the new event's before-values).
    restored = db.execute(
        f"INSERT INTO event_restore SELECT ei.item_id, ei.{to}_state, ei.{to}_label, "
        f"ei.{to}_keeper, {_STATE}, st.label_id, st.event_id, st.keeper_id FROM event_items ei "
        "LEFT JOIN item_states st ON st.item_id = ei.item_id WHERE ei.event_id = ? "
        f"AND {_STATE} IS ei.{frm}_state AND st.label_id IS ei.{frm}_label "
        f"AND st.keeper_id IS ei.{frm}_keeper ORDER BY ei.item_id",
        [target]).rowcount
    db.execute(
        "INSERT INTO event_items (event_id, item_id, before_state, before_label, before_event,"
        " after_state, after_label, before_keeper, after_keeper) SELECT ?, item_id, b_state, "
        "b_label, b_event, state, label_id, b_keeper, keeper FROM event_restore "
        "ORDER BY item_id", [new_event])
    # One rewrite in place per item; one restored to no value keeps its row (code NO_VALUE).
    db.execute(
        "INSERT INTO item_states (item_id, code, label_id, event_id, confirmed, keeper_id) "
        f"SELECT item_id, COALESCE({state_code_sql('state')}, {NO_VALUE}), label_id, ?, 0, "
        "keeper FROM event_restore WHERE 1 ON CONFLICT (item_id) DO UPDATE SET "
        "code = excluded.code, label_id = excluded.label_id, event_id = excluded.event_id, "
        "confirmed = 0, keeper_id = excluded.keeper_id", [new_event])
    db.execute("DELETE FROM event_restore")
    return restored, max(0, total - restored)


def _reverse_group_status(db: Any, action: str, run_id: Optional[int], group_id: Optional[int],
                          ev_label: Optional[int], details: dict[str, Any], target: int,
                          redo: bool) -> None:
    """The stored decision of the group(s) the event decided follows its undo or redo."""
    if group_id is not None and run_id is not None and "group_before" in details:
        if redo:
            status = _GROUP_STATUS.get(action)
            if status:
                db.execute("UPDATE groups SET status = ?, label_id = ?, decided_event = ? "
                           "WHERE run_id = ? AND group_id = ?",
                           [status, ev_label if action == "assign" else None, target, run_id,
                            group_id])
        else:
            b_status, b_label, b_event = details["group_before"]
            db.execute("UPDATE groups SET status = ?, label_id = ?, decided_event = ? "
                       "WHERE run_id = ? AND group_id = ? AND decided_event = ?",
                       [b_status, b_label, b_event, run_id, group_id, target])
    if run_id is not None and "groups_before" in details:  # many groups decided at once
        if redo:
            _set_groups(db, run_id, details["group_labels"], target)
        else:
            db.conn.executemany(
                "UPDATE groups SET status = ?, label_id = ?, decided_event = ? WHERE "
                "run_id = ? AND group_id = ? AND decided_event = ?",
                [(*before, run_id, int(g), target)
                 for g, before in details["groups_before"].items()])
