"""The `curator gui` command, registered with the CLI as a plug-in so `curator` never imports Qt."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click


@click.command()
@click.argument("project", type=click.Path(path_type=Path), required=False)
def gui(project: Optional[Path]) -> None:
    """Open the desktop app on PROJECT (or the start dialog to open or create one)."""
    from ui.app import main as gui_main

    sys.exit(gui_main(str(project) if project else None))
