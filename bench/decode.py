"""Decode and detection throughput: what the front of the pipeline can feed a GPU.

Measures, on videos it writes itself (H.264, a panning textured scene with moving figures):

* decode frames/s for decord and PyAV, at 360p and 720p, native size and with decode-time
  resize to 224 on the short side, in one process and in N processes at once;
* person-detection frames/s for each detector that can be built here (BlazePose on CPU,
  random-weight YOLO11n on CPU and, when present, CUDA with half precision), and for BlazePose
  the frames/s of following a person through frames (what aqa-extract does on missed frames).

Prints one JSON object per measurement (and appends them to ``--out`` when given). Copy the
numbers, the machine and the command into ``docs/benchmarks.md``.

    python bench/decode.py --processes 1,2 --frames 300            # CI-sized machine
    python bench/decode.py --processes 1,8,16 --frames 900 --out $OUT/decode.jsonl   # GPU machine
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.extractors.video import open_video  # noqa: E402
from aqa.pipeline.environment import configure_library_environment  # noqa: E402
from bench.bench_videos import make_bench_video  # noqa: E402
from bench.results import json_lines  # noqa: E402

SIZES = {"360p": (640, 360), "720p": (1280, 720)}
CHUNK = 64  # frames per get_batch call, as extraction reads


def decode_all(args: tuple[str, str, tuple[int, int] | None]) -> tuple[int, float]:
    """Decode every frame of a video in CHUNK-sized sorted batches; returns (frames, seconds)."""
    path, backend, resize = args
    started = time.perf_counter()
    with open_video(path, backend=backend, resize=resize, num_threads=1) as video:
        total = video.info.num_frames
        for start in range(0, total, CHUNK):
            video.get_batch(range(start, min(total, start + CHUNK)))
    return total, time.perf_counter() - started


def bench_decode(video: Path, size_name: str, processes: list[int], emit) -> None:
    width, height = SIZES[size_name]
    resize_224 = (round(224 * width / height / 2) * 2, 224)
    for backend in ("decord", "pyav"):
        for resize in (None, resize_224):
            for count in processes:
                jobs = [(str(video), backend, resize)] * count
                if count == 1:
                    started = time.perf_counter()
                    results = [decode_all(jobs[0])]
                    wall = time.perf_counter() - started
                else:
                    with mp.get_context("spawn").Pool(count) as pool:
                        pool.map(decode_all, [(str(video), backend, resize)] * count)  # start-up, imports
                        started = time.perf_counter()
                        results = pool.map(decode_all, jobs, chunksize=1)
                        wall = time.perf_counter() - started
                frames = sum(r[0] for r in results)
                emit({"bench": "decode", "video": size_name, "backend": backend,
                      "resize": f"{resize[0]}x{resize[1]}" if resize else "native", "processes": count,
                      "frames": frames, "seconds": round(wall, 3), "frames_per_s": round(frames / wall, 1)})


def bench_detection(video: Path, num_frames: int, emit) -> None:
    """Detection frames/s for each detector buildable here; a missing one is reported, not fatal."""
    import torch

    from aqa.errors import AqaError
    from aqa.extractors.detect import DetectorConfig, build_detector

    with open_video(video) as source:
        frames = source.get_batch(range(min(num_frames, source.info.num_frames)))
    setups = [("blazepose", DetectorConfig(kind="blazepose"))]
    setups.append(("yolo11n-random", DetectorConfig(kind="yolo", weights="yolo11n.yaml", device="cpu")))
    if torch.cuda.is_available():
        setups.append(("yolo11n-random", DetectorConfig(kind="yolo", weights="yolo11n.yaml", device="cuda",
                                                        batch_size=64)))
    for name, config in setups:
        try:
            detector = build_detector(config)
        except (ImportError, AqaError) as error:  # e.g. no mediapipe wheel on the GPU machine
            emit({"bench": "detect", "detector": name, "device": config.device, "error": str(error)})
            continue
        detector.detect(frames[:2])  # warm-up: model load, first-call allocations
        started = time.perf_counter()
        detector.detect(frames)
        wall = time.perf_counter() - started
        emit({"bench": "detect", "detector": name, "device": config.device, "video": "360p",
              "frames": len(frames), "seconds": round(wall, 3), "frames_per_s": round(len(frames) / wall, 1)})
        if detector.follows:  # following through misses (BlazePose's video mode) on the same frames
            started = time.perf_counter()
            detector.follow(frames)
            wall = time.perf_counter() - started
            emit({"bench": "follow", "detector": name, "device": config.device, "video": "360p",
                  "frames": len(frames), "seconds": round(wall, 3), "frames_per_s": round(len(frames) / wall, 1)})
        detector.close()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames per benchmark video")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    parser.add_argument("--sizes", default="360p,720p", help="comma-separated: 360p, 720p")
    parser.add_argument("--detect-frames", type=int, default=64, help="frames per detection run (0: skip)")
    parser.add_argument("--workdir", default=None, help="where the benchmark videos are cached")
    parser.add_argument("--out", default=None, help="append JSON lines here too")
    return parser


def main(args: argparse.Namespace) -> int:
    cache = configure_library_environment(offline=True)
    workdir = Path(args.workdir or cache / "bench")
    workdir.mkdir(parents=True, exist_ok=True)
    emit = json_lines(args.out)

    processes = [int(p) for p in args.processes.split(",")]
    videos = {}
    for size_name in args.sizes.split(","):
        width, height = SIZES[size_name]
        videos[size_name] = make_bench_video(workdir / f"bench_{size_name}_{args.frames}.mp4", width, height,
                                             args.frames)
        bench_decode(videos[size_name], size_name, processes, emit)
    if args.detect_frames:
        video_360 = videos.get("360p") or make_bench_video(workdir / f"bench_360p_{args.frames}.mp4", 640, 360,
                                                           args.frames)
        bench_detection(video_360, args.detect_frames, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
