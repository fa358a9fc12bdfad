"""A task that exits, or returns what cannot be pickled, costs only itself."""

from __future__ import annotations

import threading

import pytest

from indexing.workers import TaskFailure, imap_robust


def exits_on_three(n: int) -> int:
    if n == 3:
        raise SystemExit("a library called sys.exit()")
    return n * 10


def unpicklable_on_two(n: int):
    return threading.Lock() if n == 2 else n


@pytest.mark.parametrize("workers", [0, 1])
def test_systemexit_in_a_task_is_one_failure(workers):
    results = dict(imap_robust(exits_on_three, range(6), workers, chunk_size=2))
    assert isinstance(results.pop(3), TaskFailure)
    assert results == {0: 0, 1: 10, 2: 20, 4: 40, 5: 50}


def test_a_result_that_cannot_be_sent_back_is_one_failure():
    results = dict(imap_robust(unpicklable_on_two, range(5), 1, chunk_size=5))
    failure = results.pop(2)
    assert isinstance(failure, TaskFailure) and "could not be sent back" in failure.reason
    assert results == {0: 0, 1: 1, 3: 3, 4: 4}
