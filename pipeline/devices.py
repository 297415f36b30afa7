"""Which torch device a command runs on, and how many worker threads it uses.

``--device`` means the same in every command: the torch models the command runs go there. For
``aqa-extract`` and ``aqa-predict``/``aqa-app`` that is the backbone and a YOLO person detector
(:func:`with_detector_on`; BlazePose always runs on the CPU), and for the last two the scoring head
too; for ``aqa-train`` the head. The features' recorded settings keep the detector's configured
device, so where a model ran never changes the features' identity.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TypeVar

from aqa.errors import AqaError

ConfigWithDetector = TypeVar("ConfigWithDetector")


class DeviceError(AqaError):
    """The requested device is not available here."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; asking for CUDA without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {device}: no CUDA device is visible; use --device cpu")
    return device


def resolve_workers(workers: int, cap: int = 8) -> int:
    """``workers`` as given, or for 0 ("auto") one per CPU core this process may use, at most ``cap``."""
    if workers < 0:
        raise DeviceError(f"--workers {workers}: give a positive number, or 0 for one per CPU core")
    if workers:
        return workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cap, cores or 1))


def with_detector_on(features: ConfigWithDetector, device: str) -> ConfigWithDetector:
    """``features`` (a :class:`~extractors.stages.SiameseConfig`) with its person detector on
    ``device``: what the worker pool builds, beside the backbone on the same device."""
    return replace(features, detector=replace(features.detector, device=device))
