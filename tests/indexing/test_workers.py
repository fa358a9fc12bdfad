"""The crash-proof pool: a task that raises, kills its worker or hangs costs one task only."""

from __future__ import annotations

import os
import time

import pytest

from indexing.progress import CancelToken
from indexing.workers import TaskFailure, imap_robust


def square_or_misbehave(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    if x == 5:
        os._exit(11)  # a decoder that segfaults takes its process down
    if x == 7:
        time.sleep(60)
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_gets_a_result_despite_crashes_and_hangs(workers):
    results = dict(imap_robust(square_or_misbehave, range(10), workers, timeout=3, chunk_size=3))
    assert set(results) == set(range(10))
    for x in (0, 1, 2, 4, 6, 8, 9):
        assert results[x] == x * x
    assert isinstance(results[3], TaskFailure) and "three is bad" in results[3].reason
    assert isinstance(results[5], TaskFailure) and "crashed" in results[5].reason
    assert isinstance(results[7], TaskFailure) and "timed out" in results[7].reason


def test_in_process_mode_matches():
    tasks = [0, 1, 2, 3, 4]
    results = dict(imap_robust(square_or_misbehave, tasks, 0))
    assert results[4] == 16 and isinstance(results[3], TaskFailure)


def test_cancel_stops_handing_out_tasks():
    token = CancelToken()
    seen = []
    for task, _result in imap_robust(abs, range(1000), 1, chunk_size=2, max_in_flight=4,
                                    cancel=token):
        seen.append(task)
        if len(seen) == 3:
            token.cancel()
    assert 3 <= len(seen) < 20


def test_tasks_are_consumed_lazily():
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    gen = imap_robust(abs, source(), 1, chunk_size=2, max_in_flight=4)
    next(gen)
    assert len(pulled) <= 6
    gen.close()
