"""The `curator` command line: each command parses flags, calls one Project method and prints.

Nothing heavy is imported at start-up; each command imports what it needs when it runs. The
commands live in one module per group; importing them registers them on the root group.
"""

from curator.cli import export, groups, index, labels, quality, splits  # noqa: F401  (registers)
from curator.cli.base import cli, main

__all__ = ["cli", "main"]
