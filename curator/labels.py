"""Labels you can trust: the taxonomy, the append-only event log, undo and redo, item history.

Every change of an item's label is an event that records, per touched item, the value before and
after. The current label of each item (`item_labels`) is materialised from the log in the same
transaction, so a kill leaves either the whole event or none of it. Undo applies an event's
before-values to the items that still hold its after-values (a later change by someone else is
never clobbered) and is itself an event; redo re-applies the after-values. Labels belong to
items, so rescans, re-embeds and re-clusters never touch them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from curator.catalog import Catalog, utcnow
from curator.errors import UsageError

if TYPE_CHECKING:
    from curator.history import UndoResult

log = logging.getLogger(__name__)

ACTIONS = ("assign", "clear", "noise", "mixed", "confirm", "duplicate")
SOURCES = ("group", "manual", "propagated", "imported", "taxonomy")
# Keys the desktop app keeps for triage itself: j/k next and previous, x exclude, space preview.
RESERVED_HOTKEYS = frozenset({"j", "k", "x", " ", "space"})
_HOTKEY = re.compile(r"^(?:[0-9a-z]|F(?:[1-9]|1[0-2]))$")
_CHUNK = 900


@dataclass(frozen=True)
class Label:
    """A taxonomy entry; `path` is its full name through its parents ("animal/cat")."""

    id: int
    name: str
    parent_id: Optional[int]
    colour: Optional[str]
    hotkey: Optional[str]
    description: str
    path: str
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Event:
    """One entry of the history."""

    id: int
    time: str
    annotator: str
    action: str
    label: Optional[str]
    source: str
    run_id: Optional[int]
    group_id: Optional[int]
    note: str
    item_count: int
    target: Optional[int]
    undone: bool
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- taxonomy ---------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """A label name as stored: NFC, stripped; refuses empty names and control characters."""
    if not isinstance(name, str):
        raise UsageError("a label name must be text")
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        raise UsageError("a label name cannot be empty")
    bad = [ch for ch in clean if unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029"]
    if bad:
        raise UsageError(f"label name {clean!r} contains control characters "
                         f"({', '.join(repr(c) for c in bad[:3])}); remove them")
    # Bidi overrides and zero-width characters (Unicode format characters) make two different
    # names look alike, or a name display reversed: refused (hostile).
    hidden = [ch for ch in clean if unicodedata.category(ch) == "Cf"]
    if hidden:
        codes = ", ".join(f"U+{ord(c):04X}" for c in hidden[:3])
        raise UsageError(f"label name {clean!r} contains invisible or direction-changing "
                         f"characters ({codes}); remove them")
    if len(clean) > 200:
        raise UsageError("a label name is limited to 200 characters")
    return clean


def check_hotkey(hotkey: Optional[str]) -> Optional[str]:
    if hotkey is None or hotkey == "":
        return None
    key = hotkey if hotkey.startswith("F") and len(hotkey) > 1 else hotkey.lower()
    if key in RESERVED_HOTKEYS:
        raise UsageError(f"hotkey {hotkey!r} is kept for triage (j, k, x, space); choose another")
    if not _HOTKEY.match(key):
        raise UsageError(f"hotkey {hotkey!r} must be one letter, one digit or F1-F12")
    return key


def check_colour(colour: Optional[str]) -> Optional[str]:
    if colour is None or colour == "":
        return None
    if not re.match(r"^#[0-9a-fA-F]{6}$", colour):
        raise UsageError(f"colour {colour!r} must look like #1f77b4")
    return colour.lower()


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf"]


def labels(catalog: Catalog, with_counts: bool = True) -> list[Label]:
    """The live taxonomy, ordered by full path."""
    rows = catalog.db.execute(
        "SELECT id, name, parent_id, colour, hotkey, description FROM labels "
        "WHERE removed_at IS NULL").fetchall()
    by_id = {r[0]: r for r in rows}
    counts: dict[int, int] = {}
    if with_counts:
        counts = dict(catalog.db.execute(
            "SELECT label_id, COUNT(*) FROM item_labels WHERE state = 'labelled' "
            "GROUP BY label_id").fetchall())
    out = []
    for r in rows:
        out.append(Label(r[0], r[1], r[2], r[3], r[4], r[5] or "", _path(by_id, r[0]),
                         counts.get(r[0], 0)))
    return sorted(out, key=lambda lab: lab.path)


def _path(by_id: dict[int, tuple], label_id: int) -> str:
    parts = []
    seen = set()
    current: Optional[int] = label_id
    while current is not None and current in by_id and current not in seen:
        seen.add(current)
        parts.append(by_id[current][1])
        current = by_id[current][2]
    return "/".join(reversed(parts))


def label_paths(catalog: Catalog) -> dict[int, str]:
    """Label id -> full path ("animal/cat") of every label, removed ones included."""
    by_id = {r[0]: r for r in catalog.db.execute("SELECT id, name, parent_id FROM labels")}
    return {label_id: _path(by_id, label_id) for label_id in by_id}
def check_path_free(catalog: Catalog, name: str, parent_id: Optional[int],
                    label_id: Optional[int] = None) -> None:
    """Refuse a name whose full path would equal another live label's path (`a/b` beside `b`
    under `a`): exports and `find_label` tell labels apart by path."""
    others = [lab for lab in labels(catalog, with_counts=False) if lab.id != label_id]
    parent = next((lab.path for lab in others if lab.id == parent_id), None)
    path = f"{parent}/{name}" if parent else name
    clash = next((lab for lab in others if lab.path == path), None)
    if clash is not None:
        raise UsageError(f"a label named {name!r} here would have the path {path!r}, which "
                         f"label {clash.name!r} already has; choose another name")


def latest_event_id(catalog: Catalog) -> int:
    """The id of the newest event (0 before any): a cheap "did anything change" stamp."""
    return int(catalog.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def find_label(catalog: Catalog, name: str) -> Label:
    """A live label by name or full path (case-sensitive; a unique case-insensitive match works)."""
    all_labels = labels(catalog, with_counts=False)
    for lab in all_labels:
        if lab.name == name or lab.path == name:
            return lab
    folded = [lab for lab in all_labels if name.casefold() in (lab.name.casefold(),
                                                               lab.path.casefold())]
    if len(folded) == 1:
        return folded[0]
    known = ", ".join(lab.path for lab in all_labels[:12]) or "none yet"
    raise UsageError(f"no label {name!r}; known labels: {known}",
                     hint="add one with `curator labels add PROJECT NAME`")


def add_label(catalog: Catalog, name: str, parent: Optional[str] = None,
              colour: Optional[str] = None, hotkey: Optional[str] = None,
              description: str = "", annotator: str = "") -> Label:
    """Add a label to the taxonomy; names are unique among live labels."""
    name = check_name(name)
    hotkey = check_hotkey(hotkey)
    colour = check_colour(colour)
    parent_id = find_label(catalog, parent).id if parent else None
    check_path_free(catalog, name, parent_id)
    with catalog.write() as db:
        if db.execute("SELECT 1 FROM labels WHERE name = ? AND removed_at IS NULL",
                      [name]).fetchone():
            raise UsageError(f"label {name!r} already exists")
        if hotkey and db.execute("SELECT name FROM labels WHERE hotkey = ? AND removed_at IS NULL",
                                 [hotkey]).fetchone():
            owner = db.execute("SELECT name FROM labels WHERE hotkey = ? AND removed_at IS NULL",
                               [hotkey]).fetchone()[0]
            raise UsageError(f"hotkey {hotkey!r} already belongs to label {owner!r}")
        if colour is None:
            n = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
            colour = _PALETTE[n % len(_PALETTE)]
        cur = db.execute(
            "INSERT INTO labels (name, parent_id, colour, hotkey, description, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", [name, parent_id, colour, hotkey, description, utcnow()])
        label_id = int(cur.lastrowid)
        _taxonomy_event(db, annotator, "label-add", label_id, {"name": name, "parent": parent})
    return next(lab for lab in labels(catalog) if lab.id == label_id)


def update_label(catalog: Catalog, name: str, *, new_name: Optional[str] = None,
                 colour: Optional[str] = None, hotkey: Optional[str] = None,
                 description: Optional[str] = None, parent: Optional[str] = None,
                 annotator: str = "") -> Label:
    """Rename a label or change its colour, hotkey, description or parent (kept in history)."""
    lab = find_label(catalog, name)
    changes: dict[str, Any] = {}
    if new_name is not None:
        changes["name"] = check_name(new_name)
    if colour is not None:
        changes["colour"] = check_colour(colour)
    if hotkey is not None:
        changes["hotkey"] = check_hotkey(hotkey)
    if description is not None:
        changes["description"] = description
    if parent is not None:
        parent_id = find_label(catalog, parent).id if parent else None
        if parent_id == lab.id:
            raise UsageError("a label cannot be its own parent")
        changes["parent_id"] = parent_id
    if not changes:
        return lab
    if "name" in changes or "parent_id" in changes:
        check_path_free(catalog, changes.get("name", lab.name),
                        changes.get("parent_id", lab.parent_id), lab.id)
    with catalog.write() as db:
        if "name" in changes and db.execute(
                "SELECT 1 FROM labels WHERE name = ? AND removed_at IS NULL AND id != ?",
                [changes["name"], lab.id]).fetchone():
            raise UsageError(f"label {changes['name']!r} already exists")
        if changes.get("hotkey") and db.execute(
                "SELECT 1 FROM labels WHERE hotkey = ? AND removed_at IS NULL AND id != ?",
                [changes["hotkey"], lab.id]).fetchone():
            raise UsageError(f"hotkey {changes['hotkey']!r} is taken")
        before = dict(zip(["name", "colour", "hotkey", "description", "parent_id"],
                          db.execute("SELECT name, colour, hotkey, description, parent_id FROM "
                                     "labels WHERE id = ?", [lab.id]).fetchone()))
        sets = ", ".join(f"{k} = ?" for k in changes)
        db.execute(f"UPDATE labels SET {sets} WHERE id = ?", [*changes.values(), lab.id])
        _taxonomy_event(db, annotator, "label-update", lab.id,
                        {"before": {k: before[k] for k in changes}, "after": changes})
    return next(x for x in labels(catalog) if x.id == lab.id)


def _taxonomy_event(db: Any, annotator: str, action: str, label_id: int,
                    details: dict[str, Any]) -> int:
    cur = db.execute(
        "INSERT INTO events (time, annotator, action, label_id, source, details) "
        "VALUES (?, ?, ?, ?, 'taxonomy', ?)",
        [utcnow(), annotator or "unknown", action, label_id, json.dumps(details, default=str)])
    return int(cur.lastrowid)


# --- applying events --------------------------------------------------------------------------


@contextlib.contextmanager
def _bulk_write(catalog: Catalog) -> Iterator[Any]:
    """A write transaction for one event, with the touched item ids in a temp table.

    Foreign keys are checked by the code before writing (`_ids_exist`), so the per-row
    checks are switched off for this transaction: at 10,000 items they are a third of the
    cost. The pragma only takes effect outside a transaction, hence set before BEGIN.
    """
    db = catalog.db
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        with catalog.write():
            db.execute("CREATE TEMP TABLE IF NOT EXISTS event_scope "
                       "(item_id INTEGER PRIMARY KEY, label_id INTEGER, keeper INTEGER)")
            db.execute("DELETE FROM event_scope")
            yield db
            db.execute("DELETE FROM event_scope")
    finally:
        db.execute("PRAGMA foreign_keys = ON")


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
                         hint="see `curator status --json` for ids")


_AFTER_STATE = {"assign": "'labelled'", "clear": "NULL", "noise": "'noise'", "mixed": "'mixed'",
                "duplicate": "'duplicate'",
                "confirm": "l.state"}


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
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}")
    if action == "assign" and label_id is None and not per_item_labels:
        raise UsageError("assign needs a label")
    keepers = {int(k): int(v) for k, v in (keepers or {}).items()}
    if action == "duplicate" and (set(keepers) != {int(i) for i in item_ids}
                                  or set(keepers) & set(keepers.values())):
        raise UsageError("a duplicate decision names one keeper per copy, and a keeper is never "
                         "a copy itself")
    details = dict(details or {})
    per_item = per_item_labels or {}
    ids = sorted({int(i) for i in item_ids})
    if not ids:
        raise UsageError("no items to label")
    with _bulk_write(catalog) as db:
        db.conn.executemany("INSERT INTO event_scope (item_id, label_id, keeper) VALUES (?, ?, ?)",
                            [(i, per_item.get(i, label_id), keepers.get(i)) for i in ids])
        _ids_exist(db, len(ids))
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
        after_label = {"assign": "s.label_id", "confirm": "l.label_id"}.get(action, "NULL")
        # confirm keeps each item's value and only marks it checked: unlabelled items are skipped.
        where = "WHERE l.item_id IS NOT NULL" if action == "confirm" else ""
        after_keeper = {"duplicate": "s.keeper", "confirm": "l.keeper_id"}.get(action, "NULL")
        cur = db.execute(
            "INSERT INTO event_items (event_id, item_id, before_state, before_label, before_event,"
            " after_state, after_label, before_keeper, after_keeper) SELECT ?, s.item_id, "
            f"l.state, l.label_id, l.event_id, {_AFTER_STATE[action]}, {after_label}, "
            f"l.keeper_id, {after_keeper} FROM event_scope s "
            f"LEFT JOIN item_labels l ON l.item_id = s.item_id {where} ORDER BY s.item_id",
            [event_id])
        count = cur.rowcount
        if action == "clear":
            db.execute("DELETE FROM item_labels WHERE item_id IN (SELECT item_id FROM event_scope)")
        elif action == "confirm":
            db.execute("UPDATE item_labels SET confirmed = 1, event_id = ? WHERE item_id IN "
                       "(SELECT item_id FROM event_scope)", [event_id])
        else:
            db.execute(
                "INSERT INTO item_labels (item_id, state, label_id, event_id, confirmed, "
                f"keeper_id) SELECT s.item_id, {_AFTER_STATE[action]}, "
                f"{'s.label_id' if action == 'assign' else 'NULL'}, ?, 0, "
                f"{'s.keeper' if action == 'duplicate' else 'NULL'} FROM event_scope s "
                "WHERE 1 ON CONFLICT (item_id) DO UPDATE SET "
                "state = excluded.state, label_id = excluded.label_id, "
                "event_id = excluded.event_id, confirmed = 0, keeper_id = excluded.keeper_id",
                [event_id])
        if action == "assign":
            # Say in the event itself how many items it took from another label.
            relabelled = db.execute(
                "SELECT COUNT(*) FROM event_items WHERE event_id = ? AND before_state = "
                "'labelled' AND before_label IS NOT after_label", [event_id]).fetchone()[0]
            if relabelled:
                details["relabelled"] = relabelled
                db.execute("UPDATE events SET details = ? WHERE id = ?",
                           [json.dumps(details), event_id])
        db.execute("UPDATE events SET item_count = ? WHERE id = ?", [count, event_id])
        if group_id is not None and run_id is not None:
            status = {"assign": "labelled", "noise": "noise", "mixed": "mixed",
                      "clear": "undecided"}.get(action)
            if status is not None:
                db.execute("UPDATE groups SET status = ?, label_id = ?, decided_event = ? "
                           "WHERE run_id = ? AND group_id = ?",
                           [status, label_id if action == "assign" else None, event_id, run_id,
                            group_id])
        if group_labels and run_id is not None:
            _set_groups(db, run_id, details["group_labels"], event_id)
    _backup_event_log(catalog)
    return event_id


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


def _backup_event_log(catalog: Catalog) -> None:
    """Keep the rolling event-log backup current (hostile: see curator.eventlog)."""
    if not catalog.db.conn.in_transaction:  # an outer transaction may still roll back
        from curator.eventlog import backup_event_log

        backup_event_log(catalog)


def _reverse(catalog: Catalog, target: int, annotator: str, redo: bool) -> dict[str, Any]:
    """Undo (or redo) one event: restore items that still hold the value it left (or found)."""
    with _bulk_write(catalog) as db:
        ev = db.execute("SELECT action, undone, run_id, group_id, details, source, label_id "
                        "FROM events WHERE id = ?", [target]).fetchone()
        if ev is None:
            raise UsageError(f"no event {target}")
        action, undone, run_id, group_id, details_json, source, ev_label = ev
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
        # Items still holding the value the event left (undo) or found (redo); any other was
        # changed by a later event and is never clobbered.
        frm, to = ("before", "after") if redo else ("after", "before")
        total = db.execute("SELECT COUNT(*) FROM event_items WHERE event_id = ?",
                           [target]).fetchone()[0]
        db.execute("CREATE TEMP TABLE IF NOT EXISTS event_restore (item_id INTEGER PRIMARY KEY, "
                   "state TEXT, label_id INTEGER, keeper INTEGER)")
        db.execute("DELETE FROM event_restore")
        db.execute(
            "INSERT INTO event_restore (item_id, state, label_id, keeper) "
            f"SELECT ei.item_id, ei.{to}_state, ei.{to}_label, ei.{to}_keeper FROM event_items ei "
            "LEFT JOIN item_labels l ON l.item_id = ei.item_id WHERE ei.event_id = ? "
            f"AND l.state IS ei.{frm}_state AND l.label_id IS ei.{frm}_label "
            f"AND l.keeper_id IS ei.{frm}_keeper ORDER BY ei.item_id", [target])
        db.execute(
            "INSERT INTO event_items (event_id, item_id, before_state, before_label, before_event,"
            " after_state, after_label, before_keeper, after_keeper) SELECT ?, r.item_id, "
            "l.state, l.label_id, l.event_id, r.state, r.label_id, l.keeper_id, r.keeper "
            "FROM event_restore r LEFT JOIN item_labels l "
            "ON l.item_id = r.item_id ORDER BY r.item_id", [new_event])
        restored = db.execute("SELECT COUNT(*) FROM event_restore").fetchone()[0]
        db.execute("DELETE FROM item_labels WHERE item_id IN "
                   "(SELECT item_id FROM event_restore WHERE state IS NULL)")
        db.execute(
            "INSERT INTO item_labels (item_id, state, label_id, event_id, confirmed, keeper_id) "
            "SELECT item_id, state, label_id, ?, 0, keeper FROM event_restore WHERE state IS NOT "
            "NULL ON CONFLICT (item_id) DO UPDATE SET state = excluded.state, "
            "label_id = excluded.label_id, event_id = excluded.event_id, confirmed = 0, "
            "keeper_id = excluded.keeper_id",
            [new_event])
        db.execute("DELETE FROM event_restore")
        skipped = total - restored
        details = json.loads(details_json or "{}")
        if group_id is not None and run_id is not None and "group_before" in details:
            if redo:
                status = {"assign": "labelled", "noise": "noise", "mixed": "mixed",
                          "clear": "undecided"}.get(action)
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
        db.execute("UPDATE events SET item_count = ?, details = ? WHERE id = ?",
                   [restored, json.dumps({"skipped": skipped}), new_event])
        db.execute("UPDATE events SET undone = ? WHERE id = ?", [0 if redo else 1, target])
    _backup_event_log(catalog)
    return {"event": new_event, "target": target, "restored": restored, "skipped": skipped,
            "action": "redo" if redo else "undo"}


def undo(catalog: Catalog, annotator: str, event_id: Optional[int] = None) -> UndoResult:
    """Undo this annotator's latest event of any kind (see `curator.history`)."""
    from curator.history import undo as undo_any

    result = undo_any(catalog, annotator, event_id)
    _backup_event_log(catalog)
    return result


