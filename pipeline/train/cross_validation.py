"""``aqa-train --folds K``: K-fold cross-validation on the training split only.

How a head is judged and tuned without a test score: the training videos are split into K folds
(seeded, or read from a committed folds file such as ``data/folds/fisv_train_5fold.json``); for
each fold and each seed a head is trained on the other folds exactly as ``aqa-train`` would train
it (same recipe, same selection rule) and predicts the held-out fold. Every training video is
predicted once per seed, by a model that never saw it.

Numbers per seed (then mean and sample std over seeds): ``fold_srcc`` (Fisher-z mean of the K
per-fold rhos, the papers' averaging), ``pooled_srcc`` (rho of all out-of-fold predictions at
once), ``rl2`` and ``mse`` of the pooled predictions, ``train_srcc`` (mean over folds, on whole
training videos). ``ensemble`` holds the same for the mean prediction over seeds: what averaging
the seeds into one model would give.

Outputs in ``--out``: ``folds.json`` (the folds, to rerun or to compare heads on the same ones),
``metrics.json``, ``cv_predictions.csv`` (name, fold, true, one column per seed, mean) and
``cv_predictions.png`` (out-of-fold predicted vs true). No checkpoint: K models per seed are not
one model; train the final one with plain ``aqa-train`` and the settings the folds chose.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from aqa.config import config_to_dict
from aqa.errors import AqaError
from aqa.models.metrics import fisher_z_mean, mse, relative_l2, spearman, summarize_seeds
from aqa.pipeline.plots import plot_predictions
from aqa.pipeline.train.data import TrainingData, VideoSplit
from aqa.pipeline.train.report import plain_json
from aqa.version import __version__

if TYPE_CHECKING:
    from aqa.pipeline.train.config import RunConfig
    from aqa.pipeline.train.report import ScoreRun

FOLDS_FORMAT = "aqa-folds/1"


class FoldsError(AqaError):
    """The folds asked for do not fit the training videos; the message says how."""


@dataclass(frozen=True)
class Folds:
    """Video names per fold; ``seed`` made them (None when read from a file that does not say)."""

    names: tuple[tuple[str, ...], ...]
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FOLDS_FORMAT, "k": len(self), "seed": self.seed, "folds": [list(fold) for fold in self.names]}

    def write(self, path: Path) -> None:
        """JSON with one line per fold (readable, and diffs of a committed file stay small)."""
        values = self.to_dict()
        folds = ",\n  ".join(json.dumps(fold) for fold in values.pop("folds"))
        path.write_text(json.dumps(values)[:-1] + f', "folds": [\n  {folds}\n]}}\n')


def make_folds(names: Sequence[str], k: int, seed: int) -> Folds:
    """``k`` folds of near-equal size from a seeded permutation of the sorted names (so the folds
    depend on the set of names and the seed, not on the order a store lists them in)."""
    if k < 2:
        raise FoldsError(f"--folds needs at least 2 folds, got {k}")
    if len(names) < 2 * k:
        raise FoldsError(f"{len(names)} training videos are too few for {k} folds (each needs 2 to rank)")
    ordered = sorted(names)
    order = np.random.default_rng(seed).permutation(len(ordered))
    return Folds(tuple(tuple(sorted(ordered[i] for i in part)) for part in np.array_split(order, k)), seed)


def read_folds(path: Path) -> Folds:
    """A folds file written by :meth:`Folds.write` (``{"folds": [[name, ...], ...]}``)."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        folds = values["folds"]
        if not (isinstance(folds, list) and all(isinstance(fold, list) for fold in folds)):
            raise TypeError
    except FileNotFoundError:
        raise FoldsError(f"folds file not found: {path}") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise FoldsError(f"{path} is not a folds file (JSON with \"folds\": a list of lists of video names)") from None
    seed = values.get("seed")
    return Folds(tuple(tuple(str(name) for name in fold) for fold in folds), seed if isinstance(seed, int) else None)


def check_folds(folds: Folds, names: Sequence[str], source: str) -> None:
    """Every training video in exactly one fold, every fold at least 2 videos, no stranger."""
    listed = [name for fold in folds.names for name in fold]
    if len(folds) < 2:
        raise FoldsError(f"the folds file has {len(folds)} fold(s); cross-validation needs at least 2")
    repeated = sorted(name for name, times in Counter(listed).items() if times > 1)
    missing, unknown = sorted(set(names) - set(listed)), sorted(set(listed) - set(names))
    small = [index for index, fold in enumerate(folds.names) if len(fold) < 2]
    for problem, found in (("in several folds", repeated), ("in no fold", missing),
                           (f"in the folds but not among the training videos of {source}", unknown)):
        if found:
            raise FoldsError(f"{len(found)} video(s) {problem} (e.g. {found[0]}); the folds must split the training "
                             "videos exactly")
    if small:
        raise FoldsError(f"fold {small[0]} has fewer than 2 videos")


@dataclass
class FoldRun:
    """One fold's held-out rows and, per seed, the held-out predictions and the training rho."""

    rows: list[int]
    predictions: list[list[float]]  # [seed][held-out video]
    train_srcc: list[float]  # [seed]
    seconds: float


