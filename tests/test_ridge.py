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


@pytest.mark.parametrize("pool", ["mean+max", "mean+std"])
def test_pooling_beside_the_mean_learns_what_the_mean_cannot_see_and_ignores_padding(pool):
    """A score set by each video's peak clip (max) or its spread (std), with equal means: the mean
    alone cannot rank it, the pooled ridge does; padded clips change nothing."""
    torch.manual_seed(1)
    clips, targets = [], []
    for _ in range(60):
        length = int(torch.randint(4, 10, ()))
        strength = float(torch.rand(()))
        video = torch.randn(length, 4) * 0.1
        video[0, 0] += strength * length  # one peak ...
        video[:, 0] -= strength  # ... with the mean of dimension 0 unchanged
        clips.append(video)
        targets.append(0.2 + 0.6 * strength)
    train = PaddedVideos.from_sequences(clips, torch.tensor(targets))
    heads = {name: build_head("ridge", {"pool": name, "alphas": [1e-3, 1e-2, 0.1]}, input_dim=4)
             for name in ("mean", pool)}
    rho = {}
    for name, head in heads.items():
        fit(head, train, TrainConfig(epochs=1, standardize_features=False), seed=0)
        predicted = head(train.features, torch.arange(train.features.shape[1]) < train.lengths[:, None])["score"]
        rho[name] = float(np.corrcoef(predicted.argsort().argsort(), np.argsort(np.argsort(targets)))[0, 1])
    assert rho["mean"] < 0.5 < 0.9 < rho[pool], rho
    one = clips[0].unsqueeze(0)
    padded = torch.cat([one, torch.full((1, 3, 4), 50.0)], dim=1)
    mask = torch.tensor([[True] * one.shape[1] + [False] * 3])
    assert heads[pool](padded, mask)["score"].item() == pytest.approx(heads[pool](one)["score"].item(), abs=1e-6)
    with pytest.raises(ValueError, match="pool"):
        build_head("ridge", {"pool": "max"}, input_dim=4)
