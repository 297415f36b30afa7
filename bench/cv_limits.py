"""What limits cross-validated accuracy on Fis-V (issue 26): the epoch, and the number of programs.

Two questions, each answered on the committed folds (``data/folds/fisv_train_5fold.json``) of the
400 shared training programs, with the tool's own training (same presets, recipe and seeds as
``aqa-train --folds-file``); no test score is read anywhere:

1. **How much does choosing the epoch on the held-out programs add?** The CoFInAl paper (and most
   AQA papers on Fis-V) report the best epoch's rho on the test split. Here every fold's held-out
   programs are scored after every epoch; the table gives the fixed last epoch (what our CV
   reports), the epoch best on each fold's held-out programs (the papers' protocol, one test set
   per fold), and the one epoch best on the mean over folds. The difference is what that protocol
   adds to a figure without the model being any better.
2. **Would more programs help?** Each fold's training programs are cut to a seeded share
   (``--fractions``) and the head trained on the rest as usual, then scored on the same held-out
   programs: rho against the number of training programs.

    python bench/cv_limits.py --head cofinal --preset fisv-tes --seeds 0,1,2 --out runs/limits/cofinal-tes
    python bench/cv_limits.py --head mlp --preset fisv-tes --set head.aux_scores=[PCS] --out runs/limits/mlpaux-tes
    python bench/cv_limits.py --head ridge --preset fisv-pcs --fractions 0.25,0.5,0.75,1 --out runs/limits/ridge-pcs

One JSON line per (fraction, seed, fold) with the per-epoch held-out rho goes to ``OUT/epochs.jsonl``
(a rerun skips the lines already there), the summary to ``OUT/summary.json`` and stdout, and
``OUT/limits.png`` plots both curves. The fraction 1 row's last epoch reproduces the tool's CV
figure for the same seeds (same code path, evaluation after every epoch does not touch training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "runs" / "fisv-cv" / "fisv_train.h5"
FOLDS = ROOT / "data" / "folds" / "fisv_train_5fold.json"


def fold_history(data, fold: list[str], score: str, config, seed: int, fraction: float) -> list[float]:
    """Held-out rho after every epoch of one fold's training, on a ``fraction`` of its training programs."""
    from aqa.models import registry
    from aqa.models.normalization import ScoreNormalizer
    from aqa.models.streams import difficulty_use
    from aqa.models.training import fit, seed_everything
    from aqa.pipeline.train.training import with_auxiliary_scores

    split = data.train
    held = set(fold)
    kept = [row for row, name in enumerate(split.names) if name not in held]
    if fraction < 1:  # a seeded share of the training programs, the same for every head
        chosen = np.random.default_rng(1000 + seed).permutation(len(kept))[:round(fraction * len(kept))]
        kept = sorted(kept[i] for i in chosen)
    train_split = split.subset(kept)
    test_split = split.subset([row for row, name in enumerate(split.names) if name in held])
    divide, grouped = difficulty_use(config.head)
    normalizer = ScoreNormalizer.fit(train_split.targets(score, divide))
    options = {"divide_by_difficulty": divide, "group_by_difficulty": grouped}
    train = with_auxiliary_scores(train_split.padded(score, normalizer, "cpu", **options), train_split,
                                  tuple(getattr(config.head, "aux_scores", ())))
    test = test_split.padded(score, normalizer, "cpu", **options)
    seed_everything(seed)
    head = registry.build_head(config.head_name, config.head, input_dim=split.input_dim)
    result = fit(head, train, config.train, seed=seed, val=test, recipe=head.training_recipe(train, config.train))
    return [float(record["val_srcc"]) for record in result.history]


