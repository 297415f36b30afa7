"""How well a model of one score ranks another: TES scored by models trained on PCS, on the same folds.

    python bench/cv_cross_score.py runs/fisv-cv/cofinal-tes runs/fisv-cv/cofinalaux-pcs
    python bench/cv_cross_score.py runs/fisv-cv/cofinal-tes+runs/fisv-cv/mlpaux-tes \\
        runs/fisv-cv/likertaux-pcs+runs/fisv-cv/cofinalaux-pcs      # the two defaults' ensembles

Each argument is a finished ``aqa-train --folds-file ... --seeds S`` run (``+`` joins runs into their
plain mean, as ``bench/cv_ensemble.py`` does); the first scores the *target* (TES), the second
another score (PCS). For every seed both have, it prints the target's CV Spearman (Fisher-z over
folds, as ``aqa-train`` reports it) of

- the target's own models;
- the other score's models, read as predictions of the target (a ranking needs no scale);
- the plain mean of the two, the other score's predictions first put on the target's scale with
  each fold's *training* programs' labels (their mean and standard deviation of both scores), so
  no held-out label is read and no weight is fitted.

Why: on Fis-V the judges' TES and PCS rank the 400 training programs alike (Spearman 0.79), and a
model of PCS, the smoother of the two, ranks TES better than a model of TES does
(docs/accuracy.md, "TES ranked by a model of PCS").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.pipeline.train.cross_validation import FoldRun, fold_metrics  # noqa: E402
from bench.cv_merge_seeds import load  # noqa: E402


def mean_of_runs(spec: str) -> tuple[dict[str, dict], list[int]]:
    """``run+run+...`` -> (video name -> {"true", "fold", seed -> mean prediction}, the seeds all runs have)."""
    tables = [{row["name"]: row for row in load(Path(folder))[1]} for folder in spec.split("+")]
    names = sorted(tables[0])
    if any(sorted(table) != names for table in tables):
        raise SystemExit(f"{spec}: the runs list different videos")
    seeds = [seed for seed in range(100) if all(f"seed_{seed}" in table[names[0]] for table in tables)]
    joined = {name: {"true": float(tables[0][name]["true"]), "fold": int(tables[0][name]["fold"]),
                     **{seed: float(np.mean([float(table[name][f"seed_{seed}"]) for table in tables]))
                        for seed in seeds}} for name in names}
    return joined, seeds


def on_target_scale(other: np.ndarray, other_true: np.ndarray, target_true: np.ndarray,
                    fold: np.ndarray) -> np.ndarray:
    """``other``'s predictions mapped onto the target's scale, fold by fold, with the standardising
    map between the two scores' labels on that fold's training programs (every other fold)."""
    mapped = np.empty_like(other)
    for held_out in np.unique(fold):
        train, test = fold != held_out, fold == held_out
        standard = (other[test] - other_true[train].mean()) / other_true[train].std()
        mapped[test] = standard * target_true[train].std() + target_true[train].mean()
    return mapped


def cross_score(target_spec: str, other_spec: str) -> dict:
    target, target_seeds = mean_of_runs(target_spec)
    other, other_seeds = mean_of_runs(other_spec)
    names = sorted(target)
    if sorted(other) != names or any(target[name]["fold"] != other[name]["fold"] for name in names):
        raise SystemExit("the two runs were made on different programs or folds")
    true = np.array([target[name]["true"] for name in names])
    other_true = np.array([other[name]["true"] for name in names])
    fold = np.array([target[name]["fold"] for name in names])
    folds = [FoldRun(np.flatnonzero(fold == held_out).tolist(), [], [], 0.0) for held_out in np.unique(fold)]
    rows = []
    for seed in [seed for seed in target_seeds if seed in other_seeds]:
        own = np.array([target[name][seed] for name in names])
        theirs = np.array([other[name][seed] for name in names])
        mean = (own + on_target_scale(theirs, other_true, true, fold)) / 2
        rows.append({"seed": seed, "target_models": fold_metrics(true, folds, own)["fold_srcc"],
                     "other_models": fold_metrics(true, folds, theirs)["fold_srcc"],
                     "mean_of_both": fold_metrics(true, folds, mean)["fold_srcc"],
                     "other_models_on_their_score": fold_metrics(other_true, folds, theirs)["fold_srcc"]})
    if not rows:
        raise SystemExit("no seed in common")
    summary = {key: {"mean": float(np.mean([row[key] for row in rows])),
                     "std": float(np.std([row[key] for row in rows]))} for key in rows[0] if key != "seed"}
    return {"target": target_spec, "other": other_spec, "labels_spearman": float(spearmanr(true, other_true)[0]),
            "seeds": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="CV run(s) of the target score, joined by +")
    parser.add_argument("other", help="CV run(s) of the other score, joined by +")
    args = parser.parse_args(argv)
    result = cross_score(args.target, args.other)
    for row in result["seeds"]:
        print(f"seed {row['seed']}: target's models {row['target_models']:.4f}, the other score's models "
              f"{row['other_models']:.4f}, mean of both {row['mean_of_both']:.4f} (the other models on their own "
              f"score {row['other_models_on_their_score']:.4f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
