"""The quality views: duplicates, suspects, spot-check audit and the coverage report.

Each one calls facade methods that may be newer than this window's Curator; a missing method
shows a one-line note instead of the view, and the view works as soon as the method exists.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.preview import PreviewPane
from ui.session import LABELS, Session
from ui.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)


def missing(project: Any, *names: str) -> list[str]:
    """The facade methods this project object lacks."""
    return [n for n in names if project is None or not hasattr(project, n)]


class FeaturePanel(QWidget):
    """A view with a one-line state note on top and a progress-aware run button."""

    message = Signal(str)
    open_items = Signal(str, object)
    preview = Signal(int)
    needs: tuple[str, ...] = ()

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("panelNote")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(6, 6, 6, 6)
        self.layout_.addWidget(self.note)

    def available(self) -> bool:
        gone = missing(self.session.project, *self.needs)
        if self.session.project is None:
            self.note.setText("Open a project first.")
            return False
        if gone:
            self.note.setText(f"Needs a newer Curator: Project.{', Project.'.join(gone)} is "
                              "missing here.")
            return False
        return True

    def failed(self, info: Any) -> None:
        self.note.setText(f"⚠ {info}")
        self.message.emit(str(info))


# --- duplicates -------------------------------------------------------------------------------


def duplicate_sets(answer: Any) -> list[dict[str, Any]]:
    """Duplicate sets as dicts {kind, items, keeper} from a DedupReport, its JSON, or a list."""
    if answer is None:
        return []
    if hasattr(answer, "groups") and not isinstance(answer, dict):
        groups = answer.groups
    elif isinstance(answer, dict):
        groups = list(answer.get("exact", [])) + list(answer.get("near", [])) + list(
            answer.get("groups", []))
    else:
        groups = list(answer)
    out = []
    for g in groups:
        d = g.to_json() if hasattr(g, "to_json") else dict(g)
        items = [int(i) for i in d.get("items", [])]
        if len(items) < 2:
            continue
        keeper = int(d.get("keeper", items[0]))
        out.append({"kind": d.get("kind", "near"), "items": items, "keeper": keeper})
    return out


class DuplicatesPanel(FeaturePanel):
    """Duplicate sets with a suggested keeper; one action marks every other copy `duplicate`.

    Accepting is one undoable event (`mark_duplicates`: each copy points at its keeper; a
    duplicate is never noise), so Ctrl+Z brings every item back as it was. No file is touched.
    """

    needs = ("find_duplicates",)

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(session, thumbs, parent)
        self.sets: list[dict[str, Any]] = []
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.5, 1.0)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(3)
        # The lowest value reads "auto": a threshold calibrated per space and modality.
        self.threshold.setSpecialValueText("auto")
        self.threshold.setValue(0.5)
        self.find_button = QPushButton("Find duplicates")
        self.find_button.clicked.connect(self.find)
        self.accept_button = QPushButton("Accept all suggestions")
        self.accept_button.setToolTip("Mark every copy except the suggested keeper as a "
                                      "duplicate of it (one event; Ctrl+Z undoes)")
        self.accept_button.clicked.connect(self.accept_all)
        self.accept_button.setEnabled(False)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Set / item", "Kind", "Suggestion"])
        self.tree.setIconSize(QPixmap(48, 48).size())
        self.tree.itemDoubleClicked.connect(self._activated)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Similarity ≥"))
        bar.addWidget(self.threshold)
        bar.addWidget(self.find_button)
        bar.addStretch(1)
        bar.addWidget(self.accept_button)
        self.layout_.addLayout(bar)
        self.layout_.addWidget(self.tree, 1)
        thumbs.ready.connect(self._thumbs_ready)
        self._nodes: dict[int, QTreeWidgetItem] = {}

    def activate(self) -> None:
        if self.available() and not self.sets:
            self.note.setText("Find exact and near duplicates; the suggested keeper of each set "
                              "is the best copy (resolution, then length, then size).")

    def find(self) -> None:
        if not self.available():
            return
        value = self.threshold.value()
        threshold = None if value <= self.threshold.minimum() else value
        self.note.setText("Searching for duplicates…")
        self.find_button.setEnabled(False)

        def work(p: Any, progress: Any = None, cancel: Any = None) -> Any:
            return p.find_duplicates(threshold=threshold, progress=progress, cancel=cancel)

        self.session.job(work, name="duplicates", changes=None, on_result=self.show_sets,
                         on_error=lambda info: (self.failed(info),
                                                self.find_button.setEnabled(True)))

    def show_sets(self, answer: Any) -> None:
        self.find_button.setEnabled(True)
        self.sets = duplicate_sets(answer)
        self.tree.clear()
        self._nodes = {}
        for n, s in enumerate(self.sets, 1):
            top = QTreeWidgetItem([f"Set {n}: {len(s['items'])} copies", s["kind"],
                                   f"keep item {s['keeper']}"])
            self.tree.addTopLevelItem(top)
            for item_id in s["items"]:
                keep = item_id == s["keeper"]
                child = QTreeWidgetItem([f"item {item_id}", "",
                                         "keep" if keep else f"duplicate of {s['keeper']}"])
                child.setData(0, Qt.UserRole, item_id)
                top.addChild(child)
                self._nodes[item_id] = child
                self._set_icon(item_id)
        self.tree.expandToDepth(0)
        if self.sets:
            self.session.read(lambda p: p.duplicate_similarities(), key="dup-similarity",
                              name="duplicate similarities", on_result=self._similarities,
                              on_error=lambda info: None)
        removable = sum(len(s["items"]) - 1 for s in self.sets)
        self.note.setText(f"{len(self.sets)} duplicate sets; accepting marks {removable} "
                          "copies as duplicates of their keeper (one undoable event).")
        self.accept_button.setEnabled(bool(self.sets))

    def _similarities(self, sims: dict[int, float]) -> None:
        """Each copy's cosine similarity to its keeper, beside both thumbnails."""
        for item_id, node in self._nodes.items():
            if item_id in sims:
                node.setText(1, f"similarity {sims[item_id]:.3f}")

    def _set_icon(self, item_id: int) -> None:
        image = self.thumbs.image(item_id)
        if image is not None and item_id in self._nodes:
            self._nodes[item_id].setIcon(0, QIcon(QPixmap.fromImage(image).scaled(
                48, 48, Qt.KeepAspectRatio, Qt.SmoothTransformation)))

    def _thumbs_ready(self, ids: list[int]) -> None:
        for item_id in ids:
            if item_id in self._nodes:
                self._set_icon(item_id)

    def _activated(self, node: QTreeWidgetItem, column: int) -> None:
        item_id = node.data(0, Qt.UserRole)
        if item_id is not None:
            self.preview.emit(int(item_id))
        else:
            at = self.tree.indexOfTopLevelItem(node)
            if 0 <= at < len(self.sets):
                self.open_items.emit(f"Duplicate set {at + 1}", self.sets[at]["items"])

    def non_keepers(self) -> list[int]:
        keepers = {s["keeper"] for s in self.sets}
        return sorted({i for s in self.sets for i in s["items"] if i != s["keeper"]} - keepers)

    def accept_all(self) -> None:
        keepers = {i: s["keeper"] for s in self.sets for i in s["items"] if i != s["keeper"]}
        if not keepers:
            return
        note = f"duplicates: not the suggested keeper ({len(self.sets)} sets)"
        self.session.write(lambda p: p.mark_duplicates(keepers, note=note),
                           changes=LABELS, name="accept duplicates",
                           on_result=lambda ev: self.message.emit(
                               f"{len(keepers)} items marked duplicate of their keeper "
                               "(Ctrl+Z undoes)"),
                           on_error=self.failed)


