"""Faults of the disk under a store, made real without root: a full disk, flipped bytes.

A full disk: ``RLIMIT_FSIZE`` makes every write that would grow a file past the limit fail in the kernel
(``EFBIG``, "File too large", instead of a full disk's ``ENOSPC``, "No space left on device"):
the same failed ``write(2)`` reaches HDF5 and our code, with only the words differing. The soft
limit can be raised back by the process itself, so the limit holds for the ``with`` block only.
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py


@contextmanager
def writes_fail_past(limit_bytes: int) -> Iterator[None]:
    """Inside the block, no file can grow past ``limit_bytes`` (the write fails, nothing is killed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the limit's signal would kill the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def flip_bytes_inside(path: Path, video: str, key: str) -> None:
    """Corrupt a stored array's data in place (its first chunk), as a bad disk would."""
    with h5py.File(path, "r") as file:
        offset = file[f"videos/{video}/{key}"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as raw:
        raw.seek(offset + 8)
        data = raw.read(16)
        raw.seek(offset + 8)
        raw.write(bytes(b ^ 0xFF for b in data))
