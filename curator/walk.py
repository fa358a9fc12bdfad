"""The file side of a scan: walking source folders (globs, hidden files, symlink loops) and probing
each file in a worker process (hash, modality, media facts); no catalog here."""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

from indexing.media import MEDIA_EXTENSIONS
from indexing.progress import is_cancelled

log = logging.getLogger(__name__)

# Files with these extensions are never media; skipping them unread keeps listing fast.
NON_MEDIA_EXTENSIONS = frozenset([
    "txt", "csv", "tsv", "json", "jsonl", "md", "rst", "xml", "yaml", "yml", "toml", "ini", "cfg",
    "log", "py", "ipynb", "sh", "html", "htm", "css", "js", "pdf", "doc", "docx", "xls", "xlsx",
    "ppt", "pptx", "zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar", "db", "sqlite", "npy",
    "npz", "pkl", "pt", "pth", "safetensors", "parquet", "srt", "vtt", "sub", "ass", "lrc", "cue",
    "nfo", "exe", "dll", "so"
])


@dataclass(frozen=True)
class ScanOptions:
    """What to walk and how.

    Attributes:
        include: glob patterns (on the path relative to the source, `**` allowed); when given,
            only matching files are items.
        exclude: glob patterns for files or folders to leave out.
        hidden: also walk hidden folders and files (names starting with a dot).
        workers: probing processes; None = one per core, 0 = in this process.
        timeout: seconds one file may take to probe before it is an error item.
        ray: probe and hash on a Ray cluster's workers (curator.distributed.RayOptions); the
            catalog is still written here, in batches.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    workers: Optional[int] = None
    timeout: float = 120.0
    ray: Optional[Any] = None


@dataclass(slots=True)
class _Entry:
    """One file found by the walk."""

    source_id: int
    rel: str
    abs: str
    size: Optional[int] = None
    mtime_ns: Optional[int] = None
    error: Optional[str] = None


def _glob_regex(pattern: str) -> re.Pattern:
    """Translate a glob with `**` (any depth) and `*` (within one folder) to a regex."""
    pattern = pattern.strip().lstrip("/")
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i)
            if j == -1:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(fnmatch.translate(pattern[i : j + 1])[4:-3])
                i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    body = "".join(out)
    if "/" not in pattern:
        # A pattern without a slash matches a name at any depth, like .gitignore.
        body = "(?:.*/)?" + body
    return re.compile(body + "(?:/.*)?$" if not pattern.endswith("/") else body + ".*$")


class _Globs:
    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.regexes = [_glob_regex(p) for p in patterns if p.strip()]

    def __bool__(self) -> bool:
        return bool(self.regexes)

    def match(self, rel: str) -> bool:
        return any(r.match(rel) for r in self.regexes)


# --- the walk ---------------------------------------------------------------------------------


def _is_utf8(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def display_path(name: str) -> str:
    """A name as the catalog can store it: undecodable bytes shown as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _media_extension(name: str) -> Optional[bool]:
    """True for a media extension, False for a known non-media one, None when unknown."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in MEDIA_EXTENSIONS:
        return True
    if ext in NON_MEDIA_EXTENSIONS:
        return False
    return None


def _stat_error(exc: OSError, path: str, name: str, is_link: bool) -> Optional[str]:
    """The error entry's reason for a file that cannot be stat'ed, or None to skip it."""
    if exc.errno == errno.ELOOP:
        return "symlink loop: the link resolves to itself; fix or remove it"
    if is_link and isinstance(exc, FileNotFoundError):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if _media_extension(name) is False:
            return None
        return f"broken symlink: target {target} does not exist"
    if isinstance(exc, FileNotFoundError):
        return None  # vanished between listing and stat: it was never there for us
    return f"cannot stat: {exc.strerror}"


def _media_candidate(path: str, name: str, size: int) -> bool:
    """Whether a regular file may be media: by extension, else by its first bytes."""
    from indexing.media import is_media_candidate

    claim = _media_extension(name)
    if claim is not None:
        return claim
    if size == 0:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        head = b""
    return is_media_candidate(name, head)


def walk_source(
    source_id: int,
    root: str,
    options: ScanOptions,
    cancel: Optional[Callable[[], bool]] = None,
) -> Iterator[_Entry]:
    """Yield every candidate media file under `root` (and one error entry per unreadable thing).

    Folder symlinks are followed once; a link back to one of its own ancestors is a loop and
    becomes one error entry instead of an endless walk.
    """
    include = _Globs(options.include)
    exclude = _Globs(options.exclude)
    try:
        root_stat = os.stat(root)
    except OSError:
        return  # the caller checks reachability and reports it; nothing here is missing
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    # Stack of (absolute dir, relative dir, ancestor identities).
    stack: list[tuple[str, str, frozenset]] = [
        (root, "", frozenset({(root_stat.st_dev, root_stat.st_ino)}))
    ]
    while stack:
        if is_cancelled(cancel):
            return
        abs_dir, rel_dir, ancestors = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror
            yield _Entry(source_id, rel_dir or ".", abs_dir,
                         error=f"cannot list folder: {reason}; its files were skipped")
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not options.hidden and name.startswith("."):
                continue
            if not _is_utf8(name):
                if exclude and exclude.match(display_path(rel)):
                    continue
                yield _Entry(
                    source_id, display_path(rel), entry.path,
                    error="file name is not valid UTF-8; rename it to index this file",
                )
                continue
            if exclude and exclude.match(rel):
                continue
            try:
                is_link = entry.is_symlink()
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                error = _stat_error(exc, entry.path, name, is_link)
                if error is not None:
                    yield _Entry(source_id, rel, entry.path, error=error)
                continue
            if stat.S_ISDIR(st.st_mode):
                identity = (st.st_dev, st.st_ino)
                if identity in ancestors:
                    yield _Entry(source_id, rel, entry.path,
                                 error="symlink loop: folder link points back to a parent folder; "
                                 "skipped")
                    continue
                if identity in visited:
                    log.info("%s: folder already walked through another link; skipped", entry.path)
                    continue
                visited.add(identity)
                subdirs.append((entry.path, rel, ancestors | {identity}))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # sockets, fifos, devices: never media, and reading a fifo would hang
            if include and not include.match(rel):
                continue
            if not _media_candidate(entry.path, name, st.st_size):
                continue
            yield _Entry(source_id, rel, entry.path, st.st_size, st.st_mtime_ns)
        # Depth-first in name order, so the walk is deterministic.
        stack.extend(reversed(subdirs))


# --- the probe (runs in worker processes) -----------------------------------------------------


def probe_task(task: tuple[str, Optional[int]]) -> dict[str, Any]:
    """Hash and probe one file; returns catalog columns. Never raises for a bad file."""
    from indexing.media import hash_file, probe_file

    path, size = task
    if size == 0:
        return {"status": "error", "error": "empty file (0 bytes)", "content_hash": None,
                "modality": _claimed_modality(path)}
    try:
        digest = hash_file(path)
    except FileNotFoundError:
        return {"status": "error", "error": "file vanished during the scan", "content_hash": None}
    except PermissionError:
        return {"status": "error", "content_hash": None,
                "error": "permission denied: cannot read this file (check its permissions)"}
    except OSError as exc:
        return {"status": "error", "error": f"cannot read: {exc.strerror}", "content_hash": None}
    info = probe_file(path)
    row = {
        "content_hash": digest,
        "modality": info.modality,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
        "fps": info.fps,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "codec": info.codec,
        "mode": info.mode,
        "frames": info.frames,
        "orientation": info.orientation,
        "has_audio": None if info.has_audio is None else int(info.has_audio),
        "status": "ok" if info.error is None else "error",
        "error": info.error,
    }
    return row


def _claimed_modality(path: str) -> Optional[str]:
    """The modality a file's extension claims (for error items that have no content to sniff)."""
    from indexing.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    ext = path.rsplit(".", 1)[-1].lower() if "." in os.path.basename(path) else ""
    for modality, extensions in (("image", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS),
                                 ("video", VIDEO_EXTENSIONS)):
        if ext in extensions:
            return modality
    return None
