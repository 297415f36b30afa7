"""models.fspn_exemplars: difference bins (fit, targets, read-out), the exemplar bank and Eq. 17 voting."""

from __future__ import annotations

import io
import math

import pytest
import torch

from aqa.models.fspn_exemplars import (
    ExemplarBank,
    bin_readout,
    bin_targets,
    fit_bin_edges,
    pair_candidates,
    uniform_bin_edges,
    vote,
)

NAN = math.nan


def test_uniform_edges_cover_every_difference_of_normalised_scores():
    edges = uniform_bin_edges(4)
    assert edges.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_fitted_edges_are_quantiles_of_the_training_differences():
    scores = torch.rand(60, generator=torch.Generator().manual_seed(0))
    edges = fit_bin_edges(scores, 8)
    differences = (scores[:, None] - scores[None, :])[~torch.eye(60, dtype=torch.bool)]
    assert edges.shape == (9,) and (edges[1:] > edges[:-1]).all()
    assert edges[0].item() == pytest.approx(differences.min().item(), abs=1e-6)
    assert edges[-1].item() == pytest.approx(differences.max().item(), abs=1e-6)
    counts = torch.bincount(bin_targets(differences, edges)[0], minlength=8)
    assert counts.min() >= 0.9 * len(differences) / 8  # every interval holds about as many pairs
    assert torch.allclose(edges, -edges.flip(0), atol=1e-6)  # d and -d are both training pairs


def test_fitted_edges_use_only_the_pairs_training_can_draw():
    scores = torch.tensor([0.1, 0.12, 0.14, 0.8, 0.82, 0.84])
    groups = torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    edges = fit_bin_edges(scores, 4, groups)
    assert edges.abs().max().item() == pytest.approx(0.04, abs=1e-6)  # within-group differences only
    assert fit_bin_edges(scores, 4).abs().max().item() == pytest.approx(0.74, abs=1e-6)


def test_repeated_scores_still_give_open_intervals():
    edges = fit_bin_edges(torch.tensor([0.5, 0.5, 0.5, 0.5, 0.7]), 6)
    assert (edges[1:] > edges[:-1]).all()


def test_large_training_sets_are_subsampled_deterministically():
    scores = torch.rand(3000, generator=torch.Generator().manual_seed(1))
    first, second = fit_bin_edges(scores, 16, max_videos=500), fit_bin_edges(scores, 16, max_videos=500)
    assert torch.equal(first, second)
    assert not torch.equal(first, fit_bin_edges(scores, 16, max_videos=500, seed=1))


def test_pair_candidates_prefer_the_same_group_and_never_the_video_itself():
    groups = torch.tensor([1.0, 1.0, 2.0, NAN, 3.0, 3.0, 3.0])
    allowed = pair_candidates(groups, 7)
    assert not allowed.diagonal().any()
    assert allowed[0].tolist() == [False, True, False, False, False, False, False]
    assert allowed[2].sum() == 6 and allowed[3].sum() == 6  # a lone group and an unknown one: anyone else
    assert allowed[4].tolist() == [False, False, False, False, False, True, True]


def test_bin_targets_and_readout_invert_each_other():
    edges = torch.tensor([-0.6, -0.2, 0.0, 0.1, 0.5])
    differences = torch.tensor([-0.6, -0.3, 0.0, 0.05, 0.3, 0.5])
    interval, position = bin_targets(differences, edges)
    assert interval.tolist() == [0, 0, 2, 2, 3, 3]
    assert torch.allclose(position, torch.tensor([0.0, 0.75, 0.0, 0.5, 0.5, 1.0]))
    logits = torch.nn.functional.one_hot(interval, 4).float() * 5
    positions = position.unsqueeze(1).expand(-1, 4)
    assert torch.allclose(bin_readout(logits, positions, edges), differences, atol=1e-6)


def test_differences_outside_the_fitted_range_clamp_to_the_end_intervals():
    interval, position = bin_targets(torch.tensor([-0.9, 0.9]), torch.tensor([-0.5, 0.0, 0.5]))
    assert interval.tolist() == [0, 1] and position.tolist() == [0.0, 1.0]


