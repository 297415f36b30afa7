"""The prediction run behind ``aqa-predict``, ``aqa.LoadedPredictor`` and the web page: one video in, a
judge-like score out, extraction included. :func:`load_predictor` and :func:`predict_video` score
one video; :class:`PredictRequest` and :func:`run` score a list of them, the command line
(:mod:`pipeline.predict.cli`) parsed into one.

The checkpoint carries the provenance of the features its head was trained on, including the
whole extraction config. Prediction rebuilds exactly that extraction (backbone and weights, clip
plan, detector, crops) and refuses, naming the difference, when this machine cannot reproduce it:
other backbone weights, another detector, features that were imported rather than extracted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aqa.data.provenance import check_reproducible, extraction_config
from aqa.errors import AqaError, VideoError, one_line, printable
from aqa.extractors.backbones import VideoBackbone, build_backbone
from aqa.extractors.parallel import FailedVideo, PoolConfig, WorkerPool
from aqa.extractors.stages import SiameseConfig, SiameseFeatures
from aqa.models.checkpoint import CheckpointInfo, check_difficulty, load_checkpoint, predict_features
from aqa.pipeline.devices import resolve_device, resolve_workers, with_detector_on
from aqa.pipeline.predict.report import build_prediction, save_prediction_overlay
from aqa.pipeline.predict.result import Prediction

log = logging.getLogger(__name__)


class PredictSetupError(AqaError):
    """An option aqa-predict cannot honour, found before any video is decoded."""


@dataclass(frozen=True)
class LoadedPredictor:
    """A loaded checkpoint with the extraction it needs, ready to score videos.

    Holds a :class:`WorkerPool` (decoding processes and detectors, kept warm between videos):
    use as a context manager, or call :meth:`close`.
    """

    head: Any
    normalizer: Any
    info: CheckpointInfo
    config: SiameseConfig
    backbone: VideoBackbone
    pool: WorkerPool
    device: str

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> LoadedPredictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def load_predictor(checkpoint: Path, *, device: str = "auto", weights: str | None = None,
                   detector_weights: str | None = None, workers: int = 0) -> LoadedPredictor:
    """Load the head, rebuild the recorded extraction and check it is the same one.

    ``workers``: decoding/detection workers that share each video (0: one per CPU core, at most 8).
    """
    device = resolve_device(device)
    head, normalizer, info = load_checkpoint(checkpoint, device=device)
    config = extraction_config(info.provenance, weights=weights, detector_weights=detector_weights)
    backbone = build_backbone(config.backbone, weights=config.weights, device=device)
    pool = WorkerPool(with_detector_on(config, device), backbone, device=device,
                      pool=PoolConfig(workers=resolve_workers(workers)))
    try:
        check_reproducible(info.provenance, backbone, pool.detector, config.resolved_input_size)
    except BaseException:
        pool.close()
        raise
    return LoadedPredictor(head, normalizer, info, config, backbone, pool, device)


StageCallback = Callable[[str, int, int], None]
"""``(stage, done, total)`` as one video is scored: ``("decoding", 0, 0)``, ``("tracking", 0,
frames)`` once the video is open, ``("features", clips_done, clips)`` after each batch of clips,
``("scoring", 0, 0)`` when the head runs."""


def predict_video(predictor: LoadedPredictor, path: Path, *, progress: bool = False, difficulty: float | None = None,
                  on_stage: StageCallback | None = None) -> tuple[Prediction, SiameseFeatures]:
    """Score one video (of this ``difficulty`` degree, when known): the typed result
    (:mod:`.result`) and the features it was made from. Every worker helps with this one video.
    ``on_stage`` follows the work (a page's progress bar); ``progress`` draws a terminal bar."""
    bar = tqdm(desc=printable(path.name), unit="clip", disable=not progress, leave=False)
    say = on_stage or (lambda stage, done, total: None)

    def on_clips(name: str, done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        say("features", done, total)

    say("decoding", 0, 0)
    try:
        (result,) = predictor.pool.extract([(path.stem, path)], on_clips=on_clips,
                                           on_tracking=lambda name, frames: say("tracking", 0, frames))
    finally:
        bar.close()
    if isinstance(result, FailedVideo):
        raise VideoError(result.reason)
    features = result.features
    say("scoring", 0, 0)
    score, details = predict_features(predictor.head, predictor.normalizer, features.scene, features.actor,
                                      streams=predictor.info.streams, difficulty=difficulty)
    return build_prediction(path, score, details, features, predictor.info, normalizer=predictor.normalizer,
                            difficulty=difficulty), features


@dataclass(frozen=True)
class PredictRequest:
    """One aqa-predict run, typed: the videos, the checkpoint and how to rebuild its extraction.

    device / weights / detector_weights / workers: as :func:`load_predictor`'s.
    difficulty: the videos' difficulty degree (a head trained "w/ DD" needs one).
    overlays: where each video's overlay goes (one path a video, in order), or None for none.
    progress: draw a terminal bar per video.
    """

    videos: Sequence[Path]
    checkpoint: Path
    device: str = "auto"
    weights: str | None = None
    detector_weights: str | None = None
    workers: int = 0
    difficulty: float | None = None
    overlays: Sequence[Path] | None = None
    progress: bool = True


@dataclass(frozen=True)
class PredictionRun:
    """What one run scored: a prediction per scored video (in order; with ``overlay`` where one was
    written) and each failure ("VIDEO" or "VIDEO (overlay)") with its one-line reason."""

    predictions: list[Prediction]
    failures: dict[str, str]


def run(request: PredictRequest, on_prediction: Callable[[Prediction], None] | None = None) -> PredictionRun:
    """Score every video of ``request``: a video that fails is a failure, the others are scored; an
    overlay that cannot be written is a failure of its own, the score stands. ``on_prediction`` gets
    each prediction as soon as it is made (aqa-predict prints it)."""
    predictor = load_predictor(request.checkpoint, device=request.device, weights=request.weights,
                               detector_weights=request.detector_weights, workers=request.workers)
    predictions, failures = [], {}
    with predictor:
        check_difficulty(predictor.head, request.difficulty)  # once, before any video is decoded
        for number, path in enumerate(request.videos):
            try:
                prediction, features = predict_video(predictor, path, progress=request.progress,
                                                     difficulty=request.difficulty)
            except AqaError as error:
                failures[str(path)] = one_line(error)
                continue
            if request.overlays:  # the score stands whatever happens to its picture
                target = request.overlays[number]
                try:
                    save_prediction_overlay(target, prediction, features,
                                            f"{prediction.score_name} {prediction.score:.2f}")
                    prediction = prediction.with_changes(overlay=str(target))
                except (AqaError, OSError) as error:
                    failures[f"{path} (overlay)"] = f"{path}: scored, but the overlay {target} was not written: " \
                                                    f"{one_line(error)}"
            predictions.append(prediction)
            if on_prediction is not None:
                on_prediction(prediction)
    return PredictionRun(predictions, failures)