def redo(catalog: Catalog, annotator: str) -> UndoResult:
    """Redo the event this annotator undid last (see `curator.history`)."""
    from curator.history import redo as redo_any

    result = redo_any(catalog, annotator)
    _backup_event_log(catalog)
    return result


def history(catalog: Catalog, item_id: Optional[int] = None, limit: int = 100) -> list[Event]:
    """Events newest first, or those that touched one item."""
    names = {r[0]: r[1] for r in catalog.db.execute("SELECT id, name FROM labels")}
    if item_id is None:
        rows = catalog.db.execute(
            "SELECT id, time, annotator, action, label_id, source, run_id, group_id, note, "
            "item_count, target, undone, details FROM events ORDER BY id DESC LIMIT ?",
            [limit]).fetchall()
    else:
        rows = catalog.db.execute(
            "SELECT e.id, e.time, e.annotator, e.action, COALESCE(ei.after_label, e.label_id), "
            "e.source, e.run_id, e.group_id, e.note, e.item_count, e.target, e.undone, e.details "
            "FROM event_items ei JOIN events e ON e.id = ei.event_id WHERE ei.item_id = ? "
            "ORDER BY e.id DESC LIMIT ?", [item_id, limit]).fetchall()
    return [Event(r[0], r[1], r[2], r[3], names.get(r[4]) if r[4] is not None else None, r[5],
                  r[6], r[7], r[8], r[9], r[10], bool(r[11]), json.loads(r[12] or "{}"))
            for r in rows]


