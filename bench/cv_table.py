"""Print the cross-validation runs under a folder as one Markdown table (for docs/accuracy.md).

    python bench/cv_table.py runs/fisv-cv

One row per run folder holding a cross-validation ``metrics.json`` (``aqa-train --folds``): rho
as the Fisher-z mean over folds (mean ± std over seeds), pooled rho, the rho of the seeds'
mean prediction, R-L2, MSE, the spread of predictions against the truth, seconds of the run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def row(name: str, report: dict) -> str:
    seeds = len(report["seeds"])
    cells = [name, report["score"], f"{report['fold_srcc']:.3f} ± {report['fold_srcc_std']:.3f}",
             f"{report['pooled_srcc']:.3f}", f"{report['ensemble']['fold_srcc']:.3f}", f"{report['rl2']:.2f}",
             f"{report['mse']:.1f}", f"{report['train_srcc']:.2f}",
             f"{report['prediction_std']:.1f} / {report['true_std']:.1f}", str(seeds), f"{report['seconds']:.0f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    print("| run | score | CV rho (folds) | pooled rho | seeds' mean rho | R-L2 | MSE | train rho | "
          "pred / true std | seeds | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(args.folder.glob("*/metrics.json")):
        report = json.loads(path.read_text())
        if "fold_srcc" in report and "score" in report:
            print(row(path.parent.name, report))


if __name__ == "__main__":
    main()
