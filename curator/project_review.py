"""The facade's review and output half: label quality, audits, exports, splits, duplicates,
coverage, and the catalog's sources and backups.

`Project` mixes this in (the facade stays one object for the CLI and the app); like the rest of
the facade it only composes feature calls, holds no SQL, and returns typed answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from indexing.progress import Progress

if TYPE_CHECKING:
    from curator.audit import AuditItem, AuditReport, Verdict
    from curator.catalog import Catalog
    from curator.dedup import DedupReport
    from curator.export import ExportReport
    from curator.quality import PropagateReport, Suspect
    from curator.report import CoverageReport
    from curator.sources import RelocateReport, SourceInfo, SourceRemoval
    from curator.splits import SplitAssignment, SplitTable

Cancel = Optional[Callable[[], bool]]


class ReviewFacade:
    """Review and output operations of `Project` (see there); needs `catalog` and `annotator`."""

    catalog: Catalog
    annotator: str

    # --- label quality ----------------------------------------------------------------------

    def suspects(self, k: int = 10, min_disagreement: float = 0.6, limit: Optional[int] = None,
                 progress: Optional[Progress] = None, cancel: Cancel = None) -> list[Suspect]:
        """Labelled items whose nearest labelled neighbours mostly carry another label."""
        from curator.quality import suspects

        return suspects(self.catalog, k, min_disagreement, limit, progress, cancel)

    def propagate(self, min_confidence: float = 0.8, k: int = 10, apply: bool = True,
                  progress: Optional[Progress] = None, cancel: Cancel = None
                  ) -> PropagateReport:
        """Label unlabelled items from labelled neighbours, as one undoable `propagated` event."""
        from curator.quality import propagate

        return propagate(self.catalog, min_confidence, k, apply, progress, cancel,
                         annotator=self.annotator)

    def start_audit(self, n: int = 100, seed: int = 0) -> int:
        """Draw a stratified (label x source) random sample of labelled items to spot-check."""
        from curator.audit import start_audit

        return start_audit(self.catalog, n, seed, annotator=self.annotator)

    def record_verdict(self, audit_id: int, item_id: int, verdict: str,
                       corrected_label: Optional[str] = None) -> Verdict:
        """Record correct / wrong / unsure on an audited item; a correction relabels it
        (undoable)."""
        from curator.audit import record_verdict

        return record_verdict(self.catalog, audit_id, item_id, verdict, corrected_label,
                              annotator=self.annotator)

    def next_unreviewed(self, audit_id: int, limit: int = 10) -> list[AuditItem]:
        """The next items of an audit to review."""
        from curator.audit import next_unreviewed

        return next_unreviewed(self.catalog, audit_id, limit)

    def audit_report(self, audit_id: int) -> AuditReport:
        """Estimated accuracy per label, per source and overall, with 95% Wilson intervals."""
        from curator.audit import audit_report

        return audit_report(self.catalog, audit_id)

    # --- export, duplicates, report ---------------------------------------------------------

    def export(self, fmt: str, out: Path | str, split: Optional[str] = None, seed: int = 0,
               only_labeled: bool = False, mode: str = "copy",
               progress: Optional[Progress] = None, cancel: Cancel = None,
               **options: Any) -> ExportReport:
        """Export items and labels in a format (atomically, with a manifest); see curator.export.

        `options` are the format options of `curator.export.export` (modality, force, resplit,
        use_splits, relative_to, url_prefix, ls_as, shard_size).
        """
        from curator.export import export

        return export(self.catalog, fmt, out, split=split, seed=seed, only_labeled=only_labeled,
                      mode=mode, progress=progress, cancel=cancel,
                      annotator=options.pop("annotator", None) or self.annotator, **options)

    # --- splits (exports) -----------------------------------------------------------------

    def split_table(self) -> SplitTable:
        """The stored split assignment and its counts per split x label."""
        from curator.splits import table

        return table(self.catalog)

    def assign_splits(self, split: str, seed: int = 0) -> SplitAssignment:
        """Re-split: a new stored assignment every later export uses."""
        from curator.splits import assign

        return assign(self.catalog, split, seed, annotator=self.annotator)

    def clear_splits(self) -> Optional[int]:
        """Drop the stored split assignment; returns its id (None without one)."""
        from curator.splits import clear

        return clear(self.catalog)

    def move_to_split(self, item_ids: Sequence[int], split: str) -> int:
        """Put items in a split by hand; they stay there until a re-split."""
        from curator.splits import set_split

        return set_split(self.catalog, item_ids, split)

    def find_duplicates(self, threshold: Optional[float] = None, rule: str = "resolution",
                        preferred_source: Optional[str] = None, outliers: int = 100,
                        progress: Optional[Progress] = None, cancel: Cancel = None
                        ) -> DedupReport:
        """Exact and near duplicate groups with a suggested keeper, and ranked outliers."""
        from curator.dedup import find_duplicates

        return find_duplicates(self.catalog, threshold, rule, preferred_source, progress, cancel,
                               outliers=outliers)

    def duplicates(self) -> Optional[DedupReport]:
        """The latest duplicate search, or None when none ran."""
        from curator.dedup import load_duplicates

        return load_duplicates(self.catalog)

    def report(self) -> CoverageReport:
        """Coverage of the labels: by label, source folder, modality and label source (a
        JSON-ready document that `report.render_text` and `report.write_html` render)."""
        from curator.report import build_report

        return build_report(self.catalog)

    # --- hostile: moving sources and the catalog's backups -----------------------------------

    def source_details(self) -> list[SourceInfo]:
        """Every source with its item counts by status and whether it is reachable now."""
        from curator.sources import list_sources

        return list_sources(self.catalog)

    def relocate_source(self, old: str, new: Path | str) -> RelocateReport:
        """Point a source at the folder it moved to; every item keeps its labels and vectors."""
        from curator.sources import relocate

        return relocate(self.catalog, old, new)

    def remove_source(self, source: str, force: bool = False) -> SourceRemoval:
        """Forget a source and its items (refused for labelled items unless `force`)."""
        from curator.sources import remove

        return remove(self.catalog, source, force=force)

    def backup(self, dest: Path | str | None = None) -> Path:
        """A consistent copy of the catalog (SQLite's online backup API)."""
        from curator.integrity import backup

        return backup(self.catalog, dest)