# --- suspects -------------------------------------------------------------------------------


def _row(s: Any) -> dict[str, Any]:
    return s.to_json() if hasattr(s, "to_json") else dict(s)


class SuspectsPanel(FeaturePanel):
    """Labelled items whose neighbours disagree: accept the suggestion, confirm, or inspect."""

    needs = ("suspects",)
    COLUMNS = ("item_id", "label", "suggested", "score", "similarity", "path")

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(session, thumbs, parent)
        self.rows: list[dict[str, Any]] = []
        self.find_button = QPushButton("Find suspects")
        self.find_button.clicked.connect(self.find)
        self.accept_button = QPushButton("Accept suggestion for selected")
        self.accept_button.clicked.connect(self.accept_selected)
        self.confirm_button = QPushButton("Confirm current label")
        self.confirm_button.clicked.connect(self.confirm_selected)
        self.open_button = QPushButton("Open all as group")
        self.open_button.clicked.connect(lambda: self.open_items.emit(
            "Suspects", [r["item_id"] for r in self.rows]))
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels([c.replace("_", " ") for c in self.COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda r, c: self.preview.emit(
            int(self.rows[r]["item_id"])))
        bar = QHBoxLayout()
        for b in (self.find_button, self.accept_button, self.confirm_button, self.open_button):
            bar.addWidget(b)
        bar.addStretch(1)
        self.layout_.addLayout(bar)
        self.layout_.addWidget(self.table, 1)

    def activate(self) -> None:
        if self.available() and not self.rows:
            self.note.setText("Suspects: labelled items whose nearest labelled neighbours mostly "
                              "carry another label.")

    def find(self) -> None:
        if not self.available():
            return
        self.note.setText("Looking for suspects…")

        def work(p: Any, progress: Any = None, cancel: Any = None) -> Any:
            return p.suspects(progress=progress, cancel=cancel)

        self.session.job(work, name="suspects", changes=None, on_result=self.show_rows,
                         on_error=self.failed)

    def show_rows(self, answer: Any) -> None:
        self.rows = [_row(s) for s in answer or []]
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, key in enumerate(self.COLUMNS):
                value = row.get(key, "")
                text = f"{value:.3f}" if isinstance(value, float) else str(value)
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.note.setText(f"{len(self.rows)} suspects" if self.rows else "No suspects found.")

    def _selected(self) -> list[dict[str, Any]]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.rows[r] for r in rows]

    def accept_selected(self) -> None:
        chosen = [r for r in self._selected() if r.get("suggested")]
        if not chosen:
            return
        per_item = {int(r["item_id"]): r["suggested"] for r in chosen}
        self.session.write(lambda p: p.label_items(list(per_item), None, per_item=per_item,
                                                   source="manual", note="suspects: accepted"),
                           changes=LABELS, name="accept suspects", on_error=self.failed,
                           on_result=lambda ev: self.message.emit(
                               f"{len(per_item)} relabelled as suggested (Ctrl+Z undoes)"))

    def confirm_selected(self) -> None:
        ids = [int(r["item_id"]) for r in self._selected()]
        if ids:
            self.session.write(lambda p: p.label_items(ids, None, action="confirm",
                                                       source="manual", note="suspects: checked"),
                               changes=LABELS, name="confirm", on_error=self.failed,
                               on_result=lambda ev: self.message.emit(
                                   f"{len(ids)} labels confirmed"))


