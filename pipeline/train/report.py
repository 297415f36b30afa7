"""What aqa-train leaves behind: metrics.json, predictions.csv, the plots and the checkpoint.

``metrics.json`` of one score (all scores on the original scale; rho is Spearman's)::

    score, head, preset, selection ("fixed-epochs" | "val"), epochs
    test_srcc, test_rl2, test_mse, train_srcc, train_rl2, train_mse, val_srcc (null without a
        validation split): the mean over seeds of the kept epoch, each with a "<key>_std" (sample
        std over seeds); without a test split (``--test-split none``) the test keys are absent
    last_epoch        the same numbers for the last epoch
    seeds             one row per seed: seed, epoch (kept), every split's srcc/rl2/mse, last_epoch,
                      seconds_per_epoch, test_cumulative_score (train_... without a test split), history
                      (models.training.FitResult.history: per-epoch lr, losses, train rho on
                      windows, validation loss and rho)
    predictions_split "test", or "train" without a test split: the split of predictions.csv and the plots
    prediction_spread the saved seed's std of predictions and of true scores on that split (a
                      collapsed model predicts nearly one value)
    cumulative_score  the saved seed's test curve, [[threshold, fraction], ...]: the share of test
                      videos within each absolute error (models.metrics.cumulative_score)
    summary           {key: {mean, std, n}} over seeds for every number of the rows
    combined, members an ensemble (``--head ensemble``) only: the metrics of what its checkpoint predicts
                      (the members' means over seeds, combined; predictions.csv holds these), and
                      each member's mean over seeds alone
    saved_seed, saved_by ("val_srcc" | "train_srcc"), checkpoint ("model.pt"); its model card beside it
                      (model_card.md and model_card.json: pipeline.train.model_card)
    videos, streams, input_dim, normalizer, provenance, config, config_hash, device, package_version

When several scores are trained, the top-level ``metrics.json`` holds per seed the Fisher-z mean
of rho over scores (then mean and std over seeds) and the arithmetic mean of R-L2; MSE is left
per score (the scales differ). NaN is written as null.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aqa.config import config_to_dict
from aqa.models.checkpoint import save_checkpoint
from aqa.models.metrics import cumulative_score, fisher_z_mean, mse, relative_l2, spearman, summarize_seeds
from aqa.models.normalization import ScoreNormalizer
from aqa.models.training import FitResult
from aqa.pipeline.plots import plot_cumulative_score, plot_curves, plot_predictions
from aqa.pipeline.train.model_card import build_card, default_description, score_scale, write_model_card
from aqa.version import __version__

if TYPE_CHECKING:
    from aqa.pipeline.train.config import RunConfig
    from aqa.pipeline.train.data import TrainingData

HEADLINE = ("test_srcc", "test_rl2", "test_mse", "train_srcc", "train_rl2", "train_mse", "val_srcc")


@dataclass
class SeedMetrics:
    """``values``: ``<split>_srcc``, ``<split>_rl2``, ``<split>_mse`` per split present;
    ``predictions``: original-scale predictions per split."""

    values: dict[str, float]
    predictions: dict[str, list[float]]


@dataclass
class SeedRun:
    """One seed's training: what :func:`models.training.fit` returned and the metrics (and
    original-scale predictions) of the kept and of the last epoch."""

    seed: int
    fit: FitResult
    selected: SeedMetrics
    last: SeedMetrics
    exemplar_names: list[str] = field(default_factory=list)  # a pairwise head's bank, in bank order
    head: torch.nn.Module | None = None  # the kept weights (an ensemble keeps every seed's)


@dataclass
class ScoreRun:
    """All seeds of one score, its normaliser and which seed's model is saved."""

    score: str
    normalizer: ScoreNormalizer
    seeds: list[SeedRun]
    saved: int  # index into seeds
    saved_by: str  # the metric that chose it: "val_srcc" or "train_srcc"
    sizes: dict[str, int]
    combined: SeedMetrics | None = None  # an ensemble: its checkpoint's predictions (members' means over seeds)
    members: dict[str, SeedMetrics] = field(default_factory=dict)  # an ensemble: each member's mean over seeds


