"""aqa-predict latency on a long video: cold (load everything, then score) and warm (score again).

Writes a 640x360 H.264 video of ``--seconds`` (default 180 s, the issue's 3-minute case) with
the benchmarks' textured scene, then in this one process:

* cold: load the checkpoint, rebuild the recorded extraction (backbone weights, detector), score;
* warm: score the same video again with everything loaded.

Prints one JSON line per phase. The checkpoint decides the extraction (backbone, clip plan,
input size); the demo's (``demo_out/run/model.pt``) is I3D at 112 px with 16-frame clips.

    python bench/predict.py --checkpoint demo_out/run/model.pt --device cpu
    python bench/predict.py --checkpoint demo_out/run/model.pt --device cuda --out $OUT/predict.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_videos import make_bench_video  # noqa: E402
from bench.results import json_lines  # noqa: E402
from pipeline.environment import configure_library_environment  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=int, default=180, help="video length at 25 fps")
    parser.add_argument("--workdir", default=None, help="where the benchmark video is cached")
    parser.add_argument("--out", default=None, help="append the JSON lines here too")
    return parser


def main(args: argparse.Namespace) -> int:
    cache = configure_library_environment(offline=True)
    workdir = Path(args.workdir or cache / "bench")
    workdir.mkdir(parents=True, exist_ok=True)
    video = make_bench_video(workdir / f"bench_640x360_{args.seconds * 25}_predict.mp4", 640, 360, args.seconds * 25)

    started = time.perf_counter()
    from extractors.decode_worker import DecodeWorker
    from pipeline.predict import load_predictor, predict_video

    predictor = load_predictor(args.checkpoint, device=args.device)
    loaded = time.perf_counter()
    with DecodeWorker(timeout_s=600) as decoder:
        first, _ = predict_video(predictor, decoder, video)
        cold = time.perf_counter()
        second, _ = predict_video(predictor, decoder, video)
        warm = time.perf_counter() - cold
    records = [
        {"phase": "cold", "seconds": round(cold - started, 2), "load_seconds": round(loaded - started, 2)},
        {"phase": "warm", "seconds": round(warm, 2)},
    ]
    emit = json_lines(args.out, bench="predict", device=predictor.device, video=f"640x360 {args.seconds} s",
                      frames=first["frames"], clips=first["clips"], backbone=predictor.config.backbone,
                      input_size=predictor.config.input_size)
    for record in records:
        emit(record)
    assert first["score"] == second["score"], "the same video must score the same twice"
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
