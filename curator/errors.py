"""User-facing errors: each carries one line that names the thing and what to do."""


class CuratorError(Exception):
    """An error the CLI and the GUI show as one clear line, never as a traceback."""


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
