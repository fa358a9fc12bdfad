"""Safe output: where an export may be written, and how it replaces the previous one.

An export is built in a hidden sibling `.OUT.curator-tmp-<pid>` and swapped into place through a
journal (`.OUT.curator-swap.json`, written once the new export is complete):

1. journal written; 2. OUT renamed to `.OUT.curator-old-<pid>`; 3. the new export renamed to OUT;
4. the old one removed; 5. journal removed.

A run killed anywhere in 2-5 is finished by the next export to the same OUT (the new export is
complete by then); a run killed while building leaves only its temporary folder, which the next
run removes (rolled back). A symlinked OUT keeps its link: the swap happens at the link's target.
A folder holding files the previous export did not write (a model, checkpoints) is refused with
the list of those files unless the caller forces the replacement.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from curator.errors import UsageError
from curator.procs import pid_alive

MANIFEST = "manifest.json"
MANIFEST_MARK = "curator_export"
FILES_LIST = ".curator-files"  # every path the export wrote, one per line
_TMP, _OLD, _JOURNAL = ".curator-tmp-", ".curator-old-", ".curator-swap.json"


class ForeignFiles(UsageError):
    """The export folder holds files that no previous Curator export wrote."""

    def __init__(self, out: Path, files: list[str], is_export: bool) -> None:
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        what = ("holds files the previous export did not write" if is_export
                else "is not empty and not a Curator export")
        super().__init__(f"{out} {what}: {shown}; they would be deleted. Move them, choose "
                         "another folder, or replace the folder anyway")
        self.files = files


def is_export(folder: Path | str) -> bool:
    """True when the folder holds a Curator export (its manifest says so)."""
    try:
        with open(Path(folder) / MANIFEST, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get(MANIFEST_MARK) is not None


def target_of(out: Path) -> Path:
    """Where the export really goes: OUT, or the folder a symlinked OUT points at."""
    if out.is_symlink():
        return Path(os.path.realpath(out))
    return out


def check_place(out: Path, project_root: Path, source_roots: Iterable[str]) -> None:
    """Refuse an OUT inside a source folder, holding one, or holding the project."""
    real = os.path.realpath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out} is a file; give a folder for the export")
    for source in source_roots:
        root = os.path.realpath(source)
        if os.path.commonpath([real, root]) == root:
            raise UsageError(f"{out} is inside the source folder {source}, which Curator "
                             "never writes to; choose a folder elsewhere")
        if os.path.commonpath([real, root]) == real:
            raise UsageError(f"{out} holds the source folder {source}; choose another folder")
    if os.path.commonpath([real, os.path.realpath(project_root)]) == real:
        raise UsageError(f"{out} holds the project itself; choose another folder")


def _walk(root: Path) -> list[str]:
    """Relative paths of every file and link under root (not the folders)."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        for name in files:
            found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return found


def written_files(root: Path) -> set[str]:
    """The files a Curator export says it wrote (empty when it kept no list)."""
    try:
        with open(root / FILES_LIST, encoding="utf-8") as fh:
            return {line.rstrip("\n") for line in fh if line.strip()}
    except OSError:
        return set()


def check_replace(target: Path, force: bool) -> None:
    """Refuse to replace a folder holding files no previous export wrote (unless forced).

    Raises:
        ForeignFiles: with the list of those files.
    """
    if force or not target.is_dir():
        return
    present = _walk(target)
    if not present:
        return
    export = is_export(target)
    listed = written_files(target) if export else set()
    foreign = sorted(set(present) - listed - {FILES_LIST, MANIFEST}) if export and listed \
        else ([] if export else sorted(present))
    if foreign:
        raise ForeignFiles(target, foreign, export)


def write_files_list(root: Path) -> int:
    """List every file of a finished export in it, so a later export knows what it may replace."""
    files = sorted(_walk(root))
    with open(root / FILES_LIST, "w", encoding="utf-8") as fh:
        fh.writelines(f"{rel}\n" for rel in files)
    return len(files)


def staging(target: Path) -> Path:
    return target.with_name(f".{target.name}{_TMP}{os.getpid()}")


def _journal(target: Path) -> Path:
    return target.with_name(f".{target.name}{_JOURNAL}")


_rename = os.rename  # one name, so a test can stop a run between the two renames


def commit(tmp: Path, target: Path) -> None:
    """Swap the finished export at `tmp` into `target` through the journal (see module doc)."""
    old = target.with_name(f".{target.name}{_OLD}{os.getpid()}")
    journal = _journal(target)
    _write_journal(journal, {"pid": os.getpid(), "tmp": tmp.name, "old": old.name})
    _finish(target, tmp, old)
    os.remove(journal)


def _write_journal(path: Path, data: dict[str, Any]) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def _finish(target: Path, tmp: Path, old: Path) -> None:
    if tmp.exists():
        if target.exists() or target.is_symlink():
            if old.exists():
                shutil.rmtree(old)
            _rename(target, old)
        _rename(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def recover(target: Path) -> list[str]:
    """Finish an interrupted swap into `target`, and remove what killed builds left.

    Returns:
        One line per thing done, for the export's notes.
    """
    done: list[str] = []
    parent = target.parent
    if not parent.is_dir():
        return done
    journal = _journal(target)
    if journal.exists():
        try:
            data = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not pid_alive(data.get("pid")) or data.get("pid") == os.getpid():
            tmp, old = parent / str(data.get("tmp", "")), parent / str(data.get("old", ""))
            if data.get("tmp") and data.get("old"):
                _finish(target, tmp, old)
                done.append(f"finished the export to {target} that was interrupted while "
                            "being put in place")
            os.remove(journal)
    part = journal.with_name(journal.name + ".part")
    if part.exists():
        os.remove(part)
    for prefix in (f".{target.name}{_TMP}", f".{target.name}{_OLD}", f"{target.name}.tmp-",
                   f"{target.name}.old-"):
        for entry in parent.iterdir():
            rest = entry.name[len(prefix):]
            if not entry.name.startswith(prefix) or not rest.isdigit():
                continue
            if int(rest) == os.getpid() or pid_alive(int(rest)) or not entry.is_dir():
                continue
            if prefix.endswith(".old-") and not target.exists():
                _rename(entry, target)  # an older Curator was killed between its renames
                done.append(f"restored the previous export to {target}")
            else:
                shutil.rmtree(entry, ignore_errors=True)
                done.append(f"removed {entry.name}, left by an export that was interrupted")
    return done