def cross_validate(data: TrainingData, folds: Folds, train_fold: Callable[[TrainingData], ScoreRun], *,
                   label: str = "", progress: bool = True) -> list[FoldRun]:
    """Train and score every fold of ``data.train`` (see the module doc); returns one :class:`FoldRun` per fold.

    ``train_fold`` trains one fold's data (the held-out fold as its test split) and returns its
    :class:`~pipeline.train.training.ScoreRun`: ``aqa-train``'s own per-score training, so a fold is
    trained exactly as a final model would be."""
    split = data.train
    index = {name: row for row, name in enumerate(split.names)}
    runs = []
    with tqdm(total=len(folds), desc=f"{label} folds".strip(), unit="fold", disable=not progress, leave=False) as bar:
        for fold in folds.names:
            started = time.perf_counter()
            held_out = [index[name] for name in fold]
            kept = sorted(set(range(len(split))) - set(held_out))
            fold_data = TrainingData(split.subset(kept), split.subset(held_out), data.provenance, data.streams,
                                     data.source)
            run = train_fold(fold_data)
            runs.append(FoldRun(held_out, [seed.selected.predictions["test"] for seed in run.seeds],
                                [seed.selected.values["train_srcc"] for seed in run.seeds],
                                time.perf_counter() - started))
            bar.update(1)
    return runs


def fold_metrics(true: np.ndarray, runs: Sequence[FoldRun], predicted: np.ndarray) -> dict[str, float]:
    """The CV numbers of one set of out-of-fold predictions ``predicted`` ``[N]`` (module doc)."""
    per_fold = [spearman(predicted[run.rows], true[run.rows]) for run in runs]
    return {"fold_srcc": fisher_z_mean(per_fold), "pooled_srcc": spearman(predicted, true),
            "rl2": relative_l2(predicted, true), "mse": mse(predicted, true),
            "prediction_std": float(np.std(predicted)), "per_fold_srcc": per_fold}


def out_of_fold(split: VideoSplit, runs: Sequence[FoldRun], seeds: int) -> np.ndarray:
    """``[seeds, N]`` original-scale predictions, each video's from the fold that held it out."""
    predicted = np.full((seeds, len(split)), np.nan)
    for run in runs:
        predicted[:, run.rows] = np.asarray(run.predictions)
    return predicted


def write_cv_outputs(folder: Path, split: VideoSplit, score: str, runs: Sequence[FoldRun], folds: Folds,
                     config: RunConfig, digest: str, device: str) -> dict[str, Any]:
    """Write one score's folds.json, metrics.json, cv_predictions.csv and .png; return the metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    true = split.column(score).double().numpy()
    predicted = out_of_fold(split, runs, len(config.seeds))
    rows = []
    for position, (seed, seed_predicted) in enumerate(zip(config.seeds, predicted)):
        train_srcc = float(np.mean([run.train_srcc[position] for run in runs]))
        rows.append({"seed": seed, **fold_metrics(true, runs, seed_predicted), "train_srcc": train_srcc})
    ensemble = fold_metrics(true, runs, predicted.mean(axis=0))
    summary = summarize_seeds([{key: value for key, value in row.items() if isinstance(value, float)} for row in rows])
    report = {
        "score": score, "head": config.head_name, "preset": config.preset, "folds": len(folds),
        "fold_seed": folds.seed, "videos": len(split), "seeds": rows, "summary": summary,
        **{key: stats["mean"] for key, stats in summary.items()},
        **{f"{key}_std": stats["std"] for key, stats in summary.items()},
        "ensemble": ensemble, "true_std": float(np.std(true)),
        "seconds": float(sum(run.seconds for run in runs)),
        "config": config_to_dict(config), "config_hash": digest, "device": device, "package_version": __version__,
    }
    folds.write(folder / "folds.json")
    fold_of = {row: number for number, run in enumerate(runs) for row in run.rows}
    with open(folder / "cv_predictions.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "fold", "true", *[f"seed_{seed}" for seed in config.seeds], "mean"])
        for row, name in enumerate(split.names):
            writer.writerow([name, fold_of[row], true[row], *predicted[:, row].tolist(), predicted[:, row].mean()])
    title = (f"{config.head_name} {score}, {len(folds)}-fold CV, mean of {len(config.seeds)} seed(s): "
             f"rho {ensemble['pooled_srcc']:.3f}")
    plot_predictions(folder / "cv_predictions.png", true, predicted.mean(axis=0), title=title, score_name=score)
    (folder / "metrics.json").write_text(json.dumps(plain_json(report), indent=2) + "\n")
    return report


def write_combined_cv_report(out: Path, reports: dict[str, dict[str, Any]], config: RunConfig) -> dict[str, Any]:
    """Several scores: per seed the Fisher-z mean over scores of ``fold_srcc`` and ``pooled_srcc``."""
    rows = []
    for index, seed in enumerate(config.seeds):
        rows.append({"seed": seed, **{key: fisher_z_mean(report["seeds"][index][key] for report in reports.values())
                                      for key in ("fold_srcc", "pooled_srcc")}})
    summary = summarize_seeds([{key: row[key] for key in ("fold_srcc", "pooled_srcc")} for row in rows])
    report = {"scores": list(reports), "head": config.head_name, "preset": config.preset, "seeds": rows,
              "averaging": "per seed: Fisher-z mean over scores; then mean/std over seeds",
              **{key: stats["mean"] for key, stats in summary.items()},
              **{f"{key}_std": stats["std"] for key, stats in summary.items()},
              "per_score": {score: {key: report[key] for key in ("fold_srcc", "fold_srcc_std", "pooled_srcc")}
                            for score, report in reports.items()},
              "config": config_to_dict(config)}
    (out / "metrics.json").write_text(json.dumps(plain_json(report), indent=2) + "\n")
    return report
