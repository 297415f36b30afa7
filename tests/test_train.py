"""pipeline.train (aqa-train): the real CLI path on synthetic feature stores written through ShardWriter."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from aqa.data.feature_store import VideoFeatures, open_feature_store
from aqa.data.labels import LabelRecord
from aqa.data.provenance import Provenance
from aqa.data.shard_writer import ShardWriter
from aqa.models import PRESETS
from aqa.models.checkpoint import MissingDifficultyError, load_checkpoint, predict_features
from aqa.models.masking import masked_mean
from aqa.models.metrics import fisher_z_mean, spearman
from aqa.models.registry import HeadConfig, HeadNeeds, ScoringHead, list_heads, register_head
from aqa.pipeline.train import TrainingSetupError
from aqa.pipeline.train.cli import cli
from aqa.pipeline.train.training import score_folders
from aqa.synthetic.features import SyntheticTask, make_videos, synthetic_provenance, write_synthetic_store
from torch_threads import single_thread

TASK = SyntheticTask(dim=16, min_clips=8, max_clips=20)
# A CoFInAl small enough for a CPU test; the window (12) is shorter than most videos, so windows are cut.
TINY = ["--set", "head.procedure_dim=32", "--set", "head.score_dim=32", "--set", "head.num_subgrades=16",
        "--set", "head.dropout=0.1", "--set", "head.train_window=12", "--set", "train.batch_size=16"]
# An FSPN small enough for a CPU test (M = 5 exemplars, 8 bins), windows of 12 clips.
TINY_FSPN = ["--head", "fspn", *(item for key, value in [
    ("parser_channels", "[32,16,16]"), ("smt_widths", "[16,32]"), ("smt_blocks", 1), ("smt_heads", 4),
    ("fusion_dim", 32), ("regressor_dim", 32), ("num_bins", 8), ("num_exemplars", 5), ("train_window", 12)]
    for item in ("--set", f"head.{key}={value}"))]
OUTPUTS = ["cumulative_score.png", "curves.png", "metrics.json", "model.pt", "model_card.json", "model_card.md",
           "predictions.csv", "predictions.png"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """48 train and 24 test synthetic videos (scene + actor), scores ``total`` and ``execution``."""
    path = tmp_path_factory.mktemp("features") / "synthetic.h5"
    return write_synthetic_store(path, {"train": make_videos(48, TASK, seed=1, prefix="tr"),
                                        "test": make_videos(24, TASK, seed=2, prefix="te")}, TASK)


def train(capsys, *argv) -> tuple[int, str]:
    """Run aqa-train in-process on one thread; returns (exit code, stderr)."""
    with single_thread():
        code = cli(["-q", "--device", "cpu"] + [str(arg) for arg in argv])
    return code, capsys.readouterr().err


def metrics(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_cofinal_learns_the_synthetic_score_and_the_mlp_cannot(tmp_path, capsys):
    """The score hides in a clip-level wobble that cancels in the video mean (aqa.synthetic.features):
    CoFInAl's attention sees it, the mean-pooling MLP cannot."""
    task = SyntheticTask(dim=32)
    path = write_synthetic_store(tmp_path / "learn.h5", {"train": make_videos(128, task, seed=1, prefix="tr"),
                                                         "test": make_videos(60, task, seed=2, prefix="te")}, task)
    common = [path, "--score", "total", "--epochs", 100, "--streams", "scene", "--set", "train.lr=0.03",
              "--set", "train.batch_size=16", "--set", "head.train_window=24", "--set", "head.dropout=0.1"]
    assert train(capsys, *common, "--out", tmp_path / "cofinal", *TINY[:6])[0] == 0
    assert train(capsys, *common, "--out", tmp_path / "mlp", "--head", "mlp", "--set", "head.hidden_dims=[32]")[0] == 0
    cofinal, mlp = metrics(tmp_path / "cofinal")["test_srcc"], metrics(tmp_path / "mlp")["test_srcc"]
    assert cofinal > 0.7, f"cofinal rho {cofinal:.3f}, mlp {mlp:.3f}"
    assert cofinal > mlp + 0.4, f"cofinal rho {cofinal:.3f}, mlp {mlp:.3f}"


