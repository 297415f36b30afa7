"""FSPN head forward time: milliseconds per video at the paper's sizes (D = 1024 per stream, default config).

Random weights and features; a bank of M = 10 exemplars of the query's length. Two modes:

* ``pair``: one (query, exemplar) pair per video, as in training (forward only, eval mode);
* ``vote``: Eq. 17 inference, the query scored against its 10 exemplars (the exemplars are
  encoded in every call, as ``forward`` does).

Prints one JSON object per measurement (and appends them to ``--out`` when given). Copy the
numbers, the machine and the command into ``docs/benchmarks.md``.

    python bench/fspn.py --device cpu --threads 1 --lengths 9,103 --batches 1,8     # shared CPU machine
    python bench/fspn.py --device cuda --lengths 9,10,103,300 --batches 1,8,32 --out $OUT/fspn.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import json_lines  # noqa: E402
from models import build_head  # noqa: E402
from models.fspn_exemplars import Exemplars  # noqa: E402

DIM = 2 * 1024  # scene and actor I3D features side by side


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(head, call, device: torch.device, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` runs after two warm-up runs."""
    times = []
    with torch.no_grad():
        for index in range(repeats + 2):
            _sync(device)
            started = time.perf_counter()
            call()
            _sync(device)
            if index >= 2:
                times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def bench(length: int, batch: int, device: torch.device, repeats: int, emit) -> None:
    torch.manual_seed(0)
    head = build_head("fspn", None, input_dim=DIM).to(device).eval()
    head.exemplars.fill(torch.randn(10, length, DIM, device=device),
                        torch.ones(10, length, dtype=torch.bool, device=device), torch.rand(10, device=device))
    features = torch.randn(batch, length, DIM, device=device)
    mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    exemplars = Exemplars(features.roll(1, 0), mask, torch.rand(batch, device=device))
    calls = {"pair": lambda: head(features, mask, exemplars=exemplars), "vote": lambda: head(features, mask)}
    for mode, call in calls.items():
        seconds = time_forward(head, call, device, repeats)
        emit({"bench": "fspn", "mode": mode, "clips": length, "batch": batch, "device": str(device),
              "ms_per_video": round(1000 * seconds / batch, 2), "threads": torch.get_num_threads()})


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--lengths", default="9,103", help="comma-separated clip counts T")
    parser.add_argument("--batches", default="1,8", help="comma-separated videos per call")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 gives stable CPU numbers on a shared machine)")
    parser.add_argument("--out", default=None, help="append JSON lines here too")
    return parser


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    emit = json_lines(args.out, torch=torch.__version__)

    for length in (int(value) for value in args.lengths.split(",")):
        for batch in (int(value) for value in args.batches.split(",")):
            bench(length, batch, device, args.repeats, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
