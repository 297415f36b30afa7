"""File hashes for provenance: which weights, which detector, which arrays made a feature."""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks; cached per (path, size, mtime), as weights are large."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns, chunk_size)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int, chunk_size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk_size), b""):
            digest.update(block)
    log.debug("sha256 of %s (%d bytes) computed", path, size)
    return digest.hexdigest()
