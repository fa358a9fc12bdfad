"""Undo and redo of every user edit, and what each event did in words.

Item events (assign, clear, noise, mixed, confirm) restore per-item values (`curator.labels`);
group events (split, merge) move a run's assignments back; taxonomy events (label-add,
label-update, label-merge, label-remove) restore the label rows. Undo and redo pick the
annotator's next event inside the write transaction, so two processes of one annotator each
undo a different event, in order, and never report "already undone" for a race they lost.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

from curator.catalog import Catalog, utcnow
from curator.errors import UsageError
from curator.events import backup_after, event_write, reverse_items
from curator.groups import merge, split
from curator.labels import retire_merged, retire_removed
from curator.tallies import recount_groups

log = logging.getLogger(__name__)

ITEM_ACTIONS = ("assign", "clear", "noise", "mixed", "confirm", "duplicate")
GROUP_ACTIONS = ("split", "merge")
TAXONOMY_ACTIONS = ("label-add", "label-update", "label-merge", "label-remove")
UNDOABLE = ITEM_ACTIONS + GROUP_ACTIONS + TAXONOMY_ACTIONS
_MARKS = ",".join("?" * len(UNDOABLE))


# --- words --------------------------------------------------------------------------------------


def _items(n: int) -> str:
    return f"{n} item" + ("" if n == 1 else "s")


def _names(db: Any) -> dict[int, str]:
    return dict(db.execute("SELECT id, name FROM labels").fetchall())


def describe(db: Any, event_id: int, names: Optional[dict[int, str]] = None) -> str:
    """What an event did, e.g. "label 'red disc' on 100 items of group 3 (run 2), event 12"."""
    row = db.execute("SELECT action, label_id, run_id, group_id, item_count, target, details "
                     "FROM events WHERE id = ?", [event_id]).fetchone()
    if row is None:
        return f"event {event_id}"
    names = names if names is not None else _names(db)
    action, label_id, run_id, group_id, count, target, details_json = row
    if action in ("undo", "redo"):
        return f"{action} of {describe(db, target, names)}"
    return f"{_what(action, label_id, run_id, group_id, count, json.loads(details_json or '{}'), names)}, event {event_id}"  # noqa: E501


def _what(action: str, label_id: Optional[int], run_id: Optional[int], group_id: Optional[int],
          count: int, d: dict[str, Any], names: dict[int, str]) -> str:
    def name(i: Any) -> str:
        return f"'{names.get(i, i)}'"

    where = f" of group {group_id} (run {run_id})" if group_id is not None else ""
    if "label_merge" in d or action == "label-merge":
        m = d.get("label_merge", d)
        moved = f" ({_items(count)} moved)" if action == "assign" else ""
        return f"merge of label {', '.join(name(s) for s in m['sources'])} into " \
               f"{name(m['into'])}{moved}"
    if "label_remove" in d or action == "label-remove":
        m = d.get("label_remove", d)
        cleared = f" (cleared from {_items(count)})" if action == "clear" else ""
        return f"removal of label {name(m['label'])}{cleared}"
    if action == "assign":
        relabel = d.get("relabelled")
        return (f"label {name(label_id)} on {_items(count)}{where}"
                + (f", relabelling {relabel} that carried another label" if relabel else ""))
    if action in ("noise", "mixed"):
        return f"{action} on {_items(count)}{where}"
    if action == "duplicate":
        return f"{_items(count)} marked as duplicates of the copies kept"
    if action == "clear":
        return f"clear of {_items(count)}{where}"
    if action == "confirm":
        return f"confirmation of {_items(count)}"
    if action == "split":
        return (f"split of group {d['parent']} (run {run_id}) into groups "
                f"{', '.join(map(str, d['children']))}")
    if action == "merge":
        return (f"merge of groups {', '.join(map(str, d['sources']))} (run {run_id}) into "
                f"group {d['into']}")
    if action == "label-add":
        return f"new label {name(label_id)}"
    if action == "label-update":
        return _update_words(d, names.get(label_id, str(label_id)))
    return action


def _update_words(d: dict[str, Any], current: str) -> str:
    before, after = d.get("before", {}), d.get("after", {})
    parts = []
    if "name" in after:
        parts.append(f"rename of label '{before.get('name')}' to '{after['name']}'")
    if "colour" in after:
        parts.append(f"colour {after['colour']} for label '{current}'")
    if "hotkey" in after:
        parts.append(f"hotkey {after['hotkey'] or 'none'} for label '{current}' (was "
                     f"{before.get('hotkey') or 'none'})")
    if "description" in after:
        parts.append(f"description of label '{current}'")
    if "parent_id" in after:
        parts.append(f"new parent for label '{current}'")
    return "; ".join(parts) or f"edit of label '{current}'"


# --- undo and redo ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UndoResult:
    """What an undo or redo did.

    Attributes:
        event: the new undo (or redo) event.
        target: the event it reversed.
        restored: items put back; skipped: items left as they are (changed since).
        action: "undo" or "redo".
        text: what happened in words ("undone: label 'cat' on 12 items, event 7").
    """

    event: int
    target: int
    restored: int
    skipped: int
    action: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def undo(catalog: Catalog, annotator: str, event_id: Optional[int] = None) -> UndoResult:
    """Undo this annotator's latest event (or a given one; undoing an undo event redoes).

    Returns:
        What was undone (`UndoResult.text`: "undone: ...").

    Raises:
        UsageError: nothing to undo, or the event cannot be undone now (the message says why).
    """
    who = annotator or "unknown"
    with event_write(catalog) as db:
        redo_it = False
        if event_id is None:
            row = db.execute(f"SELECT id FROM events WHERE annotator = ? AND undone = 0 AND "
                             f"action IN ({_MARKS}) ORDER BY id DESC LIMIT 1",
                             [who, *UNDOABLE]).fetchone()
            if row is None:
                raise UsageError(f"nothing to undo for annotator {who!r}")
            target = row[0]
        else:
            row = db.execute("SELECT action, target FROM events WHERE id = ?",
                             [event_id]).fetchone()
            if row is None:
                raise UsageError(f"no event {event_id}", hint="see `curator history`")
            target = row[1] if row[0] in ("undo", "redo") else event_id
            redo_it = row[0] == "undo"
        result = _reverse_any(db, target, who, redo_it)
    backup_after(catalog)
    return result


def redo(catalog: Catalog, annotator: str) -> UndoResult:
    """Redo the event this annotator undid last, unless they have made a new change since."""
    who = annotator or "unknown"
    with event_write(catalog) as db:
        row = db.execute(
            "SELECT u.id, u.target FROM events u JOIN events t ON t.id = u.target WHERE "
            "u.annotator = ? AND u.action = 'undo' AND t.undone = 1 ORDER BY u.id DESC LIMIT 1",
            [who]).fetchone()
        if row is None:
            raise UsageError(f"nothing to redo for annotator {who!r}")
        later = db.execute(f"SELECT 1 FROM events WHERE annotator = ? AND id > ? AND action IN "
                           f"({_MARKS}) LIMIT 1", [who, row[0], *UNDOABLE]).fetchone()
        if later:
            raise UsageError("nothing to redo: a new change was made after the last undo")
        result = _reverse_any(db, row[1], who, True)
    backup_after(catalog)
    return result


def peek(catalog: Catalog, annotator: str) -> dict[str, Optional[str]]:
    """What undo and redo would do now for this annotator (for the Edit menu), or None."""
    who = annotator or "unknown"
    db = catalog.db
    names = _names(db)
    row = db.execute(f"SELECT id FROM events WHERE annotator = ? AND undone = 0 AND action IN "
                     f"({_MARKS}) ORDER BY id DESC LIMIT 1", [who, *UNDOABLE]).fetchone()
    undo_text = describe(db, row[0], names) if row else None
    row = db.execute(
        "SELECT u.id, u.target FROM events u JOIN events t ON t.id = u.target WHERE "
        "u.annotator = ? AND u.action = 'undo' AND t.undone = 1 ORDER BY u.id DESC LIMIT 1",
        [who]).fetchone()
    redo_text = None
    if row is not None and not db.execute(
            f"SELECT 1 FROM events WHERE annotator = ? AND id > ? AND action IN ({_MARKS}) "
            "LIMIT 1", [who, row[0], *UNDOABLE]).fetchone():
        redo_text = describe(db, row[1], names)
    return {"undo": undo_text, "redo": redo_text}


def _reverse_any(db: Any, target: int, who: str, redo: bool) -> UndoResult:
    ev = db.execute("SELECT action, undone, run_id, details FROM events WHERE id = ?",
                    [target]).fetchone()
    if ev is None:
        raise UsageError(f"no event {target}")
    action, undone, run_id, details_json = ev
    if action not in UNDOABLE:
        raise UsageError(f"event {target} ({action}) cannot be undone; pick the original event")
    if redo and not undone:
        raise UsageError(f"event {target} is not undone; nothing to redo")
    if not redo and undone:
        raise UsageError(f"event {target} is already undone")
    details = json.loads(details_json or "{}")
    text = describe(db, target)
    try:
        if action in ITEM_ACTIONS:
            result = reverse_items(db, target, who, redo)
            if "label_merge" in details:
                _merge_taxonomy(db, details["label_merge"], redo)
            if "label_remove" in details:
                _remove_taxonomy(db, details["label_remove"], redo)
        else:
            if action in GROUP_ACTIONS:
                _reverse_group(db, action, run_id, details, redo)
                touched = ([details["parent"], *details["children"]] if action == "split"
                           else [details["into"], *details["sources"]])
                recount_groups(db, run_id, touched)
            else:
                _reverse_taxonomy(db, action, target, details, redo)
            new = _mark(db, target, who, redo)
            result = {"event": new, "target": target, "restored": 0, "skipped": 0,
                      "action": "redo" if redo else "undo"}
    except sqlite3.IntegrityError as exc:
        raise UsageError(f"cannot {'redo' if redo else 'undo'} {text}: a live label now has "
                         f"the same name or hotkey ({exc}); rename it first") from exc
    return UndoResult(**result, text=("redone: " if redo else "undone: ") + text)


def _mark(db: Any, target: int, who: str, redo: bool) -> int:
    cur = db.execute(
        "INSERT INTO events (time, annotator, action, label_id, source, run_id, group_id, note, "
        "item_count, target, details) SELECT ?, ?, ?, label_id, source, run_id, group_id, '', "
        "0, ?, '{}' FROM events WHERE id = ?",
        [utcnow(), who, "redo" if redo else "undo", target, target])
    db.execute("UPDATE events SET undone = ? WHERE id = ?", [0 if redo else 1, target])
    return int(cur.lastrowid)


# --- groups -------------------------------------------------------------------------------------


def record_group_event(db: Any, action: str, run_id: int, group_id: int,
                       details: dict[str, Any], annotator: str, note: str = "") -> int:
    """Record a split or a merge (inside the transaction that made it)."""
    cur = db.execute(
        "INSERT INTO events (time, annotator, action, source, run_id, group_id, note, item_count,"
        " details) VALUES (?, ?, ?, 'group', ?, ?, ?, ?, ?)",
        [utcnow(), annotator or "unknown", action, run_id, group_id, note,
         sum(len(v) for v in details["members"].values()), json.dumps(details)])
    return int(cur.lastrowid)


def _state(db: Any, run_id: int, group_id: int) -> Optional[str]:
    row = db.execute("SELECT state FROM groups WHERE run_id = ? AND group_id = ?",
                     [run_id, group_id]).fetchone()
    return row[0] if row else None


def _assign(db: Any, run_id: int, members: dict[str, list[int]]) -> None:
    for group_id, items in members.items():
        db.conn.executemany("UPDATE assignments SET group_id = ? WHERE run_id = ? AND item_id = ?",
                            [(int(group_id), run_id, int(i)) for i in items])


def _reverse_group(db: Any, action: str, run_id: int, d: dict[str, Any], redo: bool) -> None:
    if action == "split":
        parent, children = d["parent"], d["children"]
        if redo:
            if _state(db, run_id, parent) != "active":
                raise UsageError(f"group {parent} of run {run_id} changed since; cannot redo")
            _assign(db, run_id, d["members"])
            _set_state(db, run_id, children, "active", parent)
            _set_state(db, run_id, [parent], "split", None, keep_parent=True)
            return
        busy = [c for c in children if _state(db, run_id, c) != "active"]
        if busy:
            raise UsageError(f"group {busy[0]} of run {run_id} was split or merged since; undo "
                             "that first")
        _assign(db, run_id, {str(parent): [i for v in d["members"].values() for i in v]})
        _set_state(db, run_id, children, "merged", parent)
        _set_state(db, run_id, [parent], "active", None, keep_parent=True)
        return
    into, sources = d["into"], d["sources"]
    if redo:
        _assign(db, run_id, {str(into): [i for v in d["members"].values() for i in v]})
        _set_state(db, run_id, sources, "merged", into)
        _set_state(db, run_id, [into], "active", None, keep_parent=True)
        return
    if _state(db, run_id, into) != "active":
        raise UsageError(f"group {into} of run {run_id} was split or merged since; undo that "
                         "first")
    _assign(db, run_id, d["members"])
    for s in sources:
        db.execute("UPDATE groups SET state = 'active', parent = ? WHERE run_id = ? AND "
                   "group_id = ?", [d["parents"].get(str(s)), run_id, s])
    # The merged group is split back into its sources.
    _set_state(db, run_id, [into], "split", None, keep_parent=True)


def _set_state(db: Any, run_id: int, groups: list[int], state: str, parent: Optional[int],
               keep_parent: bool = False) -> None:
    for g in groups:
        if keep_parent:
            db.execute("UPDATE groups SET state = ? WHERE run_id = ? AND group_id = ?",
                       [state, run_id, g])
        else:
            db.execute("UPDATE groups SET state = ?, parent = ? WHERE run_id = ? AND "
                       "group_id = ?", [state, parent, run_id, g])


# --- taxonomy -----------------------------------------------------------------------------------


def _reverse_taxonomy(db: Any, action: str, target: int, d: dict[str, Any], redo: bool) -> None:
    label_id = db.execute("SELECT label_id FROM events WHERE id = ?", [target]).fetchone()[0]
    if action == "label-add":
        if redo:
            db.execute("UPDATE labels SET removed_at = NULL WHERE id = ?", [label_id])
            return
        used = db.execute("SELECT COUNT(*) FROM item_labels WHERE label_id = ?",
                          [label_id]).fetchone()[0]
        if used:
            raise UsageError(f"label {label_id} is on {_items(used)} now; undo or clear those "
                             "labels first")
        db.execute("UPDATE labels SET removed_at = ? WHERE id = ?", [utcnow(), label_id])
    elif action == "label-update":
        values = d["after"] if redo else d["before"]
        sets = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE labels SET {sets} WHERE id = ?", [*values.values(), label_id])
    elif action == "label-merge":
        _merge_taxonomy(db, d, redo)
    elif action == "label-remove":
        _remove_taxonomy(db, d, redo)


def _merge_taxonomy(db: Any, change: dict[str, Any], redo: bool) -> None:
    if redo:
        retire_merged(db, change)
        return
    for sid in change["sources"]:
        db.execute("UPDATE labels SET removed_at = NULL, merged_into = NULL WHERE id = ?", [sid])
    for child, parent in change["children"].items():
        db.execute("UPDATE labels SET parent_id = ? WHERE id = ?", [parent, int(child)])


def _remove_taxonomy(db: Any, change: dict[str, Any], redo: bool) -> None:
    if redo:
        retire_removed(db, change)
        return
    db.execute("UPDATE labels SET removed_at = NULL WHERE id = ?", [change["label"]])
    for child in change["children"]:
        db.execute("UPDATE labels SET parent_id = ? WHERE id = ?", [change["label"], int(child)])


def _members_of(db: Any, run_id: int, groups: list[int]) -> dict[str, list[int]]:
    return {str(g): [r[0] for r in db.execute(
        "SELECT item_id FROM assignments WHERE run_id = ? AND group_id = ? ORDER BY item_id",
        [run_id, g])] for g in groups}


def split_group(catalog: Catalog, run_id: int, group_id: int, k: int = 2, seed: int = 0,
                annotator: str = "", partition: Optional[dict[int, int]] = None,
                note: str = "") -> tuple[list[int], int]:
    """Split a group (`curator.groups.split`) as one undoable event; returns (new ids, event)."""
    with catalog.write() as db:
        children = split(catalog, run_id, group_id, k, seed, partition=partition)
        details = {"parent": group_id, "children": children,
                   "members": _members_of(db, run_id, children)}
        event = record_group_event(db, "split", run_id, group_id, details, annotator, note)
        recount_groups(db, run_id, [group_id, *children])
    return children, event


def merge_groups(catalog: Catalog, run_id: int, group_ids: list[int], annotator: str = "",
                 note: str = "") -> tuple[int, int]:
    """Merge groups (`curator.groups.merge`) as one undoable event; returns (new id, event)."""
    with catalog.write() as db:
        parents = {str(g): db.execute("SELECT parent FROM groups WHERE run_id = ? AND "
                                      "group_id = ?", [run_id, g]).fetchone()
                   for g in group_ids}
        members = _members_of(db, run_id, list(group_ids))
        into = merge(catalog, run_id, group_ids)
        details = {"into": into, "sources": list(group_ids), "members": members,
                   "parents": {k: (v[0] if v else None) for k, v in parents.items()}}
        event = record_group_event(db, "merge", run_id, into, details, annotator, note)
        recount_groups(db, run_id, [into, *group_ids])
    return into, event


# --- carrying splits and merges over to a new run ------------------------------------------------

# A group of the new run "is" an edited group of the old run when they share this share of
# their members both ways; only then is the user's split or merge applied again.
SAME_GROUP = 0.9


def _members(catalog: Catalog, run_id: int, group_ids: Sequence[int]) -> dict[int, int]:
    """item id -> group id for the members of some groups of a run."""
    out: dict[int, int] = {}
    for g in group_ids:
        for (item,) in catalog.db.execute(
                "SELECT item_id FROM assignments WHERE run_id = ? AND group_id = ?", [run_id, g]):
            out[item] = g
    return out


def _split_leaves(catalog: Catalog, run_id: int, group_id: int) -> list[int]:
    """The groups a split group ended as: its children, their own splits followed down."""
    leaves, todo = [], [group_id]
    while todo:
        g = todo.pop()
        children = catalog.db.execute(
            "SELECT group_id, state FROM groups WHERE run_id = ? AND parent = ? AND state != "
            "'merged'", [run_id, g]).fetchall()
        if not children and g != group_id:
            leaves.append(g)
        todo.extend(c for c, _ in children)
    return leaves


def _overlaps(catalog: Catalog, old: dict[int, int], new_run: int) -> dict[int, int]:
    """new group id -> how many of the `old` items it holds."""
    counts: dict[int, int] = {}
    ids = list(old)
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for g, n in catalog.db.execute(
                f"SELECT group_id, COUNT(*) FROM assignments WHERE run_id = ? AND item_id IN "
                f"({','.join('?' * len(chunk))}) GROUP BY group_id", [new_run, *chunk]):
            counts[g] = counts.get(g, 0) + n
    return counts


def carry_over(catalog: Catalog, old_run: int, new_run: int,
               annotator: str = "") -> dict[str, list]:
    """Apply the splits and merges made on `old_run` to the groups of `new_run` that reappear.

    A split group whose members form one group of the new run (both ways at least SAME_GROUP)
    is split the same way; groups of the new run that each lie within one merged group of the
    old run (and together cover it) are merged. Each is an undoable event of `annotator`.
    Returns the new group ids made.
    """
    done: dict[str, list] = {"splits": [], "merges": []}
    active = dict(catalog.db.execute(
        "SELECT group_id, size FROM groups WHERE run_id = ? AND state = 'active'", [new_run]))
    edits = catalog.db.execute(
        "SELECT action, group_id, details FROM events WHERE run_id = ? AND action IN "
        "('split', 'merge') AND undone = 0 ORDER BY id", [old_run]).fetchall()
    split_parents = {g for a, g, _ in edits if a == "split"}
    note = f"carried over from run {old_run}"
    for action, group_id, _details in edits:
        if action != "split":
            continue
        parent = catalog.db.execute("SELECT parent FROM groups WHERE run_id = ? AND group_id = ?",
                                    [old_run, group_id]).fetchone()
        if parent and parent[0] in split_parents:
            continue  # a split of a split travels with its top split
        old = _members(catalog, old_run, _split_leaves(catalog, old_run, group_id))
        target = _same_group(catalog, old, new_run, active)
        if len(set(old.values())) < 2 or target is None:
            continue
        parts = sorted(set(old.values()))
        index = {p: i for i, p in enumerate(parts)}
        largest = max(parts, key=lambda p: sum(1 for v in old.values() if v == p))
        members = _members(catalog, new_run, [target])
        partition = {i: index[old.get(i, largest)] for i in members}
        new_ids, _ = split_group(catalog, new_run, target, len(parts), annotator=annotator,
                                 partition=partition, note=note)
        active.pop(target, None)
        done["splits"].append(new_ids)
    for action, group_id, _details in edits:
        if action != "merge" or catalog.db.execute(
                "SELECT state FROM groups WHERE run_id = ? AND group_id = ?",
                [old_run, group_id]).fetchone()[0] != "active":
            continue
        old = _members(catalog, old_run, [group_id])
        hits = _overlaps(catalog, old, new_run)
        inside = sorted(t for t, n in hits.items() if t in active and n >= SAME_GROUP * active[t])
        if len(inside) < 2 or sum(hits[t] for t in inside) < SAME_GROUP * len(old):
            continue
        spaces = {r[0] for r in catalog.db.execute(
            f"SELECT DISTINCT space FROM groups WHERE run_id = ? AND group_id IN "
            f"({','.join('?' * len(inside))})", [new_run, *inside])}
        if len(spaces) != 1:
            continue
        new_id, _ = merge_groups(catalog, new_run, inside, annotator=annotator, note=note)
        for t in inside:
            active.pop(t, None)
        done["merges"].append(new_id)
    if done["splits"] or done["merges"]:
        log.info("run %s: carried over %d split(s) and %d merge(s) from run %s", new_run,
                 len(done["splits"]), len(done["merges"]), old_run)
    return done


def _same_group(catalog: Catalog, old: dict[int, int], new_run: int,
                active: dict[int, int]) -> Optional[int]:
    """The active group of `new_run` that holds the same items as `old`, if there is one."""
    hits = _overlaps(catalog, old, new_run)
    if not hits:
        return None
    target, n = max(hits.items(), key=lambda kv: kv[1])
    size = active.get(target, 0)
    if not size or n < SAME_GROUP * len(old) or n < SAME_GROUP * size:
        return None
    return target
