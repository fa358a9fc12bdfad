"""One stage at a time per project: a second scan or embed refuses, naming the running one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from curator.project import Project
from curator.scan import ScanOptions
from curator.stage_lock import StageBusy, stage_lock

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from curator.stage_lock import stage_lock
with stage_lock(sys.argv[1], "embed"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_process_is_refused_with_the_running_stage_named(tmp_path, media):
    src = tmp_path / "media"
    media.image(src / "a.png")
    with Project.create(tmp_path / "proj", [src]) as project:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(project.root)], env=env,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(StageBusy, match=rf"a embed run \(pid {holder.pid} on .*"
                                                r"is already working on .*before starting scan"):
                project.scan(ScanOptions(workers=0))
            assert project.runs("scan") == []  # refused before a run was recorded
        finally:
            holder.kill()
            holder.wait()
        # The OS released the dead holder's lock: the stage runs now.
        project.scan(ScanOptions(workers=0))
        assert project.runs("scan")[0].status == "ok"
        assert len(project.items()) == 1


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with stage_lock(tmp_path, "embed"), stage_lock(tmp_path, "cluster"):
        assert "embed" in (tmp_path / "stage.lock").read_text()
    assert (tmp_path / "stage.lock").read_text() == ""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    took = subprocess.run([sys.executable, "-c", "import sys\nfrom curator.stage_lock import "
                           "stage_lock\nwith stage_lock(sys.argv[1], 'scan'): print('ok')",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert took.stdout.strip() == "ok", took.stderr

