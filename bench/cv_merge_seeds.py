"""Merge cross-validation runs of the same settings that differ only in their seeds into one run.

    python bench/cv_merge_seeds.py runs/exp/fspn-pcs-s0 runs/exp/fspn-pcs-s1 runs/exp/fspn-pcs-s2 \\
        --out runs/fisv-cv/fspn-pcs

Seeds of a slow head (FSPN on Fis-V: about 35 CPU-minutes per seed) run faster as separate
processes, one per core or machine, than as ``--seeds 0,1,2`` in one. This joins their
``metrics.json`` and ``cv_predictions.csv`` into what one ``aqa-train --folds ... --seeds 0,1,2``
run would have written (per-seed rows as each run computed them, their mean ± std, the seeds'
mean prediction scored by the same code), so ``bench/cv_table.py`` prints it as a table row. It
refuses runs whose folds or settings (apart from the seeds) differ.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from aqa.pipeline.train.cross_validation import FoldRun, fold_metrics
from aqa.pipeline.train.report import summarize_seeds


def load(folder: Path) -> tuple[dict, list[dict]]:
    report = json.loads((folder / "metrics.json").read_text())
    with (folder / "cv_predictions.csv").open() as handle:
        return report, list(csv.DictReader(handle))


def same_settings(reports: list[dict], folders: list[Path]) -> None:
    def without_seeds(report: dict) -> dict:
        return {**report["config"], "seeds": None}

    for report, folder in zip(reports[1:], folders[1:]):
        if without_seeds(report) != without_seeds(reports[0]):
            raise SystemExit(f"{folder}: its settings differ from {folders[0]}'s beyond the seeds")
    folds = {(folder / "folds.json").read_text() for folder in folders}
    if len(folds) != 1:
        raise SystemExit("the runs were made on different folds")


def merge(folders: list[Path], out: Path) -> dict:
    loaded = [load(folder) for folder in folders]
    reports = [report for report, _ in loaded]
    same_settings(reports, folders)
    rows = [row for report in reports for row in report["seeds"]]
    seeds = [row["seed"] for row in rows]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"a seed appears twice: {seeds}")
    names = [item["name"] for item in loaded[0][1]]
    if any([item["name"] for item in table] != names for _, table in loaded):
        raise SystemExit("the runs list different videos")
    true = np.array([float(item["true"]) for item in loaded[0][1]])
    fold_of = np.array([int(item["fold"]) for item in loaded[0][1]])
    predicted = np.array([[float(item[f"seed_{seed}"]) for item in table]
                          for (report, table) in loaded for seed in (row["seed"] for row in report["seeds"])])
    runs = [FoldRun(np.flatnonzero(fold_of == fold).tolist(), [], [], 0.0) for fold in sorted(set(fold_of))]
    summary = summarize_seeds([{key: value for key, value in row.items() if isinstance(value, float)} for row in rows])
    merged = {
        **{key: value for key, value in reports[0].items() if key not in ("seeds", "summary", "ensemble", "seconds")},
        "seeds": rows, "summary": summary,
        **{key: stats["mean"] for key, stats in summary.items()},
        **{f"{key}_std": stats["std"] for key, stats in summary.items()},
        "ensemble": fold_metrics(true, runs, predicted.mean(axis=0)),
        "seconds": float(sum(report["seconds"] for report in reports)),
        "config": {**reports[0]["config"], "seeds": seeds},
        "merged_from": [str(folder) for folder in folders],
    }
    write_run(out, folders[0], merged, names, fold_of, true, seeds, predicted)
    return merged


def write_run(out: Path, like: Path, report: dict, names: list[str], fold_of: np.ndarray, true: np.ndarray,
              seeds: list[int], predicted: np.ndarray) -> None:
    """A run folder as aqa-train --folds writes it: ``like``'s folds.json, ``report`` as metrics.json,
    and cv_predictions.csv of ``predicted`` ``[seeds, videos]``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "folds.json").write_text((like / "folds.json").read_text())
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out / "cv_predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "fold", "true", *[f"seed_{seed}" for seed in seeds], "mean"])
        for column, name in enumerate(names):
            writer.writerow([name, fold_of[column], true[column], *predicted[:, column].tolist(),
                             predicted[:, column].mean()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="CV run folders (aqa-train --folds ... --out)")
    parser.add_argument("--out", type=Path, required=True, help="the merged run's folder")
    args = parser.parse_args(argv)
    merged = merge(args.runs, args.out)
    print(f"{args.out}: seeds {[row['seed'] for row in merged['seeds']]}, CV rho {merged['fold_srcc']:.4f} ± "
          f"{merged['fold_srcc_std']:.4f}, seeds' mean {merged['ensemble']['fold_srcc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