def current_labels(catalog: Catalog, item_ids: Optional[Sequence[int]] = None) -> dict[int, tuple]:
    """item id -> (state, label id, event id) for items that have a current value."""
    if item_ids is None:
        return {r[0]: r[1:] for r in catalog.db.execute(
            "SELECT item_id, state, label_id, event_id FROM item_labels")}
    out = {}
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for r in catalog.db.execute(
                f"SELECT item_id, state, label_id, event_id FROM item_labels WHERE item_id IN "
                f"({','.join('?' * len(chunk))})", chunk):
            out[r[0]] = r[1:]
    return out


def item_badges(catalog: Catalog, item_ids: Sequence[int]) -> dict[int, tuple]:
    """id -> (state, label name or '', colour or None) for the items that carry a decision."""
    names = {r[0]: (r[1], r[2]) for r in catalog.db.execute("SELECT id, name, colour FROM labels")}
    out = {}
    for item_id, (state, label_id, _event) in current_labels(catalog, item_ids).items():
        name, colour = names.get(label_id, ("", None)) if label_id is not None else ("", None)
        out[item_id] = (state, name, colour)
    return out


def merge_labels(catalog: Catalog, sources: Sequence[str], into: str,
                 annotator: str = "") -> dict[str, Any]:
    """Move every item of the source labels to `into` and retire the sources: one event, whose
    undo gives the items and the labels back."""
    target = find_label(catalog, into)
    src = [find_label(catalog, s) for s in sources]
    if any(s.id == target.id for s in src):
        raise UsageError("a label cannot be merged into itself")
    with _bulk_write(catalog) as db:
        ids = [r[0] for s in src for r in db.execute(
            "SELECT item_id FROM item_labels WHERE label_id = ? AND state = 'labelled'", [s.id])]
        children = {r[0]: r[1] for s in src for r in db.execute(
            "SELECT id, parent_id FROM labels WHERE parent_id = ? AND removed_at IS NULL",
            [s.id])}
        change = {"sources": [s.id for s in src], "into": target.id,
                  "children": {str(k): v for k, v in children.items()}}
        if ids:
            event = apply_event(catalog, "assign", ids, label_id=target.id, source="manual",
                                annotator=annotator, note=f"merge {', '.join(s.path for s in src)}"
                                f" into {target.path}", details={"label_merge": change})
        else:
            event = _taxonomy_event(db, annotator, "label-merge", target.id, change)
        retire_merged(db, change)
    return {"moved": len(ids), "event": event, "into": target.path}


