"""The `curator` command line: each command parses flags, calls one Project method and prints.

Nothing heavy is imported at start-up; each command imports what it needs when it runs. The
commands live in one module per group; importing them registers them on the root group.
"""

from curator.cli import (  # noqa: F401  (importing registers the commands)
    export,
    groups,
    index,
    labels,
    maintenance,
    quality,
    sources,
    splits,
)
from curator.cli.base import cli, main

__all__ = ["cli", "main"]
