"""TES and PCS from one model against one model per score, side by side (issue 26), on Fis-V's 400
training programs and the committed folds (``data/folds/fisv_train_5fold.json``); no test score.

    python bench/cv_joint.py                      # 3 seeds, prints per-seed and mean CV Spearman
    python bench/cv_joint.py --seeds 0 --epochs 50

Both arms are the ``mlp`` head's recipe as the ``fisv-tes`` / ``fisv-pcs`` presets set it,
rewritten here small so the two can be trained the same way in one run: clip features standardised
on the training folds, a random window of 124 clips averaged per program per step (the whole
program at evaluation), SGD (momentum 0.9, weight decay 0.01) on a cosine from 0.1 to 1e-4 over
200 epochs of batches of 32, a sigmoid on scores normalised to the training range widened by 5 %,
MSE. **Separate**: TES through 256 hidden units (dropout 0.7), PCS linear (the presets). **Joint**:
one trunk of 256 hidden units (dropout 0.7) with two outputs, TES and PCS, the two losses summed;
**joint, PCS linear**: the same, plus PCS's own linear read-out of the averaged clip added to its
output (so PCS keeps what made it best alone). Spearman's rho is pooled over the out-of-fold
predictions of all 400 programs (what ``aqa-train --folds-file`` reports as ``cv_srcc``) and
averaged over folds (``fold_srcc``, Fisher z).

The numbers are this script's, side by side; they are not the tool's (its windows, batching and
evaluation differ in details), so compare arms with each other, not with docs/accuracy.md's rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
FISV = ROOT.parent / "shared" / "data" / "fisv"
FOLDS = ROOT / "data" / "folds" / "fisv_train_5fold.json"
WINDOW, HIDDEN, DROPOUT = 124, 256, 0.7
LR, LR_MIN, MOMENTUM, WEIGHT_DECAY, BATCH = 0.1, 1e-4, 0.9, 0.01, 32


def load_programs() -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Program ids, their clip features ``[T, 1024]`` and scores ``[N, 2]`` (TES, PCS)."""
    names, features, scores = [], [], []
    for line in (FISV / "train.txt").read_text().split("\n"):
        if line.strip():
            name, tes, pcs, _ = line.split()
            names.append(name)
            features.append(np.load(FISV / "features" / f"{name}.npy").astype(np.float32))
            scores.append((float(tes), float(pcs)))
    return names, features, np.array(scores, np.float64)


class Model(nn.Module):
    """``arm``: "tes" (256 hidden), "pcs" (linear), "joint", "joint+linear" (module docstring)."""

    def __init__(self, arm: str, dim: int) -> None:
        super().__init__()
        self.arm = arm
        outputs = 2 if arm.startswith("joint") else 1
        if arm == "pcs":
            self.trunk = nn.Linear(dim, 1)
        else:
            self.trunk = nn.Sequential(nn.Linear(dim, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
                                       nn.Linear(HIDDEN, outputs))
        self.linear_pcs = nn.Linear(dim, 1) if arm == "joint+linear" else None

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        out = self.trunk(pooled)
        if self.linear_pcs is not None:
            out = out + torch.cat([torch.zeros_like(out[:, :1]), self.linear_pcs(pooled)], dim=1)
        return torch.sigmoid(out)


def pooled_windows(features: list[np.ndarray], rng: np.random.Generator, window: int | None) -> np.ndarray:
    """Each program's mean clip over a random window of ``window`` clips (all clips when None)."""
    rows = []
    for clips in features:
        if window is not None and len(clips) > window:
            start = int(rng.integers(0, len(clips) - window + 1))
            clips = clips[start:start + window]
        rows.append(clips.mean(axis=0))
    return np.stack(rows)


def fit_predict(arm: str, train_x: list[np.ndarray], train_y: np.ndarray, test_x: list[np.ndarray], seed: int,
                epochs: int) -> np.ndarray:
    """Train one arm on the training programs; its predictions ``[N_test, outputs]`` on the original scale."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    stacked = np.concatenate(train_x)
    shift, scale = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    train_x = [(clips - shift) / scale for clips in train_x]
    test_x = [(clips - shift) / scale for clips in test_x]
    low, high = train_y.min(axis=0), train_y.max(axis=0)
    low, high = low - 0.05 * (high - low), high + 0.05 * (high - low)
    targets = torch.tensor((train_y - low) / (high - low), dtype=torch.float32)
    model = Model(arm, train_x[0].shape[1])
    optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    steps = epochs * int(np.ceil(len(train_x) / BATCH))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=LR_MIN)
    for _ in range(epochs):
        pooled = torch.tensor(pooled_windows(train_x, rng, WINDOW))
        order = rng.permutation(len(train_x))
        model.train()
        for first in range(0, len(order), BATCH):
            rows = torch.tensor(order[first:first + BATCH])
            loss = ((model(pooled[rows]) - targets[rows]) ** 2).sum(dim=1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        unit = model(torch.tensor(pooled_windows(test_x, rng, None))).numpy()
    return low + unit * (high - low)


def fisher_mean(values: list[float]) -> float:
    return float(np.tanh(np.mean(np.arctanh(np.clip(values, -0.999999, 0.999999)))))


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    names, features, scores = load_programs()
    folds = json.loads(FOLDS.read_text())["folds"]
    index = {name: row for row, name in enumerate(names)}
    arms = {"separate": [("tes", [0]), ("pcs", [1])], "joint": [("joint", [0, 1])],
            "joint+linear": [("joint+linear", [0, 1])]}
    results = []
    for seed in args.seeds:
        for label, models in arms.items():
            started = time.perf_counter()
            predicted = np.zeros_like(scores)
            fold_rho = {0: [], 1: []}
            for held_out in folds:
                test = [index[name] for name in held_out if name in index]
                train = [row for row in range(len(names)) if row not in set(test)]
                for arm, columns in models:
                    out = fit_predict(arm, [features[i] for i in train], scores[train][:, columns],
                                      [features[i] for i in test], seed, args.epochs)
                    predicted[np.ix_(test, columns)] = out
                for column in (0, 1):
                    fold_rho[column].append(spearmanr(predicted[test, column], scores[test, column])[0])
            row = {"seed": seed, "arm": label, "seconds": round(time.perf_counter() - started, 1)}
            for column, score in ((0, "TES"), (1, "PCS")):
                row[f"{score}_cv_srcc"] = round(float(spearmanr(predicted[:, column], scores[:, column])[0]), 4)
                row[f"{score}_fold_srcc"] = round(fisher_mean(fold_rho[column]), 4)
            results.append(row)
            print(json.dumps(row), flush=True)
    for label in arms:
        rows = [row for row in results if row["arm"] == label]
        summary = {key: f"{np.mean([r[key] for r in rows]):.4f} +- {np.std([r[key] for r in rows]):.4f}"
                   for key in ("TES_cv_srcc", "PCS_cv_srcc", "TES_fold_srcc", "PCS_fold_srcc")}
        print(json.dumps({"arm": label, "seeds": len(rows), **summary}))
    return 0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    return parser


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
