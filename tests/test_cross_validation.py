"""pipeline.train.cross_validation (aqa-train --folds): folds, and the real CLI path on a synthetic store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from aqa.pipeline.train.cli import cli
from aqa.pipeline.train.cross_validation import FoldsError, check_folds, make_folds, read_folds
from aqa.synthetic.features import SyntheticTask, make_videos, write_synthetic_store
from torch_threads import single_thread

TASK = SyntheticTask(dim=16, min_clips=8, max_clips=20)
MLP = ["--head", "mlp", "--set", "head.hidden_dims=[16]", "--set", "head.train_window=12", "--epochs", 3]
REPO_FOLDS = Path(__file__).resolve().parent.parent / "data" / "folds"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """30 training videos only (no test split), scores ``total`` and ``execution``."""
    path = tmp_path_factory.mktemp("cv") / "train_only.h5"
    return write_synthetic_store(path, {"train": make_videos(30, TASK, seed=3, prefix="v")}, TASK)


def train(capsys, *argv) -> tuple[int, str, str]:
    with single_thread():
        code = cli(["-q", "--device", "cpu"] + [str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folds_partition_the_names_whatever_their_order():
    names = [f"video{i}" for i in range(23)]
    folds = make_folds(names, 5, seed=7)
    assert sorted(name for fold in folds.names for name in fold) == sorted(names)
    assert sorted(len(fold) for fold in folds.names) == [4, 4, 5, 5, 5]
    assert make_folds(list(reversed(names)), 5, seed=7) == folds
    assert make_folds(names, 5, seed=8) != folds


def test_folds_round_trip_through_a_file(tmp_path):
    folds = make_folds([str(i) for i in range(12)], 3, seed=0)
    folds.write(tmp_path / "folds.json")
    assert read_folds(tmp_path / "folds.json") == folds


def test_folds_that_do_not_split_the_videos_exactly_are_refused(tmp_path):
    names = [f"v{i}" for i in range(10)]
    folds = make_folds(names, 2, seed=0)
    with pytest.raises(FoldsError, match="in no fold"):
        check_folds(folds, names + ["extra"], "s.h5")
    with pytest.raises(FoldsError, match="not among the training videos"):
        check_folds(folds, names[1:], "s.h5")
    with pytest.raises(FoldsError, match="at least 2 folds"):
        make_folds(names, 1, seed=0)
    (tmp_path / "bad.json").write_text("{\"folds\": 3}")
    with pytest.raises(FoldsError, match="is not a folds file"):
        read_folds(tmp_path / "bad.json")


def test_the_committed_fisv_folds_are_the_seeded_folds_of_the_training_list():
    folds = read_folds(REPO_FOLDS / "fisv_train_5fold.json")
    names = [name for fold in folds.names for name in fold]
    assert len(folds) == 5 and len(names) == len(set(names)) == 400
    assert make_folds(names, 5, seed=0) == folds


def test_cross_validation_predicts_every_video_once_per_seed(store, tmp_path, capsys):
    code, out, err = train(capsys, store, "--score", "total", "--folds", 3, "--seeds", "0,1", *MLP,
                           "--out", tmp_path / "cv")
    assert code == 0, err
    assert "3-fold CV rho" in out
    report = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert report["folds"] == 3 and report["videos"] == 30 and len(report["seeds"]) == 2
    for key in ("fold_srcc", "fold_srcc_std", "pooled_srcc", "rl2", "mse", "train_srcc"):
        assert isinstance(report[key], float), key
    assert len(report["seeds"][0]["per_fold_srcc"]) == 3 and "pooled_srcc" in report["ensemble"]
    with open(tmp_path / "cv" / "cv_predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["name"] for row in rows) == [f"v_{i:04d}" for i in range(30)]
    assert {row["fold"] for row in rows} == {"0", "1", "2"}
    mean = [float(row["mean"]) for row in rows]
    assert all(float(row["mean"]) == pytest.approx((float(row["seed_0"]) + float(row["seed_1"])) / 2) for row in rows)
    assert len(set(mean)) > 1
    assert (tmp_path / "cv" / "cv_predictions.png").stat().st_size > 0


def test_the_folds_file_of_a_run_repeats_it_exactly(store, tmp_path, capsys):
    first_run = train(capsys, store, "--score", "total", "--folds", 3, "--fold-seed", 4, *MLP, "--out", tmp_path / "a")
    assert first_run[0] == 0
    folds = tmp_path / "a" / "folds.json"
    assert train(capsys, store, "--score", "total", "--folds-file", folds, *MLP, "--out", tmp_path / "b")[0] == 0
    first, second = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in "ab")
    assert first["fold_srcc"] == second["fold_srcc"] and second["fold_seed"] == 4


def test_every_head_cross_validates_on_the_same_folds_including_ridge(store, tmp_path, capsys):
    code, out, err = train(capsys, store, "--score", "total", "--score", "execution", "--head", "ridge", "--folds", 3,
                           "--out", tmp_path / "ridge")
    assert code == 0, err
    combined = json.loads((tmp_path / "ridge" / "metrics.json").read_text())
    assert combined["scores"] == ["total", "execution"] and isinstance(combined["fold_srcc"], float)
    assert (tmp_path / "ridge" / "total" / "folds.json").read_text() == \
        (tmp_path / "ridge" / "execution" / "folds.json").read_text()


def test_a_store_without_a_test_split_trains_on_everything_with_test_split_none(store, tmp_path, capsys):
    code, out, err = train(capsys, store, "--score", "total", "--test-split", "none", *MLP, "--out", tmp_path / "all")
    assert code == 0, err
    report = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert report["videos"]["train"] == 30 and report["videos"]["test"] == 0 and report["predictions_split"] == "train"
    assert "test_srcc" not in report and isinstance(report["train_srcc"], float)
    assert report["prediction_spread"]["true_std"] > 0
    assert (tmp_path / "all" / "model.pt").is_file()


def test_cv_errors_are_one_line(store, tmp_path, capsys):
    code, _, err = train(capsys, store, "--score", "total", "--folds", 20, *MLP, "--out", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "too few for 20 folds" in err
    code, _, err = train(capsys, store, "--score", "total", "--folds-file", REPO_FOLDS / "fisv_train_5fold.json", *MLP,
                         "--out", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "30 video(s) in no fold" in err
