"""A mixed sample project (images, audio, video; a child label, unicode, space, split-word and
dot names; noise, mixed and unlabelled items; an exact duplicate) and a runner for the consumer
tools, each in the venv `make test` builds for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from curator.project import Project
from curator.scan import ScanOptions

REPO = Path(__file__).resolve().parents[2]
LOADER = Path(__file__).with_name("load.py")
VENVS = {"consumers": ".venv-consumers", "datasets3": ".venv-datasets3",
         "fiftyone": ".venv-fiftyone", "labelstudio": ".venv-labelstudio"}

# folder -> (label or state, modality, count)
PLAN = {
    "cat": ("cat", "image", 6), "dog": ("dog", "image", 5), "tube": ("test tube", "image", 5),
    "board": ("dev board", "image", 4), "hidden": (".hidden", "image", 3),
    "uni": ("Ünïcode naïve", "image", 3), "junk": ("noise", "image", 3),
    "both": ("mixed", "image", 2), "new": ("unlabelled", "image", 2),
    "bird": ("bird", "audio", 4), "engine": ("engine", "audio", 3),
    "run": ("run", "video", 3), "jump": ("jump", "video", 3),
}
LABELS = [("animal", None), ("cat", "animal"), ("dog", None), ("test tube", None),
          ("dev board", None), (".hidden", None), ("Ünïcode naïve", None), ("bird", None),
          ("engine", None), ("run", None), ("jump", None)]


def python_of(venv: str) -> Path:
    """The interpreter of a consumer venv; a missing venv fails the test (make test builds it)."""
    root = Path(os.environ.get(f"CURATOR_{venv.upper()}_VENV", REPO / VENVS[venv]))
    python = root / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{root} is missing: run `make consumers` (make test builds it)")
    return python


def run_consumer(venv: str, kind: str, folder: Path, *args: str, tmp: Path | None = None) -> Any:
    """Run tests/consumers/load.py KIND FOLDER in a consumer venv; its JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if tmp is not None:
        env.update(HF_DATASETS_CACHE=str(tmp / "hf-cache"), HF_HUB_OFFLINE="1",
                   HF_DATASETS_OFFLINE="1", FIFTYONE_DATABASE_DIR=str(tmp / "fo-db"),
                   FIFTYONE_DO_NOT_TRACK="true", HOME=str(tmp), LS_DATA=str(tmp / "ls-data"))
    done = subprocess.run([str(python_of(venv)), str(LOADER), kind, str(folder), *args],
                          capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def consume():
    """run_consumer(venv, kind, folder, *args, tmp=...) -> what the tool saw."""
    return run_consumer


@pytest.fixture
def mixed(tmp_path, media):
    """The mixed sample project, open; yields (project, item id -> expected label path or state)."""
    src = tmp_path / "media"
    seed = 0
    for folder, (_, modality, n) in PLAN.items():
        for i in range(n):
            seed += 1
            if modality == "image":
                media.image(src / folder / f"{folder} {i}.png", size=(20 + i, 16),
                            color=(seed * 7 % 255, 90, 200 - seed), seed=seed)
            elif modality == "audio":
                media.wav(src / folder / f"{i}.wav", seconds=0.2 + 0.05 * i, freq=300 + 40 * seed)
            else:
                media.video(src / folder / f"{i}.mp4", frames=4 + i, size=(32, 32))
    # An exact copy: it must share its original's split.
    shutil.copy(src / "cat" / "cat 0.png", src / "cat" / "cat copy.png")
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.set_annotator("ana")
        for name, parent in LABELS:
            proj.add_label(name, parent=parent)
        by_folder: dict[str, list[int]] = defaultdict(list)
        for item in proj.items(status="ok"):
            by_folder[item["path"].split("/", 1)[0]].append(item["id"])
        paths = {lab.name: lab.path for lab in proj.labels()}
        expected: dict[int, str] = {}
        for folder, (label, _, _) in PLAN.items():
            ids = by_folder[folder]
            if label in ("noise", "mixed"):
                proj.label_items(ids, action=label)
            elif label != "unlabelled":
                proj.label_items(ids, label)
            for i in ids:
                expected[i] = paths.get(label, label)
        yield proj, expected
