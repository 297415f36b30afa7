"""aqa-app on CPU: cold start, and the time to score the 10-second clip through the page's API.

Side by side in one run, on the same checkpoint and clip (``../shared/data/videos/basketball.mp4``:
300 frames at 29.97 fps, 426x240):

* ``app_cold_start``: ``aqa-app`` launched until its page answers (imports, models, worker pool,
  the Gradio server);
* ``app_first`` / ``app_warm``: the clip uploaded and scored through the server's queue with
  ``gradio_client`` (what the page's Score button calls), the first time and again;
* ``predict_warm``: the same clip scored in this process with a ``LoadedPredictor`` and the
  overlay drawn, which is the work the app does without the web around it;
* ``aqa_predict_cli``: ``aqa-predict`` run once from the shell (load everything, then score).

    python bench/app.py --checkpoint demo_out/run/model.pt --out bench_app.jsonl
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.pipeline.environment import configure_library_environment  # noqa: E402
from bench.results import json_lines  # noqa: E402

CLIP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "videos" / "basketball.mp4"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("demo_out/run/model.pt"),
                        help="model.pt to serve (default: the demo's)")
    parser.add_argument("--clip", type=Path, default=CLIP, help="the video to score (default: the 10-second clip)")
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", default=None, help="append the JSON lines here too")
    return parser


def wait_for_page(url: str, server: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"aqa-app exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"aqa-app did not answer within {timeout:.0f} s")


def main(args: argparse.Namespace) -> None:
    configure_library_environment()
    emit = json_lines(args.out, bench="app", checkpoint=str(args.checkpoint), clip=args.clip.name)
    url = f"http://127.0.0.1:{args.port}/"
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "aqa.pipeline.app", "--checkpoint", str(args.checkpoint),
                                   "--port", str(args.port), "--workers", str(args.workers), "--work-dir", work,
                                   "--quiet"])
        try:
            wait_for_page(url, server)
            emit({"phase": "app_cold_start", "seconds": round(time.perf_counter() - started, 2)})
            from gradio_client import Client, handle_file

            from aqa.pipeline.app import checkpoint_names

            client = Client(url, verbose=False)
            (name,) = checkpoint_names([args.checkpoint])
            for phase in ("app_first", "app_warm"):
                started = time.perf_counter()
                summary = client.predict(handle_file(str(args.clip)), name, None, api_name="/score")[0]
                emit({"phase": phase, "seconds": round(time.perf_counter() - started, 2),
                      "result": summary.splitlines()[0]})
        finally:
            server.terminate()
            server.wait()

        from aqa.pipeline.app.scoring import score_upload
        from aqa.pipeline.predict import load_predictor

        with load_predictor(args.checkpoint, device="cpu", workers=args.workers) as predictor:
            score_upload(predictor, args.clip, Path(work) / "first", checkpoint_name="bench")
            started = time.perf_counter()
            result = score_upload(predictor, args.clip, Path(work) / "warm", checkpoint_name="bench")
            emit({"phase": "predict_warm", "seconds": round(time.perf_counter() - started, 2),
                  "result": result.summary.splitlines()[0]})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aqa.pipeline.predict", str(args.clip), "--checkpoint", str(args.checkpoint),
                    "--device", "cpu", "--quiet"], check=True, capture_output=True)
    emit({"phase": "aqa_predict_cli", "seconds": round(time.perf_counter() - started, 2)})


if __name__ == "__main__":
    main(get_args_parser().parse_args())
