"""Regression test on real features: heads cross-validated on Fis-V training programs must learn.

The same heads learn the synthetic dataset either way; on the real Video-Swin features of Fis-V
(large offset shared by every clip, small differences between programs) the MLP collapsed to
nearly one prediction before the training loop standardised its inputs (docs/accuracy.md). A
4-fold CV on 160 of the 400 shared training programs, short schedules, one CPU thread.
"""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA

from aqa.pipeline.import_features import cli as import_cli
from aqa.pipeline.train.cli import cli as train_cli
from torch_threads import single_thread

PROGRAMS = 160


@pytest.fixture(scope="module")
def fisv_store(tmp_path_factory):
    folder = SHARED_DATA / "fisv"
    if not (folder / "features").is_dir():
        pytest.skip(f"Fis-V features not found at {folder} (the shared data lives beside the repo)")
    tmp = tmp_path_factory.mktemp("fisv")
    lines = (folder / "train.txt").read_text().splitlines()[:PROGRAMS]
    (tmp / "train.txt").write_text("\n".join(lines) + "\n")
    store = tmp / "fisv.h5"
    assert import_cli(["-q", str(folder / "features"), "--labels", str(tmp / "train.txt"), "--columns",
                       "id,TES,PCS,ded", "-o", str(store)]) == 0
    return store


def cross_validate(store, out, *argv) -> dict:
    with single_thread():
        code = train_cli(["-q", "--device", "cpu", str(store), "--folds", "4", "--out", str(out), *map(str, argv)])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.real_data
@pytest.mark.slow
def test_the_mlp_learns_real_fisv_pcs_instead_of_collapsing(fisv_store, tmp_path):
    report = cross_validate(fisv_store, tmp_path / "mlp", "--head", "mlp", "--preset", "fisv-pcs", "--epochs", 40)
    # Measured on this subset (seed 0): 0.459 with predictions' std 28 % of the scores'; before the
    # fix (train.standardize_features=false) 0.279 with 8 %.
    assert report["fold_srcc"] > 0.38, report["fold_srcc"]
    assert report["prediction_std"] > 0.15 * report["true_std"], (report["prediction_std"], report["true_std"])


@pytest.mark.real_data
@pytest.mark.slow
def test_the_mlp_ranks_held_out_tes_better_with_pcs_learnt_beside_it(fisv_store, tmp_path):
    report = cross_validate(fisv_store, tmp_path / "mlp", "--head", "mlp", "--preset", "fisv-tes", "--epochs", 40,
                            "--set", "head.aux_scores=[PCS]")
    # Measured on this subset (these folds, 40 epochs): seed 0 0.297 with PCS beside TES against 0.268
    # without (seeds 1, 2: 0.270 / 0.280 against 0.267 / 0.252); on all 400 programs, 5 folds x 3 seeds,
    # 0.524 against 0.501 (docs/accuracy.md). Before head.aux_scores the setting was refused.
    assert report["fold_srcc"] > 0.285, report["fold_srcc"]
    assert report["prediction_std"] > 0.15 * report["true_std"], (report["prediction_std"], report["true_std"])