def summarise(lines: list[dict], fractions: list[float], seeds: list[int], folds: int) -> dict:
    """Per fraction: the last epoch, the best epoch per fold (the papers' protocol) and the best
    single epoch, each as mean ± std over seeds."""
    from aqa.models.metrics import fisher_z_mean

    table = {}
    for fraction in fractions:
        per_seed = {"last": [], "best_per_fold": [], "best_common_epoch": []}
        for seed in seeds:
            curves = [line["val_srcc"] for line in lines if line["fraction"] == fraction and line["seed"] == seed]
            if len(curves) != folds:
                continue
            curves = np.array(curves)  # [folds, epochs]
            per_seed["last"].append(fisher_z_mean(curves[:, -1]))
            per_seed["best_per_fold"].append(fisher_z_mean(np.nanmax(curves, axis=1)))
            per_epoch = [fisher_z_mean(curves[:, epoch]) for epoch in range(curves.shape[1])]
            per_seed["best_common_epoch"].append(float(np.nanmax(per_epoch)))
        programs = [line["programs"] for line in lines if line["fraction"] == fraction]
        spread = {key: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                        "seeds": v} for key, v in per_seed.items() if v}
        table[str(fraction)] = {"programs": int(np.mean(programs)) if programs else None, **spread}
    return table


def plot(path: Path, lines: list[dict], table: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aqa.models.metrics import fisher_z_mean

    figure, (epochs_axis, sizes_axis) = plt.subplots(1, 2, figsize=(11, 4))
    full = [line for line in lines if line["fraction"] == 1.0]
    for seed in sorted({line["seed"] for line in full}):
        curves = np.array([line["val_srcc"] for line in full if line["seed"] == seed])
        mean = [fisher_z_mean(curves[:, epoch]) for epoch in range(curves.shape[1])]
        epochs_axis.plot(range(1, len(mean) + 1), mean, label=f"seed {seed}")
    epochs_axis.set(xlabel="epoch", ylabel="held-out rho (Fisher-z mean over folds)", title="rho after each epoch")
    if full:
        epochs_axis.legend()
    rows = [(row["programs"], row["last"]["mean"], row["last"]["std"]) for row in table.values() if "last" in row]
    if rows:
        programs, means, stds = zip(*sorted(rows))
        sizes_axis.errorbar(programs, means, yerr=stds, marker="o", capsize=3)
    sizes_axis.set(xlabel="training programs per fold", ylabel="held-out rho, last epoch", title="rho against programs")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=STORE,
                        help="the imported Fis-V store (bench/fisv_cv.sh makes it)")
    parser.add_argument("--head", default=None)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--set", dest="set_text", action="append", default=[])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--fractions", default="1", help="shares of each fold's training programs, e.g. 0.25,0.5,1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from aqa.pipeline.train.config import resolve_run_config
    from aqa.pipeline.train.cross_validation import read_folds
    from aqa.pipeline.train.data import load_training_data
    from aqa.pipeline.train.training import auxiliary_scores

    config = resolve_run_config(args.head, args.preset, set_text=args.set_text)
    score = config.scores[0]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    fractions = [float(fraction) for fraction in args.fractions.split(",")]
    data = load_training_data([args.store], scores=(*config.scores, *auxiliary_scores(config)), test_split=None)
    folds = read_folds(FOLDS).names
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "epochs.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(line["fraction"], line["seed"], line["fold"]) for line in lines}
    for fraction in fractions:
        for seed in seeds:
            for number, fold in enumerate(folds):
                if (fraction, seed, number) in done:
                    continue
                started = time.perf_counter()
                curve = fold_history(data, list(fold), score, config, seed, fraction)
                line = {"fraction": fraction, "seed": seed, "fold": number, "val_srcc": curve,
                        "programs": round(fraction * (len(data.train) - len(fold))),
                        "seconds": round(time.perf_counter() - started, 1)}
                lines.append(line)
                with open(log, "a") as file:
                    file.write(json.dumps(line) + "\n")
    table = summarise(lines, fractions, seeds, len(folds))
    title = f"{config.head_name} {score} ({args.preset} {' '.join(args.set_text)})".strip()
    summary = {"head": config.head_name, "preset": args.preset, "set": args.set_text, "score": score,
               "seeds": seeds, "fractions": table}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(args.out / "limits.png", lines, table, title)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
