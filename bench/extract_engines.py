"""The Ray engine's throughput against the local engine's, same videos, same machine, one run.

    python bench/extract_engines.py --videos 8 --frames 96 --input-size 112 --repeats 2

Makes ``--videos`` synthetic videos (``aqa.synthetic``), then extracts them with each engine into
a fresh store, alternating engines over ``--repeats`` rounds so that drift in the machine's load
hits both. Small inputs on purpose: the data path (planning, hand-offs, writing) is what the
engines do differently; the backbone is the same code in both. Each record: the engine, the
extraction's seconds and frames/s (pool or actors built and torn down included: a user's run pays
them), and for Ray, separately, the seconds to start the local Ray instance (``ray.init``, which
a cluster pays once, not per run) and the seconds until every actor is built (its process
imports torch and loads its model; the local engine's process has torch loaded already here),
with the frames/s after that. The local engine uses this machine's cores through its worker
threads; the Ray engine gets the same cores (``num_cpus`` = the machine's) and no GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import json_lines  # noqa: E402


def make_videos(folder: Path, count: int, frames: int) -> list[tuple[str, Path]]:
    from aqa.synthetic.dataset import SyntheticDatasetConfig, generate_dataset

    config = SyntheticDatasetConfig(num_videos=count, num_frames=frames, width=320, height=240)
    generate_dataset(folder, config)
    return sorted((path.stem, path) for path in (folder / "videos").glob("*.mp4"))


def busy_cpu_seconds() -> float:
    """Seconds the machine's CPUs were busy since boot (all processes, Ray's included): over a run,
    more busy seconds mean more work, more wall seconds at equal busy ones mean idle cores."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main(args: argparse.Namespace) -> None:
    import ray

    from aqa.extractors.clips import ClipPlanConfig
    from aqa.extractors.detect import DetectorConfig
    from aqa.pipeline.extract import ExtractConfig, run_extraction
    from aqa.pipeline.extract.ray import RayConfig, run_ray_extraction, start_ray

    emit = json_lines(args.out, bench="extract_engines", videos=args.videos, frames=args.frames,
                      input_size=args.input_size)
    base = ExtractConfig(device="cpu")
    config = dataclasses.replace(base, features=dataclasses.replace(
        base.features, input_size=args.input_size, clips=ClipPlanConfig(clip_length=args.clip_length),
        detector=DetectorConfig(kind="blazepose")))
    on_ray = dataclasses.replace(config, ray=RayConfig(gpus_per_actor=0))  # no GPU asked for on this machine
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        videos = make_videos(Path(scratch) / "data", args.videos, args.frames)
        total_frames = args.videos * args.frames
        started = time.perf_counter()
        start_ray(None, num_cpus=cpus, num_gpus=0)
        emit({"engine": "ray", "what": "ray.init (local instance)", "seconds": round(time.perf_counter() - started, 2)})
        for round_ in range(args.repeats):
            for engine in ("local", "ray"):
                out = Path(scratch) / f"{engine}-{round_}"
                started = time.perf_counter()
                startup, busy = 0.0, busy_cpu_seconds()
                if engine == "local":
                    written, _ = run_extraction(videos, out.with_suffix(".h5"), config, progress=False)
                else:
                    summary = run_ray_extraction(videos, out, on_ray, progress=False)
                    written, startup = summary.written, summary.startup_s
                seconds = time.perf_counter() - started
                assert len(written) == args.videos, f"{engine}: {len(written)} of {args.videos} videos written"
                record = {"engine": engine, "round": round_, "seconds": round(seconds, 2),
                          "frames_per_s": round(total_frames / seconds, 1),
                          "cpu_busy_s": round(busy_cpu_seconds() - busy, 1)}
                if engine == "ray":  # the actors' start (worker processes import torch, build models)
                    record.update(actors_ready_s=round(startup, 2),
                                  frames_per_s_after_start=round(total_frames / (seconds - startup), 1))
                emit(record)
        ray.shutdown()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=96, help="frames per video")
    parser.add_argument("--input-size", type=int, default=112, help="backbone input (small: the data path matters)")
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="rounds, engines alternating")
    parser.add_argument("--out", help="also append the records (JSON lines) to this file")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
