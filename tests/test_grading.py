"""models.grading: score decomposition round trips at the edges, and the simplex ETF's geometry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from aqa.models.grading import decompose_score, expected_class, reassemble_score, simplex_etf


def _decompose(values, grades=4, subgrades=100, dtype=torch.float32):
    g, f = decompose_score(torch.tensor(values, dtype=dtype), grades, subgrades)
    return g.tolist(), f.tolist()


def test_zero_is_the_first_grade_and_subgrade():
    assert _decompose([0.0]) == ([0], [0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_just_below_one_is_the_last_grade_and_subgrade(dtype):
    below_one = float(np.nextafter(np.float32(1.0), np.float32(0.0))) if dtype == torch.float32 else 1 - 1e-12
    assert _decompose([below_one], dtype=dtype) == ([3], [99])


def test_exact_grade_boundaries_start_their_grade():
    assert _decompose([0.25, 0.5, 0.75]) == ([1, 2, 3], [0, 0, 0])


@pytest.mark.parametrize(("score", "grades", "subgrades", "expected"), [
    (0.7, 10, 100, (7, 0)),  # float32(0.7) = 0.69999998...: a naive floor says grade 6, sub-grade 99
    (0.29, 100, 100, (29, 0)),  # the authors' 100 x 100 grid: 0.29 -> 28.999999 naively
    (0.3, 10, 10, (3, 0)),
    (0.123456, 100, 100, (12, 34)),  # 3rd-4th decimals are the sub-grade on the 100 x 100 grid
])
def test_float32_decimals_land_where_a_human_expects(score, grades, subgrades, expected):
    assert _decompose([score], grades, subgrades) == ([expected[0]], [expected[1]])


def test_subgrade_uses_the_corrected_formula_and_stays_below_g_prime():
    # The paper's printed s_F = floor((s - floor(s / S_C)) / S_F) would give 0.8 / 0.0025 = 320.
    grade, subgrade = _decompose([0.8])
    assert (grade, subgrade) == ([3], [20])


def test_out_of_range_scores_are_clamped_to_the_first_and_last_class():
    assert _decompose([-0.2, 1.0, 1.3]) == ([0, 3, 3], [0, 99, 99])


def test_every_grid_point_round_trips_exactly():
    grades, subgrades = 4, 100
    pairs = list(itertools.product(range(grades), range(subgrades)))
    g = torch.tensor([p[0] for p in pairs])
    f = torch.tensor([p[1] for p in pairs])
    scores = reassemble_score(g, f, grades, subgrades)
    assert scores.dtype == torch.float32
    g2, f2 = decompose_score(scores, grades, subgrades)
    assert torch.equal(g2, g) and torch.equal(f2, f)


@pytest.mark.parametrize(("grades", "subgrades"), [(4, 100), (7, 13), (100, 100), (1, 1)])
def test_reassembly_of_decomposition_is_within_one_subgrade_step(grades, subgrades):
    scores = torch.cat([torch.rand(2000, generator=torch.Generator().manual_seed(0)), torch.tensor([0.0, 0.75])])
    rebuilt = reassemble_score(*decompose_score(scores, grades, subgrades), grades, subgrades)
    step = 1.0 / (grades * subgrades)
    error = scores.double() - rebuilt.double()
    assert float(error.max()) < step
    assert float(error.min()) > -2e-6  # never above the score, beyond the edge tolerance


def test_reassembly_accepts_expected_values():
    score = reassemble_score(torch.tensor([1.5]), torch.tensor([50.0]), 4, 100)
    assert score.item() == pytest.approx(1.5 / 4 + 50 / 400)


def test_expected_class_is_the_softmax_mean_index():
    logits = torch.tensor([[0.0, 0.0], [-1e4, 0.0], [0.0, float(np.log(3.0))]])
    assert expected_class(logits).tolist() == pytest.approx([0.5, 1.0, 0.75])


@pytest.mark.parametrize(("dim", "classes"), [(256, 100), (16, 16), (5, 2)])
def test_etf_columns_have_unit_norm_and_inner_product_minus_one_over_k_minus_one(dim, classes):
    etf = simplex_etf(dim, classes, seed=3).double()
    assert etf.shape == (dim, classes)
    gram = etf.T @ etf
    expected = torch.full((classes, classes), -1.0 / (classes - 1), dtype=torch.float64)
    expected.fill_diagonal_(1.0)
    assert torch.allclose(gram, expected, atol=1e-5)
    assert torch.allclose(etf.sum(dim=1), torch.zeros(dim, dtype=torch.float64), atol=1e-5)  # centred


def test_etf_depends_only_on_its_seed():
    torch.manual_seed(0)
    first = simplex_etf(32, 10, seed=7)
    torch.manual_seed(1)
    assert torch.equal(first, simplex_etf(32, 10, seed=7))
    assert not torch.allclose(first, simplex_etf(32, 10, seed=8))


def test_etf_needs_at_least_as_many_dims_as_classes():
    with pytest.raises(ValueError, match="dim >= 100"):
        simplex_etf(64, 100)
    with pytest.raises(ValueError, match="at least 2 classes"):
        simplex_etf(8, 1)
