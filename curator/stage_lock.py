"""One indexing stage at a time per project: a lock file naming the process that holds it.

Two `scan`s (or an `embed` beside a `cluster`, or the app's Index job beside the CLI) on one
project would both do the whole job and race on the vector files. Each recorded run takes the
project's stage lock: an OS lock (`flock`) on `stage.lock`, released by the OS if the process
dies, with the holder's pid, host, stage and start time written inside so the refusal can name
it. The lock is re-entrant within a process (a pipeline's stages nest).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from curator import procs
from curator.errors import CuratorError

LOCK_NAME = "stage.lock"
_held: dict[str, list] = {}  # lock path -> [file object, depth]
_guard = threading.Lock()


class StageBusy(CuratorError):
    """Another process is running a stage on this project."""


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another Curator process"
    return (f"a {info.get('stage', 'stage')} run (pid {info.get('pid')} on {info.get('host')}, "
            f"since {info.get('started', '?')})")


@contextlib.contextmanager
def stage_lock(root: Path | str, stage: str) -> Iterator[None]:
    """Hold the project's stage lock for the block.

    Raises:
        StageBusy: another process holds it (the message names that process and its stage).
    """
    from curator.connection import utcnow

    path = Path(root) / LOCK_NAME
    key = str(path)
    with _guard:
        held = _held.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield
        finally:
            with _guard:
                held[1] -= 1
        return
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held across the block
    if not _try_lock(fh):
        fh.close()
        raise StageBusy(f"{_describe(path)} is already working on {root}; wait for it to "
                        f"finish (or stop it) before starting {stage}")
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({**procs.owner(), "stage": stage, "started": utcnow()}))
    fh.flush()
    with _guard:
        _held[key] = [fh, 1]
    try:
        yield
    finally:
        with _guard:
            _held[key][1] -= 1
            done = _held[key][1] == 0
            if done:
                del _held[key]
        if done:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            _unlock(fh)
            fh.close()


def _try_lock(fh) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fh) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
