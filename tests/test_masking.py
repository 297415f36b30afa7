"""models.masking: masked pooling and batch norm that ignore padded clips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aqa.models.masking import MaskedBatchNorm1d, masked_mean, segment_weights


def test_masked_mean_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(x, mask).tolist() == [[2.0]]


@pytest.mark.parametrize("length", range(1, 13))
def test_segment_weights_match_adaptive_avg_pool_on_the_real_clips(length):
    x = torch.randn(1, length, 3, generator=torch.Generator().manual_seed(length))
    padded = torch.cat([x, torch.randn(1, 4, 3)], dim=1)
    mask = torch.zeros(1, length + 4, dtype=torch.bool)
    mask[0, :length] = True
    pooled = segment_weights(mask, 5) @ padded
    reference = F.adaptive_avg_pool1d(x.transpose(1, 2), 5).transpose(1, 2)
    assert torch.allclose(pooled, reference, atol=1e-6)


def test_a_single_clip_fills_every_segment():
    weights = segment_weights(torch.tensor([[True, False, False]]), 5)
    assert weights.shape == (1, 5, 3)
    assert weights[0, :, 0].tolist() == [1.0] * 5 and weights[0, :, 1:].abs().sum() == 0


def test_segments_follow_real_clips_wherever_the_mask_puts_them():
    mask = torch.tensor([[False, True, False, True, True, True]])
    weights = segment_weights(mask, 2)
    assert weights[0].tolist() == [[0, 0.5, 0, 0.5, 0, 0], [0, 0, 0, 0, 0.5, 0.5]]


def test_masked_batch_norm_statistics_skip_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    norm, reference = MaskedBatchNorm1d(3), torch.nn.BatchNorm1d(3)
    garbage = x.clone()
    garbage[~mask] = 1e3
    out = norm.train()(garbage, mask)
    expected = reference.train()(x[mask])
    assert torch.allclose(out[mask], expected, atol=1e-5)
    assert out[~mask].abs().sum() == 0
    assert torch.allclose(norm.running_mean, reference.running_mean)
    assert torch.allclose(norm.running_var, reference.running_var)
