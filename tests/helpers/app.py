"""Helpers for the app's tests: open the window's project beside it, wait for background work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TIMEOUT = 20000  # ms: the longest a test waits for the app's background work


@contextmanager
def opened(project_dir: Path) -> Iterator[Any]:
    """The project the window shows, opened a second time as another process would."""
    from curator.project import Project

    project = Project.open(project_dir)
    try:
        yield project
    finally:
        project.close()


def settle(qtbot: Any, win: Any, timeout: int = TIMEOUT) -> None:
    """Wait until every background call of the window has finished and been delivered."""
    pools = (win.session.read_pool, win.session.write_pool, win.session.job_pool,
             win.thumbs.pool, win.map.canvas.pool)
    qtbot.waitUntil(lambda: all(p.waitForDone(0) for p in pools), timeout=timeout)
    qtbot.wait(30)
