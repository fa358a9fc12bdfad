"""The main window's tabs, the views beyond the queue and the group built when first shown.

The Map, Duplicates, Suspects, Audit and Report tabs start as empty pages; the first time one is
shown (or `window.map`, `window.report`, … is read) its module is imported and the view is built
and bound in place of the page. The first screen (the queue) needs none of them, and their
modules (NumPy rasters, QtMultimedia previews, tree panels) cost start-up time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from PySide6.QtWidgets import QTabWidget, QWidget

log = logging.getLogger(__name__)

# (attribute, title), in tab order; the View menu's Ctrl+1… follow this order.
TABS = (("queue", "Queue"), ("group", "Group"), ("map", "Map"), ("duplicates", "Duplicates"),
        ("suspects", "Suspects"), ("audit", "Audit"), ("report", "Report"))


def _build_map(window: Any) -> QWidget:
    from ui.map_view import MapView

    view = MapView(window.session, window.thumbs)
    view.open_items.connect(window.open_items)
    view.message.connect(window.show_message)
    view.set_labels(window.labels)
    at = view.colour_by.findData(window.map_colour_by)
    if at >= 0:
        view.colour_by.setCurrentIndex(at)
    return view


def _panel(name: str) -> Callable[[Any], QWidget]:
    def build(window: Any) -> QWidget:
        from ui import panels

        panel = getattr(panels, name)(window.session, window.thumbs)
        panel.message.connect(window.show_message)
        panel.open_items.connect(window.open_items)
        panel.preview.connect(window.preview_item)
        if name == "AuditPanel":  # its "relabel" choices
            panel.labels = window.labels
        return panel

    return build


BUILDERS: dict[str, Callable[[Any], QWidget]] = {
    "map": _build_map,
    "duplicates": _panel("DuplicatesPanel"),
    "suspects": _panel("SuspectsPanel"),
    "audit": _panel("AuditPanel"),
    "report": _panel("ReportPanel"),
}


class LazyTab:
    """A window attribute (`window.map`) that builds its tab's view on first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, window: Any, owner: type) -> Any:
        if window is None:
            return self
        return window.tab(self.name)


class WindowTabs:
    """Mixed into MainWindow: the tab widget with the views built on first use."""

    map = LazyTab()
    duplicates = LazyTab()
    suspects = LazyTab()
    audit = LazyTab()
    report = LazyTab()

    def _install_tabs(self, eager: dict[str, QWidget]) -> QTabWidget:
        """The tab widget: `eager` views now, empty pages for the others."""
        self.tabs = QTabWidget()
        self._built: dict[str, QWidget] = {}
        self._pages: dict[QWidget, str] = {}  # empty page -> tab name
        self.map_colour_by = "label"
        for name, title in TABS:
            widget = eager.get(name)
            if widget is None:
                widget = QWidget()
                self._pages[widget] = name
            else:
                self._built[name] = widget
            self.tabs.addTab(widget, title)
        return self.tabs

    def built(self, name: str) -> Optional[QWidget]:
        """The tab's view if it was built (never builds it)."""
        return self._built.get(name)

    def tab(self, name: str) -> QWidget:
        """The tab's view, built (and put in place of its empty page) on first use."""
        widget = self._built.get(name)
        if widget is not None:
            return widget
        page = next(p for p, n in self._pages.items() if n == name)
        widget = BUILDERS[name](self)
        self._built[name] = widget
        index = self.tabs.indexOf(page)
        current = self.tabs.currentIndex()
        self.tabs.blockSignals(True)  # the swap is not a tab change
        try:
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, widget, dict(TABS)[name])
            self.tabs.setCurrentIndex(current)
        finally:
            self.tabs.blockSignals(False)
        del self._pages[page]
        page.deleteLater()
        return widget

    def is_current(self, name: str) -> bool:
        """The tab is the one on screen (without building it)."""
        widget = self.tabs.currentWidget()
        return widget is self._built.get(name) or self._pages.get(widget) == name

    def current_view(self) -> QWidget:
        """The view of the tab on screen, built when it was an empty page."""
        widget = self.tabs.currentWidget()
        name = self._pages.get(widget)
        return self.tab(name) if name is not None else widget
