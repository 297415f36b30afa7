"""models.ridge: the closed-form floor, its leave-one-out choice of alpha, and its face as a head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aqa.models import build_head
from aqa.models.ridge import loo_ridge
from aqa.models.training import PaddedVideos, TrainConfig, fit


def brute_force_loo(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """LOO MSE by refitting ridge (with intercept) N times."""
    errors = []
    for held in range(len(y)):
        keep = np.arange(len(y)) != held
        mean, offset = x[keep].mean(0), y[keep].mean()
        centred = x[keep] - mean
        weight = np.linalg.solve(centred.T @ centred + alpha * np.eye(x.shape[1]), centred.T @ (y[keep] - offset))
        errors.append(((x[held] - mean) @ weight + offset - y[held]) ** 2)
    return float(np.mean(errors))


def test_leave_one_out_losses_match_refitting_and_pick_the_best_alpha():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8))
    y = x @ rng.normal(size=8) + rng.normal(scale=2.0, size=30)
    alphas = (0.01, 1.0, 30.0, 1000.0)
    mean, weight, bias, losses = loo_ridge(torch.tensor(x), torch.tensor(y), alphas)
    assert losses.numpy() == pytest.approx([brute_force_loo(x, y, alpha) for alpha in alphas], rel=1e-6)
    best = alphas[int(np.argmin(losses))]
    centred = x - x.mean(0)
    expected = np.linalg.solve(centred.T @ centred + best * np.eye(8), centred.T @ (y - y.mean()))
    assert weight.numpy() == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert bias == pytest.approx(y.mean()) and mean.numpy() == pytest.approx(x.mean(0))


def test_more_features_than_videos_is_fine():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 50)), rng.normal(size=12)
    _, weight, _, losses = loo_ridge(torch.tensor(x), torch.tensor(y), (1.0, 10.0))
    assert torch.isfinite(losses).all() and torch.isfinite(weight).all()


def test_fit_solves_on_whole_videos_in_one_step_and_is_padding_invariant():
    torch.manual_seed(0)
    signal = torch.randn(6)
    clips = [torch.randn(int(length), 6) + 0.3 * torch.randn(1, 6) for length in torch.randint(3, 9, (40,))]
    targets = torch.stack([0.5 + 0.05 * clips_i.mean(0) @ signal for clips_i in clips])
    train = PaddedVideos.from_sequences(clips, targets)
    head = build_head("ridge", {"alphas": [0.001, 0.1]}, input_dim=6)
    result = fit(head, train, TrainConfig(epochs=5), seed=0)
    assert result.selection == "closed-form" and len(result.history) == 1
    assert result.history[0]["train_srcc"] > 0.95
    assert float(head.alpha) == pytest.approx(0.001) or float(head.alpha) == pytest.approx(0.1)
    one = clips[0].unsqueeze(0)
    padded = torch.cat([one, torch.full((1, 5, 6), 7.0)], dim=1)
    mask = torch.tensor([[True] * one.shape[1] + [False] * 5])
    assert head(padded, mask)["score"].item() == pytest.approx(head(one)["score"].item(), abs=1e-6)
    rebuilt = build_head("ridge", {"alphas": [0.001, 0.1]}, input_dim=6)
    rebuilt.load_state_dict(head.state_dict())
    assert torch.equal(rebuilt(one)["score"], head(one)["score"])


def test_alphas_must_be_positive():
    with pytest.raises(ValueError, match="alphas must be positive"):
        build_head("ridge", {"alphas": [0.0]}, input_dim=4)
