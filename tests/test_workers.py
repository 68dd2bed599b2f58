"""dkp.workers: the stages' worker pools hand out one task per worker at a time, so a killed
stage leaves its workers no queue (the kill -9 tests of frames, synthesize and the training
loader check that the workers die with their stage)."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from dkp import workers


def test_workers_get_one_task_each_at_a_time(tmp_path):
    """While the caller holds its first result, the two workers can finish only the tasks already
    handed to them: two, and the one handed out before that result was given."""
    tasks = [str(tmp_path / f"d{i:02d}") for i in range(20)]
    results = workers.imap_bounded(os.mkdir, tasks, 2)
    with contextlib.closing(results):
        first, _ = next(results)
        time.sleep(0.5)  # a queue of 19 directories would be made in milliseconds
        made = sorted(str(d) for d in tmp_path.iterdir())
    assert first in made and len(made) <= 3, made


def test_every_task_runs_once_and_an_error_reaches_the_caller(tmp_path):
    tasks = [str(tmp_path / f"d{i:02d}") for i in range(9)]
    done = [task for task, _ in workers.imap_bounded(os.mkdir, tasks, 2)]
    assert sorted(done) == tasks == sorted(str(d) for d in tmp_path.iterdir())
    with pytest.raises(FileExistsError):
        for _ in workers.imap_bounded(os.mkdir, tasks[:3], 2):
            pass
