"""The desktop app's persisted state (QSettings): recent projects, window layout, view options."""

from __future__ import annotations

import os
from typing import Any, Optional

from PySide6.QtCore import QSettings

ORGANIZATION = "Curator"
APPLICATION = "Curator"
MAX_RECENT = 10


def settings() -> QSettings:
    """The app's settings store (an INI file under the user's config folder).

    INI on every platform, so tests can redirect it with
    `QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, tmp_path)`.
    """
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


def recent_projects() -> list[str]:
    """Recently opened project folders, newest first, only those that still exist."""
    value = settings().value("recent/projects", [])
    if isinstance(value, str):
        value = [value]
    return [p for p in (value or []) if isinstance(p, str) and os.path.isdir(p)]


def remember_project(path: str) -> None:
    path = os.path.abspath(path)
    items = [p for p in recent_projects() if os.path.abspath(p) != path]
    s = settings()
    s.setValue("recent/projects", [path, *items][:MAX_RECENT])
    s.sync()


def value(key: str, default: Any = None, kind: Optional[type] = None) -> Any:
    """A stored value, converted to `kind` when given (INI files store everything as text)."""
    raw = settings().value(key, default)
    if kind is None or raw is None:
        return raw
    try:
        if kind is bool:
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
        return kind(raw)
    except (TypeError, ValueError):
        return default


def set_value(key: str, data: Any) -> None:
    s = settings()
    s.setValue(key, data)
    s.sync()
