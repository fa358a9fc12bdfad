"""What this Curator is: its version, build flavour, Python, key libraries and default models.

`curator --version` and the app's About dialog both show `version_report()`. Library versions
come from installed distribution metadata, so nothing heavy (torch, faiss, Qt) is imported.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

from curator import __version__

# The distributions a bug report needs, in the order they are shown.
LIBRARIES = (
    "numpy", "faiss-cpu", "faiss-gpu-cu12", "torch", "open-clip-torch", "transformers",
    "scikit-learn", "umap-learn", "hdbscan", "pyarrow", "av", "pillow", "sqlite-utils",
    "PySide6",
)
# Written into a desktop bundle by packaging/curator.spec: one line, "lite" or "full".
FLAVOUR_FILE = "curator-flavour.txt"


@dataclass(frozen=True)
class VersionReport:
    """Everything `curator --version` prints.

    Attributes:
        app: Curator's version.
        build: "python package", or "desktop bundle (lite)" / "desktop bundle (full)".
        python: the Python version and implementation.
        platform: OS and machine.
        libraries: distribution name → version, or None when it is not installed.
        sqlite: the SQLite library version the catalog runs on.
        models: role ("image/video", "audio") → the default model string from the settings.
    """

    app: str
    build: str
    python: str
    platform: str
    libraries: dict[str, Optional[str]]
    sqlite: str
    models: dict[str, str]

    def lines(self, all_libraries: bool = False) -> list[str]:
        """The report as text lines; libraries that are not installed are left out unless asked."""
        libs = [f"{name} {v}" if v else f"{name} (not installed)"
                for name, v in self.libraries.items() if v or all_libraries]
        out = [f"curator {self.app} ({self.build})",
               f"Python {self.python} on {self.platform}",
               f"SQLite {self.sqlite}"]
        out += _wrap("libraries: ", libs)
        out += [f"default {role} model: {model}" for role, model in self.models.items()]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def _wrap(prefix: str, parts: list[str], width: int = 96) -> list[str]:
    lines, line = [], prefix
    for i, part in enumerate(parts):
        piece = part + (", " if i < len(parts) - 1 else "")
        if len(line) + len(piece) > width and line.strip() != prefix.strip():
            lines.append(line.rstrip())
            line = " " * len(prefix)
        line += piece
    lines.append(line.rstrip())
    return lines


def library_version(name: str) -> Optional[str]:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def bundle_flavour() -> Optional[str]:
    """"lite" or "full" inside a desktop bundle (PyInstaller), None for a Python install."""
    if not getattr(sys, "frozen", False):
        return None
    base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    try:
        return (base / FLAVOUR_FILE).read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def version_report() -> VersionReport:
    """Collect the report (reads the settings for the default models; never loads a model)."""
    flavour = bundle_flavour()
    build = "python package" if flavour is None else f"desktop bundle, {flavour}"
    models: dict[str, str] = {}
    try:
        from curator.settings import load_settings

        settings = load_settings()
        models = {"image/video": settings.model, "audio": settings.audio_model}
    except Exception as exc:  # noqa: BLE001 - a broken config must not hide the version
        models = {"image/video": f"(settings unreadable: {str(exc).splitlines()[0][:80]})"}
    if flavour == "lite" or library_version("torch") is None:
        from indexing.embedders import resolve

        models = {role: f"{m} (this build has no torch: the classic embedder is used)"
                  if m.strip() and resolve(m, role.split("/")[0]).capabilities.needs_weights
                  else m
                  for role, m in models.items()}
    return VersionReport(
        app=__version__,
        build=build,
        python=f"{platform.python_version()} ({platform.python_implementation()})",
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        libraries={name: library_version(name) for name in LIBRARIES},
        sqlite=sqlite3.sqlite_version,
        models=models,
    )


def version_text() -> str:
    """The multi-line text `curator --version` prints."""
    return version_report().text()


def click_callback(ctx: object, _param: object, value: bool) -> None:
    """A click option callback for `--version`: print `version_text()` and exit.

    Use as ``@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
    callback=click_callback)``.
    """
    if not value or getattr(ctx, "resilient_parsing", False):
        return
    import click

    click.echo(version_text())
    ctx.exit()  # type: ignore[attr-defined]


if __name__ == "__main__":  # python -m curator.version
    sys.stdout.write(version_text() + os.linesep)
