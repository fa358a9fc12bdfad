"""The first start's look for model weights: in the background, once, when Index… needs it.

Looking for weights (`IndexOptions.with_models_here`) imports open_clip and torch, tens of seconds
on a slow machine, so it never runs while the window starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from ui.workers import submit

log = logging.getLogger(__name__)


class IndexOptionsCheck(QObject):
    """The options Index… starts from, checked against the weights on this machine once.

    Signals:
        checked(object): the checked IndexOptions.
    """

    checked = Signal(object)

    def __init__(self, options: Any, done: bool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.done = done  # nothing to check: the user chose models before
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._waiting: list[Callable[[Any], None]] = []

    def choose(self, options: Any) -> None:
        """The user's own choice: it wins over the check."""
        self.options = options
        self.done = True

    def when_checked(self, then: Callable[[Any], None]) -> bool:
        """Call `then(options)` once checked (now, when it is); True when a check was started."""
        if self.done:
            then(self.options)
            return False
        self._waiting.append(then)
        if len(self._waiting) > 1:
            return False
        options = self.options
        submit(lambda: options.with_models_here()[0], pool=self._pool, name="model check",
               on_result=self._found, on_error=lambda info: self._failed(info, options))
        return True

    def _failed(self, info: Any, options: Any) -> None:
        log.warning("model check failed: %s", info)
        self._found(options)

    def _found(self, options: Any) -> None:
        if not self.done:
            self.options = options
            self.done = True
        waiting, self._waiting = self._waiting, []
        self.checked.emit(self.options)
        for then in waiting:
            then(self.options)