# --- audit ----------------------------------------------------------------------------------


class AuditPanel(FeaturePanel):
    """Spot-check mode: a stratified sample of labelled items, one at a time; c / w / u record
    correct, wrong (asks for the right label) or unsure; the estimate updates as you go."""

    needs = ("start_audit", "next_unreviewed", "record_verdict", "audit_report")

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(session, thumbs, parent)
        self.audit_id: Optional[int] = None
        self.current: Any = None
        self.labels: list[Any] = []
        self.size = QSpinBox()
        self.size.setRange(1, 100_000)
        self.size.setValue(100)
        self.start_button = QPushButton("Start audit")
        self.start_button.clicked.connect(self.start)
        self.item_label = QLabel("")
        self.item_label.setObjectName("auditItem")
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.buttons = []
        verdicts = QHBoxLayout()
        for text, verdict, key in (("Correct (c)", "correct", "c"), ("Wrong (w)", "wrong", "w"),
                                   ("Unsure (u)", "unsure", "u")):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, v=verdict: self.verdict(v))
            b.setEnabled(False)
            verdicts.addWidget(b)
            self.buttons.append(b)
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda v=verdict: self.verdict(v))
        self.pane = PreviewPane(session, thumbs, self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Sample size"))
        bar.addWidget(self.size)
        bar.addWidget(self.start_button)
        bar.addStretch(1)
        self.layout_.addLayout(bar)
        self.layout_.addWidget(self.item_label)
        self.layout_.addWidget(self.pane, 1)
        self.layout_.addLayout(verdicts)
        self.layout_.addWidget(self.estimate)

    def activate(self) -> None:
        if self.available() and self.audit_id is None:
            self.note.setText("Draw a stratified sample of labelled items (label × source) and "
                              "check each one; the accuracy estimate has a 95% interval.")

    def start(self) -> None:
        if not self.available():
            return
        n = self.size.value()
        self.session.write(lambda p: p.start_audit(n=n), changes=None, name="start audit",
                           on_result=self._started, on_error=self.failed)

    def _started(self, audit_id: int) -> None:
        self.audit_id = int(audit_id)
        self.note.setText(f"Audit {self.audit_id} started.")
        self.next()

    def next(self) -> None:
        audit_id = self.audit_id
        if audit_id is None:
            return
        self.session.read(lambda p: (p.next_unreviewed(audit_id, limit=1),
                                     p.audit_report(audit_id)),
                          key="audit", name="audit next", on_result=self._next_loaded,
                          on_error=self.failed)

    def _next_loaded(self, answer: tuple) -> None:
        items, report = answer
        self.show_report(report)
        for b in self.buttons:
            b.setEnabled(bool(items))
        if not items:
            self.current = None
            self.item_label.setText("Audit finished: every sampled item has a verdict.")
            return
        self.current = _row(items[0])
        self.item_label.setText(f"Item {self.current['item_id']} is labelled "
                                f"“{self.current.get('label')}” ({self.current.get('source')}). "
                                "Is that right?")
        self.pane.show_item(int(self.current["item_id"]))

    def show_report(self, report: Any) -> None:
        overall = report.overall or {}
        acc = overall.get("accuracy")
        text = (f"Reviewed {report.reviewed} of {report.sampled}. ")
        if acc is not None:
            text += (f"Estimated accuracy {acc:.1%} (95% interval {overall.get('low', 0):.1%}"
                     f" – {overall.get('high', 0):.1%}).")
        self.estimate.setText(text)

    def verdict(self, verdict: str, corrected: Optional[str] = None) -> None:
        """Record a verdict on the current item ("wrong" asks for the right label)."""
        if self.current is None or self.audit_id is None:
            return
        if verdict == "wrong" and corrected is None:
            choices = ["(just mark it wrong)"] + [lab.path for lab in self.labels]
            text, ok = QInputDialog.getItem(self, "Wrong label", "The right label:", choices, 0,
                                            False)
            if not ok:
                return
            corrected = None if text.startswith("(") else text
        audit_id, item_id = self.audit_id, int(self.current["item_id"])
        self.session.write(lambda p: p.record_verdict(audit_id, item_id, verdict, corrected),
                           changes=LABELS if corrected else None, name="verdict",
                           on_result=lambda _: self.next(), on_error=self.failed)


# --- report ---------------------------------------------------------------------------------


class ReportPanel(FeaturePanel):
    """The coverage report (HTML when the facade gives it, else text)."""

    needs = ("report",)

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(session, thumbs, parent)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.activate)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(refresh)
        self.layout_.addLayout(bar)
        self.layout_.addWidget(self.browser, 1)

    def activate(self) -> None:
        if not self.available():
            return
        self.note.setText("Building the coverage report…")
        self.session.read(lambda p: report_html(p.report()), key="report", name="report",
                          on_result=self._shown, on_error=self.failed)

    def _shown(self, html: str) -> None:
        self.note.setText("")
        self.charts = show_themed(self.browser, html)


