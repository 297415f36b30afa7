"""Test helper: run a block of many tiny torch ops on one thread.

CI has 2 cores, shared with other jobs; when a core is busy, every parallel region of torch's
2-thread pool waits for it, and a loop of tiny ops (a few hundred training steps on toy
tensors) runs 10-30x slower. One thread is always at least as fast for such work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """Set torch's intra-op threads to 1 for the block, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
