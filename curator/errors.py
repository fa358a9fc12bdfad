"""User-facing errors: each carries one line that names the thing and what is wrong with it.

The domain speaks of the domain: the message says what is wrong with the project or the input,
`hint` how to fix it (in the domain's words; it may name a `curator` command, never a flag), and
`option` which setting fixes it, by its parameter name ("threshold", "label", "force"). Each skin
renders the option its own way: the CLI names its flag (`curator.cli.base.FLAGS`), the app its
button or field. No message or hint in the domain names a command-line flag.
"""

from __future__ import annotations

from typing import Optional


class CuratorError(Exception):
    """An error the CLI and the GUI show as one clear line, never as a traceback.

    Args:
        message: what is wrong, in the words of the project and its data.
        hint: how to fix it, in the domain's words (it may name a `curator` command), or None.
        option: the parameter that fixes it (a facade or feature argument name), or None.
    """

    def __init__(self, message: str = "", *, hint: Optional[str] = None,
                 option: Optional[str] = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.option = option

    def with_hint(self) -> str:
        """The message followed by the hint, in the domain's words."""
        message, hint = str(self), getattr(self, "hint", None)
        return f"{message}; {hint}" if hint else message


class NotAProjectError(CuratorError):
    """The folder given is not a Curator project."""


class UsageError(CuratorError):
    """A wrong argument: a missing path, an unknown id, a bad value."""


class CatalogError(CuratorError):
    """The catalog cannot be used as asked: damaged, read-only, or its disk is full."""


class CatalogDamagedError(CatalogError, NotAProjectError):
    """The catalog file is corrupt; nothing may be written to it until it is repaired.

    It is also a NotAProjectError: the folder cannot be opened as a project as it is.
    """


class ReadOnlyCatalogError(CatalogError):
    """A write was asked of a project that is open read-only."""
