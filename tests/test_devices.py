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


def test_device_moves_the_detector_beside_the_backbone_and_every_help_says_what_it_moves():
    """Issue 25: --device moved only the backbone in aqa-extract (the YOLO detector stayed on
    features.detector.device) but everything in aqa-predict, and no --help said so."""
    from aqa.extractors.stages import SiameseConfig
    from aqa.pipeline.app.cli import get_args_parser as app_parser
    from aqa.pipeline.devices import with_detector_on
    from aqa.pipeline.extract.cli import get_args_parser as extract_parser
    from aqa.pipeline.predict.cli import get_args_parser as predict_parser
    from aqa.pipeline.train.cli import get_args_parser as train_parser

    features = SiameseConfig()
    moved = with_detector_on(features, "cuda:1")
    assert moved.detector.device == "cuda:1" and features.detector.device == "cpu"  # the recorded config keeps its own
    helps = {name: next(action.help for action in make()._actions if "--device" in action.option_strings)
             for name, make in (("extract", extract_parser), ("predict", predict_parser), ("app", app_parser),
                                ("train", train_parser))}
    for name in ("extract", "predict", "app"):
        assert "YOLO person detector" in helps[name] and "backbone" in helps[name], name
    assert "head" in helps["predict"] and "head" in helps["app"] and "where the head trains" in helps["train"]
