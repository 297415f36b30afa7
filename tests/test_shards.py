"""pipeline.extract.job_split and .index: split jobs (--num-shards N --shard-index I) cover every video once;
aqa-index joins them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import aqa
from aqa.data.feature_store import open_feature_store
from aqa.pipeline.extract.job_split import ShardSplitError, find_shards, shard_of, videos_of_shard

FAST = {"overrides": {"features.input_size": 64, "features.clips.clip_length": 8}, "detector": "blazepose",
        "workers": 1}


def test_a_split_in_three_covers_every_video_exactly_once():
    videos = [(f"video_{index:05d}", None) for index in range(3000)]
    jobs = [videos_of_shard(videos, 3, index) for index in range(3)]
    names = [name for job in jobs for name, _ in job]
    assert sorted(names) == sorted(name for name, _ in videos)  # every video, none twice
    assert all(900 <= len(job) <= 1100 for job in jobs)  # and evenly
    # sha256, not Python's per-process hash(): every job, machine and Python agrees (values fixed here).
    assert [shard_of(name, 3) for name in ("syn_0000", "dive_01", "é")] == [1, 0, 0]


@pytest.mark.parametrize(("num_shards", "shard_index"), [(0, 0), (3, 3), (3, -1)])
def test_an_impossible_split_is_refused(num_shards, shard_index):
    with pytest.raises(ShardSplitError, match="--shard-index must be in"):
        videos_of_shard([("a", None)], num_shards, shard_index)


def run_index(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aqa.pipeline.extract.index", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_three_jobs_then_the_index_give_one_store_with_every_video_once(tmp_path, make_video):
    folder = tmp_path / "videos"
    for index in range(5):
        make_video(f"videos/clip_{index}.mp4", num_frames=24, height=64, width=96, seed=index)
    store = tmp_path / "store"
    results = [aqa.extract(folder, store, num_shards=3, shard_index=index, **FAST) for index in (0, 2)]
    unfinished = run_index(str(store))
    assert unfinished.returncode == 2 and unfinished.stderr.count("\n") == 1
    assert "1 of 3 shards are not finished (shard index 1)" in unfinished.stderr
    results.insert(1, aqa.extract(folder, store, num_shards=3, shard_index=1, **FAST))
    assert all(not result.failures for result in results)
    done = run_index(str(store))
    assert done.returncode == 0, done.stderr
    with open_feature_store(store / "index.json") as features:
        assert features.names == [f"clip_{index}" for index in range(5)]
    for index, result in enumerate(results):
        assert result.store.name == f"shard-{index:05d}-of-00003.h5"
        assert all(shard_of(name, 3) == index for name in result.written)
    assert len(find_shards(store).finished) == 3
    again = aqa.extract(folder, store, num_shards=3, shard_index=1, **FAST)  # resumes: nothing to do
    assert again.written == [] and again.already_done == len(results[1].written)
