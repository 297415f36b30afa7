"""models.training: on-device windows, full-video batches, the SGD loop, selection and determinism."""

from __future__ import annotations

import math

import pytest
import torch

from aqa.models import build_head
from aqa.models.metrics import spearman
from aqa.models.training import (
    PaddedVideos,
    TrainConfig,
    TrainConfigError,
    TrainingDivergedError,
    augment_windows,
    evaluate,
    fit,
    full_batches,
    resolve_window,
    sample_windows,
    seed_everything,
)
from torch_threads import single_thread

D = 4


def numbered_videos(lengths: list[int]) -> PaddedVideos:
    """Video i's clip t is the vector (i, t, 1, 1): every gathered clip says where it came from."""
    clips = [torch.tensor([[float(i), float(t), 1.0, 1.0] for t in range(n)]) for i, n in enumerate(lengths)]
    return PaddedVideos.from_sequences(clips, torch.linspace(0.1, 0.9, len(lengths)))


def test_padding_keeps_lengths_and_zeroes_the_tail():
    videos = numbered_videos([3, 5, 1])
    assert videos.features.shape == (3, 5, D) and videos.lengths.tolist() == [3, 5, 1]
    assert videos.features[0, 3:].abs().sum() == 0 and videos.features[2, 1:].abs().sum() == 0
    assert videos.features[1, 4].tolist() == [1.0, 4.0, 1.0, 1.0]


def test_windows_are_consecutive_clips_of_the_right_video():
    videos = numbered_videos([10, 3, 7, 4])
    generator = torch.Generator().manual_seed(0)
    index = torch.tensor([2, 1, 0, 3])
    features, mask = sample_windows(videos, index, window=4, generator=generator)
    assert features.shape == (4, 4, D) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [4, 3, 4, 4]  # video 1 has only 3 clips
    for row, video in enumerate(index.tolist()):
        real = features[row][mask[row]]
        assert (real[:, 0] == video).all()
        steps = real[:, 1]
        assert torch.equal(steps, torch.arange(steps[0], steps[0] + len(steps)))  # consecutive
        assert features[row][~mask[row]].abs().sum() == 0  # padding is zeros
    assert features[1, :3, 1].tolist() == [0.0, 1.0, 2.0]  # a short video is taken whole from its start


def test_window_width_shrinks_to_the_longest_chosen_video():
    videos = numbered_videos([3, 5, 12])
    features, mask = sample_windows(videos, torch.tensor([0, 1]), window=8, generator=torch.Generator())
    assert features.shape == (2, 5, D) and mask.sum().item() == 8


def test_every_start_is_drawn():
    videos = numbered_videos([9])
    generator = torch.Generator().manual_seed(1)
    starts = {int(sample_windows(videos, torch.tensor([0]), 4, generator)[0][0, 0, 1]) for _ in range(300)}
    assert starts == set(range(6))


def test_full_batches_cover_every_clip_once():
    videos = numbered_videos([2, 6, 3, 1, 4])
    seen = []
    for rows, features, mask in full_batches(videos, batch_size=2):
        assert features.shape[1] == int(videos.lengths[rows].max())
        assert mask.sum(dim=1).tolist() == videos.lengths[rows].tolist()
        seen += [(int(v), int(t)) for v, t in features[mask][:, :2].tolist()]
    assert seen == [(i, t) for i, n in enumerate([2, 6, 3, 1, 4]) for t in range(n)]


def regression_videos(count: int, seed: int) -> PaddedVideos:
    """Clips whose mean along dimension 0 is the target: a task a tiny MLP learns in a few epochs."""
    generator = torch.Generator().manual_seed(seed)
    targets = 0.1 + 0.8 * torch.rand(count, generator=generator)
    clips = []
    for target in targets:
        n = int(torch.randint(3, 9, (1,), generator=generator))
        x = 0.1 * torch.randn(n, D, generator=generator)
        x[:, 0] += 4 * (target - 0.5)
        clips.append(x)
    return PaddedVideos.from_sequences(clips, targets)


