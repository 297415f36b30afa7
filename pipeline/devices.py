"""Which torch device a command runs on."""

from __future__ import annotations

from extractors.errors import AqaError


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
