"""Write tests/data/project-<version>/: a small project made by the Curator on PYTHONPATH.

Run once per release with that release's code, and commit the folder; tests/curator/
test_upgrade.py then proves every later Curator opens and migrates it without losing anything:

    PYTHONPATH=/path/to/released/checkout python tests/data/make_old_project.py

The project: 12 small PNGs in three colours and two WAV tones (a source folder that is not
kept: only the project folder is stored), scanned, embedded with `classic`, grouped (one
clustering run), a taxonomy of three labels, a group labelled, two items labelled by hand,
one event undone, and a noise decision. `expected.json` beside it records what the test checks.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_media(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        for i in range(4):
            arr = np.zeros((24, 32, 3), np.int64) + np.array(colour)
            arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
            (folder / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(folder / name / f"{name}{i}.png")
    (folder / "sounds").mkdir(parents=True, exist_ok=True)
    for freq in (440.0, 880.0):
        t = np.arange(4000) / 8000
        samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
        with wave.open(str(folder / "sounds" / f"tone{int(freq)}.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(samples.tobytes())


def build(target: Path) -> dict:
    from curator import __version__
    from curator.project import Project
    from curator.scan import ScanOptions

    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "media"
        write_media(media)
        root = Path(tmp) / "project"
        with Project.create(root, [media]) as project:
            project.set_annotator("fixture")
            project.scan(ScanOptions(workers=0))
            project.embed("classic", "classic", workers=0)
            run_id, _ = project.cluster(n_groups=3)
            for name, key in (("red", "1"), ("green", "2"), ("blue", "3")):
                project.add_label(name, hotkey=key)
            groups = project.groups(run_id, order="size")
            project.label_group(groups[0].group_id, "red", note="fixture group")
            items = [int(i) for i in project.group(groups[1].group_id, run_id)["items"]]
            project.label_items(items[:2], "green")
            undone = project.label_items(items[2:3], "blue")
            project.undo(undone)
            project.label_items(items[3:4], action="noise")
            expected = {
                "version": __version__,
                "items": project.catalog.db.execute("SELECT COUNT(*) FROM items").fetchone()[0],
                "labels": sorted(label.name for label in project.labels()),
                "events": project.catalog.db.execute("SELECT COUNT(*) FROM events").fetchone()[0],
                "item_labels": {str(r[0]): [r[1], r[2]] for r in project.catalog.db.execute(
                    "SELECT il.item_id, il.state, l.name FROM item_labels il "
                    "LEFT JOIN labels l ON l.id = il.label_id")},
                "runs": [[r.kind, r.status] for r in reversed(project.runs())],
                "clustering_run": run_id,
                "groups": len(groups),
                "migrations": [r[0] for r in project.catalog.db.execute(
                    "SELECT name FROM _migrations ORDER BY id")],
            }
        # Checkpoint the WAL so the stored folder is one self-contained catalog.db.
        import sqlite3

        conn = sqlite3.connect(root / "catalog.db")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        for leftover in root.glob("catalog.db-*"):
            leftover.unlink()
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(root, target)
    (target.parent / f"{target.name}.json").write_text(json.dumps(expected, indent=1) + "\n")
    return expected


if __name__ == "__main__":
    from curator import __version__

    out = HERE / f"project-{__version__}"
    print(json.dumps(build(out), indent=1))
    print(f"wrote {out}", file=sys.stderr)
