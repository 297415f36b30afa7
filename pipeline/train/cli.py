"""``aqa-train``'s command line: the flags parsed into a :class:`TrainRequest` (the config
resolved first, so a wrong setting is refused before anything else is checked), then
:func:`~pipeline.train.training.run`; its one-line summaries printed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aqa.errors import printable
from aqa.models import registry
from aqa.models.ensemble import parse_member
from aqa.pipeline.cli import (
    add_common_arguments,
    add_config_arguments,
    add_label_arguments,
    exit_status_epilog,
    run_cli,
)
from aqa.pipeline.train.config import (
    SETTINGS,
    RunConfig,
    resolve_run_config,
)
from aqa.pipeline.train.training import TrainRequest, run


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults < preset < ``--config`` YAML < ``--set`` < the dedicated flags (see :func:`resolve_run_config`)."""
    settings = {name: getattr(args, name) for name in SETTINGS}
    settings["score"] = args.score or None
    return resolve_run_config(args.head, args.preset, config_file=args.config, set_text=args.overrides,
                              settings=settings)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a scoring head on an aqa feature store and report Spearman rho, relative L2 and MSE on "
                    "the test split, or cross-validate it on the training split (--folds).",
        epilog="Selection never uses the test split: fixed epochs by default, or --val-fraction for the best "
               "validation epoch. --out is checked before training: an existing file, a finished run (without "
               "--overwrite) or a place that cannot be written is refused. A stored video whose checksums fail is "
               "named, never trained on. A rho that is undefined (constant scores) is reported as null with a "
               "warning. " + exit_status_epilog("done"))
    parser.add_argument("features", nargs="+", type=Path,
                        help="feature shard (.h5), folder of shards, JSON index, or several shard files")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (created; checked before training; a finished run there is refused "
                             "unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of a finished run in --out")
    heads, presets = ", ".join(registry.list_heads()), ", ".join(registry.list_presets())
    defaults = "; ".join(f"{name}: {_default_head(name)}" for name in registry.list_presets()
                         if registry.dataset_preset(name).default_head != "cofinal")
    parser.add_argument("--head",
                        help=f"scoring head: {heads} (ridge is the instant floor; ensemble: the mean of trained "
                             f"heads, --set head.members=[...]). Default: the preset's, the best in its "
                             f"cross-validation (docs/accuracy.md; {defaults}), else cofinal")
    parser.add_argument("--preset", help=f"per-dataset settings (models/presets.py): {presets}")
    parser.add_argument("--score", action="append", help="score name to predict (repeatable; default: the preset's)")
    parser.add_argument("--epochs", type=int, help="training epochs (default 200)")
    parser.add_argument("--seeds", type=_seed_list, help="comma-separated seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument("--val-fraction", type=float, help="hold out this share of training videos to pick the "
                                                           "best epoch (default 0: fixed epochs)")
    parser.add_argument("--device", default="auto",
                        help="where the head trains: cpu, cuda, cuda:N or auto (default: cuda when visible)")
    parser.add_argument("--train-split", help="split to train on (default train)")
    parser.add_argument("--test-split", help="split to test on (default test; none: train on the training split "
                                             "alone, e.g. a final model on every labelled video)")
    parser.add_argument("--folds", type=int, metavar="K",
                        help="cross-validate instead: K folds of the training split (no test split is read), "
                             "every fold and seed trained as without --folds; writes folds.json and CV metrics")
    parser.add_argument("--folds-file", type=Path, metavar="FILE",
                        help="cross-validate on the folds in FILE (a folds.json of an earlier run, or "
                             "data/folds/fisv_train_5fold.json)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the --folds split (default 0)")
    parser.add_argument("--streams", choices=["auto", "scene", "actor", "both"],
                        help="feature streams fed to the head (default auto: both when there is an actor stream)")
    parser.add_argument("--video-prefix", help="only videos whose name starts with this (the RG presets set it)")
    parser.add_argument("--description", metavar="TEXT",
                        help="one line saying what the model scores, for its model card, its checkpoint and "
                             "aqa-predict (default: one made from the head, score, features and videos)")
    parser.add_argument("--expect-provenance", type=Path, metavar="PATH",
                        help="refuse features made differently from this checkpoint (.pt) or feature store")
    add_label_arguments(parser)
    add_config_arguments(parser, example="train.lr=0.001")
    add_common_arguments(parser)
    return parser


def _default_head(preset: str) -> str:
    """What ``--preset`` trains without ``--head``, in words: ``cofinal(coarse=likert)``, or an
    ensemble's members."""
    chosen = registry.dataset_preset(preset)
    if parse_member(chosen.default_head)[0] != "ensemble":
        return chosen.default_head
    members = registry.head_config("ensemble", preset).members
    return "the mean of " + " + ".join(members)


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in re.split(r"[,\s]+", text.strip()) if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def request_from_args(args: argparse.Namespace) -> TrainRequest:
    """The parsed command line as a :class:`TrainRequest` (the config resolved first, so a wrong setting
    is refused before anything else is checked)."""
    return TrainRequest(features=list(args.features), out=args.out, config=config_from_args(args), device=args.device,
                        overwrite=args.overwrite, labels=list(args.labels), columns=args.columns, folds=args.folds,
                        folds_file=args.folds_file, fold_seed=args.fold_seed, description=args.description,
                        expect_provenance=args.expect_provenance, progress=not args.quiet)


def train_from_args(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The command line's path: parse into a request, then :func:`run`."""
    return run(request_from_args(args), say)


def main(args: argparse.Namespace) -> int:
    train_from_args(args, say=lambda line: print(printable(line)))  # score names come from label files
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``aqa-train``."""
    return run_cli("aqa-train", get_args_parser, main, argv)

