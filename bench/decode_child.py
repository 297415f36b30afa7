"""What one decoding child costs: resident memory and the time it takes to start.

Every ``aqa-extract`` worker owns a decoding child (:class:`extractors.decode_worker.DecodeWorker`),
so at ``--workers 8`` eight of them sit beside the backbone. This script imports
``pipeline.extract`` in its main module, as the ``aqa-extract`` console script does (torch, cv2,
MediaPipe), then starts children one after another and, for each, reports:

* ``start_s``: from the first request until the child answers it (start-up plus one probe of a
  small video; the parent does not wait for the child anywhere else);
* ``rss_mb`` / ``peak_rss_mb`` / ``anon_mb``: the child's VmRSS / VmHWM / RssAnon from
  ``/proc/<pid>/status`` after two extraction-sized reads (32 frames at 224 px, two 224 px crops
  each). RssAnon is the child's own memory; the rest of VmRSS is clean pages of shared libraries
  (PyAV, decord, cv2, numpy), which the parent and the other children map too;
* ``torch_mappings``: how many of the child's memory mappings are torch's shared libraries.

    python bench/decode_child.py --children 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import aqa.pipeline.extract  # noqa: E402, F401  (the parent as aqa-extract has it: torch, cv2, MediaPipe loaded)
from aqa.extractors.decode_worker import DecodeWorker  # noqa: E402
from bench.bench_videos import make_bench_video  # noqa: E402
from bench.results import json_lines  # noqa: E402


def process_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and RssAnon of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            fields[key] = int(value.split()[0]) // 1024
    return fields


def torch_mappings(pid: int) -> int:
    """Memory mappings of files under a ``torch`` folder (0 when the child never imported torch)."""
    return sum("/torch/" in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def measure_child(video: Path) -> dict[str, float]:
    """Start one decoding child, time its first answer, then read like extraction and measure it."""
    with DecodeWorker(timeout_s=120) as worker:
        started = time.perf_counter()
        info = worker.probe(str(video))
        start_s = time.perf_counter() - started
        indices = np.arange(min(32, info.num_frames))
        boxes = np.array([[[0, 0, 398, 224]] * len(indices), [[100, 20, 260, 180]] * len(indices)], np.float32)
        for first in (0, len(indices)):
            frames = np.minimum(indices + first, info.num_frames - 1)
            worker.read(str(video), frames, resize=(398, 224), crops=boxes, crop_size=224)
        status = process_status(worker.pid)
        return {"start_s": round(start_s, 3), "rss_mb": status["VmRSS"], "peak_rss_mb": status["VmHWM"],
                "anon_mb": status["RssAnon"], "torch_mappings": torch_mappings(worker.pid)}


def main(args: argparse.Namespace) -> None:
    emit = json_lines(args.out)
    with tempfile.TemporaryDirectory() as folder:
        video = make_bench_video(Path(folder) / "child.mp4", 640, 360, 64)
        runs = [measure_child(video) for _ in range(args.children)]
    for run in runs:
        emit({"bench": "decode_child", **run})
    emit({"bench": "decode_child", "summary": "median", "children": len(runs),
          **{key: statistics.median(run[key] for run in runs) for key in runs[0]}})


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=5, help="children started one after another")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
