"""FSPN head speed at the paper's sizes (default config): forward milliseconds per video, or seconds
per training epoch and per evaluation on Fis-V-shaped programs.

``--mode forward`` (D = 1024 per stream, input 2 x 1024): random weights and features; a bank of
M = 10 exemplars of the query's length. Three measurements:

* ``pair``: one (query, exemplar) pair per video, as in training (forward only, eval mode);
* ``vote``: Eq. 17 inference, the query scored against its 10 exemplars (the bank's encodings
  are computed in the first call and reused while the weights stay the same; ``vote-cold``
  clears that cache before every call).

``--mode train``: one stream of 1024-d clips (``use_actor=false``, as ``aqa-train --head fspn
--set head.use_actor=false`` on imported features), the real Fis-V clip features when ``--data``
holds ``features/<id>.npy`` and ``train.txt`` (else random programs of 124-300 clips), 320
training and 80 held-out programs, training windows of ``--window`` clips, the parser's inputs
capped at ``--parse-max-steps`` (the config's default unless given; 0 for no cap).
``models.training.fit`` with ``models.fspn_training.pair_recipe`` times ``--epochs`` epochs
(``s_per_epoch``, the median), then ``models.training.evaluate`` votes on the held-out programs
(``eval_s``).

Prints one JSON object per measurement (and appends them to ``--out`` when given). Copy the
numbers, the machine and the command into ``docs/benchmarks.md``.

    python bench/fspn.py --device cpu --threads 1 --lengths 9,103 --batches 1,8     # shared CPU machine
    python bench/fspn.py --device cuda --lengths 9,10,103,300 --batches 1,8,32 --out $OUT/fspn.jsonl
    python bench/fspn.py --mode train --threads 1 --epochs 1                          # Fis-V, one epoch
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.models import build_head  # noqa: E402
from aqa.models.fspn_exemplars import Exemplars  # noqa: E402
from aqa.models.fspn_training import pair_recipe  # noqa: E402
from aqa.models.training import PaddedVideos, TrainConfig, evaluate, fit  # noqa: E402
from bench.results import json_lines  # noqa: E402

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
    calls = {"pair": lambda: head(features, mask, exemplars=exemplars), "vote": lambda: head(features, mask),
             "vote-cold": lambda: (head.clear_bank_cache(), head(features, mask))}
    for mode, call in calls.items():
        seconds = time_forward(head, call, device, repeats)
        emit({"bench": "fspn", "mode": mode, "clips": length, "batch": batch, "device": str(device),
              "ms_per_video": round(1000 * seconds / batch, 2), "threads": torch.get_num_threads()})


def fisv_programs(folder: Path, count: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    """``count`` programs ``[T_i, 1024]`` (float32) and normalised TES ``[count]``: the real Fis-V clip
    features under ``folder`` when it has them, else random programs of 124-300 clips; and which."""
    labels = folder / "train.txt"
    if labels.is_file() and (folder / "features").is_dir():
        rows = [line.split() for line in labels.read_text().splitlines() if line.strip()][:count]
        clips = [torch.from_numpy(np.load(folder / "features" / f"{row[0]}.npy")).float() for row in rows]
        scores = torch.tensor([float(row[1]) for row in rows])
        source = str(folder)
    else:
        generator = torch.Generator().manual_seed(seed)
        lengths = torch.randint(124, 301, (count,), generator=generator)
        clips = [torch.randn(int(length), 1024, generator=generator) for length in lengths]
        scores, source = torch.rand(count, generator=generator), "random"
    scores = (scores - scores.min()) / (scores.max() - scores.min()) * 0.999  # [0, 1)
    return clips, scores, source


def bench_training(args: argparse.Namespace, device: torch.device, emit) -> None:
    """Seconds per training epoch (``fit`` + ``pair_recipe``) and per held-out evaluation, Fis-V sizes."""
    clips, scores, source = fisv_programs(Path(args.data), args.train_videos + args.eval_videos, seed=0)
    train = PaddedVideos.from_sequences(clips[: args.train_videos], scores[: args.train_videos], device)
    held_out = PaddedVideos.from_sequences(clips[args.train_videos:], scores[args.train_videos:], device)
    torch.manual_seed(0)
    overrides = {"use_actor": False}
    if args.parse_max_steps is not None:
        overrides["parse_max_steps"] = args.parse_max_steps
    head = build_head("fspn", overrides, input_dim=clips[0].shape[1]).to(device)
    config = TrainConfig(epochs=args.epochs, window=args.window)
    result = fit(head, train, config, seed=0, recipe=pair_recipe(head, train, args.window))
    seconds = [record["seconds"] for record in result.history]
    _sync(device)
    started = time.perf_counter()
    evaluate(head, held_out, config.eval_batch_size)
    _sync(device)
    eval_seconds = time.perf_counter() - started
    emit({"bench": "fspn-train", "data": source, "train_videos": len(train), "eval_videos": len(held_out),
          "clips": f"{int(train.lengths.min())}-{int(train.lengths.max())}", "window": args.window,
          "parse_max_steps": head.config.parse_max_steps, "epochs": args.epochs,
          "s_per_epoch": round(statistics.median(seconds), 2), "eval_s": round(eval_seconds, 2),
          "device": str(device), "threads": torch.get_num_threads()})


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("forward", "train"), default="forward",
                        help="forward: ms per video; train: s per epoch and per evaluation on Fis-V sizes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--lengths", default="9,103", help="comma-separated clip counts T")
    parser.add_argument("--batches", default="1,8", help="comma-separated videos per call")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--data", default="/work/shared/data/fisv",
                        help="train mode: a folder with features/<id>.npy and train.txt (random programs if absent)")
    parser.add_argument("--epochs", type=int, default=1, help="train mode: epochs to time (median reported)")
    parser.add_argument("--window", type=int, default=300, help="train mode: clips per training window")
    parser.add_argument("--parse-max-steps", type=int, default=None,
                        help="train mode: FSPN's parse_max_steps (0: no cap; default the config's)")
    parser.add_argument("--train-videos", type=int, default=320, help="train mode: training programs")
    parser.add_argument("--eval-videos", type=int, default=80, help="train mode: held-out programs voted on")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 gives stable CPU numbers on a shared machine)")
    parser.add_argument("--out", default=None, help="append JSON lines here too")
    return parser


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    emit = json_lines(args.out, torch=torch.__version__)
    if args.mode == "train":
        bench_training(args, device, emit)
        return 0
    for length in (int(value) for value in args.lengths.split(",")):
        for batch in (int(value) for value in args.batches.split(",")):
            bench(length, batch, device, args.repeats, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
