"""Files that appear whole or not at all: written beside their place, then renamed into it.

A reader never sees half a file, and a write that fails (a full disk, Ctrl-C, a bad frame) keeps
whatever the place held before: the rename is atomic within one folder.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_then_renamed(target: str | Path) -> Iterator[Path]:
    """A fresh temporary path in ``target``'s folder, renamed onto ``target`` when the block ends
    normally and removed when it raises. The temporary name keeps ``target``'s extension (writers
    such as PyAV and OpenCV choose the format by it) and starts with a dot (hidden meanwhile). A
    ``target`` that is a symbolic link is followed: the file it points at is replaced, the link stays."""
    final = Path(target).resolve()
    while True:  # created here, like mkstemp, but with the mode any new file gets (umask), not 0600
        temporary = final.with_name(f".{final.stem}.{secrets.token_hex(4)}{final.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
