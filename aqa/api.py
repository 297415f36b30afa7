"""The public Python API: the three stages as calls, for people who script rather than shell out.

    import aqa

    result = aqa.extract(["videos/"], "features.h5", labels=["train.txt"], columns="id,score")
    metrics = aqa.train("features.h5", head="cofinal", out="runs/model", epochs=50)
    with aqa.Predictor("runs/model/model.pt") as predictor:
        prediction = predictor.score("dive.mp4")
    print(prediction.score, prediction.grade, prediction.warnings)
    with aqa.open_store("features.h5") as store:
        video = store.read(store.names[0])

Each call takes the settings its command-line tool takes, as keywords named like the long options
(``every_k=4`` is ``--every-k 4``, ``score=["TES", "PCS"]`` repeats ``--score``), plus
``overrides``: dotted keys as ``--set`` takes them (``{"features.clips.clip_length": 16}``). The
tools and these functions run the same code (``extract_from_args``, ``train_from_args``,
``load_predictor``/``predict_video``), so a setting means the same in both, and a wrong one raises
:class:`aqa.config.ConfigError` with the tool's one-line message instead of exiting.
Progress bars are off unless ``progress=True``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqa.config import ConfigError
from aqa.data.feature_store import FeatureStore, open_feature_store
from aqa.pipeline import extract as extract_tool
from aqa.pipeline import train as train_tool
from aqa.pipeline.checkpoint import check_difficulty
from aqa.pipeline.environment import configure_library_environment
from aqa.pipeline.extract import ExtractionResult
from aqa.pipeline.predict import load_predictor, predict_video, timeline_curve

__all__ = ["ExtractionResult", "Prediction", "Predictor", "extract", "open_store", "train"]

PathLike = str | Path


def extract(videos: PathLike | Iterable[PathLike], store: PathLike, *, progress: bool = False,
            overrides: Mapping[str, Any] | None = None, **settings: Any) -> ExtractionResult:
    """Extract the Siamese clip features of ``videos`` (files and/or folders) into ``store`` (.h5).

    Resumes into an existing store (``overwrite=True`` replaces it). A video that cannot be read
    fails alone: it is in ``failures`` with its reason, the others are written. Settings: those of
    ``aqa-extract --help`` (``backbone``, ``device``, ``every_k``, ``clip_length``, ``workers``,
    ``labels``, ``columns``...).
    """
    paths = [videos] if isinstance(videos, (str, Path)) else list(videos)
    args = _parse(extract_tool.get_args_parser, [f"--output={store}", *_options(settings, overrides, progress), "--",
                                                 *map(str, paths)])
    configure_library_environment()
    return extract_tool.extract_from_args(args)


def train(store: PathLike, *, out: PathLike, head: str | None = None, progress: bool = False,
          overrides: Mapping[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """Train a scoring ``head`` on the features in ``store`` and save it under ``out``; returns the
    metrics report (what ``out/metrics.json`` holds; with several scores, a mapping of score name to
    its report, plus ``"combined"``). With ``folds=K`` (or ``folds_file=``) it cross-validates instead
    and returns the cross-validation report. Settings: those of ``aqa-train --help`` (``preset``,
    ``score``, ``epochs``, ``seeds``, ``device``, ``overwrite``...). ``head`` None: the preset's
    default head (``aqa-train`` without ``--head``), CoFInAl without a preset.
    """
    chosen = [f"--head={head}"] if head is not None else []
    args = _parse(train_tool.get_args_parser,
                  [f"--out={out}", *chosen, *_options(settings, overrides, progress), "--", str(store)])
    configure_library_environment()
    reports = train_tool.train_from_args(args, say=lambda line: None)
    return reports if len(reports) > 1 else next(iter(reports.values()))


def open_store(path: PathLike) -> FeatureStore:
    """Read a feature store (a shard, a folder of shards or a JSON index of them): ``names``,
    ``read(name)`` -> the video's features, boxes and labels, ``provenance``. A context manager."""
    return open_feature_store(path)


