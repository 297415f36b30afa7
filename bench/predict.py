"""aqa-predict latency on a long video: cold (load everything, then score) and warm (score again).

Writes a 640x360 H.264 video of ``--seconds`` (default 180 s, the issue's 3-minute case) with
the benchmarks' textured scene, then in this one process:

* cold: load the checkpoint, rebuild the recorded extraction (backbone weights, detector), score;
* warm: score the same video again with everything loaded.

Prints one JSON line per phase. The checkpoint decides the extraction (backbone, clip plan,
input size, detector); the demo's (``demo_out/run/model.pt``) is I3D at 112 px with 16-frame clips
and BlazePose. Without ``--checkpoint`` the script first makes one where it runs (a few synthetic
videos extracted with real I3D weights at 224 px, 32-frame clips and the detector that suits the
device, YOLO11n on CUDA, then a 2-epoch MLP head): the latency depends on the extraction, not on
how well the head was trained, and the GPU machine has no mediapipe for the demo's BlazePose.

    python bench/predict.py --checkpoint demo_out/run/model.pt --device cpu
    python bench/predict.py --checkpoint demo_out/run/model.pt --device cpu \
        --video ../shared/data/footage/vault_biles_worlds2023_720p.mp4        # a real 51-second clip
    python bench/predict.py --device cuda --workers 16 --i3d-weights .i3d/i3d-kinetics-400.ckpt --out $OUT/p.jsonl
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.pipeline.environment import configure_library_environment  # noqa: E402
from bench.bench_videos import make_bench_video  # noqa: E402
from bench.results import json_lines  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="model.pt to time (default: make one here, see above)")
    parser.add_argument("--i3d-weights", default=None, help="I3D weights file for the checkpoint made here")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=int, default=180, help="video length at 25 fps")
    parser.add_argument("--video", type=Path, default=None,
                        help="time this video instead of the written one (e.g. the vault clip of issue 28)")
    parser.add_argument("--workers", type=int, default=0, help="aqa-predict --workers (0: one per core, at most 8)")
    parser.add_argument("--workdir", default=None, help="where the benchmark video is cached")
    parser.add_argument("--out", default=None, help="append the JSON lines here too")
    parser.add_argument("--make-checkpoint-in", type=Path, help=argparse.SUPPRESS)  # the child that makes one
    return parser


def make_checkpoint(folder: Path, args: argparse.Namespace) -> None:
    """A checkpoint to time: 8 synthetic videos, I3D at 224 px, the device's detector, 2 MLP epochs."""
    from aqa.extractors.detect import DetectorConfig
    from aqa.extractors.stages import SiameseConfig
    from aqa.pipeline.devices import resolve_device
    from aqa.pipeline.extract import ExtractConfig, find_videos, run_extraction
    from aqa.pipeline.train.cli import cli as train_cli
    from aqa.synthetic.dataset import SyntheticDatasetConfig, generate_dataset

    device = resolve_device(args.device)
    detector = (DetectorConfig(kind="yolo", weights="yolo11n.yaml", device=device, batch_size=64)
                if device.startswith("cuda") else DetectorConfig(kind="blazepose"))
    dataset = generate_dataset(folder / "dataset", SyntheticDatasetConfig(num_videos=8, num_frames=64, seed=0))
    config = ExtractConfig(features=SiameseConfig(weights=args.i3d_weights, detector=detector), device=device)
    _, failures = run_extraction(find_videos([dataset / "videos"]), folder / "features.h5", config, progress=False,
                                 labels=None)
    if failures:
        raise RuntimeError(f"benchmark checkpoint: extraction failed: {failures}")
    code = train_cli([str(folder / "features.h5"), "--labels", str(dataset / "train.txt"), "--labels",
                      str(dataset / "test.txt"), "--head", "mlp", "--score", "score", "--epochs", "2",
                      "--out", str(folder / "run"), "--device", device, "--quiet"])
    if code != 0:
        raise RuntimeError(f"benchmark checkpoint: aqa-train exited {code}")


def main(args: argparse.Namespace) -> int:
    cache = configure_library_environment(offline=True)
    workdir = Path(args.workdir or cache / "bench")
    workdir.mkdir(parents=True, exist_ok=True)
    if args.video is not None:
        video, described = args.video, args.video.name
    else:
        video = make_bench_video(workdir / f"bench_640x360_{args.seconds * 25}_predict.mp4", 640, 360,
                                 args.seconds * 25)
        described = f"640x360 {args.seconds} s"

    if args.make_checkpoint_in:
        make_checkpoint(args.make_checkpoint_in, args)
        return 0
    checkpoint = args.checkpoint
    if checkpoint is None:  # made in a child process, so this one still starts cold
        folder = workdir / "predict_checkpoint"
        command = [sys.executable, __file__, f"--make-checkpoint-in={folder}", f"--device={args.device}"]
        subprocess.run(command + ([f"--i3d-weights={args.i3d_weights}"] if args.i3d_weights else []), check=True)
        checkpoint = folder / "run" / "model.pt"
    started = time.perf_counter()
    from aqa.pipeline.predict import load_predictor, predict_video

    with load_predictor(checkpoint, device=args.device, workers=args.workers,
                        weights=args.i3d_weights) as predictor:
        loaded = time.perf_counter()
        first, _ = predict_video(predictor, video)
        cold = time.perf_counter()
        second, _ = predict_video(predictor, video)
        warm = time.perf_counter() - cold
    records = [
        {"phase": "cold", "seconds": round(cold - started, 2), "load_seconds": round(loaded - started, 2)},
        {"phase": "warm", "seconds": round(warm, 2)},
    ]
    emit = json_lines(args.out, bench="predict", device=predictor.device, video=described,
                      frames=first.frames, clips=first.clips, backbone=predictor.config.backbone,
                      workers=predictor.pool.workers,
                      input_size=predictor.config.resolved_input_size)
    for record in records:
        emit(record)
    assert first.score == second.score, "the same video must score the same twice"
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
