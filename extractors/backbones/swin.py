"""Video Swin Transformer (Liu et al., CVPR 2022) from ``torchvision.models.video``.

The VST features in the AQA papers are Swin-B. Everything the spec needs comes from torchvision's
weights entry: mean/std and crop from its ``transforms``, the clip length from its docs
(``clip_len=32``), the file name from its URL. Weights are never downloaded: ``weights=PATH`` (a
torchvision state dict) or the torch hub cache file, else an error naming both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from torch import Tensor
from torchvision.models import WeightsEnum
from torchvision.models.video import (
    Swin3D_B_Weights,
    Swin3D_S_Weights,
    Swin3D_T_Weights,
    SwinTransformer3d,
    swin3d_b,
    swin3d_s,
    swin3d_t,
)

from aqa.extractors.backbones.registry import BackboneSpec, VideoBackbone, register_backbone
from aqa.extractors.backbones.weights import hub_cache_resolver, load_state_dict_strictly, load_torch_state_dict

log = logging.getLogger(__name__)


def swin_spec(name: str, weights: WeightsEnum, feature_dim: int) -> BackboneSpec:
    """A spec read off a torchvision weights entry (its transforms' crop/mean/std, its docs' clip length)."""
    preset = weights.transforms.keywords  # functools.partial(VideoClassification, crop_size=..., mean=..., std=...)
    clip = re.search(r"clip_len=(\d+)", weights.meta.get("_docs", ""))
    if clip is None:
        raise RuntimeError(f"torchvision's {weights} no longer documents its clip length; update {__name__}")
    return BackboneSpec(
        name=name,
        clip_length=int(clip.group(1)),
        input_size=tuple(preset["crop_size"]),
        mean=tuple(preset["mean"]),
        std=tuple(preset["std"]),
        value_range="RGB in [0, 1], then ImageNet mean/std normalised",
        feature_dim=feature_dim,
        weights_source=f"torchvision {weights} ({weights.url})",
        default_weights=hub_cache_resolver(name, weights.url),
        weights_url=weights.url,
    )


class SwinBackbone(VideoBackbone):
    """torchvision's SwinTransformer3d without its head: final-norm tokens averaged, ``[B, D]``."""

    def __init__(self, spec: BackboneSpec, build: Callable[[], SwinTransformer3d]) -> None:
        super().__init__(spec)
        self.net = build()

    def forward_features(self, x: Tensor) -> Tensor:
        net = self.net
        tokens = net.norm(net.features(net.pos_drop(net.patch_embed(x))))  # [B, T', H', W', D]
        return tokens.mean(dim=(1, 2, 3))  # what net.avgpool + flatten compute, channels-last

    def load_weights(self, path: Path) -> None:
        load_state_dict_strictly(self.net, load_torch_state_dict(path), path)
        self.weights_path = Path(path)


def _register(name: str, weights: WeightsEnum, builder: Callable[..., SwinTransformer3d], feature_dim: int) -> None:
    spec = swin_spec(name, weights, feature_dim)

    def build_random() -> SwinBackbone:
        # Same architecture as the pretrained entry (400 classes), randomly initialised; no download.
        return SwinBackbone(spec, lambda: builder(weights=None, num_classes=len(weights.meta["categories"])))

    register_backbone(spec)(build_random)


_register("swin3d_t", Swin3D_T_Weights.KINETICS400_V1, swin3d_t, 768)
_register("swin3d_s", Swin3D_S_Weights.KINETICS400_V1, swin3d_s, 768)
_register("swin3d_b", Swin3D_B_Weights.KINETICS400_V1, swin3d_b, 1024)
_register("swin3d_b_in22k", Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1, swin3d_b, 1024)
