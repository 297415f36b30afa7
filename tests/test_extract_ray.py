"""pipeline.extract.ray: aqa-extract on Ray (local instance with logical GPUs, a simulated two-node
cluster), equal to the local engine, surviving a killed worker and a killed driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (setup.sh installs it)")

import aqa  # noqa: E402
from aqa.data.feature_store import open_feature_store  # noqa: E402
from aqa.errors import AqaError  # noqa: E402
from aqa.pipeline.extract.ray import RayConfig, run_ray_extraction, start_ray  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FAST = {"overrides": {"features.input_size": 64, "features.clips.clip_length": 8}, "detector": "blazepose",
        "workers": 1}

pytestmark = pytest.mark.slow


@pytest.fixture
def videos(tmp_path, make_video) -> Path:
    for index in range(5):
        make_video(f"videos/v{index}.mp4", num_frames=24 + 8 * index, height=64, width=96, seed=index)
    return tmp_path / "videos"


@pytest.fixture
def local_ray():
    """A Ray instance on this machine with two logical GPUs: GPU actors are scheduled and run on the CPU."""
    start_ray(None, num_cpus=2, num_gpus=2)
    yield
    ray.shutdown()


def read_all(store: Path) -> dict[str, object]:
    with open_feature_store(store) as features:  # refuses a video stored in two shards
        return {name: features.read(name) for name in features.names}


def test_a_local_instance_runs_its_workers_at_the_callers_priority(local_ray):
    """Ray renices its workers to 15 by default; beside any busy process they then starve (an
    extraction here sat minutes in its actors' start-up). Ours compete as the local engine's do."""
    @ray.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def test_ray_features_equal_the_local_engines(videos, tmp_path, local_ray):
    import torch

    threads = torch.get_num_threads()  # the writer actors' torch threads, so the sums run in one order
    local = aqa.extract(videos, tmp_path / "local.h5", **FAST)
    distributed = aqa.extract(videos, tmp_path / "store", engine="ray",
                              **{**FAST, "overrides": {**FAST["overrides"], "ray.writer_threads": threads}})
    assert sorted(distributed.written) == sorted(local.written) == [f"v{index}" for index in range(5)]
    assert distributed.store == tmp_path / "store" / "index.json"
    ours, theirs = read_all(distributed.store), read_all(tmp_path / "local.h5")
    for name, video in theirs.items():
        assert np.array_equal(ours[name].scene, video.scene) and np.array_equal(ours[name].actor, video.actor)
        assert np.array_equal(ours[name].boxes, video.boxes)
    assert {path.name for path in (tmp_path / "store").glob("*.h5")} == {"ray-shard-00000.h5", "ray-shard-00001.h5"}
    # A second run finds everything stored, in whichever shard: nothing is redone.
    again = aqa.extract(videos, tmp_path / "store", engine="ray", **FAST)
    assert again.written == [] and again.already_done == 5
    # Other settings into the same folder: refused in one line, as the local engine refuses.
    with pytest.raises(AqaError, match="holds features made with other settings"):
        aqa.extract(videos, tmp_path / "store", engine="ray",
                    **{**FAST, "overrides": {**FAST["overrides"], "features.clips.clip_length": 16}})


def test_a_long_video_is_split_over_actors_and_equals_the_local_engine(tmp_path, make_video, local_ray):
    """Parts as the local engine cuts them (min_part_frames 24 here): the key frames over the
    planners, the clips over the writers, joined into one video in one shard."""
    import torch

    from aqa.pipeline.extract import ExtractConfig, find_videos

    make_video("videos/long.mp4", num_frames=96, height=64, width=96, seed=7)
    settings = {**FAST, "overrides": {**FAST["overrides"], "min_part_frames": 24}}
    local = aqa.extract(tmp_path / "videos", tmp_path / "local.h5", **settings)
    config = replace(_fast(ExtractConfig()), min_part_frames=24, ray=RayConfig(writer_threads=torch.get_num_threads()))
    summary = run_ray_extraction(find_videos([tmp_path / "videos"]).videos, tmp_path / "store", config,
                                 progress=False)
    assert summary.written == local.written == ["long"] and summary.parts["long"] == 2
    ours, theirs = read_all(summary.index)["long"], read_all(tmp_path / "local.h5")["long"]
    assert np.array_equal(ours.scene, theirs.scene) and np.array_equal(ours.actor, theirs.actor)
    assert np.array_equal(ours.boxes, theirs.boxes)


def test_a_bad_video_is_reported_once_with_its_reason(videos, tmp_path, local_ray):
    (videos / "broken.mp4").write_text("not a video")
    result = aqa.extract(videos, tmp_path / "store", engine="ray", **FAST)
    assert list(result.failures) == ["broken"] and "broken" not in read_all(result.store)
    assert len(result.written) == 5


def test_two_nodes_share_the_work(videos, tmp_path):
    from ray.cluster_utils import Cluster

    from aqa.pipeline.extract import ExtractConfig, find_videos

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    try:
        start_ray(cluster.address)
        config = replace(_fast(ExtractConfig()), ray=RayConfig(writers=2, planners=4))  # every CPU of both
        summary = run_ray_extraction(find_videos([videos]).videos, tmp_path / "store", config, progress=False)
        assert sorted(summary.written) == [f"v{index}" for index in range(5)]
        nodes = {node for pair in summary.nodes.values() for node in pair}
        assert len(nodes) == 2, summary.nodes  # actors on both nodes did stages of the videos
    finally:
        ray.shutdown()
        cluster.shutdown()


def _fast(config):
    from aqa.extractors.clips import ClipPlanConfig
    from aqa.extractors.detect import DetectorConfig

    features = replace(config.features, input_size=64, clips=ClipPlanConfig(clip_length=8),
                       detector=DetectorConfig(kind="blazepose"))
    return replace(config, features=features)


def writer_pids() -> list[int]:
    import psutil

    return [process.pid for process in psutil.process_iter(["cmdline"])
            if any("ray::Writer" in part for part in (process.info["cmdline"] or []))]


def test_a_killed_writer_costs_a_retry_not_the_run(tmp_path, make_video, local_ray):
    for index in range(8):
        make_video(f"videos/v{index}.mp4", num_frames=64, height=64, width=96, seed=index)
    store = tmp_path / "store"
    killed: list[int] = []

    def kill_a_writer_once_a_video_is_in() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(store.glob("*.parts/*.h5")):
            time.sleep(0.05)
        pids = writer_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    killer = threading.Thread(target=kill_a_writer_once_a_video_is_in)
    killer.start()
    result = aqa.extract(tmp_path / "videos", store, engine="ray", **FAST)
    killer.join()
    assert killed, "no writer process was found to kill"
    assert result.failures == {}
    assert sorted(read_all(result.store)) == [f"v{index}" for index in range(8)]  # each exactly once


def test_resume_after_a_killed_driver(tmp_path, make_video):
    for index in range(8):
        make_video(f"videos/v{index}.mp4", num_frames=64, height=64, width=96, seed=index)
    store = tmp_path / "store"
    command = [sys.executable, "-m", "aqa.pipeline.extract", str(tmp_path / "videos"), "-o", str(store),
               "--engine", "ray", "--detector", "blazepose", "--quiet", "--workers", "1",
               "--set", "features.input_size=64", "--set", "features.clips.clip_length=8"]
    driver = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(store.glob("*.parts/*.h5")):
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    driver.communicate()
    assert list(store.glob("*.parts/*.h5")), "no video was committed before the kill"
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    summary = again.stdout.strip().splitlines()[-1]
    done = int(summary.split(" extracted, ")[1].split(" already done")[0])
    assert done >= 1, summary
    assert sorted(read_all(store / "index.json")) == [f"v{index}" for index in range(8)]


@pytest.mark.parametrize(("args", "message"), [
    (["--ray-address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--ray-address", "nonsense"], "--ray-address must be auto or HOST:PORT"),
    (["--overwrite"], "--overwrite is not offered with --engine ray"),
    (["--num-shards", "2", "--shard-index", "0"], "with --engine ray, Ray splits it"),
])
def test_impossible_ray_runs_stop_with_one_line(videos, tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "aqa.pipeline.extract", str(videos), "-o", str(tmp_path / "store"),
                           "--engine", "ray", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