def test_outputs_and_metrics_of_a_fixed_epoch_run(store, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = train(capsys, store, "--score", "total", "--epochs", 3, "--seeds", "0,1", "--out", out, *TINY)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    for png in ("curves.png", "predictions.png", "cumulative_score.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = metrics(out)
    assert report["selection"] == "fixed-epochs" and report["val_srcc"] is None
    assert report["saved_by"] == "train_srcc" and report["streams"] == "both" and report["input_dim"] == 32
    assert report["videos"] == {"train": 48, "val": 0, "test": 24}
    assert [row["seed"] for row in report["seeds"]] == [0, 1]
    rhos = [row["test_srcc"] for row in report["seeds"]]
    assert report["test_srcc"] == pytest.approx(np.mean(rhos)) and report["test_srcc_std"] == pytest.approx(
        np.std(rhos, ddof=1))
    assert report["last_epoch"]["epoch"] == 3 and report["last_epoch"]["test_srcc"] == report["test_srcc"]
    assert all(row["epoch"] == 3 and len(row["history"]) == 3 for row in report["seeds"])
    best_train = max(report["seeds"], key=lambda row: row["train_srcc"])
    assert report["saved_seed"] == best_train["seed"]  # never chosen by test
    assert report["summary"]["test_rl2"]["n"] == 2 and "config_hash" in report and report["config"]["head_name"]
    saved = next(row for row in report["seeds"] if row["seed"] == report["saved_seed"])
    assert report["cumulative_score"] == saved["test_cumulative_score"]
    with open(out / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    errors = [abs(float(row["predicted"]) - float(row["true"])) for row in rows]
    for threshold, fraction in report["cumulative_score"]:
        assert fraction == pytest.approx(np.mean([error <= threshold for error in errors]))


def test_a_model_card_beside_the_checkpoint_says_what_the_model_is(store, tmp_path, capsys):
    """Issue 24: the card (and the checkpoint itself) carry the description, the scores seen in
    training and the rho the run measured; without --description a line is made from the facts."""
    out = tmp_path / "run"
    described = "predicts the synthetic total; a test model, not a judge"
    assert train(capsys, store, "--score", "total", "--epochs", 2, "--out", out, "--description", f" {described} ",
                 *TINY)[0] == 0
    card, report = json.loads((out / "model_card.json").read_text()), metrics(out)
    with open_feature_store(store) as features:
        seen = [features.read(name).label.scores["total"] for name in features.names
                if features.read(name).label.split == "train"]
    assert card["description"] == described
    assert card["score"] == {"name": "total", "low": min(seen), "high": max(seen), "videos": 48}
    assert card["evaluation"]["split"] == "test" and card["evaluation"]["videos"] == 24
    assert card["evaluation"]["spearman_rho"] == report["test_srcc"]
    assert card["model"]["head"] == "cofinal" and card["model"]["config_hash"] == report["config_hash"]
    assert card["trained_on"]["features"] == str(store) and card["trained_on"]["videos"]["train"] == 48
    assert card["features"]["backbone"] == "synthetic" and card["package_version"] == report["package_version"]
    text = (out / "model_card.md").read_text()
    assert text.splitlines()[2] == described and f"from {min(seen):.4g} to {max(seen):.4g}" in text
    assert f"Spearman rho {report['test_srcc']:.3f}" in text
    _, _, info = load_checkpoint(out / "model.pt")  # a model.pt moved without its card still says what it is
    assert info.description == described and info.scale == {"low": min(seen), "high": max(seen), "videos": 48}
    assert not list(out.glob(".*"))  # written atomically: no temporary file left
    plain = tmp_path / "plain"
    assert train(capsys, store, "--score", "total", "--epochs", 1, "--test-split", "none", "--head", "mlp",
                 "--out", plain)[0] == 0
    card = json.loads((plain / "model_card.json").read_text())
    assert card["description"].startswith("Predicts total (") and "48 training videos in synthetic.h5" in \
        card["description"]
    assert card["evaluation"]["split"] == "train" and "not a measure of accuracy" in card["evaluation"]["note"]
    assert load_checkpoint(plain / "model.pt")[2].description == card["description"]


def test_checkpoint_round_trip_predicts_what_training_reported(store, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, store, "--score", "total", "--epochs", 2, "--out", out, *TINY)[0] == 0
    raw = torch.load(out / "model.pt", weights_only=True)  # plain tensors and containers only
    assert "etf" in raw["state_dict"] and raw["score_name"] == "total" and raw["input_dim"] == 32
    head, normalizer, info = load_checkpoint(out / "model.pt")
    assert info.provenance == synthetic_provenance(TASK) and info.streams == "both"
    assert info.config_hash == metrics(out)["config_hash"] and info.extra["seed"] == 0
    with open(out / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    with open_feature_store(store) as features:
        for row in rows:
            video = features.read(row["name"])
            score, details = predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)
            assert score == pytest.approx(float(row["predicted"]), abs=1e-4)  # one video vs a padded batch
            assert float(row["true"]) == video.label.scores["total"]
            assert details["score_unit"] == pytest.approx(float(normalizer.to_unit(score)), abs=1e-6)
    predicted = [float(row["predicted"]) for row in rows]
    assert spearman(predicted, [float(row["true"]) for row in rows]) == metrics(out)["test_srcc"]


def test_same_seed_gives_identical_metrics_and_weights(store, tmp_path, capsys):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert train(capsys, store, "--score", "execution", "--epochs", 2, "--out", out, *TINY)[0] == 0
    first, second = (metrics(out) for out in runs)
    for report in (first, second):
        for row in report["seeds"]:
            for record in row["history"]:
                record.pop("seconds")
            row.pop("seconds_per_epoch")
        report["summary"].pop("seconds_per_epoch")
        report.pop("source")
    assert first == second
    states = [torch.load(out / "model.pt", weights_only=True)["state_dict"] for out in runs]
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


def test_validation_split_selects_the_epoch(store, tmp_path, capsys):
    out = tmp_path / "val"
    assert train(capsys, store, "--score", "total", "--epochs", 4, "--val-fraction", 0.25, "--out", out, *TINY)[0] == 0
    report = metrics(out)
    assert report["selection"] == "val" and report["saved_by"] == "val_srcc"
    assert report["videos"] == {"train": 36, "val": 12, "test": 24}
    row = report["seeds"][0]
    val_rhos = [record["val_srcc"] for record in row["history"]]
    assert row["epoch"] == 1 + int(np.argmax(val_rhos)) and report["val_srcc"] == pytest.approx(max(val_rhos))
    assert report["last_epoch"]["val_srcc"] == pytest.approx(val_rhos[-1])


def test_two_scores_train_one_model_each_and_average_with_fisher_z(store, tmp_path, capsys):
    out = tmp_path / "both"
    code, _ = train(capsys, store, "--score", "total", "--score", "execution", "--epochs", 2, "--seeds", "0,1",
                    "--head", "mlp", "--out", out)
    assert code == 0
    total, execution, combined = metrics(out / "total"), metrics(out / "execution"), metrics(out)
    assert (out / "total" / "model.pt").is_file() and (out / "execution" / "model.pt").is_file()
    for score in ("total", "execution"):  # each score's model has its own card
        assert json.loads((out / score / "model_card.json").read_text())["score"]["name"] == score
    assert not (out / "model_card.json").exists()
    assert combined["scores"] == ["total", "execution"] and combined["val_srcc"] is None
    for index, row in enumerate(combined["seeds"]):
        expected = fisher_z_mean([total["seeds"][index]["test_srcc"], execution["seeds"][index]["test_srcc"]])
        assert row["test_srcc"] == pytest.approx(expected)
        assert row["test_rl2"] == pytest.approx((total["seeds"][index]["test_rl2"]
                                                 + execution["seeds"][index]["test_rl2"]) / 2)
    assert combined["test_srcc"] == pytest.approx(np.mean([row["test_srcc"] for row in combined["seeds"]]))


@pytest.mark.parametrize("head", [
    ["--head", "mlp", "--set", "head.hidden_dims=[16]"],
    ["--head", "cofinal", *TINY, "--set", "head.test_windows=3"],  # scored in windows, the aux output too
    ["--head", "cofinal", "--set", "head.coarse=likert", "--set", "head.score_dim=16", "--set", "head.num_subgrades=8",
     "--set", "head.likert_heads=2", "--set", "head.train_window=12", "--set", "head.test_windows=2"],
], ids=["mlp", "cofinal", "likert"])
def test_a_head_learns_another_score_beside_its_own_and_keeps_one_score_s_model(store, tmp_path, capsys, head):
    """``head.aux_scores``: the MLP (CoFInAl) trained on ``total`` also learns ``execution`` through its
    hidden layer (its procedures) (the training loss has an ``aux`` part); the checkpoint scores
    ``total`` only, as the run's predictions say, and differs from the run without the auxiliary
    score. The run's own score or a score the store lacks as an auxiliary one is a one-line error."""
    common = [*head, "--score", "total", "--epochs", 3]
    joint, alone = tmp_path / "joint", tmp_path / "alone"
    assert train(capsys, store, *common, "--set", "head.aux_scores=[execution]", "--out", joint)[0] == 0
    assert train(capsys, store, *common, "--out", alone)[0] == 0
    history = metrics(joint)["seeds"][0]["history"]
    head, normalizer, info = load_checkpoint(joint / "model.pt")
    assert head.config.aux_scores == ("execution",) and info.score_name == "total"
    with open(joint / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    with open_feature_store(store) as features:
        video = features.read(rows[0]["name"])
        score, _ = predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)
    assert score == pytest.approx(float(rows[0]["predicted"]), abs=1e-4)
    with open(alone / "predictions.csv") as file:
        assert [row["predicted"] for row in csv.DictReader(file)] != [row["predicted"] for row in rows]
    assert all(record["train_loss_aux"] > 0 for record in history)
    code, err = train(capsys, store, *common, "--set", "head.aux_scores=[total]", "--out", tmp_path / "x")
    assert code != 0 and "head.aux_scores names 'total', a score being trained" in err
    code, err = train(capsys, store, *common, "--set", "head.aux_scores=[TES]", "--out", tmp_path / "y")
    assert code != 0 and "has no score TES" in err and len(err.strip().splitlines()) == 1
    assert "the head learns TES beside total (head.aux_scores)" in err


def test_each_score_gets_a_folder_of_its_own_inside_out(tmp_path):
    out = tmp_path / "run"
    assert score_folders(out, ["TES"]) == {"TES": out}  # one score: --out itself, whatever its name
    assert score_folders(out, ["TES", "PCS total", "a.b-c"]) == {
        "TES": out / "TES", "PCS total": out / "PCS_total", "a.b-c": out / "a.b-c"}
    for bad in ("..", ".", "...", "", "metrics.json"):  # ".." wrote model.pt beside --out
        with pytest.raises(TrainingSetupError, match="cannot name a folder"):
            score_folders(out, ["TES", bad])
    for first, second in (("a/b", "a_b"), ("TES", "tes"), ("TES", "TES")):  # one overwrote the other
        with pytest.raises(TrainingSetupError, match=f"{first!r} and {second!r} would share the folder"):
            score_folders(out, [first, second])


def test_a_preset_picks_score_window_and_apparatus(tmp_path, capsys):
    task = SyntheticTask(dim=8, min_clips=4, max_clips=8)
    videos = {"train": make_videos(6, task, 1, prefix="Ball") + make_videos(5, task, 2, prefix="Hoop"),
              "test": make_videos(4, task, 3, prefix="Ball_test") + make_videos(3, task, 4, prefix="Hoop_test")}
    path = write_synthetic_store(tmp_path / "rg.h5", videos, task)
    out = tmp_path / "ball"
    code, err = train(capsys, path, "--head", "mlp", "--preset", "rg-ball", "--epochs", 1, "--out", out)
    assert code == 0, err
    report = metrics(out)
    assert report["score"] == "total" and report["videos"] == {"train": 6, "val": 0, "test": 4}
    assert report["config"]["head"]["train_window"] == 68 and report["config"]["video_prefix"] == "Ball_"
    assert report["config"]["head"]["dropout"] == PRESETS["rg-ball"].head["dropout"]


def test_yaml_config_then_set_then_flags(store, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("seeds: [3]\ntrain: {epochs: 5, lr: 0.02}\nhead: {dropout: 0.2, hidden_dims: [8]}\n")
    out = tmp_path / "yaml"
    code, err = train(capsys, store, "--head", "mlp", "--score", "total", "--config", config,
                      "--set", "train.lr=0.03", "--epochs", 1, "--out", out)
    assert code == 0, err
    resolved = metrics(out)["config"]
    assert resolved["seeds"] == [3] and resolved["train"]["epochs"] == 1 and resolved["train"]["lr"] == 0.03
    assert resolved["head"] == {"hidden_dims": [8], "dropout": 0.2, "train_window": 68, "aux_scores": [],
                                "aux_weight": 1.0, "linear_readout": False}
    assert torch.load(out / "model.pt", weights_only=True)["head_config"] == resolved["head"]


def test_label_files_override_the_stored_labels(store, tmp_path, capsys):
    train_names = [f"tr_{i:04d}" for i in range(0, 48, 2)]  # half the training videos
    test_names = [f"te_{i:04d}" for i in range(6)]
    (tmp_path / "train.txt").write_text("".join(f"{name} {i * 1.5}\n" for i, name in enumerate(train_names)))
    (tmp_path / "test.txt").write_text("".join(f"{name} {100 + i}\n" for i, name in enumerate(test_names)))
    out = tmp_path / "relabelled"
    code, err = train(capsys, store, "--head", "mlp", "--score", "judged", "--epochs", 1, "--out", out,
                      "--labels", tmp_path / "train.txt", "--labels", tmp_path / "test.txt", "--columns", "id,judged")
    assert code == 0, err
    assert metrics(out)["videos"] == {"train": 24, "val": 0, "test": 6}
    with open(out / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    expected = [(name, 100.0 + i) for i, name in enumerate(test_names)]
    assert [(row["name"], float(row["true"])) for row in rows] == expected


# --- FSPN: pairwise training through the same CLI ----------------------------------------------------


def predictions_csv(folder) -> list[dict]:
    with open(folder / "predictions.csv") as file:
        return list(csv.DictReader(file))


def test_fspn_trains_writes_everything_and_its_checkpoint_predicts_identically(store, tmp_path, capsys):
    out = tmp_path / "fspn"  # (same seed, same weights: tests/test_fspn_training.py, through the same fit)
    code, err = train(capsys, store, *TINY_FSPN, "--score", "total", "--epochs", 2, "--val-fraction", 0.25,
                      "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    report = metrics(out)
    assert report["head"] == "fspn" and report["streams"] == "both" and report["selection"] == "val"
    assert report["videos"] == {"train": 36, "val": 12, "test": 24} and len(report["cumulative_score"]) == 26
    history = report["seeds"][0]["history"]
    assert [record["lr"] for record in history] == [1e-3, 1e-3]  # Adam at head.train_lr, not SGD's cosine
    assert {"train_loss_gc", "train_loss_bce", "train_loss_reg"} <= set(history[0])
    raw = torch.load(out / "model.pt", weights_only=True)
    bank_rows = len(raw["state_dict"]["exemplars.score"])
    names = raw["extra"]["exemplar_names"]
    assert bank_rows == len(names) == 5 and all(name.startswith("tr_") for name in names)
    assert raw["state_dict"]["bin_edges"].shape == (9,) and raw["head_config"]["train_window"] == 12
    head, normalizer, info = load_checkpoint(out / "model.pt")
    assert len(head.exemplars) == 5 and torch.equal(head.bin_edges, raw["state_dict"]["bin_edges"])
    with open_feature_store(store) as features:
        first = features.read(names[0])
        assert normalizer.from_unit(float(head.exemplars.score[0])) == pytest.approx(first.label.scores["total"])
        for row in predictions_csv(out):
            video = features.read(row["name"])
            score, details = predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)
            assert score == pytest.approx(float(row["predicted"]), abs=1e-5)
            assert details["exemplar_index"].tolist() == [0, 1, 2, 3, 4] and details["boundaries"].shape == (3,)
            assert float(details["votes"].mean()) == pytest.approx(score, abs=1e-5)


def test_fspn_needs_both_streams_unless_its_actor_stream_is_off(store, tmp_path, capsys):
    out = ["--score", "total", "--epochs", 1, "--out", tmp_path / "x"]
    message = fails(capsys, store, *TINY_FSPN, "--streams", "scene", *out)
    assert "fspn needs both streams" in message and "head.use_actor=false" in message
    scene_only = tmp_path / "scene_only.h5"
    write_synthetic_store(scene_only, {"train": make_videos(6, TASK, 1, prefix="tr", actor=False),
                                       "test": make_videos(3, TASK, 2, prefix="te", actor=False)}, TASK)
    assert "fspn needs both streams" in fails(capsys, scene_only, *TINY_FSPN, *out)
    off = ["--set", "head.use_actor=false"]
    assert "takes one stream" in fails(capsys, store, *TINY_FSPN, *off, "--streams", "both", *out)
    code, err = train(capsys, store, *TINY_FSPN, *off, *out)  # auto: one stream
    assert code == 0, err
    assert metrics(tmp_path / "x")["streams"] == "scene" and metrics(tmp_path / "x")["input_dim"] == 16
    assert "train.batch_size" in fails(capsys, store, *TINY_FSPN, "--set", "train.batch_size=4", *out)
    assert "use --epochs" in fails(capsys, store, *TINY_FSPN, "--set", "head.train_epochs=4", *out)


def test_fspn_w_dd_trains_on_score_over_difficulty_and_multiplies_back(store, tmp_path, capsys):
    out = ["--score", "total", "--epochs", 1, "--set", "head.train_divide_by_difficulty=true"]
    message = fails(capsys, store, *TINY_FSPN, *out, "--out", tmp_path / "x")
    assert "needs a positive difficulty for every video, but 48 of 48 lack one" in message
    with open_feature_store(store) as features:
        labels = {split: [(name, features.label(name)) for name in features.names
                          if features.label(name).split == split] for split in ("train", "test")}
    difficulty = {name: 2.0 + (index % 3) * 0.5 for index, name in enumerate(sorted(dict(sum(labels.values(), []))))}
    for split, records in labels.items():  # total = ratio * difficulty: the ratio is what the store holds
        (tmp_path / f"{split}.txt").write_text("name total difficulty\n" + "".join(
            f"{name} {record.scores['total'] * difficulty[name]!r} {difficulty[name]}\n" for name, record in records))
    run = tmp_path / "dd"
    code, err = train(capsys, store, *TINY_FSPN, *out, "--out", run, "--labels", tmp_path / "train.txt",
                      "--labels", tmp_path / "test.txt")
    assert code == 0, err
    head, normalizer, info = load_checkpoint(run / "model.pt")
    ratios = [record.scores["total"] for _, record in labels["train"]]
    assert normalizer.low < min(ratios) < max(ratios) < normalizer.high < 11  # ratios (<= 10), not totals (<= 30)
    assert set(head.exemplars.group.tolist()) == {2.0, 2.5, 3.0}  # exemplars grouped by difficulty
    with open_feature_store(store) as features:
        for row in predictions_csv(run)[:6]:
            video, dd = features.read(row["name"]), difficulty[row["name"]]
            assert float(row["true"]) == pytest.approx(video.label.scores["total"] * dd)
            score, details = predict_features(head, normalizer, video.scene, video.actor, streams=info.streams,
                                              difficulty=dd)
            assert score == pytest.approx(float(row["predicted"]), abs=1e-5)
            assert score == pytest.approx(normalizer.from_unit(details["score_unit"]) * dd, rel=1e-6)
            assert (head.exemplars.group[details["exemplar_index"][details["exemplar_index"] >= 0]] == dd).all()
            with pytest.raises(MissingDifficultyError, match="--difficulty"):
                predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)


# --- user errors: one line, exit code 2 ---------------------------------------------------------------


def fails(capsys, *argv) -> str:
    code, err = train(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("aqa-train: error: "), err
    return lines[0]


def other_store(path, provenance: Provenance, dim: int, split: str = "test") -> None:
    with ShardWriter(path, provenance) as writer:
        for index in range(3):
            writer.write(VideoFeatures(f"other{index}", np.ones((4, dim), np.float32) * index,
                                       label=LabelRecord(f"other{index}", {"total": float(index)}, None, split)))


def test_user_errors_are_one_line(store, tmp_path, capsys):
    out = ["--out", tmp_path / "x", "--epochs", 1]
    assert "has no score TES (it has: total, execution)" in fails(capsys, store, "--score", "TES", *out)
    message = fails(capsys, store, *out)
    assert "no score chosen; pick one with --score" in message and message.endswith(": total, execution)")
    message = fails(capsys, store, "--score", "total", "--test-split", "val", *out)
    assert "no labelled videos in split 'val'" in message and "test, train" in message
    assert "feature file not found" in fails(capsys, tmp_path / "missing.h5", "--score", "total", *out)
    assert "unknown head 'nope'" in fails(capsys, store, "--head", "nope", "--score", "total", *out)
    assert "unknown preset" in fails(capsys, store, "--preset", "nope", *out)
    assert "unknown key" in fails(capsys, store, "--score", "total", "--set", "train.nope=1", *out)
    assert "--head" in fails(capsys, store, "--score", "total", "--set", "head_name=mlp", *out)
    assert "val_fraction" in fails(capsys, store, "--score", "total", "--val-fraction", 1.5, *out)
    assert "no video name starts with 'Ball_'" in fails(capsys, store, "--preset", "rg-ball", "--score", "total",
                                                        *out)
    if not torch.cuda.is_available():
        assert "no CUDA device" in fails(capsys, store, "--score", "total", "--device", "cuda", *out)
    assert "--description must be one line" in fails(capsys, store, "--score", "total", "--description", "a\nb", *out)
    assert "--description is empty" in fails(capsys, store, "--score", "total", "--description", " ", *out)
    assert "saves none" in fails(capsys, store, "--score", "total", "--folds", 2, "--description", "x", *out)


def test_features_made_differently_are_refused(store, tmp_path, capsys):
    out = ["--score", "total", "--out", tmp_path / "x", "--epochs", 1]
    different = synthetic_provenance(SyntheticTask(dim=16, pattern_seed=99))
    other_store(tmp_path / "other.h5", different, dim=16)
    assert "made differently" in fails(capsys, store, tmp_path / "other.h5", *out)  # two shards disagree
    message = fails(capsys, store, "--expect-provenance", tmp_path / "other.h5", *out)
    assert "made differently" in message and "config_hash" in message
    other_store(tmp_path / "narrow.h5", synthetic_provenance(TASK), dim=8, split="other")  # same provenance
    message = fails(capsys, store, tmp_path / "narrow.h5", "--streams", "scene", "--test-split", "other", *out)
    assert "the train split has features of size 16, the other split 8" in message
    other_store(tmp_path / "mixed.h5", synthetic_provenance(TASK), dim=8, split="test")
    assert "different feature sizes [8, 16]" in fails(capsys, store, tmp_path / "mixed.h5", *out)


def test_streams_need_an_actor_stream(tmp_path, capsys):
    path = tmp_path / "scene_only.h5"
    other_store(path, synthetic_provenance(TASK), dim=4, split="train")
    assert "needs an actor stream" in fails(capsys, path, "--score", "total", "--streams", "both", "--test-split",
                                            "train", "--out", tmp_path / "x")


@pytest.mark.gpu
def test_cuda_training_repeats_and_its_checkpoint_predicts_on_the_cpu(store, tmp_path, capsys):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        code, err = train(capsys, store, "--score", "total", "--epochs", 3, "--device", "cuda", "--out", out, *TINY)
        assert code == 0, err
    first, second = (metrics(out) for out in runs)
    assert first["device"] == "cuda" and first["test_srcc"] == second["test_srcc"]  # deterministic algorithms
    head, normalizer, info = load_checkpoint(runs[0] / "model.pt", device="cpu")
    with open(runs[0] / "predictions.csv") as file:
        row = next(csv.DictReader(file))
    with open_feature_store(store) as features:
        video = features.read(row["name"])
    score, _ = predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)
    assert score == pytest.approx(float(row["predicted"]), abs=1e-3)


def test_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "aqa.pipeline.train", "--help"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and "--val-fraction" in result.stdout and "--preset" in result.stdout


def test_an_unusable_out_is_refused_before_training_and_a_finished_run_needs_overwrite(store, tmp_path, capsys):
    quick = ["--score", "total", "--head", "ridge"]
    afile = tmp_path / "a-file"
    afile.write_text("x")
    code, err = train(capsys, store, *quick, "--out", afile)
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    code, err = train(capsys, store, *quick, "--out", afile / "run")  # a folder inside a file
    assert code == 2 and "cannot be written" in err and len(err.strip().splitlines()) == 1
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere: nothing to refuse there
            code, err = train(capsys, store, *quick, "--out", locked / "run")
            assert code == 2 and "cannot be written" in err
    finally:
        locked.chmod(0o700)
    run = tmp_path / "run"
    assert train(capsys, store, *quick, "--out", run)[0] == 0
    before = (run / "metrics.json").read_bytes()
    code, err = train(capsys, store, *quick, "--out", run)
    assert code == 2 and "already holds a finished run" in err and "--overwrite" in err
    assert (run / "metrics.json").read_bytes() == before
    assert train(capsys, store, *quick, "--out", run, "--overwrite")[0] == 0


def test_a_two_score_run_stopped_by_ctrl_c_runs_again_with_the_same_command(store, tmp_path, capsys):
    """Ctrl-C while the second score trains leaves the first score's folder complete and no
    top-level metrics.json: the same command was refused as "already holds a finished run", and
    only --overwrite (of anything) went on. Now the same settings run again over their own
    leftovers; other settings, and a run that finished, are still refused."""
    command = ["--score", "total", "--score", "execution", "--head", "ridge", "--out", tmp_path / "run"]
    assert train(capsys, store, *command)[0] == 0
    run = tmp_path / "run"
    (run / "metrics.json").unlink()  # what Ctrl-C during the second score leaves: the first one's folder
    for path in (run / "execution").iterdir():
        if path.name != "model.pt":  # the checkpoint is written first, metrics.json last
            path.unlink()
    code, err = train(capsys, store, *command, "--set", "head.alphas=[1.0]")
    assert code == 2 and "already holds a finished run" in err  # another run's leftovers
    assert train(capsys, store, *command)[0] == 0
    assert metrics(run)["scores"] == ["total", "execution"] and (run / "execution" / "metrics.json").is_file()
    code, err = train(capsys, store, *command)
    assert code == 2 and "already holds a finished run" in err


def test_a_preset_can_choose_the_training_loop_for_one_head():
    from aqa.pipeline.train.config import base_config

    fspn = base_config("fspn", "fisv-pcs")  # one table holds a head's settings and its loop's
    assert (fspn.head.train_lr, fspn.train.epochs, fspn.train.average_last) == (1e-4, 40, 0.5)
    assert base_config("fspn", "fisv-tes").train.average_last == 0.0

    cofinal, mlp = base_config("cofinal", "fisv-tes"), base_config("mlp", "fisv-tes")
    assert (cofinal.train.epochs, cofinal.train.weight_decay) == (50, 0.05)
    assert (mlp.train.epochs, mlp.train.weight_decay, mlp.train.lr) == (200, 0.01, 0.1)
    assert mlp.head.hidden_dims == (256,) and base_config("mlp", "fisv-pcs").head.hidden_dims == ()
    assert base_config("cofinal", "rg-ball").train.epochs == 200


def test_the_likert_variant_takes_its_own_preset_entries(tmp_path):
    """``--set head.coarse=likert`` under a Fis-V preset gets the preset's ``cofinal:likert`` recipe
    (the paper formulation's weight decay of 0.05 collapsed it: TES CV 0.35, predictions' std 0.3)."""
    from aqa.pipeline.train.cli import config_from_args, get_args_parser

    def resolved(*argv: str):  # CoFInAl (fisv-tes's default head is an ensemble of it and the MLP)
        return config_from_args(get_args_parser().parse_args(["f.h5", "--out", str(tmp_path), "--head", "cofinal",
                                                              *argv]))

    paper = resolved("--preset", "fisv-tes")
    likert = resolved("--preset", "fisv-tes", "--set", "head.coarse=likert")
    assert paper.head.coarse == "classify" and paper.train.weight_decay == 0.05
    assert likert.head.coarse == "likert"
    entries = PRESETS["fisv-tes"].by_head["cofinal:likert"]
    assert {key: getattr(likert.train, key) for key in entries.train} == entries.train
    assert {key: getattr(likert.head, key) for key in entries.head} == entries.head
    # what the user sets still wins over the variant's preset
    assert resolved("--preset", "fisv-tes", "--set", "head.coarse=likert", "--set", "train.weight_decay=0.2",
                    "--set", "head.train_window=16").train.weight_decay == 0.2
    assert resolved("--preset", "fisv-tes", "--set", "head.coarse=likert", "--set",
                    "head.train_window=16").head.train_window == 16


@dataclass(frozen=True)
class ToyConfig(HeadConfig):
    """A head defined entirely in this test: its settings and what it needs of the trainer."""

    train_window: int = 10

    def needs(self) -> HeadNeeds:
        return HeadNeeds(window=self.train_window)


class ToyMeanHead(ScoringHead):
    """Mean clip -> linear -> sigmoid: the least a head can be."""

    def __init__(self, config: ToyConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = torch.nn.Linear(input_dim, 1)

    def forward(self, features, mask=None):
        features, mask = self.prepare_inputs(features, mask)
        return {"score": torch.sigmoid(self.linear(masked_mean(features, mask))).squeeze(-1)}

    def loss(self, outputs, targets):
        total = torch.nn.functional.mse_loss(outputs["score"], targets)
        return total, {"mse": total.detach()}


def test_a_new_head_needs_only_its_own_module_and_its_registration(store, tmp_path, capsys):
    """Issue 14: the trainer asks a head's config what it needs (HeadNeeds) and the head for its recipe
    (ScoringHead.training_recipe), so a head written here trains, saves and predicts through aqa-train
    untouched."""
    if "toy-mean" not in list_heads():
        register_head("toy-mean", ToyConfig)(ToyMeanHead)
    code, err = train(capsys, store, "--head", "toy-mean", "--score", "total", "--epochs", "3", "--out",
                      tmp_path / "toy", "--set", "head.train_window=7")
    assert code == 0, err
    report = metrics(tmp_path / "toy")
    assert report["head"] == "toy-mean" and report["config"]["train"]["window"] is None
    head, normalizer, info = load_checkpoint(tmp_path / "toy" / "model.pt")
    assert isinstance(head, ToyMeanHead) and head.config == ToyConfig(train_window=7)
    assert head.config.needs().window == 7 and info.head_name == "toy-mean"


def test_the_api_s_typed_settings_resolve_as_the_command_line_does(tmp_path):
    """resolve_run_config (what aqa.train calls) and the parsed command line agree, the preset's
    default head and its settings included; a typed value is not read as YAML."""
    from aqa.config import ConfigError, config_to_dict
    from aqa.pipeline.train import resolve_run_config
    from aqa.pipeline.train.cli import config_from_args, get_args_parser

    argv = ["f.h5", "--out", str(tmp_path), "--preset", "fisv-tes", "--epochs", "7", "--seeds", "1,2",
            "--set", "train.lr=0.05", "--video-prefix", "123"]
    typed = resolve_run_config(None, "fisv-tes", overrides={"train.lr": 0.05},
                               settings={"epochs": 7, "seeds": [1, 2], "video_prefix": "123"})
    parsed = config_from_args(get_args_parser().parse_args(argv))
    assert config_to_dict(typed) == config_to_dict(parsed)  # each resolution makes its own RunConfig_<head> class
    assert (typed.train.epochs, typed.seeds, typed.video_prefix) == (7, (1, 2), "123")
    with pytest.raises(ConfigError, match=r"^unknown settings: epoch; settings: "):
        resolve_run_config("mlp", settings={"epoch": 7})
