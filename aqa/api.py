"""The public Python API: the three stages as calls, for people who script rather than shell out.

    import aqa

    result = aqa.extract(["videos/"], "features.h5", labels=["train.txt"], columns="id,score")
    metrics = aqa.train("features.h5", head="cofinal", out="runs/model", epochs=50)
    with aqa.Predictor("runs/model/model.pt") as predictor:
        prediction = predictor.score("dive.mp4")    # typed: pipeline.predict.result.Prediction
    print(prediction.score, prediction.grade, prediction.warnings, prediction.to_json())
    with aqa.open_store("features.h5") as store:
        video = store.read(store.names[0])

Each call builds its command's typed request (:class:`pipeline.extract.ExtractRequest`,
:class:`pipeline.train.TrainRequest`) from keywords and calls the same ``run`` the tools call, so a
setting means the same in both; no command line is made or parsed, so a value keeps its Python type
(``weights="123"`` stays text, ``ray_address="1:30"`` is not the sexagesimal 90) and a path is a path
even when it starts with a dash. Keywords: the request's own (``labels``, ``overwrite``, ``device``...),
the tools' dedicated settings under their long options' names (``every_k=4`` is ``--every-k 4``,
``score=["TES", "PCS"]`` repeats ``--score``), ``config`` (a YAML file, as ``--config``) and
``overrides``: typed values at dotted config keys (``{"features.clips.clip_length": 16}``), checked
against the field's type (text where a number goes is refused, not read). A wrong one raises
:class:`aqa.config.ConfigError` in one line naming it instead of exiting.
Progress bars are off unless ``progress=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aqa.data.feature_store import FeatureStore, open_feature_store
from aqa.models.checkpoint import check_difficulty
from aqa.pipeline import extract as extract_tool
from aqa.pipeline import train as train_tool
from aqa.pipeline.environment import configure_library_environment
from aqa.pipeline.extract import ExtractionResult
from aqa.pipeline.predict import load_predictor, predict_video
from aqa.pipeline.predict.result import Prediction

__all__ = ["ExtractionResult", "Prediction", "Predictor", "extract", "open_store", "train"]

PathLike = str | Path


def extract(videos: PathLike | Iterable[PathLike], store: PathLike, *, labels: PathLike | Iterable[PathLike] = (),
            columns: str | None = None, overwrite: bool = False, num_shards: int | None = None,
            shard_index: int | None = None, progress: bool = False, config: PathLike | None = None,
            overrides: Mapping[str, Any] | None = None, **settings: Any) -> ExtractionResult:
    """Extract the Siamese clip features of ``videos`` (files and/or folders) into ``store`` (.h5).

    Resumes into an existing store (``overwrite=True`` replaces it). A video that cannot be read
    fails alone: it is in ``failures`` with its reason, the others are written. Settings: those of
    ``aqa-extract --help`` (``backbone``, ``weights``, ``detector``, ``device``, ``every_k``,
    ``clip_length``, ``workers``, ``engine``, ``ray_address``...; ``pipeline.extract.SETTINGS``).
    """
    run_config = extract_tool.resolve_extract_config(config_file=config, overrides=overrides, settings=settings)
    request = extract_tool.ExtractRequest(videos=_paths(videos), output=Path(store), config=run_config,
                                          labels=_paths(labels), columns=columns, overwrite=overwrite,
                                          num_shards=num_shards, shard_index=shard_index, progress=progress)
    configure_library_environment()
    return extract_tool.run(request)


def train(store: PathLike | Iterable[PathLike], *, out: PathLike, head: str | None = None, preset: str | None = None,
          device: str = "auto", overwrite: bool = False, labels: PathLike | Iterable[PathLike] = (),
          columns: str | None = None, folds: int | None = None, folds_file: PathLike | None = None, fold_seed: int = 0,
          description: str | None = None, expect_provenance: PathLike | None = None, progress: bool = False,
          config: PathLike | None = None, overrides: Mapping[str, Any] | None = None,
          **settings: Any) -> dict[str, Any]:
    """Train a scoring ``head`` on the features in ``store`` and save it under ``out``; returns the
    metrics report (what ``out/metrics.json`` holds; with several scores, a mapping of score name to
    its report, plus ``"combined"``). With ``folds=K`` (or ``folds_file=``) it cross-validates instead
    and returns the cross-validation report. Settings: those of ``aqa-train --help`` (``score``,
    ``epochs``, ``seeds``, ``val_fraction``, ``streams``...; ``pipeline.train.SETTINGS``); ``score``
    and ``seeds`` take one value or a list. ``head`` None: the preset's default head (``aqa-train``
    without ``--head``), CoFInAl without a preset.
    """
    run_config = train_tool.resolve_run_config(head, preset, config_file=config, overrides=overrides,
                                               settings=_one_or_many(settings, "score", "seeds"))
    request = train_tool.TrainRequest(
        features=_paths(store), out=Path(out), config=run_config, device=device, overwrite=overwrite,
        labels=_paths(labels), columns=columns, folds=folds, folds_file=_path_or_none(folds_file),
        fold_seed=fold_seed, description=description, expect_provenance=_path_or_none(expect_provenance),
        progress=progress)
    configure_library_environment()
    reports = train_tool.run(request, say=lambda line: None)
    return reports if len(reports) > 1 else next(iter(reports.values()))


def open_store(path: PathLike) -> FeatureStore:
    """Read a feature store (a shard, a folder of shards or a JSON index of them): ``names``,
    ``read(name)`` -> the video's features, boxes and labels, ``provenance``. A context manager."""
    return open_feature_store(path)


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
        prediction, _ = predict_video(self._loaded, Path(video), progress=progress, difficulty=difficulty)
        return prediction

    def close(self) -> None:
        self._loaded.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """One path or several as a list of :class:`Path` (a string is one path, never its characters)."""
    return [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(path) for path in paths]


def _path_or_none(path: PathLike | None) -> Path | None:
    return None if path is None else Path(path)


def _one_or_many(settings: Mapping[str, Any], *listed: str) -> dict[str, Any]:
    """The settings, with one value where the tool repeats a flag (``score="TES"``, ``seeds=0``) made a
    list of one, as one ``--score TES`` is."""
    return {key: [value] if key in listed and isinstance(value, (str, int)) else value
            for key, value in settings.items()}
