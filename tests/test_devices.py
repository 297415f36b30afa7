"""pipeline.devices: the device and worker count a command runs with."""

from __future__ import annotations

import os

import pytest
import torch

from aqa.pipeline.devices import DeviceError, resolve_device, resolve_workers


def test_auto_device_is_cuda_only_where_visible():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no GPU is visible")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA device is visible"):
        resolve_device("cuda")


def test_auto_workers_follow_the_usable_cores_within_the_cap():
    cores = len(os.sched_getaffinity(0))
    assert resolve_workers(0) == min(8, cores)
    assert resolve_workers(0, cap=1) == 1
    assert resolve_workers(3) == 3
    with pytest.raises(DeviceError, match="--workers -1"):
        resolve_workers(-1)
