"""Labels you can trust: the taxonomy, label merges and removals, item history, current labels.

Every change of an item's label is an event (`curator.events` records and applies it, with each
touched item's value before and after); undo and redo of any event live in `curator.history`,
above this module. Labels belong to items, so rescans, re-embeds and re-clusters never touch
them.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypedDict

from curator.catalog import Catalog, utcnow
from curator.errors import UsageError
from curator.events import ACTIONS, SOURCES, apply_event, backup_after, event_write
from curator.migrations import STATE_CODES

log = logging.getLogger(__name__)

__all__ = ["ACTIONS", "SOURCES", "Event", "Label", "add_label", "apply_event", "current_labels",
           "export_taxonomy", "find_label", "history", "import_taxonomy", "item_badges",
           "label_paths", "labels", "merge_labels", "remove_label", "update_label"]

# Keys the desktop app keeps for triage itself: j/k next and previous, x exclude, space preview.
RESERVED_HOTKEYS = frozenset({"j", "k", "x", " ", "space"})
_HOTKEY = re.compile(r"^(?:[0-9a-z]|F(?:[1-9]|1[0-2]))$")
_CHUNK = 900


class LabelMerge(TypedDict):
    """What a label merge did: the items moved, its event (undo gives them back), the target."""

    moved: int
    event: int
    into: str


class LabelRemoval(TypedDict):
    """What removing a label did: the items it cleared and its event."""

    cleared: int
    event: int


class TaxonomyEntry(TypedDict):
    """One label as `labels export` writes it and `labels import` reads it."""

    name: str
    parent: Optional[str]
    colour: Optional[str]
    hotkey: Optional[str]
    description: str
    path: str


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
            "SELECT label_id, COUNT(*) FROM item_states WHERE code = ? GROUP BY label_id",
            [STATE_CODES["labelled"]]).fetchall())
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


# An item's events, newest first: from its newest event (its `item_states` row keeps it, also
# when it was left without a value) back along each event row's `before_event`. Every step is a
# primary-key lookup, so no index of the event rows by item is needed.
_ITEM_HISTORY = (
    "WITH RECURSIVE chain (event_id, step) AS (SELECT (SELECT event_id FROM item_states "
    "WHERE item_id = :item), 0 UNION ALL SELECT ei.before_event, chain.step + 1 FROM chain JOIN "
    "event_items ei ON ei.event_id = chain.event_id AND ei.item_id = :item "
    "WHERE ei.before_event < chain.event_id AND chain.step < :limit) "
    "SELECT e.id, e.time, e.annotator, e.action, COALESCE(ei.after_label, e.label_id), "
    "e.source, e.run_id, e.group_id, e.note, e.item_count, e.target, e.undone, e.details "
    "FROM chain JOIN event_items ei ON ei.event_id = chain.event_id AND ei.item_id = :item "
    "JOIN events e ON e.id = ei.event_id ORDER BY e.id DESC LIMIT :limit")


def history(catalog: Catalog, item_id: Optional[int] = None, limit: int = 100) -> list[Event]:
    """Events newest first, or those that touched one item."""
    names = {r[0]: r[1] for r in catalog.db.execute("SELECT id, name FROM labels")}
    if item_id is None:
        rows = catalog.db.execute(
            "SELECT id, time, annotator, action, label_id, source, run_id, group_id, note, "
            "item_count, target, undone, details FROM events ORDER BY id DESC LIMIT ?",
            [limit]).fetchall()
    else:
        rows = catalog.db.execute(_ITEM_HISTORY, {"item": item_id, "limit": limit}).fetchall()
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
                 annotator: str = "") -> LabelMerge:
    """Move every item of the source labels to `into` and retire the sources: one event, whose
    undo gives the items and the labels back."""
    target = find_label(catalog, into)
    src = [find_label(catalog, s) for s in sources]
    if any(s.id == target.id for s in src):
        raise UsageError("a label cannot be merged into itself")
    with event_write(catalog) as db:
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
    backup_after(catalog)
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
                 annotator: str = "") -> LabelRemoval:
    """Retire a label; items that carry it are cleared only with force. One undoable event."""
    lab = find_label(catalog, name)
    ids = [r[0] for r in catalog.db.execute(
        "SELECT item_id FROM item_labels WHERE label_id = ?", [lab.id])]
    if ids and not force:
        raise UsageError(f"label {lab.path!r} is on {len(ids)} item(s); merge it into another "
                         "label, or remove it and clear them (undoable)",
                         hint="remove it with force to clear them", option="force")
    with event_write(catalog) as db:
        children = [r[0] for r in db.execute(
            "SELECT id FROM labels WHERE parent_id = ? AND removed_at IS NULL", [lab.id])]
        change = {"label": lab.id, "parent": lab.parent_id, "children": children}
        if ids:
            event = apply_event(catalog, "clear", ids, source="manual", annotator=annotator,
                                note=f"remove label {lab.path}", details={"label_remove": change})
        else:
            event = _taxonomy_event(db, annotator, "label-remove", lab.id, change)
        retire_removed(db, change)
    backup_after(catalog)
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


def export_taxonomy(catalog: Catalog) -> list[TaxonomyEntry]:
    by_id = {lab.id: lab for lab in labels(catalog, with_counts=False)}
    return [{"name": lab.name, "parent": by_id[lab.parent_id].name if lab.parent_id in by_id
             else None, "colour": lab.colour, "hotkey": lab.hotkey,
             "description": lab.description, "path": lab.path} for lab in by_id.values()]
