"""pytorchvideo model-zoo backbones: ``i3d_r50``, ``slow_r50``, ``x3d_m`` (Kinetics-400).

Built with pytorchvideo's hub builders (``pytorchvideo.models.hub``, random init, no download),
imported only when a model is built: pytorchvideo takes seconds to import, and its
``transforms`` package is never touched (it breaks on current torchvision). Note ``i3d_r50`` is an
I3D-ResNet-50, not the Inception-I3D of the AQA papers (that one is ``i3d``).

Features are the pooled activations the classifier sees, before its projection (``proj``):

- ResNets (``i3d_r50``, ``slow_r50``): res5 ``[B, 2048, T', H', W']`` averaged -> ``[B, 2048]``;
- ``x3d_m``: its head's ProjectedPool: 1x1x1 conv 192 -> 432 + BN + ReLU, average over
  ``T', H', W'``, 1x1x1 conv 432 -> 2048 + ReLU -> ``[B, 2048]``.

Global averaging replaces the heads' fixed-size ``AvgPool3d`` so other clip lengths and sizes
work; at the trained input size the two are identical.

Weights: ``weights=PATH`` or the torch hub cache file of the official checkpoint (pytorchvideo's
``{"model_state": ...}`` layout, or a bare state dict), else a clear error. The URLs are pytorchvideo's
``checkpoint_paths`` (a test keeps them in step).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from aqa.extractors.backbones.registry import BackboneSpec, VideoBackbone, register_backbone
from aqa.extractors.backbones.weights import hub_cache_resolver, load_state_dict_strictly, load_torch_state_dict

log = logging.getLogger(__name__)

ZOO_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo"
CHECKPOINT_URLS = {
    "i3d_r50": f"{ZOO_ROOT}/kinetics/I3D_8x8_R50.pyth",
    "slow_r50": f"{ZOO_ROOT}/kinetics/SLOW_8x8_R50.pyth",
    "x3d_m": f"{ZOO_ROOT}/kinetics/X3D_M.pyth",
}
# pytorchvideo's Kinetics recipe normalisation for all three.
_MEAN, _STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
# name -> (frames per clip, crop), the sizes the heads' pools were built for.
_INPUTS = {"i3d_r50": (8, 224), "slow_r50": (8, 224), "x3d_m": (16, 224)}


def _hub_builder(name: str) -> Callable[[], nn.Module]:
    """pytorchvideo's hub builder for ``name`` (imports pytorchvideo, quietly)."""
    # The first import may happen inside build_backbone's meta-device context: pin it to the CPU so
    # no import-time tensor lands on meta. pytorchvideo 0.1.5 calls the deprecated torch.jit.script.
    with torch.device("cpu"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script.*")
        from pytorchvideo.models import hub
    return getattr(hub, name)


class PytorchvideoBackbone(VideoBackbone):
    """A pytorchvideo ``Net`` (``blocks``: stem, stages, head) without its projection."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(spec)
        self.net = _hub_builder(spec.name)()  # pretrained=False: random init, no download

    def forward_features(self, x: Tensor) -> Tensor:
        *body, head = self.net.blocks
        for block in body:
            x = block(x)
        pool = head.pool
        if hasattr(pool, "post_conv"):  # X3D's ProjectedPool: project, pool, expand
            x = _optional(pool.pre_act, _optional(pool.pre_norm, pool.pre_conv(x)))
            x = pool.post_conv(x.mean(dim=(2, 3, 4), keepdim=True))
            x = _optional(pool.post_act, _optional(pool.post_norm, x))
        return x.mean(dim=(2, 3, 4))

    def load_weights(self, path: Path) -> None:
        load_state_dict_strictly(self.net, load_torch_state_dict(path, wrapper_key="model_state"), path)
        self.weights_path = Path(path)


def _optional(layer: nn.Module | None, x: Tensor) -> Tensor:
    return x if layer is None else layer(x)


def _register(name: str) -> None:
    frames, crop = _INPUTS[name]
    url = CHECKPOINT_URLS[name]
    spec = BackboneSpec(
        name=name,
        clip_length=frames,
        input_size=(crop, crop),
        mean=_MEAN,
        std=_STD,
        value_range="RGB in [0, 1], then mean 0.45 / std 0.225 normalised",
        feature_dim=2048,
        weights_source=f"pytorchvideo model zoo, Kinetics-400 ({url})",
        default_weights=hub_cache_resolver(name, url),
        weights_url=url,
    )
    register_backbone(spec)(lambda: PytorchvideoBackbone(spec))


for _name in CHECKPOINT_URLS:
    _register(_name)
