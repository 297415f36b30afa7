"""bench/cv_cross_score.py: one score's CV models read as predictions of another, on the same folds."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cv_cross_score import cross_score, on_target_scale  # noqa: E402


def write_run(folder: Path, true: np.ndarray, fold: np.ndarray, seeds: dict[int, np.ndarray]) -> str:
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"seeds": []}))
    with (folder / "cv_predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "true", "fold", *[f"seed_{seed}" for seed in seeds]])
        for index in range(len(true)):
            writer.writerow([f"v{index:03d}", true[index], fold[index], *[values[index] for values in seeds.values()]])
    return str(folder)


def test_the_map_to_the_target_scale_reads_only_the_training_folds_labels():
    rng = np.random.default_rng(0)
    fold = np.repeat(np.arange(4), 10)
    other_true, target_true = rng.normal(30, 5, 40), rng.normal(25, 7, 40)
    other = other_true + rng.normal(0, 1, 40)
    mapped = on_target_scale(other, other_true, target_true, fold)
    changed_target, changed_other = target_true.copy(), other_true.copy()
    changed_target[fold == 2] += 100  # fold 2's own labels must not move fold 2's mapped values
    changed_other[fold == 2] -= 50
    again = on_target_scale(other, changed_other, changed_target, fold)
    np.testing.assert_allclose(again[fold == 2], mapped[fold == 2])
    train = fold != 2
    expected = (other[fold == 2] - other_true[train].mean()) / other_true[train].std() \
        * target_true[train].std() + target_true[train].mean()
    np.testing.assert_allclose(mapped[fold == 2], expected)


def test_a_model_of_the_other_score_is_scored_against_the_target(tmp_path):
    rng = np.random.default_rng(1)
    fold = np.repeat(np.arange(5), 20)
    target = rng.normal(30, 6, 100)
    other = 0.8 * target + rng.normal(0, 2, 100)  # two scores that rank the programs alike
    tes = write_run(tmp_path / "tes", target, fold, {0: target + rng.normal(0, 6, 100), 1: rng.normal(0, 1, 100)})
    pcs = write_run(tmp_path / "pcs", other, fold, {0: target.copy()})  # a "PCS model" that predicts TES exactly
    result = cross_score(tes, pcs)
    assert [row["seed"] for row in result["seeds"]] == [0]  # the seeds both runs have
    row = result["seeds"][0]
    assert row["other_models"] == pytest.approx(1.0, abs=1e-5)  # Fisher-z caps a perfect rho
    assert row["target_models"] < row["mean_of_both"] < row["other_models"]
    assert 0.8 < result["labels_spearman"] < 1.0
    with pytest.raises(SystemExit, match="different programs or folds"):
        cross_score(tes, write_run(tmp_path / "other-folds", other, np.roll(fold, 1), {0: target}))
