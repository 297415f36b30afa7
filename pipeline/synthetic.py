"""Generate the embedded synthetic dataset (the demo's data) from the command line.

    python -m aqa.pipeline.synthetic my_dataset --videos 40 --seed 0
    python -m aqa.pipeline.synthetic out/ --videos 8 --set num_frames=32 --set width=128 --set height=128

The library is :mod:`aqa.synthetic.dataset`; this wraps it in the shared command-line edge (one-line
errors, exit code 2, logging), so it lives in ``pipeline/`` like the other tools.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from aqa.config import load_config
from aqa.pipeline.cli import add_common_arguments, add_config_arguments, exit_status_epilog, run_cli
from aqa.synthetic.dataset import SyntheticDatasetConfig, generate_dataset

log = logging.getLogger(__name__)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write short synthetic sports videos with known judge scores (0-10): people cut out of the "
                    "photos ultralytics ships perform jumps, leaps and spins over a panning backdrop; the score "
                    "is set by the motion's smoothness, height, rotation and landing only. Writes "
                    "OUT_DIR/videos/*.mp4, train.txt and test.txt (name score difficulty) and manifest.json (every "
                    "video's parameters and per-frame athlete boxes). Re-running skips finished videos.",
        epilog="The score formula is in aqa/synthetic/dataset.py's docstring and in manifest.json. "
               + exit_status_epilog("done"))
    parser.add_argument("out_dir", type=Path, help="folder to write (created; resumed when it exists)")
    parser.add_argument("--videos", type=int, help=f"number of videos (default {SyntheticDatasetConfig.num_videos})")
    parser.add_argument("--seed", type=int, help=f"dataset seed (default {SyntheticDatasetConfig.seed}); "
                                                 "the same seed gives the same frames and labels (H.264 may "
                                                 "encode them to slightly different bytes)")
    add_config_arguments(parser, example="num_frames=96")
    add_common_arguments(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    # --videos and --seed are --set shortcuts, applied last: the most specific flags win.
    shortcuts = [f"{key}={value}" for key, value in (("num_videos", args.videos), ("seed", args.seed))
                 if value is not None]
    config = load_config(SyntheticDatasetConfig, args.config, [*args.overrides, *shortcuts])
    started = time.perf_counter()
    with tqdm(total=config.num_videos, unit="video", desc="synthetic", disable=args.quiet) as bar:
        generate_dataset(args.out_dir, config, progress=lambda name: bar.update())
    log.info("wrote %s in %.1f s (labels: %s, %s)", args.out_dir, time.perf_counter() - started,
             args.out_dir / "train.txt", args.out_dir / "test.txt")
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("aqa-synthetic", get_args_parser, main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
