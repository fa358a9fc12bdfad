"""Dialogs: new project and indexing options, the taxonomy editor, and export."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from curator.pipeline import IndexOptions
from indexing.embedders import DEFAULT_MODELS
from ui.session import GROUP_DECISION, LABELS, TAXONOMY, Session

log = logging.getLogger(__name__)

IMAGE_MODELS = (DEFAULT_MODELS["image"], "ViT-L-14/openai", "classic")
AUDIO_MODELS = (DEFAULT_MODELS["audio"], "classic")


@dataclass(frozen=True)
class NewProject:
    """The answers of the new-project dialog."""

    folder: str
    sources: tuple[str, ...]
    options: IndexOptions
    index_now: bool


class IndexOptionsForm(QWidget):
    """Model strings (editable: any open_clip or CLAP model, or "classic") and the group count."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(IMAGE_MODELS)
        self.model.setToolTip("open_clip model string (model/pretrained or hf-hub:…), or "
                              "'classic' for the weight-free embedder")
        self.audio_model = QComboBox()
        self.audio_model.setEditable(True)
        self.audio_model.addItems(AUDIO_MODELS)
        self.groups = QSpinBox()
        self.groups.setRange(0, 1_000_000)
        self.groups.setSpecialValueText("automatic")
        self.build_map = QCheckBox("Compute the 2-D map")
        self.build_map.setChecked(True)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Image and video model", self.model)
        form.addRow("Audio model", self.audio_model)
        form.addRow("Groups", self.groups)
        form.addRow("", self.build_map)
        # What the form does not show (device, batch size, workers, offline) comes from the
        # user's settings and passes through unchanged.
        self._base = IndexOptions.from_settings()

    def options(self) -> IndexOptions:
        return dataclasses.replace(
            self._base, model=self.model.currentText().strip() or self._base.model,
            audio_model=self.audio_model.currentText().strip() or self._base.audio_model,
            n_groups=self.groups.value() or None, build_map=self.build_map.isChecked())

    def set_options(self, options: IndexOptions) -> None:
        self._base = options
        self.model.setCurrentText(options.model)
        self.audio_model.setCurrentText(options.audio_model)
        self.groups.setValue(options.n_groups or 0)
        self.build_map.setChecked(options.build_map)


