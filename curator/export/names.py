"""Names an export writes: safe file and folder names, and one export name per label.

A label's export name is what class folders, COCO categories, ClassLabel names and Label Studio
choices are called. It is unique across the taxonomy (case-insensitively, since macOS and Windows
fold case), never hidden (`.x`) or flag-like (`-x`), never an OS-reserved name, and never holds a
split word as a token (`datasets` reads a folder called `test` or `test tube` as a split when no
explicit `data_files` are given). The manifest maps each export name to its label path.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from typing import Optional

_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in range(10)] + [f"LPT{i}" for i in range(10)]
    + [f"COM{c}" for c in "¹²³"] + [f"LPT{c}" for c in "¹²³"])
_UNSAFE_CHARS = set('<>:"/\\|?*')
MAX_NAME_BYTES = 120
# The words `datasets` reads as split names in paths (datasets.data_files.SPLIT_KEYWORDS),
# with the separators around them that make a match.
SPLIT_WORDS = ("train", "training", "validation", "valid", "dev", "val", "test", "testing",
               "eval", "evaluation")
_SEP = r"[-._ 0-9]"
_SPLIT_TOKEN = re.compile(rf"(?:(?<={_SEP})|^)({'|'.join(SPLIT_WORDS)})(?=$|{_SEP})",
                          re.IGNORECASE)
# Files and folders an export may write beside class folders.
RESERVED_NAMES = frozenset({"manifest.json", "metadata.jsonl", "metadata.csv", "readme.md",
                            "data", "labels.json", "labels", "images", "audio", "video",
                            "annotations", "tasks.json", "labeling_config.xml",
                            "classes.txt", "kinetics.csv", "items.jsonl", "items.csv",
                            "items.parquet"})


def safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file or folder name that is safe on Linux, macOS and Windows, derived deterministically.

    Separators, characters Windows refuses, control and format characters become `_`;
    `.`/`..`, empty names, Windows device names (CON, NUL, COM1, ...) and trailing dots or
    spaces are altered; over-long names are cut. A name that had to change gets a short hash
    of the original appended, so two different names never end up the same.
    """
    original = name
    text = unicodedata.normalize("NFC", str(name))
    text = "".join("_" if (ch in _UNSAFE_CHARS or unicodedata.category(ch) in ("Cc", "Cf", "Cs",
                                                                              "Zl", "Zp"))
                   else ch for ch in text)
    text = text.strip(" ").rstrip(".")
    if text in ("", ".", ".."):
        text = "_"
    stem = text.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _WINDOWS_RESERVED:
        text = "_" + text
    if text == original and len(text.encode("utf-8")) <= max_bytes:
        return text
    digest = hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    room = max_bytes - len(digest) - 1
    cut = text.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .") or "_"
    return f"{cut}-{digest}"


def safe_file_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """safe_name for a file: the extension is kept apart so it survives shortening."""
    stem, ext = os.path.splitext(name)
    if not stem or len(ext) > 16 or not re.match(r"^\.[A-Za-z0-9_-]+$", ext or ".x"):
        return safe_name(name, max_bytes)
    return safe_name(stem, max_bytes - len(ext)) + ext


def has_split_word(name: str) -> bool:
    """True when a folder of this name could be read as a split by `datasets`."""
    return _SPLIT_TOKEN.search(name) is not None


def export_name(name: str) -> str:
    """The export form of one label name, before making it unique.

    Split words are put in brackets (`test tube` -> `(test) tube`): a bracket is no separator to
    `datasets`, so the token no longer matches a split pattern, and the name still reads.
    """
    text = safe_name(name)
    text = _SPLIT_TOKEN.sub(lambda m: f"({m.group(1)})", text)
    if text[:1] in (".", "-"):
        text = "_" + text
    if text.casefold() in RESERVED_NAMES:
        text = text + "_"
    return text


def label_folders(paths: Iterable[str], names: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Export name for each label path, unique case-insensitively across the taxonomy.

    Args:
        paths: label paths ("animal/cat"), those to keep their plain names first.
        names: label path -> the label's own name (default: the last path part).
    """
    names = names or {}
    out: dict[str, str] = {}
    used: set[str] = set(RESERVED_NAMES)
    for path in paths:
        if path in out:
            continue
        base = export_name(names.get(path, path.rsplit("/", 1)[-1]))
        folder, n = base, 1
        while folder.casefold() in used:
            n += 1
            folder = safe_name(f"{base}~{n}")
        used.add(folder.casefold())
        out[path] = folder
    return out
