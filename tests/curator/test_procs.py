"""Pid liveness, shared by runs, the stage lock, vector temporaries and export journals."""

import os
import subprocess
import sys

from curator import procs


def test_this_process_is_alive_and_no_pid_never_is():
    assert procs.pid_alive(os.getpid())
    assert not procs.pid_alive(None)
    assert not procs.pid_alive(0)


def test_a_finished_process_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not procs.pid_alive(child.pid)


def test_a_running_child_is_alive():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert procs.pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_owner_names_this_process_and_host():
    assert procs.owner() == {"pid": os.getpid(), "host": procs.host()}
