"""Score the plain average of several heads' cross-validation runs as one run (an ensemble's CV row).

    python bench/cv_ensemble.py runs/fisv-cv/cofinal-pcs runs/fisv-cv/mlp-pcs runs/fisv-cv/ridgemax-pcs \\
        --out runs/ens/cofinal+mlp+ridgemax-pcs

Every input is a finished ``aqa-train --folds-file ... --seeds S`` run of one score, on the same
folds; the seeds all of them have are joined. Each member of an ensemble checkpoint
(``aqa-train --head ensemble``) trains as its own ``--head`` run does with the same seed
(``pipeline.train.ensemble``), so the mean of the members' out-of-fold predictions, seed by seed,
is what the ensemble's own CV would predict (``tests/test_ensemble.py`` checks that on a subset),
at no extra training. Seed ``s`` of the result is the members' mean for seed ``s``; its
``ensemble`` entry (the seeds' mean) is what the checkpoint, which keeps every seed, predicts.
``--weights`` gives one weight per run (default equal). ``--stack`` fits the weights instead, for
each held-out fold on the other folds' programs only (non-negative least squares of the true
scores on the members' out-of-fold predictions and a constant, seed by seed): the fold being
scored never chooses its own weights. What it cannot give is weights fitted inside a training
fold's own inner folds: the other folds' predictions came from models that had trained on the
fold being scored (among others), a second-order leak the plain mean does not have; its
``weights`` entry is the mean over folds and seeds. Written as ``bench/cv_table.py`` reads it;
``seconds`` is the members' sum (of all their seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.pipeline.train.cross_validation import FoldRun, fold_metrics  # noqa: E402
from aqa.pipeline.train.report import summarize_seeds  # noqa: E402
from bench.cv_merge_seeds import load, write_run  # noqa: E402


def stacked(member: np.ndarray, true: np.ndarray, fold_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``member`` ``[runs, seeds, videos]`` -> (predictions ``[seeds, videos]``, mean weights ``[runs]``):
    each fold's videos combined with weights fitted on the other folds' videos (module doc)."""
    from scipy.optimize import nnls

    predicted, weights = np.empty(member.shape[1:]), []
    for seed in range(member.shape[1]):
        for fold in np.unique(fold_of):
            fit_rows, rows = fold_of != fold, fold_of == fold
            inputs = member[:, seed, fit_rows].T
            centre, target_centre = inputs.mean(axis=0), true[fit_rows].mean()
            share, _ = nnls(inputs - centre, true[fit_rows] - target_centre)
            predicted[seed, rows] = target_centre + (member[:, seed, rows].T - centre) @ share
            weights.append(share)
    return predicted, np.mean(weights, axis=0)


def average(folders: list[Path], out: Path, weights: list[float] | None = None, stack: bool = False) -> dict:
    loaded = [load(folder) for folder in folders]
    reports, tables = [report for report, _ in loaded], [table for _, table in loaded]
    # The seeds every run has (a run of seed 0 alone joins the seed-0 predictions of 3-seed runs).
    seeds = [row["seed"] for row in reports[0]["seeds"]
             if all(row["seed"] in [other["seed"] for other in report["seeds"]] for report in reports)]
    for report, folder in zip(reports, folders):
        if not seeds or report["score"] != reports[0]["score"]:
            raise SystemExit(f"{folder}: another score than {folders[0]}, or no seed in common")
        report["seeds"] = [row for seed in seeds for row in report["seeds"] if row["seed"] == seed]
    if len({(folder / "folds.json").read_text() for folder in folders}) != 1:
        raise SystemExit("the runs were made on different folds")
    names = [item["name"] for item in tables[0]]
    if any([item["name"] for item in table] != names for table in tables):
        raise SystemExit("the runs list different videos")
    share = np.array(weights or [1.0] * len(folders), dtype=np.float64)
    share = share / share.sum()
    true = np.array([float(item["true"]) for item in tables[0]])
    fold_of = np.array([int(item["fold"]) for item in tables[0]])
    runs = [FoldRun(np.flatnonzero(fold_of == fold).tolist(), [], [], 0.0) for fold in sorted(set(fold_of))]
    # [runs, seeds, videos] -> the weighted mean over runs, [seeds, videos]
    member = np.array([[[float(item[f"seed_{seed}"]) for item in table] for seed in seeds] for table in tables])
    if stack:
        predicted, share = stacked(member, true, fold_of)
    else:
        predicted = np.tensordot(share, member, axes=1)
    rows = [{"seed": seed, **fold_metrics(true, runs, values),
             "train_srcc": float(share / share.sum() @ [report["seeds"][index]["train_srcc"] for report in reports])}
            for index, (seed, values) in enumerate(zip(seeds, predicted))]
    summary = summarize_seeds([{key: value for key, value in row.items() if isinstance(value, float)} for row in rows])
    merged = {
        "score": reports[0]["score"], "head": "ensemble", "preset": reports[0]["preset"], "folds": len(runs),
        "videos": len(names), "seeds": rows, "summary": summary,
        **{key: stats["mean"] for key, stats in summary.items()},
        **{f"{key}_std": stats["std"] for key, stats in summary.items()},
        "ensemble": fold_metrics(true, runs, predicted.mean(axis=0)), "true_std": float(np.std(true)),
        "seconds": float(sum(report["seconds"] for report in reports)),
        "members": [str(folder) for folder in folders], "weights": share.tolist(),
        "member_fold_srcc": {str(folder): float(np.mean([row["fold_srcc"] for row in report["seeds"]]))
                             for folder, report in zip(folders, reports)},
    }
    write_run(out, folders[0], merged, names, fold_of, true, seeds, predicted)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="CV run folders of one score (aqa-train --folds ... --out)")
    parser.add_argument("--out", type=Path, required=True, help="the ensemble's run folder")
    parser.add_argument("--weights", type=lambda text: [float(part) for part in text.split(",")],
                        help="one weight per run, comma-separated (default: equal)")
    parser.add_argument("--stack", action="store_true",
                        help="fit the weights on the other folds, fold by fold (module doc)")
    args = parser.parse_args(argv)
    if args.weights and len(args.weights) != len(args.runs):
        parser.error(f"--weights: {len(args.weights)} weights for {len(args.runs)} runs")
    if args.weights and args.stack:
        parser.error("--weights and --stack: give weights or fit them, not both")
    merged = average(args.runs, args.out, args.weights, args.stack)
    members = ", ".join(f"{rho:.4f}" for rho in merged["member_fold_srcc"].values())
    print(f"{args.out}: CV rho {merged['fold_srcc']:.4f} ± {merged['fold_srcc_std']:.4f}, seeds' mean "
          f"{merged['ensemble']['fold_srcc']:.4f} (members {members}; weights "
          f"{', '.join(f'{w:.3f}' for w in merged['weights'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
