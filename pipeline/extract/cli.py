"""``aqa-extract``'s command line: the flags parsed into an :class:`ExtractRequest` (the config
resolved first), then :func:`~pipeline.extract.extraction.run`; its outcome printed, one line a
failed video, and turned into the exit status."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from aqa.errors import printable
from aqa.extractors.backbones import list_backbones
from aqa.pipeline.cli import (
    EXIT_SOME_FAILED,
    add_common_arguments,
    add_config_arguments,
    add_label_arguments,
    add_workers_argument,
    exit_status_epilog,
    run_cli,
)
from aqa.pipeline.extract.extraction import (
    SETTINGS,
    ExtractConfig,
    ExtractionResult,
    ExtractRequest,
    resolve_extract_config,
    run,
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Extract Siamese clip features (whole scene + athlete crop, one backbone) from videos "
                    "into a resumable HDF5 feature store.",
        epilog="Re-running with the same output skips finished videos and redoes a damaged one (checksums). A "
               "video that cannot be read or whose name cannot key the store fails alone; impossible settings, "
               "an unreadable label file and an output that cannot be written (a full disk included) stop the run "
               "with one line, finished videos kept. docs/video-inputs.md lists every case. "
               + exit_status_epilog("all done", "some videos failed (each named with its reason; the others are kept)"))
    parser.add_argument("videos", nargs="+", type=Path, help="video files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="feature shard to write (.h5); a folder of shards with --engine ray or --num-shards")
    parser.add_argument("--backbone", choices=list_backbones(), help="clip backbone (default: i3d, Kinetics-400)")
    parser.add_argument("--weights", help="backbone weights file (default: the backbone's offline source)")
    parser.add_argument("--detector", choices=["auto", "yolo", "blazepose"],
                        help="person detector: yolo needs --detector-weights (or network access); auto uses "
                             "YOLO when its weights resolve, else the embedded BlazePose (default)")
    parser.add_argument("--detector-weights", help="YOLO weights file, e.g. yolo11n.pt")
    parser.add_argument("--every-k", type=int, help="run the detector on every k-th frame (default 1)")
    parser.add_argument("--clip-length", type=int, help="frames per clip (default 32)")
    parser.add_argument("--target-fps", type=float, help="resample to this frame rate before cutting clips")
    parser.add_argument("--device", help="where the backbone and a YOLO person detector run (BlazePose always on "
                        "the CPU; with --engine ray the detector runs on the planners' CPUs): cpu, cuda, cuda:N or "
                        "auto (default: cuda when visible)")
    add_workers_argument(parser, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace the output instead of resuming into it")
    many = parser.add_argument_group("many machines (docs/scale-out.md)")
    many.add_argument("--engine", choices=["local", "ray"],
                      help="local: this machine's worker pool (default); ray: a Ray cluster, -o a folder of shards "
                           "(one per writer actor) with index.json")
    many.add_argument("--ray-address", help="the cluster to join (auto, HOST:PORT); default: start Ray on this machine")
    many.add_argument("--gpus-per-actor", type=float,
                      help="GPUs per backbone actor, fractions allowed (default 1; ignored without GPUs)")
    many.add_argument("--num-shards", type=int, help="split the videos over N independent jobs (SLURM arrays) "
                                                      "by a stable hash of their names; -o is the shared folder")
    many.add_argument("--shard-index", type=int, help="which of the --num-shards jobs this is (0 .. N-1); "
                                                       "afterwards aqa-index STORE_DIR writes the index")
    add_label_arguments(parser)
    add_config_arguments(parser, example="features.clips.clip_length=16")
    add_common_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> ExtractConfig:
    """Defaults < --config YAML < --set overrides < the dedicated flags."""
    return resolve_extract_config(config_file=args.config, set_text=args.overrides,
                                  settings={name: getattr(args, name) for name in SETTINGS})


def request_from_args(args: argparse.Namespace) -> ExtractRequest:
    """The parsed command line as a :class:`ExtractRequest` (the config resolved first, so an
    impossible setting is refused before any video is looked at)."""
    return ExtractRequest(videos=list(args.videos), output=args.output, config=config_from_args(args),
                          labels=list(args.labels), columns=args.columns, overwrite=args.overwrite,
                          num_shards=args.num_shards, shard_index=args.shard_index, progress=not args.quiet)


def extract_from_args(args: argparse.Namespace) -> ExtractionResult:
    """The command line's path: parse into a request, then :func:`run`."""
    return run(request_from_args(args))


def main(args: argparse.Namespace) -> int:
    result = extract_from_args(args)
    print(printable(f"aqa-extract: {len(result.written)} extracted, {result.already_done} already done, "
                    f"{len(result.failures)} failed -> {result.store}"))
    for name, reason in result.failures.items():
        print(printable(f"  failed {name}: {reason}"))
    return EXIT_SOME_FAILED if result.failures else 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``aqa-extract``."""
    return run_cli("aqa-extract", get_args_parser, main, argv)

