"""Print the cross-validation runs under a folder as one Markdown table (for docs/accuracy.md).

    python bench/cv_table.py runs/fisv-cv

One row per run folder holding a cross-validation ``metrics.json`` (``aqa-train --folds``): rho
as the Fisher-z mean over folds (mean ± std over seeds), pooled rho, the rho of the seeds'
mean prediction, R-L2, MSE, the spread of predictions against the truth, seconds of the run.

    python bench/cv_table.py runs/fisv-cv --final

The final models instead (``bash bench/fisv_cv.sh final``: a preset's default settings on every
training program, no CV): is a model collapsed (predictions all alike) or saturated (piled at
the ends of the score range)? Training rho, the std, range and distinct values (to 0.01) of its
predictions on the programs it trained on, against the scores'.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def row(name: str, report: dict) -> str:
    seeds = len(report["seeds"])
    cells = [name, report["score"], f"{report['fold_srcc']:.3f} ± {report['fold_srcc_std']:.3f}",
             f"{report['pooled_srcc']:.3f}", f"{report['ensemble']['fold_srcc']:.3f}", f"{report['rl2']:.2f}",
             f"{report['mse']:.1f}", f"{report['train_srcc']:.2f}",
             f"{report['prediction_std']:.1f} / {report['true_std']:.1f}", str(seeds), f"{report['seconds']:.0f}"]
    return "| " + " | ".join(cells) + " |"


def final_row(name: str, report: dict, predictions: Path) -> str:
    with predictions.open() as handle:
        rows = list(csv.DictReader(handle))
    predicted = [float(item["predicted"]) for item in rows]
    true = [float(item["true"]) for item in rows]
    spread = report["prediction_spread"]
    cells = [name, report["score"], f"{report['train_srcc']:.3f}",
             f"{spread['predicted_std']:.2f} / {spread['true_std']:.2f}",
             f"{min(predicted):.1f}-{max(predicted):.1f} / {min(true):.1f}-{max(true):.1f}",
             f"{len({round(value, 2) for value in predicted})} of {len(predicted)}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--final", action="store_true", help="the final-* models (no CV) instead")
    args = parser.parse_args()
    if args.final:
        print("| run | score | train rho | pred / true std | pred / true range | distinct predictions |")
        print("|---|---|---|---|---|---|")
        for path in sorted(args.folder.glob("final-*/metrics.json")):
            print(final_row(path.parent.name, json.loads(path.read_text()), path.parent / "predictions.csv"))
        return
    print("| run | score | CV rho (folds) | pooled rho | seeds' mean rho | R-L2 | MSE | train rho | "
          "pred / true std | seeds | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(args.folder.glob("*/metrics.json")):
        report = json.loads(path.read_text())
        if "fold_srcc" in report and "score" in report:
            print(row(path.parent.name, report))


if __name__ == "__main__":
    main()
