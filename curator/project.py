"""The Project facade: every operation on a project folder, called alike by the CLI and the GUI.

Each method composes feature calls (`curator.items`, `scan`, `models`, `groups`, `labels`,
`search`, `quality`, `audit`, `dedup`, `export`, `report`); none holds SQL. Features take the
`Catalog` and never call back into the facade. The review and output half (quality, audits,
exports, splits, duplicates, coverage, sources and backups) is `project_review.ReviewFacade`,
mixed into `Project`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from curator import items as _items
from curator.catalog import Catalog, RunRecord
from curator.errors import CuratorError, UsageError
from curator.items import ItemRow, ProjectStatus, Source
from curator.project_review import ReviewFacade
from indexing.embedders import DEFAULT_MODELS
from indexing.progress import Progress

if TYPE_CHECKING:
    import numpy as np

    from curator.distributed import RayOptions
    from curator.embed import EmbedReport, SpaceRow
    from curator.group_show import GroupFacts, GroupShow
    from curator.groups import Group, GroupDetail, ItemFacets, Queue, SpaceClustering
    from curator.history import UndoResult
    from curator.labels import Event, Label, LabelMerge, LabelRemoval, TaxonomyEntry
    from curator.scan import ScanOptions, ScanReport
    from curator.search import SearchCache, SearchHit
    from curator.search.maps import SpaceMap
    from curator.suggest import Suggestion

log = logging.getLogger(__name__)

Cancel = Optional[Callable[[], bool]]


class Project(ReviewFacade):
    """A project folder: its catalog and the stores beside it.

    Use `Project.create` or `Project.open`; close it (or use it as a context manager) when done.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.root = catalog.root
        self._annotator = ""

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path | str, sources: Sequence[Path | str] = ()) -> Project:
        """Make a project folder (or add sources to an existing one).

        Raises:
            UsageError: a source is missing, not a folder, or nested in another source.
        """
        root = Path(root)
        roots = [_items.checked_source(s) for s in sources]
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} is a file; choose a folder for the project")
        if root.exists() and (root / "catalog.db").exists():
            project = cls.open(root)
        else:
            if root.exists() and any(root.iterdir()):
                raise UsageError(f"{root} is a folder that is not empty and not a Curator "
                                 "project; choose a new or empty folder")
            project = cls(Catalog.create(root))
        try:
            project.add_sources(roots)
        except BaseException:
            project.close()
            raise
        return project

    @classmethod
    def open(cls, root: Path | str) -> Project:
        """Open a project folder, migrating an older catalog schema.

        Raises:
            NotAProjectError: the folder is not a Curator project.
        """
        return cls(Catalog.open(Path(root)))

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sources and items ------------------------------------------------------------------

    def sources(self) -> list[Source]:
        return _items.sources(self.catalog)

    def add_sources(self, roots: Sequence[str]) -> list[Source]:
        """Add media folders; an already known one is left as it is."""
        return _items.add_sources(self.catalog, roots)

    def status(self, max_errors: int = 1000) -> ProjectStatus:
        return _items.status(self.catalog, max_errors)

    def items(self, status: Optional[str] = None, modality: Optional[str] = None,
              limit: Optional[int] = None) -> list[ItemRow]:
        """Item rows with their absolute path (`abs_path`), filtered by status and modality."""
        return _items.items(self.catalog, status, modality, limit)

    def item(self, item_id: int) -> ItemRow:
        """One item row with its absolute path (`abs_path`)."""
        return _items.item(self.catalog, item_id)

    def resolve_items(self, refs: Sequence[str]) -> list[int]:
        """Item ids from ids, paths relative to a source, or absolute paths."""
        return _items.resolve_items(self.catalog, refs)

    def runs(self, kind: Optional[str] = None, limit: int = 50) -> list[RunRecord]:
        return self.catalog.runs(kind, limit)

    # --- indexing: scan, embed, cluster, map ------------------------------------------------

    def scan(self, options: Optional[ScanOptions] = None, progress: Optional[Progress] = None,
             cancel: Cancel = None) -> ScanReport:
        """Walk every source and bring the catalog up to date; recorded as a `scan` run.

        Raises:
            UsageError: the project has no source folder.
            Cancelled: `cancel` said stop (what was probed is kept).
        """
        if not self.sources():
            raise UsageError(f"{self.root} has no source folders",
                             hint=f"add one with `curator init {self.root}`", option="sources")
        from curator.scan import ScanOptions, scan_catalog  # perf: the walk only when scanning

        options = options or ScanOptions()
        params = {"include": list(options.include), "exclude": list(options.exclude),
                  "hidden": options.hidden, "workers": options.workers}
        with self.catalog.recorded_run("scan", params) as run:
            report = scan_catalog(self.catalog, options, progress, cancel, run_id=run.id)
            run.counts = report.counts()
        return report

    def embed(
        self,
        model: str = DEFAULT_MODELS["image"],
        audio_model: str = DEFAULT_MODELS["audio"],
        *,
        weights: Optional[str] = None,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 64,
        workers: Optional[int] = None,
        offline: Optional[bool] = None,
        thumbnails: bool = True,
        ray: Optional[RayOptions] = None,
        progress: Optional[Progress] = None,
        cancel: Cancel = None,
    ) -> EmbedReport:
        """Embed every ok item not yet embedded (or stale) by the chosen models; a recorded run.

        `model` embeds images and video frames (an open_clip model string, or "classic"),
        `audio_model` embeds audio (a CLAP model, or "classic"); see `curator.models`. A model
        whose weights are not here is reported in `report.unavailable` and the others still run.
        With `ray` (curator.distributed.RayOptions) the models run on a Ray cluster; this process
        still writes the shards and the catalog.

        Raises:
            CuratorError: no model could be loaded at all (the message says what to do).
            Cancelled: `cancel` said stop (finished batches are kept).
        """
        from curator.models import EmbedOptions, embed_all

        options = EmbedOptions(model, audio_model, weights=weights, device=device,
                               precision=precision, batch_size=batch_size, workers=workers,
                               offline=offline, thumbnails=thumbnails, ray=ray)
        return embed_all(self.catalog, options, progress, cancel)

    def spaces(self) -> list[SpaceRow]:
        """The embedding spaces of this project (their catalog rows) with their vector counts."""
        from curator.embed import spaces

        return spaces(self.catalog)

    def vectors(self, space: str) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, float16 vectors) of a space, memory-mapped, sorted by item id."""
        from curator.embed import vectors

        return vectors(self.catalog, space)

    def thumbnail(self, item_id: int) -> Optional[bytes]:
        """An item's JPEG thumbnail, or None; constant time."""
        from curator.embed import THUMBS_DIR
        from curator.stores import ThumbnailStore

        return ThumbnailStore(self.root / THUMBS_DIR).get(item_id)

    # --- gui: a screenful of thumbnails in one pass -----------------------------------------

    def thumbnails(self, item_ids: Sequence[int]) -> dict[int, Optional[bytes]]:
        """Several items' JPEG thumbnails (None where an item has none), the store opened once."""
        from curator.embed import THUMBS_DIR
        from curator.stores import ThumbnailStore

        return ThumbnailStore(self.root / THUMBS_DIR).get_many(item_ids)

    def _space_names(self, wanted: Optional[Sequence[str]] = None) -> list[str]:
        known = [row["space"] for row in self.spaces()]
        if not known:
            raise UsageError(f"{self.root} has no vectors yet", hint="run `curator embed` first")
        for space in wanted or ():
            if space not in known:
                raise UsageError(f"no embedding space {space!r}; known: {', '.join(known)}")
        return list(wanted or known)

    def cluster(self, n_groups: Optional[int] = None, method: str = "auto", seed: int = 0,
                spaces: Optional[list[str]] = None, progress: Optional[Progress] = None,
                cancel: Cancel = None, undecided_only: bool = False
                ) -> tuple[int, dict[str, SpaceClustering]]:
        """Cluster every embedding space (or the given ones) into groups; a recorded run.

        With `undecided_only`, only items without a decision are grouped. Splits and merges
        made on the previous run are carried over to groups that reappear (triage).

        Returns:
            (run id, per-space counts). Labels are untouched: they belong to items.
        """
        from curator.decisions import undecided_count
        from curator.groups import cluster_run, latest_run_id
        from curator.history import carry_over
        from curator.tallies import tally_run

        names = self._space_names(spaces)
        params = {"n_groups": n_groups, "method": method, "seed": seed, "spaces": names}
        if undecided_only:
            params["undecided"] = True
            if undecided_count(self.catalog) == 0:
                raise UsageError("every item already carries a decision; nothing undecided to "
                                 "group", hint="regroup every item, not only the undecided ones")
        previous = latest_run_id(self.catalog)
        with self.catalog.recorded_run("cluster", params) as run:
            run.counts = cluster_run(self.catalog, run.id, names, n_groups, method, seed,
                                     progress, cancel, undecided_only=undecided_only)
            tally_run(self.catalog, run.id)
            if previous is not None:
                carry_over(self.catalog, previous, run.id, self.annotator)
        return run.id, run.counts

    def compute_map(self, sample_size: int = 50_000, seed: int = 0,
                    progress: Optional[Progress] = None, cancel: Cancel = None
                    ) -> dict[str, SpaceMap]:
        """2-D coordinates for every item of every space; a recorded run (its counts returned)."""
        from curator.search import compute_maps

        names = self._space_names()
        with self.catalog.recorded_run("map", {"sample_size": sample_size, "seed": seed}) as run:
            run.counts = compute_maps(self.catalog, names, sample_size, seed, progress, cancel)
        return run.counts

    def map(self, space: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, coords (n, 2)) of the map; all spaces side by side when none is named."""
        from curator.search import load_map

        return load_map(self.catalog, space)

    def sync_indexes(self, progress: Optional[Progress] = None) -> dict[str, dict[str, int]]:
        """Bring every space's FAISS index up to date with the catalog (incremental)."""
        from curator.search import sync_index

        return {row["space"]: sync_index(self.catalog, row["space"], progress)
                for row in self.spaces()}

    def search(self, text: Optional[str] = None, like: Optional[int] = None,
               file: Optional[str] = None, k: int = 50, modality: Optional[str] = None,
               space: Optional[str] = None, offline: Optional[bool] = None
               ) -> list[SearchHit]:
        """Items nearest a text query, an item, or a file, best first.

        The opened indexes and the text model stay warm in this Project between calls; a search
        never writes (the index is brought up to date by `embed` and `sync_indexes`).
        """
        from curator.search import search

        return search(self.catalog, text=text, like=like, file=file, k=k, modality=modality,
                      space=space, offline=offline, cache=self.search_cache())

    def search_cache(self) -> SearchCache:
        """This project's warm search state (opened indexes, query models), made on first use."""
        from curator.search import SearchCache

        cache = self.__dict__.get("_search_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_search_cache", SearchCache(self.catalog))
        return cache

    # --- label suggestions (search helper, issue 15) -----------------------------------------

    def suggestions(self, run_id: Optional[int] = None,
                    group_ids: Optional[list[int]] = None) -> dict[int, Suggestion]:
        """A suggested label and calibrated confidence per undecided group (`Suggestion`s by
        group id), from the labelled items nearest its members and, where the model has a text
        tower, a zero-shot match of the taxonomy; recomputed whenever a decision landed."""
        from curator.labels import latest_event_id
        from curator.suggest import suggest

        run_id = self.current_run(run_id)
        last = latest_event_id(self.catalog)
        memo = self.__dict__.get("_suggestions_memo")
        if memo is None or memo[0] != (run_id, last):
            memo = ((run_id, last), suggest(self.catalog, run_id, cache=self.search_cache()))
            self.__dict__["_suggestions_memo"] = memo
        if group_ids is None:
            return dict(memo[1])
        return {g: memo[1][g] for g in group_ids if g in memo[1]}

    def accept_suggestions(self, min_confidence: float = 0.9, run_id: Optional[int] = None,
                           group_ids: Optional[list[int]] = None) -> tuple[Optional[int], list]:
        """Label every undecided group whose suggestion is at least `min_confidence` with it:
        one event, undone as one. Returns (event id or None, the accepted suggestions)."""
        from curator.suggest import accept

        run_id = self.current_run(run_id)
        chosen = [s for s in self.suggestions(run_id, group_ids).values()
                  if s.confidence >= min_confidence]
        chosen.sort(key=lambda s: s.group_id)
        return accept(self.catalog, run_id, chosen, self.annotator), chosen

    # --- groups and the review queue --------------------------------------------------------

    def current_run(self, run_id: Optional[int] = None) -> int:
        """The clustering run to address: the given one, or the newest finished one."""
        from curator.groups import current_run

        return current_run(self.catalog, run_id)

    def groups(self, run_id: Optional[int] = None, order: str = "impurity",
               status: Optional[str] = None, label: Optional[str] = None,
               modality: Optional[str] = None, include_inactive: bool = False,
               group_ids: Optional[Sequence[int]] = None) -> list[Group]:
        """The groups of a clustering run, ordered and filtered (the review queue's rows);
        `group_ids` reads only those rows (gui: the row a decision changed)."""
        from curator.groups import list_groups
        from curator.labels import find_label

        label_id = find_label(self.catalog, label).id if label else None
        spaces = None
        if modality:
            spaces = [r["space"] for r in self.spaces() if modality in r["modalities"]]
        return list_groups(self.catalog, self.current_run(run_id), order=order, status=status,
                           label_id=label_id, spaces=spaces, include_inactive=include_inactive,
                           group_ids=group_ids)

    def queue(self, order: str = "impurity", run_id: Optional[int] = None) -> Queue:
        """Undecided groups first in the given order, with progress (groups and items)."""
        from curator.groups import queue

        return queue(self.catalog, self.current_run(run_id), order)

    def group(self, group_id: int, run_id: Optional[int] = None) -> GroupDetail:
        """One group with its members, representatives first, and boundary items marked."""
        from curator.groups import group_detail

        return group_detail(self.catalog, self.current_run(run_id), group_id)

    def item_facets(self, item_ids: Any, run_id: Optional[int] = None) -> ItemFacets:
        """Per-item group, topic, label id and label state, aligned with `item_ids` (for colouring
        a million map points in one call); see `groups.ItemFacets`."""
        from curator.groups import item_facets, latest_run_id

        run = self.current_run(run_id) if run_id is not None else latest_run_id(self.catalog)
        return item_facets(self.catalog, item_ids, run)

    def split(self, group_id: int, k: int = 2, run_id: Optional[int] = None,
              seed: int = 0) -> list[int]:
        """Split a group into k sub-groups of its run: one undoable event."""
        from curator.history import split_group

        if not 2 <= k <= 8:
            raise UsageError(f"a group splits into 2 to 8 parts, not {k}", option="k")
        return split_group(self.catalog, self.current_run(run_id), group_id, k, seed,
                           self.annotator)[0]

    def merge(self, group_ids: list[int], run_id: Optional[int] = None) -> int:
        """Join groups of one run into a new group: one undoable event."""
        from curator.history import merge_groups

        return merge_groups(self.catalog, self.current_run(run_id), list(group_ids),
                            self.annotator)[0]

    # --- labels -----------------------------------------------------------------------------

    @property
    def annotator(self) -> str:
        from curator.settings import load_settings

        return self._annotator or load_settings().annotator_name

    def set_annotator(self, name: Optional[str]) -> None:
        self._annotator = name or ""

    def labels(self) -> list[Label]:
        from curator.labels import labels

        return labels(self.catalog)

    def add_label(self, name: str, parent: Optional[str] = None, colour: Optional[str] = None,
                  hotkey: Optional[str] = None, description: str = "") -> Label:
        from curator.labels import add_label

        return add_label(self.catalog, name, parent, colour, hotkey, description, self.annotator)

    def update_label(self, name: str, **changes: Any) -> Label:
        from curator.labels import update_label

        return update_label(self.catalog, name, annotator=self.annotator, **changes)

    def merge_labels(self, sources: list[str], into: str) -> LabelMerge:
        from curator.labels import merge_labels

        return merge_labels(self.catalog, sources, into, self.annotator)

    def remove_label(self, name: str, force: bool = False) -> LabelRemoval:
        from curator.labels import remove_label

        return remove_label(self.catalog, name, force, self.annotator)

    def import_taxonomy(self, entries: list[dict[str, Any]]) -> list[Label]:
        from curator.labels import import_taxonomy

        return import_taxonomy(self.catalog, entries, self.annotator)

    def export_taxonomy(self) -> list[TaxonomyEntry]:
        from curator.labels import export_taxonomy

        return export_taxonomy(self.catalog)

    def label_group(self, group_id: int, label: Optional[str] = None, *,
                    action: str = "assign", exclude: Sequence[int] = (),
                    run_id: Optional[int] = None, note: str = "") -> int:
        """Decide a whole group at once (minus exclusions): one event, undone as one."""
        from curator.events import apply_group_event
        from curator.labels import find_label

        run_id = self.current_run(run_id)
        if action == "assign" and label is None:
            raise UsageError("no label given for the group", option="label",
                             hint="name a label, or call the group noise or mixed")
        label_id = find_label(self.catalog, label).id if action == "assign" else None
        return apply_group_event(self.catalog, action, run_id, group_id, label_id=label_id,
                                 exclude=exclude, annotator=self.annotator, note=note)

    def label_items(self, item_ids: Sequence[int], label: Optional[str] = None, *,
                    action: str = "assign", source: str = "manual", note: str = "",
                    per_item: Optional[dict[int, str]] = None) -> int:
        """Label items one by one or in bulk (one event)."""
        from curator.labels import apply_event, find_label

        label_id = find_label(self.catalog, label).id if (action == "assign" and label) else None
        per_item_ids = None
        if per_item:
            names = {name: find_label(self.catalog, name).id for name in set(per_item.values())}
            per_item_ids = {int(i): names[n] for i, n in per_item.items()}
        if action == "assign" and label_id is None and not per_item_ids:
            raise UsageError("no label given for the items", option="label",
                             hint="name a label, or call the items noise or mixed")
        return apply_event(self.catalog, action, list(item_ids), label_id=label_id,
                           per_item_labels=per_item_ids, source=source, annotator=self.annotator,
                           note=note)

    def undo(self, event_id: Optional[int] = None) -> UndoResult:
        from curator.history import undo

        return undo(self.catalog, self.annotator, event_id)

    def redo(self) -> UndoResult:
        from curator.history import redo

        return redo(self.catalog, self.annotator)

    # --- triage: named events, badges ------------------------------------------------------

    def duplicate_similarities(self) -> dict[int, float]:
        """Each item of the latest duplicate search -> its cosine similarity to the keeper."""
        from curator.dedup import keeper_similarities, load_duplicates

        report = load_duplicates(self.catalog)
        return {} if report is None else keeper_similarities(self.catalog, report.groups)

    def mark_duplicates(self, keepers: dict[int, int], note: str = "") -> int:
        """Mark copies as duplicates of the item kept for each (copy id -> keeper id): one
        undoable event; a duplicate is its own state, never noise."""
        from curator.labels import apply_event

        return apply_event(self.catalog, "duplicate", list(keepers), keepers=keepers,
                           source="manual", annotator=self.annotator,
                           note=note or "duplicates")

    def describe_event(self, event_id: int) -> str:
        """What an event did, in words ("label 'cat' on 12 items, event 7")."""
        from curator.history import describe

        return describe(self.catalog.db, event_id)

    def undo_redo_texts(self) -> dict[str, Optional[str]]:
        """What undo and redo would do now for this annotator (None where nothing)."""
        from curator.history import peek

        return peek(self.catalog, self.annotator)

    def item_badges(self, item_ids: Sequence[int]) -> dict[int, tuple[str, str, Optional[str]]]:
        """The current decision of these items: id -> (state, label name, label colour)."""
        from curator.labels import item_badges

        return item_badges(self.catalog, item_ids)

    def group_show(self, group_id: int, run_id: Optional[int] = None,
                   limit: Optional[int] = 50) -> GroupShow:
        """A group's members (path, modality, label, similarity) and facts; see group_show."""
        from curator.group_show import group_show

        return group_show(self.catalog, self.current_run(run_id), group_id, limit,
                          self.search_cache())

    def group_facts(self, group_ids: Sequence[int],
                    run_id: Optional[int] = None) -> dict[int, GroupFacts]:
        """Modality mix, labels carried and topic names (path words; the nearest taxonomy name
        where the space has a text tower) of some groups of a run."""
        from curator.group_show import group_facts

        return group_facts(self.catalog, self.current_run(run_id), group_ids, self.search_cache())

    def history(self, item_id: Optional[int] = None, limit: int = 100) -> list[Event]:
        from curator.labels import history

        if item_id is not None:
            self.item(item_id)
        return history(self.catalog, item_id, limit)


def __getattr__(name: str) -> Any:
    # perf (search helper): the scanner (and the media probes it imports) loads when asked for,
    # not on every `curator` command that opens a project.
    if name in ("ScanOptions", "ScanReport"):
        from curator import scan

        return getattr(scan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Project", "ProjectStatus", "Source", "ScanOptions", "ScanReport", "CuratorError"]
