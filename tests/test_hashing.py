"""aqa.hashing: the sha256 that provenance records, cached until the file changes."""

from __future__ import annotations

import hashlib
import os

from aqa.hashing import file_sha256


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_a_changed_file_is_hashed_again(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first")
    first = file_sha256(path)
    path.write_bytes(b"second, longer")
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) == hashlib.sha256(b"second, longer").hexdigest() != first
