"""The catalog's schema as recorded migrations, and the refusal of catalogs from a newer Curator.

Each migration runs once, in order, inside one transaction, and is recorded in `_migrations`.
Never edit or renumber a released migration: append a new one to `MIGRATIONS` (helpers prefix
its name with their area, e.g. "008_perf_xyz").
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from curator import __version__
from curator.connection import transaction, utcnow

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)


# --- migrations -------------------------------------------------------------------------------
# Each migration runs once, in order, inside one transaction, and is recorded in `_migrations`.
# Never edit a released migration: add a new one.


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(
        """CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            root TEXT NOT NULL UNIQUE,
            added_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            source_id INTEGER NOT NULL REFERENCES sources(id),
            path TEXT NOT NULL,
            modality TEXT,
            format TEXT,
            size INTEGER,
            mtime REAL,
            mtime_ns INTEGER,
            content_hash TEXT,
            width INTEGER,
            height INTEGER,
            duration REAL,
            fps REAL,
            sample_rate INTEGER,
            channels INTEGER,
            codec TEXT,
            status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
            error TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            UNIQUE (source_id, path)
        )"""
    )
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            app_version TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX items_status ON items (status)")


def _m002_item_details_and_run_owner(db: sqlite_utils.Database) -> None:
    # Richer media facts, a content version that later stages compare against to find stale
    # work, and the owner of a run so an interrupted one can be told from a live one.
    items = db["items"]
    for name, kind in [
        ("mode", str),
        ("frames", int),
        ("orientation", int),
        ("has_audio", int),
        ("version", int),
        ("changed_at", str),
    ]:
        items.add_column(name, kind)
    db.execute("UPDATE items SET version = 1 WHERE version IS NULL")
    db.execute("CREATE INDEX items_hash ON items (content_hash)")
    db.execute("CREATE INDEX items_modality ON items (modality, status)")
    runs = db["runs"]
    for name, kind in [("error", str), ("pid", int), ("host", str)]:
        runs.add_column(name, kind)


def _m003_embeddings(db: sqlite_utils.Database) -> None:
    # Which vector of which space each item has, where it lives, and for which content version.
    db.execute(
        """CREATE TABLE spaces (
            space TEXT PRIMARY KEY,
            embedder TEXT NOT NULL,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            modalities TEXT NOT NULL,
            preprocess TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            folder TEXT NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE embeddings (
            item_id INTEGER NOT NULL REFERENCES items(id),
            space TEXT NOT NULL REFERENCES spaces(space),
            shard TEXT NOT NULL,
            row INTEGER NOT NULL,
            frames_shard TEXT,
            frames_row INTEGER,
            frames_count INTEGER,
            item_version INTEGER NOT NULL,
            content_hash TEXT,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (item_id, space)
        )"""
    )
    db.execute("CREATE INDEX embeddings_space ON embeddings (space, item_id)")




def _m004_groups(db: sqlite_utils.Database) -> None:
    # Groups belong to a clustering run; assignments say which group of the run holds an item.
    db.execute(
        """CREATE TABLE clusterings (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            space TEXT NOT NULL,
            part TEXT NOT NULL DEFAULT '',
            method TEXT NOT NULL,
            n_groups INTEGER NOT NULL,
            n_items INTEGER NOT NULL DEFAULT 0,
            group_offset INTEGER NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, space, part)
        )"""
    )
    db.execute(
        """CREATE TABLE groups (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            group_id INTEGER NOT NULL,
            space TEXT NOT NULL,
            size INTEGER NOT NULL,
            cohesion REAL,
            impurity REAL,
            topic INTEGER,
            representatives TEXT NOT NULL DEFAULT '[]',
            boundary TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'split', 'merged')),
            parent INTEGER,
            status TEXT NOT NULL DEFAULT 'undecided'
                CHECK (status IN ('undecided', 'labelled', 'noise', 'mixed')),
            label_id INTEGER,
            decided_event INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, group_id)
        )"""
    )
    db.execute(
        """CREATE TABLE assignments (
            run_id INTEGER NOT NULL,
            item_id INTEGER NOT NULL,
            group_id INTEGER NOT NULL,
            PRIMARY KEY (run_id, item_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX assignments_group ON assignments (run_id, group_id, item_id)")
    # The review queue reads every active group of a run ordered by impurity or size.
    db.execute("CREATE INDEX groups_queue ON groups (run_id, state, impurity, size, status)")


# The schema of one release, kept in one piece because a migration never changes.
def _m005_labels(db: sqlite_utils.Database) -> None:
    # The taxonomy, the append-only event log (with each touched item's value before and
    # after, so any event can be undone and redone), and the current label per item,
    # materialised from the log for speed.
    db.execute(
        """CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            parent_id INTEGER REFERENCES labels(id),
            colour TEXT,
            hotkey TEXT,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            removed_at TEXT,
            merged_into INTEGER REFERENCES labels(id)
        )"""
    )
    db.execute("CREATE UNIQUE INDEX labels_name ON labels (name) WHERE removed_at IS NULL")
    db.execute("CREATE UNIQUE INDEX labels_hotkey ON labels (hotkey) "
               "WHERE removed_at IS NULL AND hotkey IS NOT NULL")
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            annotator TEXT NOT NULL,
            action TEXT NOT NULL,
            label_id INTEGER,
            source TEXT NOT NULL,
            run_id INTEGER,
            group_id INTEGER,
            note TEXT NOT NULL DEFAULT '',
            item_count INTEGER NOT NULL DEFAULT 0,
            target INTEGER REFERENCES events(id),
            undone INTEGER NOT NULL DEFAULT 0,
            details TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX events_annotator ON events (annotator, id)")
    db.execute(
        """CREATE TABLE event_items (
            event_id INTEGER NOT NULL REFERENCES events(id),
            item_id INTEGER NOT NULL,
            before_state TEXT,
            before_label INTEGER,
            before_event INTEGER,
            after_state TEXT,
            after_label INTEGER,
            PRIMARY KEY (event_id, item_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX event_items_item ON event_items (item_id, event_id)")
    db.execute(
        """CREATE TABLE item_labels (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            state TEXT NOT NULL CHECK (state IN ('labelled', 'noise', 'mixed')),
            label_id INTEGER REFERENCES labels(id),
            event_id INTEGER NOT NULL REFERENCES events(id),
            confirmed INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute("CREATE INDEX item_labels_label ON item_labels (label_id)")
    db.execute(
        """CREATE TABLE audits (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            annotator TEXT NOT NULL,
            seed INTEGER NOT NULL,
            params TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute(
        """CREATE TABLE audit_items (
            audit_id INTEGER NOT NULL REFERENCES audits(id),
            item_id INTEGER NOT NULL,
            stratum TEXT NOT NULL,
            label_id INTEGER,
            verdict TEXT CHECK (verdict IN ('correct', 'wrong', 'unsure')),
            corrected_label INTEGER,
            reviewed_at TEXT,
            PRIMARY KEY (audit_id, item_id)
        ) WITHOUT ROWID"""
    )


# --- the triage migrations' schema (006, 007), frozen here like every migration's ------------

_ORIGINAL = "(SELECT {col} FROM events t WHERE t.id = NEW.target)"


def _create_change_log(db: Any) -> None:
    """The `changes` table and the triggers that fill it, and the group tallies
    (migration 006_triage_changes)."""
    db.execute("CREATE TABLE group_tallies (run_id INTEGER NOT NULL, group_id INTEGER NOT NULL, "
               "state TEXT NOT NULL, label_id INTEGER NOT NULL DEFAULT 0, n INTEGER NOT NULL, "
               "PRIMARY KEY (run_id, group_id, state, label_id)) WITHOUT ROWID")
    db.execute("CREATE TABLE tally_marks (run_id INTEGER PRIMARY KEY, as_of INTEGER NOT NULL)")
    db.execute("CREATE TABLE changes (id INTEGER PRIMARY KEY, time TEXT NOT NULL, "
               "kind TEXT NOT NULL, ref INTEGER, run_id INTEGER)")
    action = f"COALESCE({_ORIGINAL.format(col='action')}, NEW.action)"
    details = f"COALESCE({_ORIGINAL.format(col='details')}, NEW.details)"
    db.execute(
        "CREATE TRIGGER changes_events AFTER INSERT ON events BEGIN "
        "INSERT INTO changes (time, kind, ref, run_id) VALUES (NEW.time, CASE "
        f"WHEN {action} IN ('split', 'merge') THEN 'groups' "
        f"WHEN {action} LIKE 'label-%' THEN 'taxonomy' "
        f"WHEN {details} LIKE '%\"label_merge\"%' OR {details} LIKE '%\"label_remove\"%' "
        "THEN 'labels,taxonomy' ELSE 'labels' END, NEW.id, NEW.run_id); END")
    db.execute(
        "CREATE TRIGGER changes_runs AFTER UPDATE OF status ON runs "
        "WHEN NEW.status != OLD.status AND NEW.status != 'running' BEGIN "
        "INSERT INTO changes (time, kind, ref, run_id) VALUES "
        "(COALESCE(NEW.ended_at, NEW.started_at), 'run:' || NEW.kind, NEW.id, NEW.id); END")


def _duplicate_state(db: Any) -> None:
    """Migration 007_triage_duplicate_state."""
    # A duplicate is a state of its own that points at the item kept (never noise): the state
    # CHECK of item_labels is widened (a table rebuild; SQLite cannot alter a CHECK) and the
    # keeper travels with the events so undo and redo restore it.
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'item_labels'").fetchone()[0]
    if "'duplicate'" not in sql:
        _rebuild_item_labels(db)
    columns = {r[1] for r in db.execute("PRAGMA table_info(event_items)")}
    for column in ("before_keeper", "after_keeper"):
        if column not in columns:
            db.execute(f"ALTER TABLE event_items ADD COLUMN {column} INTEGER")


def _rebuild_item_labels(db: Any) -> None:
    db.execute(
        """CREATE TABLE item_labels_new (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            state TEXT NOT NULL CHECK (state IN ('labelled', 'noise', 'mixed', 'duplicate')),
            label_id INTEGER REFERENCES labels(id),
            event_id INTEGER NOT NULL REFERENCES events(id),
            confirmed INTEGER NOT NULL DEFAULT 0,
            keeper_id INTEGER
        )""")
    db.execute("INSERT INTO item_labels_new (item_id, state, label_id, event_id, confirmed) "
               "SELECT item_id, state, label_id, event_id, confirmed FROM item_labels")
    db.execute("DROP TABLE item_labels")
    db.execute("ALTER TABLE item_labels_new RENAME TO item_labels")
    db.execute("CREATE INDEX item_labels_label ON item_labels (label_id)")


def _m006_triage_changes(db: sqlite_utils.Database) -> None:
    # A change log that every write path fills through triggers, so an open app (or a second
    # window) can see what another process changed: kinds are labels, taxonomy, groups (split,
    # merge) and run:<kind> when a scan, embed, cluster or map run ends.
    _create_change_log(db)


def _m006_exports_splits(db: sqlite_utils.Database) -> None:
    # The stored train/val/test assignment every export reuses (see curator.splits).
    db.execute(
        """CREATE TABLE split_assignments (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            annotator TEXT NOT NULL DEFAULT '',
            fractions TEXT NOT NULL,
            seed INTEGER NOT NULL,
            cleared_at TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE item_splits (
            item_id INTEGER PRIMARY KEY,
            assignment_id INTEGER NOT NULL REFERENCES split_assignments(id),
            split INTEGER NOT NULL,
            assigned_at TEXT NOT NULL
        )"""
    )


def _m007_triage_duplicate_state(db: sqlite_utils.Database) -> None:
    # A `duplicate` item state that points at the item kept (item_labels.keeper_id, carried by
    # event_items so undo and redo restore it).
    _duplicate_state(db)


def _m008_perf_group_summaries(db: sqlite_utils.Database) -> None:
    # One row of sums per group and run beside the tallies, so the queue reads 3,000 rows.
    # The tally marks are dropped, so each run is tallied afresh (summaries with it) when next read.
    db.execute("CREATE TABLE IF NOT EXISTS group_summaries (run_id INTEGER NOT NULL, "
               "group_id INTEGER NOT NULL, labelled INTEGER NOT NULL, noise INTEGER NOT NULL, "
               "mixed INTEGER NOT NULL, duplicate INTEGER NOT NULL, top_label INTEGER, "
               "top_n INTEGER NOT NULL, n_labels INTEGER NOT NULL, "
               "PRIMARY KEY (run_id, group_id)) WITHOUT ROWID")
    db.execute("DELETE FROM tally_marks")


def _m009_triage_item_chain(db: sqlite_utils.Database) -> None:
    # An item's history follows its event rows' `before_event` back from its newest event
    # instead of an index of the event rows by item: that index was the largest single cost of
    # a 10,000-item label and its undo (about 0.1 s of scattered page writes at a million items).
    # `before_event` now names the item's previous event even where it left no value (a clear,
    # an undo back to nothing), and `cleared_items` holds the newest event of each item left
    # without a value (the others have it in `item_labels.event_id`).
    db.execute("CREATE TABLE IF NOT EXISTS cleared_items (item_id INTEGER PRIMARY KEY, "
               "event_id INTEGER NOT NULL)")
    db.execute(
        "WITH prev AS (SELECT event_id, item_id, LAG(event_id) OVER (PARTITION BY item_id "
        "ORDER BY event_id) AS before FROM event_items) "
        "UPDATE event_items SET before_event = prev.before FROM prev WHERE "
        "event_items.before_event IS NULL AND prev.before IS NOT NULL AND "
        "prev.event_id = event_items.event_id AND prev.item_id = event_items.item_id")
    db.execute(
        "INSERT OR REPLACE INTO cleared_items (item_id, event_id) SELECT item_id, MAX(event_id) "
        "FROM event_items WHERE item_id NOT IN (SELECT item_id FROM item_labels) "
        "AND item_id IN (SELECT id FROM items) GROUP BY item_id")
    db.execute("DROP INDEX IF EXISTS event_items_item")
    # The index of current labels by label served only taxonomy edits and counts, which scan a
    # few hundred thousand narrow rows in tens of ms; every label and undo paid for it in pages.
    db.execute("DROP INDEX IF EXISTS item_labels_label")


STATE_CODES = {"labelled": 0, "noise": 1, "mixed": 2, "duplicate": 3}
"""An item state as `item_states` stores it; the `item_labels` view gives the names back."""
NO_VALUE = 4
"""The code of an item left without a value (cleared, or undone back to nothing): its row keeps
the item's newest event, where its history starts."""


def state_code_sql(expr: str) -> str:
    """SQL turning the state name `expr` into its code (NULL for an unknown name)."""
    return f"CASE {expr} " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in STATE_CODES.items()
                                       ) + " END"


def state_name_sql(expr: str) -> str:
    """SQL turning the state code `expr` back into its name (NULL for no value)."""
    return f"CASE {expr} " + " ".join(f"WHEN {v} THEN '{k}'" for k, v in STATE_CODES.items()
                                       ) + " END"


def _m010_triage_item_states(db: sqlite_utils.Database) -> None:
    # A 10,000-item label rewrites nearly every page of the current labels at a million items
    # (its members are scattered over the id range), so their row width is the cost: the state
    # as a code instead of its name (`labelled` is 0, which SQLite stores in no bytes) takes a
    # row from about 24 to 16 bytes and a third of the pages off every label and undo. An item
    # left without a value keeps its row (code NO_VALUE, with its newest event): undoing a label
    # rewrites rows in place instead of deleting them and then recording them in
    # `cleared_items`, which this replaces. `item_labels` stays, as a view of the items with a
    # value, for every reader; the event writers write `item_states`, and the view's triggers
    # serve any other writer.
    cols = "label_id, event_id, confirmed, keeper_id"
    db.execute("CREATE TABLE item_states (item_id INTEGER PRIMARY KEY REFERENCES items(id), "
               f"code INTEGER NOT NULL CHECK (code BETWEEN 0 AND {NO_VALUE}), "
               "label_id INTEGER REFERENCES labels(id), "
               "event_id INTEGER NOT NULL REFERENCES events(id), "
               "confirmed INTEGER NOT NULL DEFAULT 0, keeper_id INTEGER)")
    db.execute(f"INSERT INTO item_states (item_id, code, {cols}) SELECT item_id, "
               f"{state_code_sql('state')}, {cols} FROM item_labels ORDER BY item_id")
    db.execute(f"INSERT INTO item_states (item_id, code, {cols}) SELECT item_id, {NO_VALUE}, "
               "NULL, event_id, 0, NULL FROM cleared_items WHERE item_id NOT IN "
               "(SELECT item_id FROM item_states) ORDER BY item_id")
    db.execute("DROP TABLE cleared_items")
    db.execute("DROP TABLE item_labels")
    db.execute(f"CREATE VIEW item_labels AS SELECT item_id, {state_name_sql('code')} AS state, "
               f"{cols} FROM item_states WHERE code < {NO_VALUE}")
    db.execute("CREATE TRIGGER item_labels_insert INSTEAD OF INSERT ON item_labels BEGIN "
               f"INSERT OR REPLACE INTO item_states (item_id, code, {cols}) VALUES (NEW.item_id, "
               f"{state_code_sql('NEW.state')}, NEW.label_id, NEW.event_id, "
               "COALESCE(NEW.confirmed, 0), NEW.keeper_id); END")
    db.execute("CREATE TRIGGER item_labels_update INSTEAD OF UPDATE ON item_labels BEGIN "
               f"UPDATE item_states SET item_id = NEW.item_id, code = "
               f"{state_code_sql('NEW.state')}, label_id = NEW.label_id, event_id = "
               "NEW.event_id, confirmed = NEW.confirmed, keeper_id = NEW.keeper_id "
               "WHERE item_id = OLD.item_id; END")
    db.execute("CREATE TRIGGER item_labels_delete INSTEAD OF DELETE ON item_labels BEGIN "
               f"UPDATE item_states SET code = {NO_VALUE}, label_id = NULL, confirmed = 0, "
               "keeper_id = NULL WHERE item_id = OLD.item_id; END")


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_item_details_and_run_owner", _m002_item_details_and_run_owner),
    ("003_embeddings", _m003_embeddings),
    ("004_groups", _m004_groups),
    ("005_labels", _m005_labels),
    ("006_triage_changes", _m006_triage_changes),
    ("006_exports_splits", _m006_exports_splits),
    ("007_triage_duplicate_state", _m007_triage_duplicate_state),
    ("008_perf_group_summaries", _m008_perf_group_summaries),
    ("009_triage_item_chain", _m009_triage_item_chain),
    ("010_triage_item_states", _m010_triage_item_states),
]


def applied_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations recorded in the catalog, in the order they ran."""
    if "_migrations" not in db.table_names():
        return []
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY id").fetchall()]


def migrate(db: sqlite_utils.Database, upto: Optional[str] = None) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction.

    Args:
        db: an open catalog.
        upto: stop after the migration of this name (tests use it to build older schemas).

    Returns:
        The names applied now.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations "
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
    )
    done = set(applied_migrations(db))
    applied = []
    for name, fn in MIGRATIONS:
        if name not in done:
            with transaction(db):
                # Another process may have migrated while we waited for the write lock.
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?", [name]).fetchone():
                    continue
                fn(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, utcnow()]
                )
            log.info("catalog migrated: %s", name)
            applied.append(name)
        if name == upto:
            break
    return applied


# --- newer catalogs ---------------------------------------------------------------------------
# A catalog from a newer Curator is refused before anything is written: an unknown migration
# means a schema this version does not know; `meta.min_reader_version` lets a later release
# mark data that an older one would misread even without a schema change.


def _version_key(version: str) -> tuple[int, ...]:
    """"0.10.2rc1" → (0, 10, 2): the numeric release parts, enough to order Curator versions."""
    parts = []
    for piece in str(version).split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def newer_writer(db: sqlite_utils.Database) -> Optional[str]:
    """Why this Curator must not open the catalog (written by a newer one), or None."""
    known = {name for name, _ in MIGRATIONS}
    unknown = [m for m in applied_migrations(db) if m not in known]
    row = db.execute("SELECT value FROM meta WHERE key = 'min_reader_version'").fetchone()
    needed = row[0] if row else None
    if not unknown and not (needed and _version_key(needed) > _version_key(__version__)):
        return None
    writers = [r[0] for r in db.execute("SELECT DISTINCT app_version FROM runs").fetchall()]
    newest = max(writers + [needed or "0"], key=_version_key)
    by = f"Curator {newest}" if _version_key(newest) > _version_key(__version__) else (
        "a newer Curator")
    what = f"schema {unknown[-1]}" if unknown else f"needs Curator {needed} or later"
    return f"was written by {by} ({what}), newer than this Curator {__version__}"