def retire_merged(db: Any, change: dict[str, Any]) -> None:
    """Retire the sources of a label merge and hang their children under the target."""
    for sid in change["sources"]:
        db.execute("UPDATE labels SET removed_at = ?, merged_into = ? WHERE id = ?",
                   [utcnow(), change["into"], sid])
    for child in change["children"]:
        db.execute("UPDATE labels SET parent_id = ? WHERE id = ?", [change["into"], int(child)])


def retire_removed(db: Any, change: dict[str, Any]) -> None:
    """Retire a removed label and hang its children under its parent."""
    db.execute("UPDATE labels SET removed_at = ? WHERE id = ?", [utcnow(), change["label"]])
    for child in change["children"]:
        db.execute("UPDATE labels SET parent_id = ? WHERE id = ?", [change["parent"], int(child)])


def remove_label(catalog: Catalog, name: str, force: bool = False,
                 annotator: str = "") -> dict[str, Any]:
    """Retire a label; items that carry it are cleared only with force. One undoable event."""
    lab = find_label(catalog, name)
    ids = [r[0] for r in catalog.db.execute(
        "SELECT item_id FROM item_labels WHERE label_id = ?", [lab.id])]
    if ids and not force:
        raise UsageError(f"label {lab.path!r} is on {len(ids)} item(s); merge it into another "
                         "label, or remove it and clear them (undoable)",
                         hint="pass --force to clear them")
    with _bulk_write(catalog) as db:
        children = [r[0] for r in db.execute(
            "SELECT id FROM labels WHERE parent_id = ? AND removed_at IS NULL", [lab.id])]
        change = {"label": lab.id, "parent": lab.parent_id, "children": children}
        if ids:
            event = apply_event(catalog, "clear", ids, source="manual", annotator=annotator,
                                note=f"remove label {lab.path}", details={"label_remove": change})
        else:
            event = _taxonomy_event(db, annotator, "label-remove", lab.id, change)
        retire_removed(db, change)
    return {"cleared": len(ids), "event": event}