def test_vote_averages_exemplar_score_plus_difference_over_valid_exemplars():
    scores = torch.tensor([[0.2, 0.4, 0.9], [0.5, 0.5, 0.5]])
    differences = torch.tensor([[0.1, -0.1, 5.0], [0.0, 0.2, 0.1]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.allclose(vote(scores, differences, valid), torch.tensor([0.3, 0.6]))


def _videos(count: int = 12, clips: int = 5, dim: int = 3):
    features = torch.randn(count, clips, dim, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(count, clips, dtype=torch.bool)
    mask[:, 3:] = False  # no stored video is longer than 3 clips
    scores = torch.linspace(0.05, 0.95, count)
    groups = torch.tensor([1.0] * 5 + [2.0] * 2 + [NAN] * 5)
    return features, mask, scores, groups


def test_bank_keeps_m_per_group_plus_a_shared_set_chosen_by_seed():
    features, mask, scores, groups = _videos()
    bank = ExemplarBank(3, num_exemplars=3, seed=0)
    index = bank.fill(features, mask, scores, groups)
    assert (bank.group == 1).sum() == 3 and (bank.group == 2).sum() == 2 and bank.shared.sum() == 3
    assert torch.equal(bank.features, features[index, :3])
    assert bank.mask.shape == (len(index), 3) and torch.equal(bank.score, scores[index])
    again = ExemplarBank(3, num_exemplars=3, seed=0)
    assert torch.equal(again.fill(features, mask, scores, groups), index)
    other = [ExemplarBank(3, num_exemplars=3, seed=seed).fill(features, mask, scores, groups) for seed in (1, 2)]
    assert any(not torch.equal(chosen, index) for chosen in other)


def test_bank_selects_the_querys_group_else_the_shared_set():
    features, mask, scores, groups = _videos()
    bank = ExemplarBank(3, num_exemplars=3, seed=0)
    bank.fill(features, mask, scores, groups)
    index, valid = bank.select(torch.tensor([1.0, 2.0, NAN, 7.0]), 4)
    assert index.shape == valid.shape == (4, 3)
    assert (bank.group[index[0]] == 1).all() and valid[0].all()
    assert (bank.group[index[1, :2]] == 2).all() and valid[1].tolist() == [True, True, False]  # a 2-video group
    for row in (2, 3):  # unknown and unseen groups
        assert bank.shared[index[row]].all() and valid[row].all()
    assert torch.equal(bank.select(None, 2)[0], index[2:])


def test_bank_travels_in_a_weights_only_state_dict():
    features, mask, scores, groups = _videos()
    bank = ExemplarBank(3, num_exemplars=2, seed=4)
    bank.fill(features, mask, scores, groups)
    buffer = io.BytesIO()
    torch.save(bank.state_dict(), buffer)
    buffer.seek(0)
    restored = ExemplarBank(3, num_exemplars=2)
    assert len(restored) == 0
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored.state_dict(), bank.state_dict(), rtol=0, atol=0, equal_nan=True)
    assert torch.equal(restored.select(torch.tensor([1.0]), 1)[0], bank.select(torch.tensor([1.0]), 1)[0])


def test_an_empty_bank_says_how_to_fill_it():
    with pytest.raises(ValueError, match="exemplar bank is empty"):
        ExemplarBank(3, num_exemplars=2).select(None, 1)
    with pytest.raises(ValueError, match="at least one real clip"):
        ExemplarBank(3, num_exemplars=2).fill(torch.zeros(2, 2, 3), torch.zeros(2, 2, dtype=torch.bool),
                                              torch.zeros(2))
    with pytest.raises(ValueError, match="must have 3 channels"):
        ExemplarBank(3, num_exemplars=2).fill(torch.zeros(2, 2, 4), torch.ones(2, 2, dtype=torch.bool),
                                              torch.zeros(2))