TINY_MLP = {"hidden_dims": (8,), "dropout": 0.0, "train_window": 4}


def train_mlp(config: TrainConfig, seed: int = 0, val: PaddedVideos | None = None):
    seed_everything(seed)
    head = build_head("mlp", TINY_MLP, input_dim=D)
    with single_thread():
        return head, fit(head, regression_videos(48, 1), config, seed=seed, val=val)


def test_fit_learns_and_keeps_the_last_epoch_with_fixed_epochs():
    head, result = train_mlp(TrainConfig(epochs=30, batch_size=8, lr=0.1))
    assert result.selection == "fixed-epochs" and result.best_epoch == 30
    assert all(torch.equal(result.best_state[k], v) for k, v in head.state_dict().items())
    assert [record["epoch"] for record in result.history] == list(range(1, 31))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 2
    assert result.history[0]["val_srcc"] is None and "train_loss_score" in result.history[0]
    scores, _ = evaluate(head, regression_videos(24, 2))
    assert spearman(scores, regression_videos(24, 2).targets) > 0.8


def test_learning_rate_follows_the_cosine_from_lr_to_lr_min():
    _, result = train_mlp(TrainConfig(epochs=5, batch_size=16, lr=0.05, lr_min=0.001))
    rates = [record["lr"] for record in result.history]
    assert rates[0] == pytest.approx(0.05) and all(a > b for a, b in zip(rates, rates[1:]))
    steps, total = 3 * 4, 3 * 5  # 48 videos / 16 = 3 steps per epoch; epoch 5 starts after 12 steps
    expected = 0.001 + (0.05 - 0.001) * (1 + math.cos(math.pi * steps / total)) / 2
    assert rates[-1] == pytest.approx(expected, rel=1e-6)


def test_validation_selects_the_best_epoch_and_keeps_its_weights():
    val = regression_videos(16, 3)
    head, result = train_mlp(TrainConfig(epochs=12, batch_size=8, lr=0.1), val=val)
    val_rhos = [record["val_srcc"] for record in result.history]
    assert result.selection == "val"
    assert result.best_epoch == 1 + max(range(12), key=lambda i: (val_rhos[i], -i))
    head.load_state_dict(result.best_state)
    assert spearman(evaluate(head, val)[0], val.targets) == pytest.approx(max(val_rhos))


def test_same_seed_same_run_other_seed_other_run():
    config = TrainConfig(epochs=4, batch_size=8)
    (_, first), (_, second), (_, other) = (train_mlp(config, seed) for seed in (0, 0, 1))
    drop = ("seconds",)
    strip = [[{k: v for k, v in r.items() if k not in drop} for r in run.history] for run in (first, second, other)]
    assert strip[0] == strip[1] and strip[0] != strip[2]
    assert all(torch.equal(first.last_state[k], second.last_state[k]) for k in first.last_state)


def test_a_nan_loss_stops_training_with_a_user_error():
    videos = regression_videos(8, 1)
    videos.features[0, :int(videos.lengths[0])] = math.nan  # every window of video 0 holds NaN
    seed_everything(0)
    head = build_head("mlp", TINY_MLP, input_dim=D)
    with pytest.raises(TrainingDivergedError, match="loss became nan in epoch 1"):
        fit(head, videos, TrainConfig(epochs=2, batch_size=8), seed=0)


def test_the_default_recipe_refuses_a_pairwise_head():
    """A pairwise head that brought no recipe of its own cannot be fed single videos."""
    head = build_head("mlp", TINY_MLP, input_dim=D)
    head.pairwise = True
    with pytest.raises(TrainConfigError, match="trains on exemplar pairs"):
        fit(head, regression_videos(4, 1), TrainConfig(epochs=1), seed=0)


