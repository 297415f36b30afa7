"""models.mlp: the masked-mean MLP baseline."""

from __future__ import annotations

import pytest
import torch

from aqa.models import HeadConfigError, build_head
from aqa.models.mlp import MLPConfig, MLPHead


def _head(**overrides) -> MLPHead:
    torch.manual_seed(0)
    return build_head("mlp", {"hidden_dims": (8, 4), **overrides}, input_dim=5).eval()


def test_defaults():
    assert MLPConfig() == MLPConfig(hidden_dims=(256,), dropout=0.3, train_window=68)


def test_score_is_a_sigmoid_of_the_mlp_on_the_mean_of_the_real_clips():
    head = _head()
    features = torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = head(features, mask)
    means = torch.stack([features[0, :2].mean(0), features[1].mean(0)])
    assert torch.allclose(out["score"], torch.sigmoid(head.mlp(means).squeeze(-1)), atol=1e-6)
    assert ((out["score"] > 0) & (out["score"] < 1)).all()
    assert out["clip_weights"].tolist() == [[[0.5, 0.5, 0, 0]], [[0.25] * 4]]


def test_layers_follow_hidden_dims():
    linears = [m for m in _head().mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 8), (8, 4), (4, 1)]
    assert sum(p.numel() for p in build_head("mlp", input_dim=1024).parameters()) == 1024 * 256 + 256 + 257


def test_loss_is_mse_on_the_normalised_score():
    head = _head()
    out = head(torch.randn(3, 2, 5))
    targets = torch.tensor([0.1, 0.5, 0.9])
    total, parts = head.loss(out, targets)
    assert total.item() == pytest.approx(((out["score"] - targets) ** 2).mean().item())
    assert set(parts) == {"score"}


def test_auxiliary_scores_share_the_hidden_layers_and_add_their_own_loss():
    """``aux_scores``: one more output per auxiliary score after the same hidden layers; the loss
    adds their weighted MSE when targets ``[B, 1 + A]`` carry them, and is the score's alone on
    targets ``[B]`` (validation), so the selection and the reports stay about the score."""
    head = _head(aux_scores=("PCS",), aux_weight=0.5)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert linears[-1].out_features == 2
    features = torch.randn(3, 2, 5)
    out = head(features)
    assert out["aux"].shape == (3, 1) and torch.equal(out["score"], torch.sigmoid(head.mlp(features.mean(1)))[:, 0])
    targets = torch.tensor([[0.1, 0.8], [0.5, 0.2], [0.9, 0.4]])
    total, parts = head.loss(out, targets)
    score_mse = ((out["score"] - targets[:, 0]) ** 2).mean()
    aux_mse = ((out["aux"][:, 0] - targets[:, 1]) ** 2).mean()
    assert total.item() == pytest.approx((score_mse + 0.5 * aux_mse).item())
    assert set(parts) == {"score", "aux"}
    alone, parts = head.loss(out, targets[:, 0])
    assert alone.item() == pytest.approx(score_mse.item()) and set(parts) == {"score"}
    with pytest.raises(ValueError, match=r"expected targets \[3, 2\]"):
        head.loss(out, torch.zeros(3, 3))
    assert "aux" not in _head()(features)


def test_a_linear_readout_adds_a_linear_map_of_the_mean_clip_to_the_score_s_logit():
    head = _head(aux_scores=("TES",), linear_readout=True)
    features = torch.randn(3, 4, 5)
    out = head(features)
    pooled = features.mean(1)
    expected = torch.sigmoid(head.mlp(pooled)[:, 0] + head.readout(pooled).squeeze(-1))
    assert torch.allclose(out["score"], expected, atol=1e-6)
    assert torch.allclose(out["aux"][:, 0], torch.sigmoid(head.mlp(pooled)[:, 1]), atol=1e-6)  # not read linearly
    assert _head().readout is None


def test_invalid_config():
    with pytest.raises(HeadConfigError, match="hidden_dims"):
        MLPConfig(hidden_dims=(0,))
    with pytest.raises(HeadConfigError, match="dropout"):
        MLPConfig(dropout=-0.1)
    with pytest.raises(HeadConfigError, match="aux_scores"):
        MLPConfig(aux_scores=("PCS", "PCS"))
    with pytest.raises(HeadConfigError, match="aux_weight"):
        MLPConfig(aux_weight=-1.0)
