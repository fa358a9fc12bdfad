"""The first start's look for model weights: in the background, once, when Index… needs it.

Looking for weights (`IndexOptions.with_models_here`) imports open_clip and torch, tens of seconds
on a slow machine, so it never runs while the window starts. The options themselves are built
on first use too: `curator.pipeline` imports the catalog (NumPy, sqlite-utils), which the first
screen does not need before the window shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from PySide6.QtCore import QObject, QThreadPool, Signal

from ui.workers import submit

log = logging.getLogger(__name__)

# How the check's notes name what runs with the weight-free embedder ("… Index… embeds audio
# with the weight-free classic embedder; `curator doctor` says how to add weights").
PURPOSE = "Index…"


class IndexOptionsCheck(QObject):
    """The options Index… starts from, checked against the weights on this machine once.

    Signals:
        checked(object): the checked IndexOptions; `notes` then says what the check chose.
    """

    checked = Signal(object)

    def __init__(self, make_options: Callable[[], Any], done: bool,
                 parent: Optional[QObject] = None,
                 chosen: Optional[tuple[str, str]] = None) -> None:
        """Args:
            make_options: builds the unchecked IndexOptions (called on first use).
            done: nothing to check (the user chose models before).
            chosen: the (image, audio) models the user chose before, when both are known.
        """
        super().__init__(parent)
        self._make_options = make_options
        self._chosen = chosen
        self._options: Any = None
        self.done = done
        # What the check found, one line each (`with_models_here`): the models replaced by
        # classic and why, the models whose weights are here. Empty until checked.
        self.notes: list[str] = []
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._waiting: list[Callable[[Any], None]] = []

    @property
    def options(self) -> Any:
        if self._options is None:
            self._options = self._make_options()
        return self._options

    def model_names(self) -> tuple[str, str]:
        """The (image, audio) models Index… starts from, without building the options when the
        user's earlier choice names both (the welcome page at start)."""
        if self._options is None and self.done and self._chosen is not None:
            return self._chosen
        return self.options.model, self.options.audio_model

    def choose(self, options: Any) -> None:
        """The user's own choice: it wins over the check."""
        self._options = options
        self.done = True

    def when_checked(self, then: Callable[[Any], None]) -> bool:
        """Call `then(options)` once checked (now, when it is); True when a check was started."""
        if self.done:
            then(self.options)
            return False
        self._waiting.append(then)
        if len(self._waiting) > 1:
            return False
        make, known = self._make_options, self._options

        def check() -> tuple[Any, list[str]]:
            options = known if known is not None else make()
            return options.with_models_here(PURPOSE)

        submit(check, pool=self._pool, name="model check", on_result=self._found,
               on_error=self._failed)
        return True

    def _failed(self, info: Any) -> None:
        log.warning("model check failed: %s", info)
        self._found((None, [f"could not look for model weights: {info}"]))

    def _found(self, answer: tuple[Any, list[str]]) -> None:
        options, notes = answer
        if not self.done:
            if options is not None:
                self._options = options
            self.notes = list(notes)
            self.done = True
        waiting, self._waiting = self._waiting, []
        self.checked.emit(self.options)
        for then in waiting:
            then(self.options)
