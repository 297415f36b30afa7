"""``aqa-predict``'s command line: the flags parsed into a :class:`PredictRequest` (the overlay
option checked first), then :func:`~pipeline.predict.predictor.run`; each report printed as text
or all as one JSON document, each failure as one line on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from aqa.errors import printable
from aqa.pipeline.cli import add_common_arguments, add_workers_argument, exit_status_epilog, run_cli
from aqa.pipeline.predict.predictor import PredictRequest, PredictSetupError, run
from aqa.pipeline.predict.report import format_report
from aqa.pipeline.predict.result import Prediction


def overlay_paths(option: Path, videos: Sequence[Path]) -> list[Path]:
    """Where ``--save-overlay`` puts each video's overlay: the file it names, for one video; for
    several (or a folder), ``<stem>_overlay.mp4`` in that folder, numbered ``<stem>_2_overlay.mp4``...
    where that name is already another video's overlay or one of the videos (two ``dive.mp4`` from
    two days' folders must not draw over each other)."""
    if not (len(videos) > 1 or option.is_dir()):
        return [option]
    taken = {video.resolve() for video in videos}
    paths = []
    for video in videos:
        path, number = option / f"{video.stem}_overlay.mp4", 1
        while path.resolve() in taken:
            number += 1
            path = option / f"{video.stem}_{number}_overlay.mp4"
        taken.add(path.resolve())
        paths.append(path)
    return paths


OVERLAY_SUFFIXES = (".mp4", ".png")


def check_overlay_option(option: Path | None, videos: Sequence[Path]) -> list[Path] | None:
    """Each video's overlay path (:func:`overlay_paths`), or None without ``--save-overlay``. Refuses,
    before any video is decoded, an unknown extension, a folder that does not exist and cannot be
    made, and an overlay that would replace one of the videos (``--save-overlay dive.mp4`` for
    ``dive.mp4``, through a link too)."""
    if option is None:
        return None
    many = len(videos) > 1 or option.is_dir()
    if not many and option.suffix.lower() not in OVERLAY_SUFFIXES:
        raise PredictSetupError(f"--save-overlay {option}: unknown extension {option.suffix or '(none)'!r}; "
                                f"use {' or '.join(OVERLAY_SUFFIXES)}, or a folder")
    paths = overlay_paths(option, videos)
    for path in paths:
        for video in videos:
            if path.resolve() == video.resolve() or (path.exists() and video.exists() and path.samefile(video)):
                raise PredictSetupError(f"--save-overlay {option}: {path} is the input video {video}; an overlay "
                                        "never replaces a video, name another file")
    folder = option if many else option.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PredictSetupError(f"--save-overlay {option}: cannot create {folder}: {error.strerror or error}") from None
    return paths


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Score videos with a trained head: runs the extraction recorded in the checkpoint, then the "
                    "head, and prints the score with its grade and per-procedure detail.",
        epilog="A video that cannot be read fails alone. A score comes with warnings (text and JSON) when the "
               "athlete was never found, was not located on more than a fifth of the scored frames (the time ranges "
               "are named), or the video is shorter than one clip. An unknown --save-overlay extension "
               "is refused before any work; an overlay that cannot be written keeps the score (exit 1). A "
               "checkpoint holding anything but tensors and plain values is refused, never run. "
               + exit_status_epilog("every video scored", "some videos failed, or an overlay could not be written "
                                    "(each says why; the others are scored)"))
    parser.add_argument("videos", nargs="+", type=Path, help="video files to score")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model.pt written by aqa-train")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument("--device", default="auto",
                        help="where the backbone, a YOLO person detector (BlazePose always on the CPU) and the head "
                             "run: cpu, cuda, cuda:N or auto (default: cuda when visible)")
    add_workers_argument(parser)
    parser.add_argument("--weights", help="backbone weights file, if not at its default place")
    parser.add_argument("--detector-weights", help="YOLO weights file, when the checkpoint's features used YOLO")
    parser.add_argument("--difficulty", type=float,
                        help="the videos' difficulty degree: needed by a head trained on score / difficulty "
                             "(FSPN w/ DD), and picks an FSPN head's exemplars of that difficulty")
    parser.add_argument("--save-overlay", type=Path, metavar="PATH",
                        help="write the video with the tracked athlete and a timeline (.mp4, or .png for a "
                             "strip); a folder when several videos are given (NAME_overlay.mp4 each, numbered "
                             "NAME_2_overlay.mp4... where names repeat). Never one of the videos; written to a "
                             "temporary file and renamed into place")
    add_common_arguments(parser)
    return parser


def request_from_args(args: argparse.Namespace) -> PredictRequest:
    """The parsed command line as a :class:`PredictRequest` (the overlay paths checked before any work,
    and before the pool starts)."""
    return PredictRequest(videos=list(args.videos), checkpoint=args.checkpoint, device=args.device,
                          weights=args.weights, detector_weights=args.detector_weights, workers=args.workers,
                          difficulty=args.difficulty, overlays=check_overlay_option(args.save_overlay, args.videos),
                          progress=not (args.quiet or args.json))


def print_report(prediction: Prediction) -> None:
    print(printable(format_report(prediction) + (f"\n  overlay: {prediction.overlay}" if prediction.overlay else "")))


def main(args: argparse.Namespace) -> int:
    done = run(request_from_args(args), on_prediction=None if args.json else print_report)
    if args.json:
        json.dump({"checkpoint": str(args.checkpoint), "predictions": [found.to_json() for found in done.predictions],
                   "failures": [{"video": v, "error": e} for v, e in done.failures.items()]}, sys.stdout, indent=2)
        print()
    for reason in done.failures.values():
        print(printable(f"aqa-predict: error: {reason}"), file=sys.stderr)
    return 1 if done.failures else 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``aqa-predict``."""
    return run_cli("aqa-predict", get_args_parser, main, argv)

