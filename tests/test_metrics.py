"""models.metrics: Spearman, Fisher-z averaging, relative L2, MSE, cumulative score, seed summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aqa.models.metrics import (
    cumulative_score,
    fisher_z_mean,
    mse,
    relative_l2,
    score_metrics,
    spearman,
    summarize_seeds,
)


def test_spearman_on_rankings():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([4, 3, 2, 1], [10, 20, 30, 40]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.8)  # 1 - 6*4/(5*24)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)  # ties get average ranks


def test_spearman_accepts_tensors_and_column_vectors():
    assert spearman(torch.tensor([[0.1], [0.5], [0.2]]), np.array([1.0, 3.0, 2.0])) == pytest.approx(1.0)


def test_spearman_of_a_constant_is_nan_with_a_warning_and_of_nan_is_nan():
    with pytest.warns(RuntimeWarning, match="predictions are all equal"):
        assert math.isnan(spearman([0.5, 0.5, 0.5], [1, 2, 3]))
    with pytest.warns(RuntimeWarning, match="true scores are all equal"):
        assert math.isnan(spearman([1, 2, 3], [7, 7, 7]))
    assert math.isnan(spearman([1, float("nan"), 3], [1, 2, 3]))
    assert math.isnan(spearman([1, 2, 3], [1, 2, float("inf")]))


def test_mismatched_or_too_short_inputs_are_errors():
    with pytest.raises(ValueError, match="differ in length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        mse([1.0], [1.0])


def test_fisher_z_mean():
    assert fisher_z_mean([0.5]) == pytest.approx(0.5)
    assert fisher_z_mean([0.2, 0.8]) == pytest.approx(math.tanh((math.atanh(0.2) + math.atanh(0.8)) / 2))
    assert fisher_z_mean([0.2, 0.8]) > 0.5  # z-averaging weighs strong correlations more
    assert 0.99 < fisher_z_mean([1.0, 1.0]) <= 1.0  # clipped: finite
    assert math.isnan(fisher_z_mean([0.5, float("nan")]))
    with pytest.raises(ValueError):
        fisher_z_mean([])


def test_relative_l2_and_mse():
    pred, true = [1.0, 3.0, 5.0], [2.0, 3.0, 7.0]  # errors -1, 0, -2; span 5
    assert relative_l2(pred, true) == pytest.approx(100 * (0.04 + 0 + 0.16) / 3)
    assert mse(pred, true) == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="every true score is the same"):
        relative_l2([1, 2], [3, 3])


def test_score_metrics_bundles_all_three():
    metrics = score_metrics([1.0, 3.0, 5.0], [2.0, 3.0, 7.0])
    assert set(metrics) == {"spearman", "relative_l2", "mse"} and metrics["spearman"] == pytest.approx(1.0)


def test_summarize_seeds():
    summary = summarize_seeds([{"spearman": 0.7, "mse": 2.0}, {"spearman": 0.8, "mse": 4.0}])
    assert summary["spearman"] == {"mean": pytest.approx(0.75), "std": pytest.approx(0.0707107), "n": 2}
    assert summary["mse"]["mean"] == 3.0
    assert summarize_seeds([{"a": 1.0}])["a"] == {"mean": 1.0, "std": 0.0, "n": 1}
    with pytest.raises(ValueError, match="run 1 reports keys"):
        summarize_seeds([{"a": 1.0}, {"b": 1.0}])
    with pytest.raises(ValueError):
        summarize_seeds([])


def test_cumulative_score_counts_videos_within_each_error():
    pred, true = [1.0, 2.0, 3.0, math.nan, 6.0], [1.5, 2.0, 5.0, 4.0, 5.0]  # errors 0.5, 0, 2, NaN, 1
    curve = cumulative_score(pred, true, thresholds=[0.0, 0.4, 0.5, 1.0, 1.99, 2.0, 100.0])
    assert curve == [(0.0, 0.2), (0.4, 0.2), (0.5, 0.4), (1.0, 0.6), (1.99, 0.6), (2.0, 0.8), (100.0, 0.8)]
    default = cumulative_score(pred, true)  # 26 steps up to half the true span (3.5): 0, 0.07, ..., 1.75
    assert len(default) == 26 and default[0] == (0.0, 0.2) and default[-1] == pytest.approx((1.75, 0.6))
    assert default[7] == pytest.approx((0.49, 0.2)) and default[8] == pytest.approx((0.56, 0.4))
    assert [fraction for _, fraction in default] == sorted(fraction for _, fraction in default)
    assert cumulative_score([3.0, 3.5], [3.0, 3.0])[-1] == (1.0, 1.0)  # equal truths: thresholds up to 1
