"""The main window's actions, declared in one place: the menus, the toolbar and the search box.

Each action is set on the window as `<name>_action` (undo, redo, export, …) and bound to the
window's slot of the same job, so menus, toolbar buttons and shortcuts share one enablement.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLineEdit, QToolBar

TABS = ("queue", "group", "map", "duplicates", "suspects", "audit", "report")


def _action(window: Any, text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setToolTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def install_actions(window: Any) -> None:
    """Create the window's actions (as `window.<name>_action`), menus, toolbar and search box."""
    window.new_action = _action(window, "New project…", window.new_project, QKeySequence.New)
    window.open_action = _action(window, "Open project…", window.open_dialog, QKeySequence.Open)
    window.index_action = _action(window, "Index…", window.index_dialog, "Ctrl+I",
                                  "Scan, embed, group and map (resumes)")
    window.export_action = _action(window, "Export…", window.export_dialog, "Ctrl+E")
    window.taxonomy_action = _action(window, "Taxonomy…", window.taxonomy_dialog, "Ctrl+T")
    window.undo_action = _action(window, "Undo", window.undo, "Ctrl+Z")
    window.redo_action = _action(window, "Redo", window.redo, ("Ctrl+Shift+Z", "Ctrl+Y"))
    window.like_action = _action(window, "More like this", lambda: window.search_like(
        window.group.current_item()), "Ctrl+L", "Items like the current one")
    window.annotator_action = _action(window, "Annotator name…", window.ask_annotator)
    quit_action = _action(window, "Quit", window.close, QKeySequence.Quit)

    menu = window.menuBar().addMenu("&File")
    menu.addAction(window.new_action)
    menu.addAction(window.open_action)
    window.recent_menu = menu.addMenu("Open recent")
    window.recent_menu.aboutToShow.connect(window.fill_recent_menu)
    menu.addSeparator()
    menu.addAction(window.index_action)
    menu.addAction(window.export_action)
    menu.addSeparator()
    menu.addAction(quit_action)
    edit = window.menuBar().addMenu("&Edit")
    for a in (window.undo_action, window.redo_action, window.taxonomy_action, window.like_action,
              window.annotator_action):
        edit.addAction(a)
    view = window.menuBar().addMenu("&View")
    for i, name in enumerate(TABS):
        view.addAction(_action(window, name.capitalize(), lambda _=False, i=i:
                                window.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}"))

    bar = QToolBar("Main")
    bar.setObjectName("mainToolbar")
    bar.setMovable(False)
    for a in (window.open_action, window.index_action, window.taxonomy_action, window.export_action,
              window.undo_action, window.redo_action):
        bar.addAction(a)
    bar.addSeparator()
    window.search_box = QLineEdit()
    window.search_box.setObjectName("searchBox")
    window.search_box.setPlaceholderText("Search: words (“a red car”) or like:ITEM_ID")
    window.search_box.setClearButtonEnabled(True)
    window.search_box.setMinimumWidth(320)
    window.search_box.returnPressed.connect(window.search_from_box)
    bar.addWidget(window.search_box)
    bar.addAction(window.like_action)
    window.addToolBar(bar)
