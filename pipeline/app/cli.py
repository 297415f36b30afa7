"""``aqa-app``'s command line: the flags parsed into an :class:`AppRequest`, then
:func:`~pipeline.app.serve.run` (which serves until Ctrl-C)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from aqa.pipeline.app.serve import AppRequest, run
from aqa.pipeline.cli import add_common_arguments, add_workers_argument, exit_status_epilog, run_cli


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve a web page that scores an uploaded video: the score with its grade or sub-actions, the "
                    "overlay video with the tracked athlete, a timeline plot, warnings and the JSON report.",
        epilog="Without --checkpoint the page offers the model `make demo` trained (demo_out/run/model.pt, looked "
               "for in this folder, then in aqa's source checkout) and its held-out videos as examples. Uploads "
               "over --max-upload-mb, files that are not videos and videos that cannot be decoded get a message in "
               "the page. " + exit_status_epilog("stopped with Ctrl-C"))
    parser.add_argument("--checkpoint", type=Path, action="append",
                        help="model.pt written by aqa-train; repeat to offer several (picked from a list in the page)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-concurrent", type=int, default=1,
                        help="videos scored at once; the others wait in the queue (default 1)")
    parser.add_argument("--max-queue", type=int, default=8, help="videos waiting at most; more are refused (default 8)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200 MB)")
    parser.add_argument("--max-minutes", type=float, default=10.0,
                        help="longest video scored, in minutes, and as many frames as that lasts at 30 fps "
                             "(default 10); a longer one is refused in one line before any frame is decoded")
    parser.add_argument("--examples", type=Path, nargs="+", metavar="VIDEO",
                        help="videos offered as examples in the page (default: the demo's held-out videos)")
    parser.add_argument("--work-dir", type=Path,
                        help="where each job's overlay and JSON are written (default: a new temporary folder; "
                             "jobs older than an hour are deleted)")
    parser.add_argument("--device", default="auto",
                        help="where the backbone, a YOLO person detector (BlazePose always on the CPU) and the head "
                             "run: cpu, cuda, cuda:N or auto (default: cuda when visible)")
    add_workers_argument(parser)
    add_common_arguments(parser)
    return parser


def request_from_args(args: argparse.Namespace) -> AppRequest:
    return AppRequest(checkpoints=args.checkpoint, host=args.host, port=args.port, max_concurrent=args.max_concurrent,
                      max_queue=args.max_queue, max_upload_mb=args.max_upload_mb, max_minutes=args.max_minutes,
                      examples=args.examples,
                      work_dir=args.work_dir, device=args.device, workers=args.workers)


def main(args: argparse.Namespace) -> int:
    return run(request_from_args(args))


def cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``aqa-app``."""
    return run_cli("aqa-app", get_args_parser, main, argv)