class NewProjectDialog(QDialog):
    """Pick a project folder, its media folders and the models."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("an empty or new folder for the project")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_folder)
        self.sources = QListWidget()
        add = QPushButton("Add media folder…")
        add.clicked.connect(self._add_source)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: [self.sources.takeItem(self.sources.row(i))
                                        for i in self.sources.selectedItems()])
        self.form = IndexOptionsForm()
        self.index_now = QCheckBox("Index now (scan, embed, group, map)")
        self.index_now.setChecked(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #e66;")
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        src_buttons = QHBoxLayout()
        src_buttons.addWidget(add)
        src_buttons.addWidget(remove)
        src_buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Project folder"))
        layout.addLayout(row)
        layout.addWidget(QLabel("Media folders (sources)"))
        layout.addWidget(self.sources)
        layout.addLayout(src_buttons)
        layout.addWidget(self.form)
        layout.addWidget(self.index_now)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(560, 480)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder")
        if folder:
            self.folder.setText(folder)

    def _add_source(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Media folder")
        if folder:
            self.add_source(folder)

    def add_source(self, folder: str) -> None:
        existing = [self.sources.item(i).text() for i in range(self.sources.count())]
        if folder not in existing:
            self.sources.addItem(folder)

    def _accept(self) -> None:
        if not self.folder.text().strip():
            self.error.setText("Choose a project folder.")
            return
        if not self.sources.count():
            self.error.setText("Add at least one media folder.")
            return
        self.accept()

    def result_value(self) -> NewProject:
        return NewProject(self.folder.text().strip(),
                          tuple(self.sources.item(i).text() for i in range(self.sources.count())),
                          self.form.options(), self.index_now.isChecked())


class IndexDialog(QDialog):
    """Choose the models and run (or re-run) indexing on the open project."""

    def __init__(self, options: IndexOptions, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Index project")
        self.form = IndexOptionsForm()
        self.form.set_options(options)
        note = QLabel("Scanning and embedding resume where they stopped: finished work is "
                      "never computed twice. Re-grouping makes a new clustering run; labels "
                      "stay with their items.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addWidget(note)
        layout.addWidget(buttons)


# --- taxonomy -------------------------------------------------------------------------------


class LabelDialog(QDialog):
    """Name, parent, colour, hotkey and description of one label."""

    def __init__(self, labels: list[Any], label: Any = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit label" if label else "New label")
        self.name = QLineEdit(label.name if label else "")
        self.parent_box = QComboBox()
        self.parent_box.addItem("(top level)", "")
        for lab in labels:
            if label is None or lab.id != label.id:
                self.parent_box.addItem(lab.path, lab.path)
        if label is not None and label.parent_id is not None:
            parent_label = next((lab for lab in labels if lab.id == label.parent_id), None)
            if parent_label is not None:
                self.parent_box.setCurrentIndex(max(0, self.parent_box.findData(
                    parent_label.path)))
        self.colour = QLineEdit(label.colour if label and label.colour else "")
        self.colour.setPlaceholderText("#1f77b4 (empty: next of the palette)")
        pick = QPushButton("Pick…")
        pick.clicked.connect(self._pick)
        self.hotkey = QLineEdit(label.hotkey if label and label.hotkey else "")
        self.hotkey.setMaxLength(3)
        self.hotkey.setPlaceholderText("a letter, a digit or F1-F12 (not j, k, x)")
        self.description = QLineEdit(label.description if label else "")
        colour_row = QHBoxLayout()
        colour_row.addWidget(self.colour, 1)
        colour_row.addWidget(pick)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Parent", self.parent_box)
        form.addRow("Colour", colour_row)
        form.addRow("Hotkey", self.hotkey)
        form.addRow("Description", self.description)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _pick(self) -> None:
        colour = QColorDialog.getColor(QColor(self.colour.text() or "#1f77b4"), self)
        if colour.isValid():
            self.colour.setText(colour.name())

    def values(self) -> dict[str, Any]:
        return {"name": self.name.text().strip(), "parent": self.parent_box.currentData() or "",
                "colour": self.colour.text().strip() or None,
                "hotkey": self.hotkey.text().strip(), "description": self.description.text()}


def _swatch(colour: Optional[str]) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor(colour) if colour else QColor(128, 128, 128))
    return QIcon(pix)


class TaxonomyEditor(QDialog):
    """The label tree: add, edit (name, colour, hotkey, parent), merge and remove labels.

    Every change goes through the facade (`add_label`, `update_label`, `merge_labels`,
    `remove_label`) and is kept in the history.
    """

    changed = Signal()

    def __init__(self, session: Session, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Taxonomy")
        self.labels: list[Any] = []
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Label", "Hotkey", "Items", "Description"])
        self.tree.setColumnWidth(0, 220)
        self.tree.itemDoubleClicked.connect(lambda *_: self.edit_selected())
        self.status = QLabel("")
        buttons = QHBoxLayout()
        for text, slot in (("Add…", self.add), ("Edit…", self.edit_selected),
                           ("Merge into…", self.merge_selected), ("Remove…", self.remove_selected)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(620, 460)
        session.changed.connect(lambda kind: self.reload() if kind in (
            TAXONOMY, LABELS, GROUP_DECISION) else None)
        self.reload()

    def reload(self) -> None:
        self.session.read(lambda p: p.labels(), key="taxonomy-editor", name="labels",
                          on_result=self._loaded)

    def _loaded(self, labels: list[Any]) -> None:
        self.labels = list(labels)
        self.tree.clear()
        items: dict[int, QTreeWidgetItem] = {}
        pending = list(self.labels)
        for _ in range(len(pending) + 1):
            rest = []
            for lab in pending:
                if lab.parent_id is not None and lab.parent_id not in items and any(
                        x.id == lab.parent_id for x in self.labels):
                    rest.append(lab)
                    continue
                parent = items.get(lab.parent_id)
                node = QTreeWidgetItem([lab.name, lab.hotkey or "", str(lab.count),
                                        lab.description])
                node.setIcon(0, _swatch(lab.colour))
                node.setData(0, Qt.UserRole, lab.path)
                (parent.addChild(node) if parent else self.tree.addTopLevelItem(node))
                items[lab.id] = node
            if not rest:
                break
            pending = rest
        self.tree.expandAll()
        self.status.setText(f"{len(self.labels)} labels")

    def selected(self) -> Any:
        item = self.tree.currentItem()
        if item is None:
            return None
        path = item.data(0, Qt.UserRole)
        return next((lab for lab in self.labels if lab.path == path), None)

    def _write(self, fn: Any, done: str) -> None:
        self.session.write(fn, changes=TAXONOMY, name="taxonomy",
                           on_result=lambda _: (self.status.setText(done), self.changed.emit()),
                           on_error=lambda info: self.status.setText(f"⚠ {info}"))

    def add(self) -> None:
        dialog = LabelDialog(self.labels, None, self)
        if dialog.exec() != QDialog.Accepted:
            return
        v = dialog.values()
        self._write(lambda p: p.add_label(v["name"], parent=v["parent"] or None,
                                          colour=v["colour"], hotkey=v["hotkey"] or None,
                                          description=v["description"]),
                    f"added {v['name']}")

    def edit_selected(self) -> None:
        lab = self.selected()
        if lab is None:
            return
        dialog = LabelDialog(self.labels, lab, self)
        if dialog.exec() != QDialog.Accepted:
            return
        v = dialog.values()
        changes: dict[str, Any] = {}
        if v["name"] and v["name"] != lab.name:
            changes["new_name"] = v["name"]
        if v["colour"] and v["colour"] != lab.colour:
            changes["colour"] = v["colour"]
        if v["hotkey"] != (lab.hotkey or ""):
            changes["hotkey"] = v["hotkey"]
        if v["description"] != lab.description:
            changes["description"] = v["description"]
        parent_path = next((x.path for x in self.labels if x.id == lab.parent_id), "")
        if v["parent"] != parent_path:
            changes["parent"] = v["parent"]
        if changes:
            self._write(lambda p: p.update_label(lab.path, **changes), f"updated {lab.path}")

    def merge_selected(self) -> None:
        lab = self.selected()
        if lab is None:
            return
        choices = [x.path for x in self.labels if x.id != lab.id]
        if not choices:
            return
        into, ok = QInputDialog.getItem(self, "Merge label", f"Move every item of {lab.path} "
                                        "into:", choices, 0, False)
        if ok:
            self._write(lambda p: p.merge_labels([lab.path], into),
                        f"merged {lab.path} into {into} (undo with Ctrl+Z)")

    def remove_selected(self) -> None:
        lab = self.selected()
        if lab is None:
            return
        force = False
        if lab.count:
            answer = QMessageBox.question(
                self, "Remove label", f"{lab.path} is on {lab.count} item(s). Clear them "
                "(one undoable event) and remove the label?")
            if answer != QMessageBox.Yes:
                return
            force = True
        self._write(lambda p: p.remove_label(lab.path, force=force), f"removed {lab.path}")


# --- export ---------------------------------------------------------------------------------


EXPORT_FORMATS = ("jsonl", "csv", "parquet", "imagefolder", "coco", "labelstudio", "nemo")


class ExportDialog(QDialog):
    """Export options: format, folder, split, seed, only labelled items, file mode.

    The fields follow the signature of `Project.export` when the facade has it, so an option
    added there shows up here as a plain field.
    """

    def __init__(self, project: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.fields: dict[str, Any] = {}
        form = QFormLayout()
        self.format = QComboBox()
        self.format.addItems(_export_formats())
        # jsonl keeps every modality (coco would drop audio and video).
        if self.format.findText("jsonl") >= 0:
            self.format.setCurrentIndex(self.format.findText("jsonl"))
        form.addRow("Format", self.format)
        self.out = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        form.addRow("Folder", out_row)
        self.split = QLineEdit("train=0.8,val=0.1,test=0.1")
        self.split.setToolTip("Fractions per split, stratified by label, duplicates kept "
                              "together; empty for no split")
        form.addRow("Split", self.split)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed)
        self.only_labeled = QCheckBox("Only labelled items")
        form.addRow("", self.only_labeled)
        self.mode = QComboBox()
        self.mode.addItems(["copy", "symlink", "hardlink"])
        form.addRow("Media files", self.mode)
        known = {"fmt", "format", "out", "split", "seed", "only_labeled", "mode", "progress",
                 "cancel", "self"}
        fn = getattr(project, "export", None)
        if fn is not None:
            try:
                params = inspect.signature(fn).parameters.values()
            except (TypeError, ValueError):
                params = []
            for p in params:
                if p.name in known or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                widget = _field_for(p.default)
                if widget is not None:
                    self.fields[p.name] = widget
                    form.addRow(p.name.replace("_", " "), widget)
        self.note = QLabel("" if fn is not None else
                           "This Curator has no Project.export yet; export with the CLI.")
        self.note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Export")
        buttons.button(QDialogButtonBox.Ok).setEnabled(fn is not None)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder")
        if folder:
            self.out.setText(os.path.join(folder, "export"))

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"fmt": self.format.currentText(), "out": self.out.text().strip(),
                                "split": self.split.text().strip() or None,
                                "seed": self.seed.value(),
                                "only_labeled": self.only_labeled.isChecked(),
                                "mode": self.mode.currentText()}
        for name, widget in self.fields.items():
            args[name] = _field_value(widget)
        return args


def _export_formats() -> list[str]:
    try:
        from curator.export import exporters

        names = [e.name for e in exporters()]
        if names:
            return names
    except ImportError:
        pass
    return list(EXPORT_FORMATS)


def _field_for(default: Any) -> Optional[QWidget]:
    if isinstance(default, bool):
        w = QCheckBox()
        w.setChecked(default)
        return w
    if isinstance(default, int):
        w = QSpinBox()
        w.setRange(-2**31, 2**31 - 1)
        w.setValue(default)
        return w
    if isinstance(default, float):
        w = QDoubleSpinBox()
        w.setDecimals(3)
        w.setRange(-1e9, 1e9)
        w.setValue(default)
        return w
    if default is None or isinstance(default, str):
        return QLineEdit(default or "")
    return None


def _field_value(widget: QWidget) -> Any:
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value()
    text = widget.text().strip()
    return text or None
