"""Run-time set-up: the first vector-math call of a process gives the same bits as every later
one."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

# In a fresh process: runtime.setup, then sin of a tensor large enough to be split across the
# two threads, twice. Prints 1 when both calls agree bit for bit.
FIRST_CALL = """
import torch
from dkp import runtime
runtime.setup({"run": {"threads": 2, "seeds": [0], "device": "cpu", "precision": "fp32"}}, 0)
x = torch.rand(8, 23, 64) * 200  # the shape and range of DKP's position-encoding angles
print(int(torch.equal(x.sin(), x.sin())))
"""


@pytest.mark.slow
def test_first_split_sin_of_a_process_equals_the_later_ones():
    # Without runtime.warm_up_vector_math about 1 process in 10 disagreed (4 of 40 measured), so
    # 24 processes catch a regression with probability ~0.9.
    # two at a time: the first call races the library's start-up, load does not hide it
    with ThreadPoolExecutor(2) as pool:
        procs = list(
            pool.map(
                lambda _: subprocess.run(
                    [sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, timeout=120
                ),
                range(24),
            )
        )
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs if p.returncode]
    assert [p.stdout.strip() for p in procs] == ["1"] * 24
