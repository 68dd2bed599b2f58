"""Worker processes that stop when their stage is killed.

A stage killed with SIGKILL (kill -9, the OOM killer, a scheduler's hard kill) cannot tell its
workers. Left alone, a multiprocessing pool worker finishes the task it holds and then
takes the next queued one for as long as its results can still be written to the dead
stage's pipe; a DataLoader worker reads its queued steps and looks for its parent only every
5 s. Two things stop them:

- each worker asks the kernel for SIGKILL when its parent dies (Linux PR_SET_PDEATHSIG;
  elsewhere a thread that watches getppid()), and exits at once if the parent is already gone;
- `imap_bounded` hands out one task per worker at a time, never a queue. The kernel reparents
  (and so signals) the workers only at the very end of the killed stage's exit, tens of
  milliseconds after the kill (8 to 100 ms measured on a 2-core VM), and until then getppid()
  still names the stage: given a queue, workers start new tasks in that window.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 0.1  # the getppid() watch where prctl is missing


def die_with_parent(parent: int) -> None:
    """In a worker process: end it (SIGKILL) when `parent`, the process that started it, dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the request was made
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def loader_worker_init(parent: int, worker_id: int) -> None:
    """A torch DataLoader's worker_init_fn, bound to the training process's pid."""
    die_with_parent(parent)


def _init_worker(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def executor(workers: int, initializer: Callable | None = None, initargs: tuple = ()):
    """A spawn-context ProcessPoolExecutor whose workers die with the calling process. Unlike
    multiprocessing.Pool, whose terminate() can wait forever on its handler threads once a
    worker has gone, it notices a dead worker and fails the pending futures."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


def imap_bounded(
    fn: Callable,
    tasks: Iterable,
    workers: int,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator[tuple]:
    """Yield (task, fn(task)) for every task, in the order they finish, over `workers` processes
    (`executor`). At most `workers` tasks are handed out and unfinished at any moment, so a kill
    leaves the workers no queue to go on with. fn and the tasks must pickle; an exception in fn
    is raised here once the tasks already running have ended, and the workers end with the
    generator."""
    tasks = list(tasks)
    if not tasks:
        return
    todo = iter(tasks)
    pending: dict = {}
    with executor(min(workers, len(tasks)), initializer, initargs) as ex:

        def hand_out() -> None:
            for task in todo:
                pending[ex.submit(fn, task)] = task
                return

        try:
            for _ in range(min(workers, len(tasks))):
                hand_out()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    result = future.result()
                    hand_out()
                    yield task, result
        finally:
            for future in pending:
                future.cancel()
