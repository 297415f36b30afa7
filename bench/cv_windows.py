"""Cross-validate CoFInAl once and score each held-out fold with several test-window counts.

How the Fis-V presets' ``train_window`` / ``test_windows`` were chosen (docs/accuracy.md): the same
trained heads score the held-out programs whole (K = 1) and as the mean of K windows of
``train_window`` clips (``models.windows``), so the K's are compared without training noise. The
K = 1 and the K = the head's ``test_windows`` columns equal ``aqa-train --folds-file ...`` with
the same settings (same folds, seeds and training: this calls aqa-train's own ``train_score``).

    python bench/cv_windows.py runs/fisv-cv/fisv_train.h5 TES --windows 1,15,25 -- \\
        --head cofinal --preset fisv-tes --seeds 0,1,2 --set head.train_window=32

Everything after ``--`` is aqa-train's arguments (``--out`` is not needed). Prints one JSON line:
per K, the Fisher-z CV rho of each seed, their mean, and the rho of the seeds' mean prediction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from aqa.models.metrics import fisher_z_mean, spearman
from aqa.models.windows import evenly_spaced_windows
from aqa.pipeline.train.cli import config_from_args, get_args_parser
from aqa.pipeline.train.config import head_streams
from aqa.pipeline.train.cross_validation import cross_validate, read_folds
from aqa.pipeline.train.data import load_training_data
from aqa.pipeline.train.training import train_score


@torch.no_grad()
def windowed_scores(head: torch.nn.Module, features: torch.Tensor, lengths: torch.Tensor, count: int) -> np.ndarray:
    """Normalised scores of each video: whole (``count`` 1) or the mean over ``count`` windows."""
    head.eval()
    window = head.config.train_window
    scores = []
    for row, length in enumerate(lengths.tolist()):
        clips = features[row:row + 1, :length]
        if count == 1:
            scores.append(float(head._score_clips(*head.prepare_inputs(clips, None))["score"][0]))
            continue
        prepared, mask = head.prepare_inputs(clips, None)
        windows, window_mask = evenly_spaced_windows(prepared, mask, window, count)
        scores.append(float(head._score_clips(windows, window_mask)["score"].mean()))
    return np.array(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path)
    parser.add_argument("score")
    parser.add_argument("--windows", default="1,15", help="comma-separated test-window counts K")
    parser.add_argument("--folds-file", type=Path, default=Path("data/folds/fisv_train_5fold.json"))
    own, train_argv = parser.parse_known_args()
    train_argv = [arg for arg in train_argv if arg != "--"]
    counts = [int(k) for k in own.windows.split(",")]
    torch.set_num_threads(1)
    args = get_args_parser().parse_args([str(own.store), "--out", "unused", "--score", own.score, *train_argv])
    config = config_from_args(args)
    data = load_training_data(args.features, scores=config.scores, train_split=config.train_split, test_split=None,
                              streams=head_streams(config), video_prefix="", labels=None, expect_provenance=None)
    folds = read_folds(own.folds_file)
    predicted: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in counts}

    def train_fold(fold_data):  # noqa: ANN001, ANN202
        by_seed: dict[int, list[np.ndarray]] = {k: [] for k in counts}
        for seed in config.seeds:
            run, head = train_score(fold_data, own.score, dataclasses.replace(config, seeds=(seed,)), "cpu",
                                    progress=False)
            test = fold_data.test.padded(own.score, run.normalizer, "cpu")
            for k in counts:
                by_seed[k].append(windowed_scores(head, test.features, test.lengths, k))
        true = fold_data.test.column(own.score).double().numpy()
        for k in counts:
            predicted[k].append((np.stack(by_seed[k]), true))
        return run

    cross_validate(data, folds, train_fold, progress=False)
    report = {}
    for k in counts:
        per_seed = [fisher_z_mean([spearman(p[i], t) for p, t in predicted[k]]) for i in range(len(config.seeds))]
        report[k] = {"fold_srcc_per_seed": per_seed, "fold_srcc": float(np.mean(per_seed)),
                     "seeds_mean_fold_srcc": fisher_z_mean([spearman(p.mean(axis=0), t) for p, t in predicted[k]])}
    print(json.dumps({"score": own.score, "args": train_argv, "windows": report}))


if __name__ == "__main__":
    sys.exit(main())