def split_metrics(predictions: Mapping[str, Sequence[float]], true: Mapping[str, Sequence[float]]) -> SeedMetrics:
    """Spearman rho, relative L2 (x100) and MSE of each split's predictions against its truth."""
    values = {}
    for split, predicted in predictions.items():
        values[f"{split}_srcc"] = spearman(predicted, true[split])
        span = max(true[split]) - min(true[split])
        values[f"{split}_rl2"] = relative_l2(predicted, true[split]) if span > 0 else math.nan
        values[f"{split}_mse"] = mse(predicted, true[split])
    return SeedMetrics(values, {split: list(map(float, predicted)) for split, predicted in predictions.items()})


def seed_row(run: SeedRun, epochs: int, shown: str, shown_true: Sequence[float]) -> dict[str, Any]:
    """One seed's line in metrics.json; ``shown`` is the split whose cumulative score it carries
    (the test split, or the training split when there is none)."""
    seconds = [record["seconds"] for record in run.fit.history]
    return {"seed": run.seed, "epoch": run.fit.best_epoch, **run.selected.values,
            "last_epoch": {"epoch": epochs, **run.last.values},
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
            f"{shown}_cumulative_score": cumulative_score(run.selected.predictions[shown], shown_true),
            "history": run.fit.history}


def headline(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and ``_std`` over seeds of the headline keys present in ``rows``; ``val_srcc`` is null
    without a validation split. Also ``last_epoch`` (the same of each row's last epoch) and
    ``summary`` (``summarize_seeds`` of every number)."""
    def means(flat_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        summary = summarize_seeds([{key: row[key] for key in HEADLINE if key in row} for row in flat_rows])
        out: dict[str, Any] = {"val_srcc": None, "val_srcc_std": None}
        for key, stats in summary.items():
            out[key], out[f"{key}_std"] = stats["mean"], stats["std"]
        return out

    numbers = [{key: value for key, value in row.items() if isinstance(value, (int, float)) and key != "seed"}
               for row in rows]
    return {**means(rows), "last_epoch": {"epoch": rows[0]["last_epoch"]["epoch"],
                                          **means([row["last_epoch"] for row in rows])},
            "summary": summarize_seeds([{key: row[key] for key in numbers[0] if row[key] is not None}
                                        for row in numbers])}


def write_score_outputs(folder: Path, run: ScoreRun, head: torch.nn.Module, data: TrainingData, config: RunConfig,
                        digest: str, device: str, description: str | None = None) -> dict[str, Any]:
    """Write one score's checkpoint, model card (``model_card.md`` / ``.json``; ``description`` None:
    one made from the run's facts), metrics.json, predictions.csv and plots; return the metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    shown, shown_split = ("test", data.test) if data.test is not None else ("train", data.train)
    true = shown_split.column(run.score).double().tolist()
    rows = [seed_row(seed_run, config.train.epochs, shown, true) for seed_run in run.seeds]
    saved = run.seeds[run.saved]
    kept = run.combined or saved.selected  # an ensemble keeps every seed: its predictions are their combination
    predicted = kept.predictions[shown]
    plain_config = config_to_dict(config)
    report = {
        "score": run.score, "head": config.head_name, "preset": config.preset, "selection": saved.fit.selection,
        "epochs": config.train.epochs, **headline(rows), "seeds": rows, "saved_seed": saved.seed,
        "saved_by": run.saved_by, "checkpoint": "model.pt", "videos": run.sizes, "streams": data.streams,
        "cumulative_score": rows[run.saved][f"{shown}_cumulative_score"], "input_dim": data.train.input_dim,
        "predictions_split": shown,
        "prediction_spread": {"predicted_std": float(np.std(predicted)), "true_std": float(np.std(true))},
        "normalizer": run.normalizer.to_dict(),
        "provenance": data.provenance.to_dict(), "source": data.source, "config": plain_config, "config_hash": digest,
        "device": device, "package_version": __version__,
    }
    extra = {"seed": saved.seed, "epoch": saved.fit.best_epoch, "selection": saved.fit.selection,
             "saved_by": run.saved_by, "metrics": rows[run.saved]}
    if run.combined is not None:  # an ensemble: the checkpoint's own numbers, and each member's
        report["combined"] = extra["metrics"] = run.combined.values
        report["members"] = {label: part.values for label, part in run.members.items()}
        extra["members"] = list(run.members)
    if saved.exemplar_names:  # names of the bank's rows: the bank itself is in the state dict
        extra["exemplar_names"] = saved.exemplar_names
    scale = score_scale(data.train.column(run.score).tolist())
    description = description or default_description(report, scale)
    save_checkpoint(folder / "model.pt", head, run.normalizer, score_name=run.score, streams=data.streams,
                    provenance=data.provenance, config=plain_config, config_hash=digest, extra=plain_json(extra),
                    description=description, scale=scale)
    with open(folder / "predictions.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "true", "predicted"])
        writer.writerows(zip(shown_split.names, true, predicted))
    title = (f"{config.head_name} {run.score}, seed {saved.seed}, {saved.fit.selection} "
             f"(epoch {saved.fit.best_epoch}): {shown} rho {kept.values[f'{shown}_srcc']:.3f}")
    if run.combined is not None:
        title = f"ensemble {run.score}, {len(run.members)} members x {len(run.seeds)} seeds: {shown} rho " \
                f"{kept.values[f'{shown}_srcc']:.3f}"
    plot_predictions(folder / "predictions.png", true, predicted, title=title, score_name=run.score)
    plot_curves(folder / "curves.png", {seed_run.seed: seed_run.fit.history for seed_run in run.seeds},
                title=f"{config.head_name} {run.score}")
    plot_cumulative_score(folder / "cumulative_score.png",
                          {f"seed {row['seed']}": row[f"{shown}_cumulative_score"] for row in rows},
                          title=f"{config.head_name} {run.score}: {shown} videos within each error",
                          score_name=run.score)
    write_model_card(folder, plain_json(build_card(report, description=description, scale=scale)))
    _write_json(folder / "metrics.json", report)
    return report


def write_combined_report(out: Path, reports: Mapping[str, Mapping[str, Any]], config: RunConfig, digest: str,
                          seconds: float) -> dict[str, Any]:
    """The top-level metrics.json of a multi-score run: rho Fisher-z-averaged over scores per seed."""
    per_seed = [[report["seeds"][index] for report in reports.values()] for index in range(len(config.seeds))]
    rows = [{"seed": rows[0]["seed"], **_average_scores(rows),
             "last_epoch": {"epoch": rows[0]["last_epoch"]["epoch"],
                            **_average_scores([row["last_epoch"] for row in rows])}} for rows in per_seed]
    report = {
        "scores": list(reports), "head": config.head_name, "preset": config.preset,
        "averaging": "per seed: Fisher-z mean of rho over scores, arithmetic mean of R-L2; then mean/std over seeds",
        "selection": next(iter(reports.values()))["selection"], "epochs": config.train.epochs, **headline(rows),
        "seeds": rows,
        "per_score": {score: {key: report.get(key) for key in ("test_srcc", "test_srcc_std", "test_rl2", "test_mse",
                                                               "val_srcc", "saved_seed")}
                      for score, report in reports.items()},
        "config": config_to_dict(config), "config_hash": digest, "seconds": seconds, "package_version": __version__,
    }
    _write_json(out / "metrics.json", report)
    return report


def _average_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    averaged = {}
    for key in rows[0]:
        if key.endswith("_srcc"):
            averaged[key] = fisher_z_mean(row[key] for row in rows)
        elif key.endswith("_rl2"):
            averaged[key] = float(np.mean([row[key] for row in rows]))
    return averaged


def plain_json(value: Any) -> Any:
    """JSON-safe and ``weights_only``-safe: NaN and infinity become None, tuples lists."""
    if isinstance(value, Mapping):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: Path, values: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(plain_json(values), indent=2) + "\n")