def import_taxonomy(catalog: Catalog, entries: Sequence[dict[str, Any]],
                    annotator: str = "") -> list[Label]:
    """Add labels from dicts (name, parent, colour, hotkey, description); existing ones are kept.

    All or nothing: every entry is checked first and all are added in one transaction, so a bad
    entry anywhere leaves the taxonomy as it was.
    """
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise UsageError(f"entry {n} is not a label (expected an object with a name)")
        try:
            check_name(str(entry.get("name", "")))
            check_colour(entry.get("colour"))
            check_hotkey(entry.get("hotkey"))
        except UsageError as exc:
            raise UsageError(f"entry {n}: {exc}; nothing was imported") from exc
    with catalog.write():
        return _import_entries(catalog, entries, annotator)


def _import_entries(catalog: Catalog, entries: Sequence[dict[str, Any]],
                    annotator: str) -> list[Label]:
    added = []
    existing = {lab.name for lab in labels(catalog, with_counts=False)}
    pending = list(entries)
    # Parents first: keep passing over the list until nothing more can be added.
    for _ in range(len(pending) + 1):
        rest = []
        for entry in pending:
            name = check_name(str(entry.get("name", "")))
            parent = entry.get("parent") or None
            if name in existing:
                continue
            if parent and parent not in existing:
                rest.append(entry)
                continue
            added.append(add_label(catalog, name, parent=parent, colour=entry.get("colour"),
                                   hotkey=entry.get("hotkey") or _free_hotkey(catalog),
                                   description=entry.get("description") or "",
                                   annotator=annotator))
            existing.add(name)
        if not rest or len(rest) == len(pending):
            pending = rest
            break
        pending = rest
    if pending:
        raise UsageError(f"label {pending[0].get('name')!r} names a parent that does not exist: "
                         f"{pending[0].get('parent')!r}")
    return added


def _free_hotkey(catalog: Catalog) -> Optional[str]:
    """The first digit (1-9, 0), then letter, that no live label uses and triage does not keep."""
    taken = {r[0] for r in catalog.db.execute(
        "SELECT hotkey FROM labels WHERE removed_at IS NULL AND hotkey IS NOT NULL")}
    for key in [*"1234567890", *"abcdefghilmnopqrstuvwyz"]:
        if key not in taken and key not in RESERVED_HOTKEYS:
            return key
    return None


def export_taxonomy(catalog: Catalog) -> list[dict[str, Any]]:
    by_id = {lab.id: lab for lab in labels(catalog, with_counts=False)}
    return [{"name": lab.name, "parent": by_id[lab.parent_id].name if lab.parent_id in by_id
             else None, "colour": lab.colour, "hotkey": lab.hotkey,
             "description": lab.description, "path": lab.path} for lab in by_id.values()]
