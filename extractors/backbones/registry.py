"""The backbone registry: one frozen spec per video backbone and a uniform model face.

A :class:`BackboneSpec` says what a backbone expects (clip length, input size, normalisation)
and what it gives (feature dimension), and where its weights come from, so callers never branch
on the backbone's name. :class:`VideoBackbone` is the model face every entry implements:
``preprocess`` (uint8 frames -> normalised input) and ``forward_features`` (input -> one pooled
feature per clip). ``build_backbone(name)`` builds one and loads its weights; nothing is ever
downloaded, a missing weights file raises :class:`~aqa.errors.WeightsNotFoundError`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import torch
from torch import Tensor, nn

from aqa.errors import UnknownBackboneError, WeightsMismatchError, WeightsNotFoundError
from aqa.hashing import file_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone expects and gives, fixed at registration.

    ``mean``/``std`` apply to frames scaled to [0, 1]: ``x = (frames / 255 - mean) / std``.
    ``default_weights`` returns the weights file used when the caller names none, or raises
    :class:`~aqa.errors.WeightsNotFoundError` saying where it looked and how to get it.
    """

    name: str
    clip_length: int  # frames per clip the weights were trained/evaluated with
    input_size: tuple[int, int]  # (H, W) the caller resizes/crops frames to
    mean: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    std: tuple[float, float, float]
    value_range: str  # what the network sees after preprocess, for humans
    feature_dim: int  # D of forward_features' [B, D]
    weights_source: str  # where the pretrained weights come from, for humans and provenance
    default_weights: Callable[[], Path] = field(compare=False, repr=False)
    weights_url: str | None = None  # where a user with internet gets the file; we never fetch it

    def resolve_weights(self, weights: str | Path | None = None) -> Path:
        """The weights file to load: ``weights`` if given (it must exist), else ``default_weights()``."""
        if weights is None:
            return self.default_weights()
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{self.name}: weights file not found: {path}")
        return path


class VideoBackbone(nn.Module, ABC):
    """A clip-level video feature extractor with the uniform face the pipeline relies on.

    Subclasses implement :meth:`forward_features` and :meth:`load_weights`. ``forward`` is
    ``forward_features``, kept pure (no device moves, no autocast, no batching) so the caller
    controls those.
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.spec = spec
        self.weights_path: Path | None = None  # set by load_weights; None means random init

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the loaded weights file (hex), for provenance; None for a random init."""
        return None if self.weights_path is None else file_sha256(self.weights_path)

    def preprocess(self, frames: Tensor) -> Tensor:
        """uint8 frames ``[B, T, H, W, 3]`` (RGB, already resized/cropped) -> float ``[B, 3, T, H, W]``.

        Scales to [0, 1] and normalises with the spec's mean/std, on the frames' device.
        """
        if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames [B, T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        mean = torch.tensor(self.spec.mean, device=frames.device).view(1, 3, 1, 1, 1)
        std = torch.tensor(self.spec.std, device=frames.device).view(1, 3, 1, 1, 1)
        x = frames.permute(0, 4, 1, 2, 3).float().div_(255.0)
        return (x - mean) / std

    @abstractmethod
    def forward_features(self, x: Tensor) -> Tensor:
        """Normalised clips ``[B, 3, T, H, W]`` -> pooled clip features ``[B, D]``."""

    @abstractmethod
    def load_weights(self, path: Path) -> None:
        """Load pretrained weights from ``path`` (every tensor, strictly; works on a meta-device
        model) and set ``self.weights_path``."""

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


_REGISTRY: dict[str, tuple[BackboneSpec, Callable[[], VideoBackbone]]] = {}


def register_backbone(spec: BackboneSpec) -> Callable[[Callable[[], VideoBackbone]], Callable[[], VideoBackbone]]:
    """Decorator: register a zero-argument factory that builds ``spec.name`` with random weights."""

    def decorate(factory: Callable[[], VideoBackbone]) -> Callable[[], VideoBackbone]:
        if spec.name in _REGISTRY:
            raise ValueError(f"backbone {spec.name!r} is registered twice")
        _REGISTRY[spec.name] = (spec, factory)
        return factory

    return decorate


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of ``name`` without building the model."""
    return _lookup(name)[0]


def build_backbone(
    name: str, *, weights: str | Path | None = None, device: str | torch.device = "cpu", pretrained: bool = True
) -> VideoBackbone:
    """Build backbone ``name`` in eval mode on ``device``.

    ``weights``: a weights file; by default the spec's default file (never downloaded).
    ``pretrained=False`` skips loading and keeps the random init (plumbing tests only).
    """
    spec, factory = _lookup(name)
    if not pretrained:
        if weights is not None:
            raise ValueError("weights= was given together with pretrained=False")
        return factory().eval().to(device)
    path = spec.resolve_weights(weights)  # before building: a missing file fails at once
    with torch.device("meta"):
        model = factory()  # no random init to throw away: every tensor comes from the file
    log.info("loading %s weights from %s", name, path)
    model.load_weights(path)
    unloaded = [key for key, tensor in chain(model.named_parameters(), model.named_buffers()) if tensor.is_meta]
    if unloaded:
        raise WeightsMismatchError(f"{path} left {name} tensors unset: {', '.join(unloaded[:5])}")
    return model.eval().to(device)


def _lookup(name: str) -> tuple[BackboneSpec, Callable[[], VideoBackbone]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBackboneError(f"unknown backbone {name!r}; choose one of: {', '.join(list_backbones())}") from None
