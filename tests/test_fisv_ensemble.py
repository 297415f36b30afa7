"""Regression test on real features: an ensemble ranks held-out Fis-V programs better than CoFInAl alone.

Main's default for ``--preset fisv-pcs`` was one CoFInAl head. On the 400 training programs
(5 folds, 3 seeds, docs/accuracy.md) averaging it with other heads ranks the held-out programs
better; this checks the same on a CI budget: 4-fold CV on 160 of the shared programs, 15 epochs,
one seed, one CPU thread (about 30 CPU-seconds).
"""

from __future__ import annotations

import pytest
from test_fisv_cross_validation import cross_validate, fisv_store  # noqa: F401  (fisv_store: a fixture)


@pytest.mark.real_data
@pytest.mark.slow
def test_an_ensemble_ranks_held_out_fisv_pcs_better_than_cofinal_alone(fisv_store, tmp_path):  # noqa: F811
    report = cross_validate(fisv_store, tmp_path / "ensemble", "--preset", "fisv-pcs", "--head", "ensemble", "--set",
                            "head.members=[cofinal, mlp, ridge]", "--epochs", 15)
    # Measured on this subset (seed 0, these folds): the ensemble 0.558; CoFInAl alone with the same 15
    # epochs (main's default head) 0.517. Ridge alone gets 0.581 here (0.736 against CoFInAl's 0.756
    # on all 400): on 120 training programs the linear floor is hard to beat, so the bar is CoFInAl's.
    assert report["fold_srcc"] > 0.54, report["fold_srcc"]
    assert report["head"] == "ensemble" and report["prediction_std"] > 0.3 * report["true_std"]