def test_config_checks_and_window_resolution():
    with pytest.raises(TrainConfigError, match="epochs must be positive"):
        TrainConfig(epochs=0)
    with pytest.raises(TrainConfigError, match="lr_min <= train.lr"):
        TrainConfig(lr=0.001, lr_min=0.01)
    head = build_head("mlp", TINY_MLP, input_dim=D)
    assert resolve_window(TrainConfig(), head) == 4 and resolve_window(TrainConfig(window=9), head) == 9


def test_weight_averaging_keeps_the_mean_of_the_last_epochs_weights():
    def run(config: TrainConfig) -> tuple[torch.nn.Module, list[dict]]:
        seed_everything(0)
        head = build_head("mlp", TINY_MLP, input_dim=D)
        states = []
        with single_thread():
            fit(head, regression_videos(48, 1), config, seed=0,
                on_epoch=lambda record: states.append({k: v.clone() for k, v in head.state_dict().items()}))
        return head, states

    plain, _ = run(TrainConfig(epochs=8, batch_size=8, lr=0.1))
    averaged, states = run(TrainConfig(epochs=8, batch_size=8, lr=0.1, average_last=0.5))
    assert all(torch.equal(states[-1][name], value) for name, value in plain.state_dict().items())  # same run
    for name, value in averaged.state_dict().items():
        if value.is_floating_point():
            expected = torch.stack([state[name] for state in states[4:]]).mean(dim=0)  # epochs 5-8
            assert torch.allclose(value, expected, atol=1e-6), name
    assert not torch.equal(averaged.state_dict()["mlp.0.weight"], plain.state_dict()["mlp.0.weight"])
    with pytest.raises(TrainConfigError, match="average_last"):
        TrainConfig(average_last=1.0)


def test_augmentation_adds_noise_on_real_clips_and_drops_clips_but_never_a_whole_window():
    """Issue 26's temporal augmentation: noise in units of each dimension's std, only on real clips;
    dropped clips masked and zeroed, one clip kept where all would go; a seed fixes both."""
    videos = numbered_videos([5, 3, 1])
    features, mask = sample_windows(videos, torch.tensor([0, 1, 2]), 4, torch.Generator().manual_seed(0))
    std = torch.tensor([1.0, 2.0, 0.0, 0.5])
    noisy, same_mask = augment_windows(features, mask, TrainConfig(feature_noise=0.3), std,
                                       torch.Generator().manual_seed(1))
    assert torch.equal(same_mask, mask) and torch.equal(noisy[~mask], features[~mask])  # padding untouched
    change = (noisy - features)[mask]
    assert torch.all(change[:, 2] == 0) and change[:, 1].std() > change[:, 3].std() > 0  # scaled by std
    config = TrainConfig(clip_dropout=0.99)
    dropped, kept = augment_windows(features, mask, config, std, torch.Generator().manual_seed(2))
    assert torch.all(kept.sum(dim=1) >= 1) and not torch.any(kept & ~mask)
    assert torch.all(dropped[~kept] == 0) and torch.equal(dropped[kept], features[kept])
    again = augment_windows(features, mask, config, std, torch.Generator().manual_seed(2))
    assert torch.equal(again[1], kept)
    with pytest.raises(TrainConfigError, match="clip_dropout"):
        TrainConfig(clip_dropout=1.0)


def test_augmentation_off_draws_nothing_and_on_changes_the_run():
    """With both settings 0 a run is bit-identical to one without them (no random number drawn);
    with noise on, the same seed gives another run."""
    (_, plain), (_, off), (_, noisy) = (train_mlp(config, 0) for config in (
        TrainConfig(epochs=3, batch_size=8), TrainConfig(epochs=3, batch_size=8, feature_noise=0.0, clip_dropout=0.0),
        TrainConfig(epochs=3, batch_size=8, feature_noise=0.5)))
    assert all(torch.equal(plain.last_state[k], off.last_state[k]) for k in plain.last_state)
    assert not all(torch.equal(plain.last_state[k], noisy.last_state[k]) for k in plain.last_state)
