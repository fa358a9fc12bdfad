"""The main window's search (words or "more like this") and its item preview window.

Search results open as a temporary group in the group view; the preview follows the grid's
current item. The preview window is built on first use.
"""

from __future__ import annotations

from typing import Any, Optional


class WindowSearch:
    """Mixed into MainWindow: the search box, "more like this" and the preview window."""

    # Search results further than this (cosine) below the best hit are left out: "more like
    # this" shows the near neighbours, not the 100 nearest whatever their distance.
    SEARCH_CUTOFF = 0.15

    # --- search ---------------------------------------------------------------------------

    def search_from_box(self) -> None:
        text = self.search_box.text().strip()
        if not text:
            return
        if text.lower().startswith("like:") and text[5:].strip().isdigit():
            self.search_like(int(text[5:].strip()))
        else:
            self.search_text(text)

    def search_text(self, text: str, k: int = 100) -> None:
        self._search(f"Search “{text}”", {"text": text, "k": k})

    def search_like(self, item_id: Optional[int], k: int = 100) -> None:
        if item_id is None:
            self.show_message("pick an item first")
            return
        self._search(f"Like item {item_id}", {"like": int(item_id), "k": k})

    def _search(self, title: str, query: dict[str, Any]) -> None:
        project = self.session.project
        if project is None:
            self.show_message("open a project first")
            return
        self.show_message(f"{title}: searching…")
        self.session.read(lambda p: p.search(**query), key="search", name="search",
                          on_result=lambda hits: self._search_done(title, hits),
                          on_error=self._search_failed)

    def _search_failed(self, info: Any) -> None:
        # The domain says what is wrong; the app names its own way out (not a CLI flag).
        if "text tower" in str(info):
            self.show_error(f"{info}: select an item and press Ctrl+L (More like this)")
        else:
            self.show_error(info)

    def _search_done(self, title: str, hits: list[Any]) -> None:
        top = max((float(h.score) for h in hits), default=0.0)
        kept = [h for h in hits if float(h.score) >= top - self.SEARCH_CUTOFF]
        ids = [h.item_id for h in kept]
        scores = {h.item_id: float(h.score) for h in kept}
        self.group.show_items(f"{title}", ids, kind="search", scores=scores)
        self.tabs.setCurrentWidget(self.group)
        dropped = len(hits) - len(kept)
        self.show_message(f"{title}: {len(ids)} results within {self.SEARCH_CUTOFF} of the best"
                          + (f" ({dropped} further ones left out)" if dropped else "")
                          + "; badges show labels they already carry")

    # --- preview --------------------------------------------------------------------------

    def preview_window(self) -> Any:
        """The item preview window (a PreviewWindow, built on first use)."""
        if self._preview is None:
            from ui.preview import PreviewWindow

            self._preview = PreviewWindow(self.session, self.thumbs, self)
            self._preview.pane.more_like_this.connect(self.search_like)
            self._preview.step.connect(self._preview_step)
        return self._preview

    def preview_item(self, item_id: Optional[int]) -> None:
        if item_id is None:
            return
        window = self.preview_window()
        window.pane.show_item(int(item_id))
        window.show()
        window.raise_()

    def _preview_follow(self) -> None:
        if self._preview is not None and self._preview.isVisible():
            item = self.group.current_item()
            if item is not None and item != getattr(self._preview.pane, "item_id", None):
                self._preview.pane.show_item(int(item))

    def _preview_step(self, step: int) -> None:
        grid = self.group.grid
        index = grid.currentIndex()
        row = (index.row() if index.isValid() else 0) + step
        if 0 <= row < self.group.model.rowCount():
            grid.setCurrentIndex(self.group.model.index(row))
            self.preview_item(self.group.model.item_at(row))
