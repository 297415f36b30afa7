"""models.normalization: the training-range score normaliser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aqa.models.grading import decompose_score
from aqa.models.normalization import NormalizerError, ScoreNormalizer


def test_fit_maps_the_training_range_strictly_inside_zero_one():
    normalizer = ScoreNormalizer.fit([10.0, 12.5, 20.0], margin=0.05)
    assert (normalizer.low, normalizer.high) == pytest.approx((9.5, 20.5))
    unit = normalizer.to_unit(np.array([10.0, 20.0]))
    assert unit[0] > 0 and unit[1] < 1
    assert unit.tolist() == pytest.approx([0.5 / 11, 10.5 / 11])


def test_the_training_maximum_is_in_the_last_grade_not_past_it():
    normalizer = ScoreNormalizer.fit(torch.tensor([0.0, 25.0]))
    grade, _ = decompose_score(normalizer.to_unit(torch.tensor([25.0])), 4, 100)
    assert grade.item() == 3


@pytest.mark.parametrize("values", [3.3, np.array([1.0, 17.25]), torch.tensor([4.0, 9.5])])
def test_round_trip_on_floats_arrays_and_tensors(values):
    normalizer = ScoreNormalizer(low=1.0, high=21.0)
    back = normalizer.from_unit(normalizer.to_unit(values))
    assert np.allclose(np.asarray(back), np.asarray(values))
    assert type(back) is type(values)


def test_dict_round_trip():
    normalizer = ScoreNormalizer.fit([3.0, 8.0, 5.0])
    assert ScoreNormalizer.from_dict(normalizer.to_dict()) == normalizer


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ScoreNormalizer.fit([5.0, 5.0]), "two distinct values"),
    (lambda: ScoreNormalizer.fit([]), "no scores"),
    (lambda: ScoreNormalizer.fit([1.0, float("nan")]), "NaN"),
    (lambda: ScoreNormalizer.fit([1.0, 2.0], margin=-1), "margin"),
    (lambda: ScoreNormalizer(low=2.0, high=1.0), "high > low"),
    (lambda: ScoreNormalizer.from_dict({"low": 0.0}), "exactly 'low' and 'high'"),
    (lambda: ScoreNormalizer.from_dict({"low": "a", "high": 1}), "not numeric"),
])
def test_bad_ranges_are_user_errors(call, message):
    with pytest.raises(NormalizerError, match=message):
        call()
