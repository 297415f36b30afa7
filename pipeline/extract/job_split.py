"""Splitting one extraction over independent jobs (SLURM arrays, several machines without Ray).

Job ``I`` of ``N`` extracts the videos whose name hashes to ``I`` (:func:`shard_of`: sha256 of
the name, so every job, machine and Python version agrees without talking to the others) into
its own shard, ``STORE_DIR/shard-0000I-of-0000N.h5``. No two jobs write the same file, so they
never collide; each shard resumes on its own (the crash-safe :class:`ShardWriter`). When the
jobs are done, ``aqa-index STORE_DIR`` checks the shards belong together (same settings, every
one of the N present and merged, no video twice) and writes ``STORE_DIR/index.json``, which
``aqa-train`` reads like a single file (the command is :mod:`pipeline.extract.index`):

    sbatch --array=0-7 --wrap 'aqa-extract videos/ -o store/ --num-shards 8 --shard-index $SLURM_ARRAY_TASK_ID'
    aqa-index store/
    aqa-train store/index.json --head cofinal
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aqa.data.feature_store import PARTS_SUFFIX, FeatureStoreError, write_index
from aqa.errors import AqaError

INDEX_NAME = "index.json"
_SHARD_NAME = re.compile(r"^shard-(\d{5})-of-(\d{5})\.h5$")


class ShardSplitError(AqaError):
    """A shard split that cannot work (bad N or I) or a store folder whose shards do not add up."""


def shard_of(name: str, num_shards: int) -> int:
    """The job (0 .. num_shards - 1) that extracts video ``name``: a stable hash, not Python's."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % num_shards


def check_split(num_shards: int, shard_index: int) -> None:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ShardSplitError(f"--shard-index must be in 0..{num_shards - 1} and --num-shards at least 1, "
                              f"got --num-shards {num_shards} --shard-index {shard_index}")


def shard_path(store_dir: Path, shard_index: int, num_shards: int) -> Path:
    """Where job ``shard_index`` of ``num_shards`` writes: its own file in the store folder."""
    return Path(store_dir) / f"shard-{shard_index:05d}-of-{num_shards:05d}.h5"


def videos_of_shard(videos: Sequence[tuple[str, Path]], num_shards: int,
                    shard_index: int) -> list[tuple[str, Path]]:
    """The (name, path) pairs job ``shard_index`` extracts."""
    check_split(num_shards, shard_index)
    return [(name, path) for name, path in videos if shard_of(name, num_shards) == shard_index]


@dataclass(frozen=True)
class StoreShards:
    """The split shards found in a store folder."""

    num_shards: int
    finished: list[Path]  # merged shard files, by index
    missing: list[int]  # indices with no shard file, or only an unfinished run's parts


def find_shards(store_dir: Path) -> StoreShards:
    """The ``shard-I-of-N.h5`` files in ``store_dir``; all must share one N."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        raise ShardSplitError(f"{store_dir}: no such folder (give the folder the jobs wrote with -o)")
    found: dict[int, Path] = {}
    splits: set[int] = set()
    for path in sorted(store_dir.iterdir()):
        match = _SHARD_NAME.match(path.name.removesuffix(PARTS_SUFFIX))  # a shard, or a run's part files
        if not match:
            continue
        splits.add(int(match[2]))
        unfinished = path.with_name(path.name + PARTS_SUFFIX)
        if path.name.endswith(".h5") and not (unfinished.is_dir() and any(unfinished.glob("*.h5"))):
            found[int(match[1])] = path
    if not splits:
        raise ShardSplitError(f"{store_dir}: no shard-I-of-N.h5 files (written by aqa-extract --num-shards N "
                              "--shard-index I -o this folder)")
    if len(splits) > 1:
        raise ShardSplitError(f"{store_dir}: shards of different splits ({', '.join(map(str, sorted(splits)))} "
                              "shards); a store folder holds one split")
    num_shards = splits.pop()
    return StoreShards(num_shards, [found[index] for index in sorted(found)],
                       [index for index in range(num_shards) if index not in found])


def index_store(store_dir: Path, *, allow_missing: bool = False) -> tuple[Path, StoreShards]:
    """Write ``store_dir/index.json`` over the finished shards (see the module docstring)."""
    shards = find_shards(store_dir)
    if shards.missing and not allow_missing:
        listed = ", ".join(map(str, shards.missing[:10])) + (" ..." if len(shards.missing) > 10 else "")
        raise ShardSplitError(f"{store_dir}: {len(shards.missing)} of {shards.num_shards} shards are not finished "
                              f"(shard index {listed}); run those jobs (they resume), or pass --allow-missing")
    if not shards.finished:
        raise ShardSplitError(f"{store_dir}: no finished shard to index")
    try:
        return write_index(Path(store_dir) / INDEX_NAME, shards.finished), shards
    except FeatureStoreError as error:
        raise ShardSplitError(f"{store_dir}: the shards do not belong together: {error}") from None
