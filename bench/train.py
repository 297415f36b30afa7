"""Training throughput of aqa-train's loop on Fis-V-sized random features.

Random clip features shaped like Fis-V (400 training videos of 124-300 clips, 100 test videos,
``--dim`` 1024) with random scores, and a head built from a preset (default CoFInAl with
``fisv-tes``: window 124, batch 32). Measures, after one warm-up epoch:

* ``device-windows``: :func:`models.training.fit`, the split resident on the device as one
  padded tensor, windows cut by tensor indexing (what aqa-train does);
* ``dataloader``: the same optimisation step fed by a ``torch.utils.data.DataLoader`` over a
  per-video Dataset that cuts a random window and a collate that pads (the usual way);
* for both, the batching alone (no model), to isolate the data path's cost;
* ``eval``: scoring every clip of the 100 test videos.

The measurements run interleaved for ``--rounds`` rounds (each after a warm-up epoch), and the
median epoch is reported, so that load from other jobs on a shared machine hits both paths alike.
Prints one JSON object per measurement (appended to ``--out`` when given) with seconds per
epoch and the extrapolation to ``--full-epochs`` (200, the paper's run). Copy the numbers, the
machine and the command into ``docs/benchmarks.md``.

    python bench/train.py --device cpu --epochs 1 --rounds 3                       # CI-sized machine
    python bench/train.py --device cuda --epochs 10 --rounds 3 --out $OUT/train.jsonl   # GPU machine
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.models import build_head, head_config  # noqa: E402
from aqa.models.training import (  # noqa: E402
    PaddedVideos,
    TrainConfig,
    deterministic_algorithms,
    evaluate,
    fit,
    resolve_window,
    sample_windows,
    seed_everything,
)
from bench.results import json_lines  # noqa: E402


def random_split(count: int, dim: int, min_clips: int, max_clips: int,
                 seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``count`` videos of ``[T_i, dim]`` standard-normal features and uniform [0, 1) scores."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_clips, max_clips + 1, (count,), generator=generator)
    return [torch.randn(int(n), dim, generator=generator) for n in lengths], torch.rand(count, generator=generator)


class WindowDataset(Dataset):
    """The per-sample path: item i is one random window of video i (``[<=C, D]``) and its score."""

    def __init__(self, clips: list[torch.Tensor], targets: torch.Tensor, window: int, seed: int) -> None:
        self.clips, self.targets, self.window = clips, targets, window
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clips = self.clips[index]
        start = int(torch.randint(0, max(len(clips) - self.window, 0) + 1, (1,), generator=self.generator))
        return clips[start:start + self.window], self.targets[index]


def pad_collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(clips) for clips, _ in items)
    features = torch.zeros(len(items), width, items[0][0].shape[1])
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    for row, (clips, _) in enumerate(items):
        features[row, :len(clips)] = clips
        mask[row, :len(clips)] = True
    return features, mask, torch.stack([target for _, target in items])


def dataloader_epochs(head, dataset: WindowDataset, config: TrainConfig, epochs: int, device: str, workers: int,
                      train_step: bool) -> list[float]:
    """Seconds of each epoch after a warm-up one, DataLoader path (with the SGD step when ``train_step``)."""
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, collate_fn=pad_collate,
                        num_workers=workers, pin_memory=device.startswith("cuda"),
                        generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(head.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    head.train()
    times = []
    for _ in range(epochs + 1):  # the first is warm-up
        _sync(device)
        started = time.perf_counter()
        with deterministic_algorithms(config.deterministic):  # as fit() trains
            _dataloader_epoch(head, loader, optimizer, device, train_step)
        _sync(device)
        times.append(time.perf_counter() - started)
    return times[1:]


def _dataloader_epoch(head, loader: DataLoader, optimizer: torch.optim.Optimizer, device: str,
                      train_step: bool) -> None:
    for features, mask, targets in loader:
        features, mask = features.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if train_step:
            loss, _ = head.loss(head(features, mask), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def device_batching_epochs(videos: PaddedVideos, config: TrainConfig, window: int, epochs: int,
                           device: str) -> list[float]:
    """Seconds of each epoch after a warm-up one, cutting the on-device windows alone (no model)."""
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs + 1):
        _sync(device)
        started = time.perf_counter()
        order = torch.randperm(len(videos), generator=generator)
        for start in range(0, len(videos), config.batch_size):
            sample_windows(videos, order[start:start + config.batch_size], window, generator)
        _sync(device)
        times.append(time.perf_counter() - started)
    return times[1:]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--head", default="cofinal")
    parser.add_argument("--preset", default="fisv-tes")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--train-videos", type=int, default=400)
    parser.add_argument("--test-videos", type=int, default=100)
    parser.add_argument("--min-clips", type=int, default=124)
    parser.add_argument("--max-clips", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs per round (after a warm-up epoch)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all measurements, interleaved")
    parser.add_argument("--full-epochs", type=int, default=200, help="the run length to extrapolate to")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--skip", default="", help="comma-separated measurements to skip: "
                                                   "device-windows,dataloader,batching-only,eval")
    parser.add_argument("--out", type=Path, help="append the JSON lines here too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    config = TrainConfig(epochs=args.epochs + 1)
    train_clips, train_targets = random_split(args.train_videos, args.dim, args.min_clips, args.max_clips, seed=1)
    test_clips, test_targets = random_split(args.test_videos, args.dim, args.min_clips, args.max_clips, seed=2)
    train = PaddedVideos.from_sequences(train_clips, train_targets, args.device)
    test = PaddedVideos.from_sequences(test_clips, test_targets, args.device)
    seed_everything(0)
    head = build_head(args.head, head_config(args.head, args.preset), input_dim=args.dim).to(args.device)
    window = resolve_window(config, head)
    emit = json_lines(
        args.out, bench="train", device=args.device, device_name=_device_name(args.device),
        threads=torch.get_num_threads(),
        torch=torch.__version__, head=args.head, preset=args.preset, dim=args.dim, window=window,
        batch_size=config.batch_size, train_videos=args.train_videos, test_videos=args.test_videos,
        clips=[args.min_clips, args.max_clips], measured_epochs=args.epochs * args.rounds)

    def report(what: str, seconds: float, **extra: object) -> None:
        emit({"measurement": what, "seconds_per_epoch": round(seconds, 4),
              f"seconds_for_{args.full_epochs}_epochs": round(seconds * args.full_epochs, 1), **extra})

    dataset = WindowDataset(train_clips, train_targets, window, seed=0)
    measurements = {
        "device-windows": lambda: [r["seconds"] for r in fit(head, train, config, seed=0).history[1:]],
        "dataloader": lambda: dataloader_epochs(head, dataset, config, args.epochs, args.device, args.workers, True),
        "batching-only:device-windows": lambda: device_batching_epochs(train, config, window, args.epochs,
                                                                       args.device),
        "batching-only:dataloader": lambda: dataloader_epochs(head, dataset, config, args.epochs, args.device,
                                                              args.workers, False),
    }
    wanted = {name: measure for name, measure in measurements.items() if name.split(":")[0] not in skip}
    samples: dict[str, list[float]] = {name: [] for name in wanted}
    for _ in range(args.rounds):  # interleaved, so that a busy spell on a shared machine hits both paths
        for name, measure in wanted.items():
            samples[name] += measure()
    for name, values in samples.items():
        report(name, statistics.median(values), min_seconds_per_epoch=round(min(values), 4),
               samples=[round(value, 4) for value in values], workers=args.workers,
               peak_memory_mb=_peak_memory(args.device))
    if "eval" not in skip:
        evaluate(head, test, config.eval_batch_size)
        _sync(args.device)
        started = time.perf_counter()
        evaluate(head, test, config.eval_batch_size)
        _sync(args.device)
        seconds = time.perf_counter() - started
        emit({"measurement": "eval", "seconds": round(seconds, 4),
              "videos_per_second": round(args.test_videos / seconds, 1)})


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"


def _peak_memory(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.startswith("cuda") else None


if __name__ == "__main__":
    main()
