"""Run a function on a thread of its own that ends with it.

Why the API loads its model this way: PyTorch's CPU ops run on OpenMP (libgomp), which gives
each thread that runs a parallel op its own team of worker threads, kept as long as that
thread lives. A model loaded (or smoke-tested) on the main thread or a pooled thread leaves a
team behind, and the micro-batch thread that then runs every model call gets a second one on
the same cores. Measured on 2 cores: with two teams a bf16 call of 8 texts took 30-35 ms on
the micro-batch thread against 17 ms with one (the small element-wise ops, waiting on each
other's workers, ran 3-4x slower); fp32 torch lost 15%. A thread that exits takes its team
with it, so loading on one leaves the micro-batch thread the only team.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_on_fresh_thread(fn: Callable[[], T], name: str = "cxthemes-loader") -> T:
    """Call ``fn`` on a new thread, wait for it to end, and return its result or raise its
    exception."""
    # Leaving the block shuts the pool down and joins its one thread before returning.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        return pool.submit(fn).result()
