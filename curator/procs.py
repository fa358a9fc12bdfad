"""Which process this is, and whether another one is still running: the one owner of pid liveness.

Runs, the stage lock, vector-store temporaries and export journals record the process that
wrote them; a later process asks here whether that writer is still alive before it cleans up
after it or calls its run abandoned.
"""

from __future__ import annotations

import os
import socket
from typing import Optional


def pid_alive(pid: Optional[int]) -> bool:
    """Whether a process with this id runs on this machine (ours counts; no id never does).

    A process we may not signal (another user's) is alive: `PermissionError` proves it exists.
    """
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def host() -> str:
    """This machine's name, recorded beside a pid: a pid means nothing on another host."""
    return socket.gethostname()


def owner() -> dict[str, object]:
    """This process as a record to store: `{"pid": ..., "host": ...}`."""
    return {"pid": os.getpid(), "host": host()}
