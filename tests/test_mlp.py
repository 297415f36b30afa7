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


def test_invalid_config():
    with pytest.raises(HeadConfigError, match="hidden_dims"):
        MLPConfig(hidden_dims=(0,))
    with pytest.raises(HeadConfigError, match="dropout"):
        MLPConfig(dropout=-0.1)
