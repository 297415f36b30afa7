"""models.ensemble and pipeline.train.ensemble: several trained heads in one checkpoint.

The ensemble must predict the mean of its members, each member exactly as its own ``--head`` run
trains it (so bench/cv_ensemble.py's average of member CV runs is the ensemble's CV), and its
checkpoint must load with ``weights_only=True`` and report each member's score.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from predictions import make_prediction

from aqa.models import HeadConfigError, build_head
from aqa.models.checkpoint import load_checkpoint, predict_features
from aqa.models.ensemble import EnsembleConfig, assemble, parse_member
from aqa.models.normalization import ScoreNormalizer
from aqa.models.presets import PRESETS
from aqa.pipeline.predict.report import format_report, member_scores
from aqa.pipeline.predict.result import EnsembleDetail, MemberScore
from aqa.pipeline.train.cli import cli
from aqa.synthetic.features import SyntheticTask, make_videos, write_synthetic_store
from torch_threads import single_thread

ROOT = Path(__file__).resolve().parent.parent
TASK = SyntheticTask(dim=16, min_clips=8, max_clips=20)
MEMBERS = '["ridge", "mlp(hidden_dims=[8], train_window=12)"]'


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("ensemble") / "train_only.h5"
    return write_synthetic_store(path, {"train": make_videos(30, TASK, seed=3, prefix="v")}, TASK)


def train(*argv) -> None:
    with single_thread():
        assert cli(["-q", "--device", "cpu", *map(str, argv)]) == 0


def test_members_are_heads_with_overrides():
    assert parse_member("cofinal(coarse=likert, dropout=0.5)") == ("cofinal", {"coarse": "likert", "dropout": 0.5})
    assert parse_member(" mlp(hidden_dims=[]) ") == ("mlp", {"hidden_dims": []})
    assert parse_member("ridge") == ("ridge", {})
    for bad, message in (("cofinal(coarse)", "not key=value"), ("co final", "head name"),
                         ("nohead", "unknown head"), ("mlp(depth=2)", "no setting 'depth'")):
        with pytest.raises(ValueError, match=message):  # HeadConfigError, UnknownHeadError
            EnsembleConfig(members=(bad,))
    with pytest.raises(HeadConfigError, match="named twice"):
        EnsembleConfig(members=("mlp", "mlp"))
    with pytest.raises(HeadConfigError, match="weights"):
        EnsembleConfig(members=("mlp", "ridge"), weights=(1.0,))
    with pytest.raises(HeadConfigError, match="different streams"):
        EnsembleConfig(members=("fspn", "fspn(use_actor=false)")).needs()


def _members(dim: int = 6) -> list[tuple[str, int, torch.nn.Module]]:
    features = torch.randn(8, 4, dim, generator=torch.Generator().manual_seed(1))
    ridge = build_head("ridge", None, input_dim=dim)
    ridge.solve(features, torch.ones(8, 4, dtype=torch.bool), torch.linspace(0.1, 0.9, 8))
    torch.manual_seed(0)
    return [("ridge", 0, ridge)] + [("mlp(hidden_dims=[4])", seed, build_head("mlp", {"hidden_dims": (4,)}, dim))
                                    for seed in (0, 1)]


def test_the_ensemble_is_the_weighted_mean_of_its_members_means_over_seeds():
    trained = _members()
    config = EnsembleConfig(members=("ridge", "mlp(hidden_dims=[4])"), weights=(3.0, 1.0))
    head = assemble(config, trained, input_dim=6).eval()
    features = torch.randn(5, 7, 6, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[0, 3:] = False
    outputs = head(features, mask)
    ridge, mlp0, mlp1 = (member.eval()(features, mask)["score"] for _, _, member in trained)
    torch.testing.assert_close(outputs["member_scores"], torch.stack([ridge, (mlp0 + mlp1) / 2], dim=1))
    torch.testing.assert_close(outputs["score"], 0.75 * ridge + 0.25 * (mlp0 + mlp1) / 2)


def test_an_ensemble_checkpoint_loads_weights_only_and_reports_every_member(store, tmp_path):
    train(store, "--score", "total", "--test-split", "none", "--head", "ensemble", "--set", f"head.members={MEMBERS}",
          "--seeds", "0,1", "--epochs", 3, "--out", tmp_path / "run")
    payload = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert payload["head_name"] == "ensemble" and len(payload["head_config"]["trained"]) == 4  # 2 members x 2 seeds
    head, normalizer, info = load_checkpoint(tmp_path / "run" / "model.pt")
    assert info.extra["members"] == ["ridge", "mlp(hidden_dims=[8], train_window=12)"]
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())  # the ensemble's card names its members
    assert card["model"]["members"] == info.extra["members"] and card["evaluation"]["split"] == "train"
    assert "ensemble of ridge + mlp(" in card["description"] == info.description
    video = make_videos(1, TASK, seed=11, prefix="new")[0]
    score, details = predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)
    assert details["member_scores"].shape == (2,)
    assert score == pytest.approx(float(details["member_scores"].mean()), rel=1e-5)
    # What training reported for the training videos is what the checkpoint predicts for them.
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(report["members"]) == set(info.extra["members"]) and "train_srcc" in report["combined"]
    with open(tmp_path / "run" / "predictions.csv") as handle:
        first = next(csv.DictReader(handle))
    assert first["name"] and float(first["predicted"]) == pytest.approx(report_prediction(head, normalizer, info,
                                                                                          store, first["name"]),
                                                                        abs=1e-3)
    members = EnsembleDetail(tuple(MemberScore(label, float(value))
                                   for label, value in zip(info.extra["members"], details["member_scores"])))
    text = format_report(make_prediction(score=score, detail=members))
    assert "mean of 2 members: ridge " in text and member_scores(make_prediction()) is None


def report_prediction(head, normalizer: ScoreNormalizer, info, store, name: str) -> float:
    from aqa.data.feature_store import open_feature_store

    with open_feature_store(store) as features:
        video = features.read(name)
    return predict_features(head, normalizer, video.scene, video.actor, streams=info.streams)[0]


def test_the_ensembles_cv_is_the_average_of_its_members_own_cv_runs(store, tmp_path):
    """Each member trains as its own run does with the same seed: bench/cv_ensemble.py's average of
    the members' CV runs is the ensemble's own CV, prediction for prediction."""
    common = ["--score", "total", "--folds", 3, "--seeds", "0,1", "--epochs", 3]
    train(store, *common, "--head", "ensemble", "--set", f"head.members={MEMBERS}", "--out", tmp_path / "ens")
    train(store, *common, "--head", "ridge", "--out", tmp_path / "ridge")
    train(store, *common, "--head", "mlp", "--set", "head.hidden_dims=[8]", "--set", "head.train_window=12",
          "--out", tmp_path / "mlp")
    subprocess.run([sys.executable, ROOT / "bench" / "cv_ensemble.py", tmp_path / "ridge", tmp_path / "mlp", "--out",
                    tmp_path / "avg"], check=True, capture_output=True)

    def predictions(folder: Path) -> np.ndarray:
        with open(folder / "cv_predictions.csv") as handle:
            rows = list(csv.DictReader(handle))
        return np.array([[float(row[key]) for key in ("seed_0", "seed_1", "mean")] for row in rows])

    np.testing.assert_allclose(predictions(tmp_path / "ens"), predictions(tmp_path / "avg"), rtol=1e-6)
    own, averaged = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("ens", "avg"))
    assert own["fold_srcc"] == pytest.approx(averaged["fold_srcc"])
    assert own["ensemble"]["fold_srcc"] == pytest.approx(averaged["ensemble"]["fold_srcc"])


def test_aqa_predict_the_api_and_the_app_report_each_members_score_on_a_real_clip(trained, shared_videos, tmp_path,
                                                                                 capsys):
    """An ensemble trained on extracted features scores a real video from its raw file: the combined
    score is the mean of the members' scores in aqa-predict's JSON and text, aqa.Predictor and the
    page's summary."""
    import aqa
    from aqa.pipeline.app.scoring import summary_markdown
    from aqa.pipeline.predict.cli import cli as predict_cli

    root, _, _ = trained
    train(root / "f.h5", "--score", "score", "--head", "ensemble", "--set", 'head.members=[ridge, "mlp(dropout=0)"]',
          "--epochs", 2, "--out", tmp_path / "run")
    checkpoint, video = tmp_path / "run" / "model.pt", shared_videos / "basketball.mp4"
    capsys.readouterr()
    assert predict_cli([str(video), "--checkpoint", str(checkpoint), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["predictions"][0]
    assert [entry["member"] for entry in report["members"]] == ["ridge", "mlp(dropout=0)"]
    assert report["head"] == "ensemble"
    assert report["score"] == pytest.approx(np.mean([entry["score"] for entry in report["members"]]), abs=1e-3)
    assert predict_cli([str(video), "--checkpoint", str(checkpoint)]) == 0
    assert "mean of 2 members: ridge " in capsys.readouterr().out
    with aqa.Predictor(checkpoint) as predictor:
        prediction = predictor.score(video)
    assert prediction.members == {entry["member"]: entry["score"] for entry in report["members"]}
    assert prediction.score == pytest.approx(report["score"])
    assert prediction.to_json()["members"] == report["members"]
    assert "- the mean of 2 members: ridge" in summary_markdown(prediction)


@pytest.mark.parametrize(("preset", "head", "settings"), [(name, *parse_member(PRESETS[name].default_head))
                                                         for name in ("fisv-tes", "fisv-pcs", "rg-ball")])
def test_a_preset_without_head_trains_its_default_the_best_in_its_cv(preset, head, settings, tmp_path):
    from aqa.pipeline.train.cli import config_from_args, get_args_parser

    config = config_from_args(get_args_parser().parse_args(["f.h5", "--out", str(tmp_path), "--preset", preset]))
    assert config.head_name == head
    assert all(getattr(config.head, key) == (tuple(value) if isinstance(value, list) else value)
               for key, value in settings.items())
    chosen = config_from_args(get_args_parser().parse_args(["f.h5", "--out", str(tmp_path), "--preset", preset,
                                                            "--head", "mlp"]))
    assert chosen.head_name == "mlp"  # --head still chooses
