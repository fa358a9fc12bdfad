"""The deterministic sample corpus: classed images, sounds, videos, broken files, ground truth.

This module writes the corpus (each planned file atomically, then `ground_truth.csv`); what it
holds is planned in `sample_plan`, and the media are made in `sample_images`, `sample_sounds`
and `sample_videos`.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from curator.sample_images import IMAGE_RENDERERS, image_bytes, render_image
from curator.sample_plan import BROKEN_CLASS, CLASSES, SampleFile, plan_sample_corpus, rng_of
from curator.sample_sounds import (
    BITEXACT,
    add_audio_stream,
    encode_audio,
    render_audio,
    track_of,
    write_audio_file,
    write_wav,
)
from curator.sample_videos import render_video, write_video_file
from indexing.progress import Progress, ProgressEvent, check_cancel

log = logging.getLogger(__name__)

STAGE = "sample-corpus"
GROUND_TRUTH = "ground_truth.csv"
_OUR_FOLDERS = ("images", "audio", "video", "broken")


@dataclass(frozen=True)
class CorpusSummary:
    """What `write_sample_corpus` wrote.

    Attributes:
        root: the corpus folder.
        counts: good files per modality.
        classes: modality -> class names.
        broken: number of deliberately broken files (under `broken/`).
        ground_truth: root / "ground_truth.csv".
    """

    root: Path
    counts: dict[str, int]
    classes: dict[str, list[str]]
    broken: int
    ground_truth: Path


# --------------------------------------------------------------------------------------------
# Broken files.


def _write_broken(path: Path, f: SampleFile, seed: int) -> None:
    import av
    import numpy as np

    rng = rng_of(seed, "broken", f.index, 1)
    if f.variant == "empty":
        path.write_bytes(b"")
    elif f.variant == "truncated":
        good = SampleFile(f.path, "image", "red_discs", f.index, f.fmt, "", f.width, f.height)
        data = image_bytes(
            good, IMAGE_RENDERERS["red_discs"](rng, f.width, f.height).astype(np.uint8)
        )
        path.write_bytes(data[: len(data) // 2])
    elif f.variant == "text":
        path.write_bytes(
            b"These are notes, not a JPEG.\nCurator should report this file as unreadable.\n"
        )
    elif f.variant == "too_short":
        write_wav(path, track_of(rng, f.duration, f.sample_rate, 1), f.sample_rate)
    elif f.variant == "audio_only":
        with av.open(str(path), "w", format="mp4", options=BITEXACT) as out:
            stream = add_audio_stream(out, "aac", f.sample_rate, f.channels)
            encode_audio(out, stream, track_of(rng, f.duration, f.sample_rate, 1), f.sample_rate)
    else:
        raise ValueError(f"Unknown kind of broken file {f.variant!r} for {f.path}.")


# --------------------------------------------------------------------------------------------
# Writing the corpus.


def write_sample_file(root: Path, f: SampleFile, seed: int) -> Path:
    """Write one planned file under `root` (to a temporary name, then renamed into place).

    Args:
        root: the corpus folder.
        f: the planned file.
        seed: the corpus seed.

    Returns:
        The path written.
    """
    path = root / f.path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic(path) as tmp:
        if f.label == BROKEN_CLASS:
            _write_broken(tmp, f, seed)
        elif f.modality == "image":
            tmp.write_bytes(image_bytes(f, render_image(f, seed)))
        elif f.modality == "audio":
            write_audio_file(tmp, f, render_audio(f, seed))
        else:
            track = None
            if f.has_audio:
                track = track_of(
                    rng_of(seed, "video", f.index, 2), f.duration, f.sample_rate, f.channels
                )
            write_video_file(tmp, f, render_video(f, seed), track)
    return path


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    # A hidden temporary name: a scan running meanwhile never sees a half-written file.
    tmp = path.with_name(f".{path.name}.part")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_ground_truth(root: Path, files: list[SampleFile]) -> Path:
    gt = root / GROUND_TRUTH
    with _atomic(gt) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "modality", "class"])
        for f in sorted(files, key=lambda f: f.path):
            writer.writerow([f.path, f.modality, f.label])
    return gt


def _clear_previous(root: Path) -> None:
    """Remove the files an earlier corpus listed in its ground truth, then empty folders."""
    gt = root / GROUND_TRUTH
    base = root.resolve()
    with gt.open(newline="", encoding="utf-8") as fh:
        listed = [row.get("path", "") for row in csv.DictReader(fh)]
    for rel in listed:
        target = (root / rel).resolve()
        # Only ever delete inside the corpus, whatever an edited CSV says.
        if rel and target.is_relative_to(base) and target.is_file():
            target.unlink()
    for folder in _OUR_FOLDERS:
        top = root / folder
        if not top.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames:
                if name.startswith(".") and name.endswith(".part"):
                    (Path(dirpath) / name).unlink()
            with contextlib.suppress(OSError):  # not empty: the user's file, leave it
                os.rmdir(dirpath)
    gt.unlink()


def _prepare_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ValueError(
            f"{root} exists and is not a folder; choose a new folder for the sample corpus."
        )
    if root.is_dir() and any(root.iterdir()):
        if not (root / GROUND_TRUTH).is_file():
            raise ValueError(
                f"Refusing to write the sample corpus into {root}: the folder is not empty and "
                f"has no {GROUND_TRUTH}, so it is not an earlier sample corpus. "
                "Choose a new or empty folder."
            )
        log.info("Replacing the sample corpus in %s", root)
        _clear_previous(root)
    root.mkdir(parents=True, exist_ok=True)


def write_sample_corpus(
    out: Path | str,
    items: int = 300,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> CorpusSummary:
    """Write the deterministic sample corpus: classed images, sounds and videos, plus broken files.

    The same `items` and `seed` give byte-identical images and audio and identical ground truth.
    A folder that already holds a sample corpus (it has ground_truth.csv) is replaced.

    Args:
        out: the corpus folder; created when missing. It must be new, empty, or an earlier corpus.
        items: number of good files (at least MIN_ITEMS): about 60% images, 25% audio, 15% video.
        seed: non-negative seed.
        progress: receives one ProgressEvent per file written (stage "sample-corpus").
        cancel: zero-argument callable; when it returns True the job stops before the next file
            (raising Cancelled) and the ground truth lists the files written so far.

    Returns:
        A CorpusSummary of what was written.

    Raises:
        ValueError: `out` is a foreign non-empty folder or a file, or items/seed are out of range.
        Cancelled: `cancel` asked to stop.
    """
    plan = plan_sample_corpus(items, seed)
    root = Path(out)
    _prepare_root(root)
    written: list[SampleFile] = []
    total = len(plan)
    try:
        for f in plan:
            check_cancel(cancel)
            write_sample_file(root, f, seed)
            written.append(f)
            if progress is not None:
                progress(ProgressEvent(STAGE, len(written), total, "files", f.path))
    finally:
        # Written even when stopped part-way, so the folder stays recognisably ours.
        gt = _write_ground_truth(root, written)
    good = [f for f in plan if f.label != BROKEN_CLASS]
    counts = {m: sum(f.modality == m for f in good) for m in CLASSES}
    log.info("Wrote a sample corpus of %d files to %s", total, root)
    return CorpusSummary(
        root=root,
        counts=counts,
        classes={m: list(names) for m, names in CLASSES.items()},
        broken=total - len(good),
        ground_truth=gt,
    )
