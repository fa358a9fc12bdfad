"""User-facing errors: each carries one line that names the thing and what to do."""


class CuratorError(Exception):
    """An error the CLI and the GUI show as one clear line, never as a traceback."""


class NotAProjectError(CuratorError):
    """The folder given is not a Curator project."""


class UsageError(CuratorError):
    """A wrong argument: a missing path, an unknown id, a bad value."""
