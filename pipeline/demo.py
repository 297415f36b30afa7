"""The embedded demo (``make demo``): raw videos to judge-like scores, offline, in one command.

1. Generate the synthetic dataset (:mod:`aqa.synthetic.dataset`): real person photos performing short
   routines whose motion quality sets a 0-10 score; a train and a held-out test split.
2. ``aqa-extract`` the videos: real Kinetics-400 I3D weights, the embedded BlazePose detector,
   scene + actor streams. The demo uses 16-frame clips at 112 px so it fits a laptop CPU.
3. ``aqa-train`` a CoFInAl head on the training split (fixed epochs, three seeds).
4. ``aqa-predict`` every held-out video from its raw file, and report the Spearman correlation of
   those predictions with the true scores, a table of every held-out video (true score, predicted,
   error) and an overlay of the last one.

The model's card (``run/model_card.md``) and every score it gives say what it is: a model of the
synthetic motion above (:data:`DEMO_DESCRIPTION`), not a judge of any real sport.

Everything lands in ``--out`` (default ``demo_out/``); re-running resumes (finished videos are not
generated or extracted again). ``--quick`` is a smaller run for CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aqa.data.labels import read_label_files
from aqa.data.provenance import ProvenanceMismatchError
from aqa.extractors.clips import ClipPlanConfig
from aqa.extractors.stages import SiameseConfig
from aqa.models.metrics import spearman
from aqa.pipeline.cli import add_common_arguments, exit_status_epilog, run_cli
from aqa.pipeline.extract import ExtractConfig, find_videos, run_extraction
from aqa.pipeline.predict import load_predictor, predict_video
from aqa.pipeline.predict.report import save_prediction_overlay
from aqa.pipeline.train.cli import cli as train_cli
from aqa.synthetic.dataset import SyntheticDatasetConfig, generate_dataset

log = logging.getLogger(__name__)

DEMO_DESCRIPTION = ("aqa's demo model: learned the motion quality of synthetic routines (a photo of a person "
                    "jumping, leaping and spinning; score 0-10 by construction); not a diving, skating or any "
                    "real sport's judge")

SIZES = {  # videos, frames per video, training epochs, seeds
    "full": (40, 64, 100, "0,1,2"),
    "quick": (16, 48, 60, "0"),
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=exit_status_epilog("done"))
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for every artifact")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (CI)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    add_common_arguments(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    videos, frames, epochs, seeds = SIZES["quick" if args.quick else "full"]
    out: Path = args.out
    started = time.perf_counter()

    step("1/4 generating the synthetic dataset")
    dataset = generate_dataset(out / "dataset", SyntheticDatasetConfig(num_videos=videos, num_frames=frames,
                                                                       seed=args.seed))
    labels = read_label_files([dataset / "train.txt", dataset / "test.txt"])

    step("2/4 extracting Siamese I3D features (scene + athlete crop)")
    features = SiameseConfig(input_size=112, clips=ClipPlanConfig(clip_length=16))
    videos, config = find_videos([dataset / "videos"]).videos, ExtractConfig(features=features, device=args.device)
    try:
        written, failures = run_extraction(videos, out / "features.h5", config, labels=labels, progress=not args.quiet)
    except ProvenanceMismatchError:  # the demo's features are its own cache: an older aqa's are remade
        step(f"   {out / 'features.h5'} holds features made with other settings (an older aqa): extracting again")
        written, failures = run_extraction(videos, out / "features.h5", config, labels=labels, overwrite=True,
                                           progress=not args.quiet)
    if failures:
        print(f"demo: {len(failures)} videos failed to extract: {failures}", file=sys.stderr)
        return 1

    step("3/4 training a CoFInAl head")
    run = out / "run"
    code = train_cli([str(out / "features.h5"), "--head", "cofinal", "--score", "score", "--out", str(run),
                      "--epochs", str(epochs), "--seeds", seeds, "--device", args.device, "--overwrite",
                      "--description", DEMO_DESCRIPTION]
                     + (["--quiet"] if args.quiet else []))
    if code != 0:
        return code

    step("4/4 scoring the held-out videos from their raw files with aqa-predict")
    test = labels.select("test")
    reports = []
    with load_predictor(run / "model.pt", device=args.device) as predictor:
        for record in test:
            prediction, video_features = predict_video(predictor, dataset / "videos" / f"{record.name}.mp4")
            reports.append({**prediction.to_json(), "true_score": record.scores["score"]})
    last = reports[-1]  # the last video scored: its features are at hand
    overlay = save_prediction_overlay(out / f"{record.name}_overlay.mp4", prediction, video_features,
                                      f"predicted {last['score']:.2f} / true {last['true_score']:.2f}")
    rho = spearman([r["score"] for r in reports], [r["true_score"] for r in reports])
    (out / "heldout_predictions.json").write_text(json.dumps(reports, indent=2))
    metrics = json.loads((run / "metrics.json").read_text())

    print()
    print(f"demo: held-out Spearman rho of aqa-predict on {len(reports)} unseen videos: {rho:.3f}")
    print(f"demo: aqa-train's test rho over seeds {seeds}: {metrics['test_srcc']:.3f} "
          f"+/- {metrics['test_srcc_std'] or 0:.3f} ({metrics['selection']})")
    print("\n".join(f"demo: {line}" for line in heldout_table(reports)))
    print(f"demo: artifacts in {out}/ (features.h5, run/model.pt, run/*.png, {overlay.name}, "
          f"heldout_predictions.json) after {time.perf_counter() - started:.0f} s")
    return 0


def heldout_table(reports: Sequence[dict]) -> list[str]:
    """Every held-out video's true and predicted score and the error (predicted - true), in the order
    scored, then the mean absolute error: the whole picture, not one chosen example."""
    width = max(len("video"), *(len(Path(report["video"]).name) for report in reports))
    lines = [f"{'video':<{width}}  {'true':>6}  {'predicted':>9}  {'error':>6}"]
    lines += [f"{Path(report['video']).name:<{width}}  {report['true_score']:>6.2f}  {report['score']:>9.2f}  "
              f"{report['score'] - report['true_score']:>+6.2f}" for report in reports]
    errors = [abs(report["score"] - report["true_score"]) for report in reports]
    lines.append(f"mean absolute error {sum(errors) / len(errors):.2f} over {len(reports)} videos (scores 0-10)")
    return lines


def step(text: str) -> None:
    print(f"demo: {text}", flush=True)


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m aqa.pipeline.demo`` (what ``make demo`` runs)."""
    return run_cli("aqa-demo", get_args_parser, main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