@dataclass(frozen=True)
class Prediction:
    """One scored video.

    score: the predicted score, on the training labels' scale; score_name: which score (TES...).
    grade / grades: the coarse grade (1-based) and how many there are, for heads that grade
        (CoFInAl); None otherwise.
    warnings: why the score deserves less trust than it looks (the athlete never found, a video
        shorter than one clip, a damaged file), in words; empty when nothing is wrong.
    clips: per clip, its time span in seconds and its weight in the score where the head says
        (CoFInAl's strongest procedure attention; 1.0 each otherwise).
    report: everything ``aqa-predict --json`` prints for the video (procedures, sub-actions,
        exemplars, athlete frames...), as plain JSON-ready data.
    members: an ensemble's members and each one's score (``score`` is their mean); None for one head.
    """

    video: str
    score: float
    score_name: str
    head: str
    grade: int | None
    grades: int | None
    warnings: list[str]
    clips: list[ClipDetail]
    report: dict[str, Any] = field(repr=False)
    members: dict[str, float] | None = None


@dataclass(frozen=True)
class ClipDetail:
    """One clip of a scored video: where it lies (seconds) and how much it weighed."""

    start_s: float
    end_s: float
    weight: float


class Predictor:
    """A trained checkpoint, ready to score videos (extraction included, as at training).

    Loading checks that this machine reproduces the features the head was trained on (backbone
    and detector weights, input size) and refuses otherwise. It keeps decoding processes and
    detectors warm between videos: use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, checkpoint: PathLike, *, device: str = "auto", weights: str | None = None,
                 detector_weights: str | None = None, workers: int = 0) -> None:
        configure_library_environment()
        self._loaded = load_predictor(Path(checkpoint), device=device, weights=weights,
                                      detector_weights=detector_weights, workers=workers)

    @property
    def score_name(self) -> str:
        return self._loaded.info.score_name

    def score(self, video: PathLike, *, difficulty: float | None = None, progress: bool = False) -> Prediction:
        """Score one video (``difficulty``: its degree of difficulty, for heads trained with it).
        Raises :class:`aqa.errors.AqaError` (one line) when the video cannot be scored."""
        check_difficulty(self._loaded.head, difficulty)
        report, features = predict_video(self._loaded, Path(video), progress=progress, difficulty=difficulty)
        plan = features.plan
        weights = timeline_curve(report, plan.layout.clips.num_clips)
        clips = [ClipDetail(round(float(start) / plan.layout.info.fps, 3), round(float(end) / plan.layout.info.fps, 3),
                            round(float(weight), 4))
                 for (start, end), weight in zip(plan.layout.clips.frame_ranges, weights)]
        report = json.loads(json.dumps(report))  # plain data, as the JSON output holds it
        return Prediction(video=report["video"], score=report["score"], score_name=report["score_name"],
                          head=report["head"], grade=report.get("grade"), grades=report.get("grades"),
                          warnings=list(report["warnings"]), clips=clips, report=report,
                          members={entry["member"]: entry["score"] for entry in report["members"]}
                          if "members" in report else None)

    def close(self) -> None:
        self._loaded.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _options(settings: Mapping[str, Any], overrides: Mapping[str, Any] | None, progress: bool) -> list[str]:
    """Keyword settings as the tool's command-line options (see the module docstring), each value
    joined to its option (``--labels=-a.txt``) so that no value, and no path after the ``--`` that
    the callers put before their paths, is ever read as an option."""
    argv: list[str] = []
    for key, value in settings.items():
        option = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(option)
        elif key == "seeds":
            argv.append(f"{option}=" + (",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)))
        elif isinstance(value, (list, tuple)):
            argv += [f"{option}={item}" for item in value]
        else:
            argv.append(f"{option}={value}")
    for key, value in (overrides or {}).items():
        argv.append(f"--set={key}={json.dumps(value)}")
    if not progress:
        argv.append("--quiet")
    return argv


def _parse(make_parser: Callable[[], argparse.ArgumentParser], argv: list[str]) -> argparse.Namespace:
    """The tool's own parsing and checks, raising :class:`ConfigError` where the tool would exit."""
    parser = make_parser()

    def refuse(message: str) -> None:
        raise ConfigError(message.replace("unrecognized arguments", "unknown settings"))

    parser.error = refuse  # type: ignore[method-assign]
    return parser.parse_args(argv)