def show_themed(browser: Any, html: str) -> int:
    """Show report HTML in the app's palette (dark or light) with its SVG charts drawn.

    QTextBrowser draws neither inline SVG nor a page's own colours against a dark theme: each
    chart is rendered to an image resource of the document, and the page's fixed dark text and
    light rules take the palette's colours. Returns the number of charts drawn.
    """
    import re

    from PySide6.QtCore import QByteArray, QUrl
    from PySide6.QtGui import QImage, QPainter, QPalette, QTextDocument
    from PySide6.QtSvg import QSvgRenderer

    palette = browser.palette()
    text = palette.color(QPalette.Text).name()
    rule = palette.color(QPalette.Mid).name()
    html = (html.replace("color: #222", f"color: {text}").replace("fill: #222", f"fill: {text}")
            .replace("#ddd", rule))
    document = browser.document()
    charts = []

    def draw(match: Any) -> str:
        svg = match.group(0).replace("<text ", f'<text fill="{text}" ')
        renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
        size = renderer.defaultSize()
        if not renderer.isValid() or size.isEmpty():
            return ""
        image = QImage(size, QImage.Format_ARGB32_Premultiplied)
        image.fill(0)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        url = QUrl(f"chart://{len(charts)}")
        document.addResource(QTextDocument.ImageResource, url, image)
        charts.append(url)
        return f'<img src="{url.toString()}" width="{size.width()}" height="{size.height()}">'

    html = re.sub(r"<svg\b.*?</svg>", draw, html, flags=re.S)
    browser.setHtml(html)
    return len(charts)


def report_html(answer: Any) -> str:
    """HTML for whatever the report method gave: HTML, text, a file path, or a dict."""
    import html as _html
    import os

    if isinstance(answer, os.PathLike) or (isinstance(answer, str) and os.path.isfile(answer)):
        with open(answer, encoding="utf-8") as fh:
            answer = fh.read()
    if isinstance(answer, str):
        if answer.lstrip().startswith("<"):
            return answer
        return f"<pre>{_html.escape(answer)}</pre>"
    if hasattr(answer, "to_json"):
        answer = answer.to_json()
    if isinstance(answer, dict):
        try:
            from curator.report import render_html

            return render_html(answer)
        except Exception:  # noqa: BLE001 - fall back to showing the data as it is
            log.debug("render_html failed", exc_info=True)
        return f"<pre>{_html.escape(json.dumps(answer, indent=2, default=str))}</pre>"
    return f"<pre>{_html.escape(str(answer))}</pre>"
