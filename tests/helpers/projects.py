"""Small real projects for the curator tests: folders of coloured images, scanned and embedded
with the classic embedder (no weights needed), so grouping has something true to find."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220)}


def colour_folders(media: Any, src: Path, per_colour: int = 12,
                   colours: Mapping[str, tuple] = COLOURS) -> Path:
    """`src/<colour>/NN.png`: `per_colour` noisy images per colour, each a different size."""
    for name, colour in colours.items():
        for i in range(per_colour):
            media.image(src / name / f"{i:02d}.png", size=(40 + i, 40), color=colour, seed=i)
    return src


@contextmanager
def embedded_project(tmp_path: Path, media: Any, per_colour: int = 12,
                     colours: Mapping[str, tuple] = COLOURS, labels: bool = False
                     ) -> Iterator[Any]:
    """A project over `colour_folders`, scanned and embedded (classic), annotator "ana"; with
    `labels`, one label per colour."""
    from curator.project import Project
    from curator.scan import ScanOptions

    src = colour_folders(media, tmp_path / "media", per_colour, colours)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.embed("classic", "classic", workers=0)
        proj.set_annotator("ana")
        if labels:
            for name in colours:
                proj.add_label(name)
        yield proj


def colour_of(project: Any, item_id: int) -> str:
    """The colour folder an item sits in: the true class of `colour_folders` images."""
    return project.item(item_id)["path"].split("/")[0]
