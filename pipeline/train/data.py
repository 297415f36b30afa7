"""What aqa-train learns from: a feature store's splits as model inputs, a validation split carved off.

Streams and difficulty, as a trained model uses them, are :mod:`models.streams`'s (prediction calls
the same functions); this module reads a store's splits through them."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aqa.data.dataset import FeatureDataset
from aqa.data.feature_store import FeatureStore, open_feature_store
from aqa.data.labels import LabelTable
from aqa.data.provenance import Provenance, check_provenance
from aqa.errors import AqaError
from aqa.models.fspn_training import difficulty_ratio
from aqa.models.normalization import ScoreNormalizer
from aqa.models.streams import combine_streams, resolve_streams
from aqa.models.training import PaddedVideos

log = logging.getLogger(__name__)

class TrainingDataError(AqaError):
    """The features or labels cannot be trained on as asked; the message says what is there instead."""


@dataclass(frozen=True, eq=False)
class VideoSplit:
    """Videos with their model inputs ``clips[i]`` ``[T_i, D']``, ``scores`` ``[N, K]`` float64 on
    the original scale (one column per name in ``score_names``) and ``difficulty`` ``[N]`` float64
    (NaN where the labels give none)."""

    names: list[str]
    clips: list[Tensor]
    scores: Tensor
    score_names: tuple[str, ...]
    difficulty: Tensor

    def __len__(self) -> int:
        return len(self.names)

    @property
    def input_dim(self) -> int:
        return int(self.clips[0].shape[1])

    def column(self, score: str) -> Tensor:
        """``[N]`` original-scale scores of one name."""
        return self.scores[:, self.score_names.index(score)]

    def subset(self, rows: Sequence[int]) -> VideoSplit:
        rows = list(rows)
        return VideoSplit([self.names[i] for i in rows], [self.clips[i] for i in rows], self.scores[rows],
                          self.score_names, self.difficulty[rows])

    def targets(self, score: str, divide_by_difficulty: bool = False) -> Tensor:
        """``[N]`` what the head learns, on the original scale: the score, or score / difficulty ("w/ DD",
        which needs every video's difficulty: a one-line error names a video without one)."""
        if not divide_by_difficulty:
            return self.column(score)
        try:
            return difficulty_ratio(self.column(score), self.difficulty)
        except ValueError:
            lacking = [name for name, value in zip(self.names, self.difficulty.tolist()) if not value > 0]
            raise TrainingDataError(
                f"head.train_divide_by_difficulty needs a positive difficulty for every video, but {len(lacking)} of "
                f"{len(self)} lack one (e.g. {lacking[0]}); give labels with a difficulty column or leave the "
                "option off") from None

    def to_scores(self, targets: np.ndarray, divide_by_difficulty: bool = False) -> np.ndarray:
        """Original-scale :meth:`targets` ``[N]`` -> scores ``[N]`` (multiplied back by the difficulty for w/ DD)."""
        return targets * self.difficulty.numpy() if divide_by_difficulty else targets

    def padded(self, score: str, normalizer: ScoreNormalizer, device: str | torch.device, *,
               divide_by_difficulty: bool = False, group_by_difficulty: bool = False) -> PaddedVideos:
        """This split on ``device``: targets = :meth:`targets` normalised by ``normalizer``; groups = the
        difficulty when asked and any video has one, else None."""
        groups = self.difficulty if group_by_difficulty and bool(self.difficulty.isfinite().any()) else None
        return PaddedVideos.from_sequences(self.clips, normalizer.to_unit(self.targets(score, divide_by_difficulty)),
                                           device, groups)


@dataclass(frozen=True, eq=False)
class TrainingData:
    """The train and test splits of one store, what made their features, and the streams used
    (``test`` None: no test split was asked for)."""

    train: VideoSplit
    test: VideoSplit | None
    provenance: Provenance
    streams: str
    source: str


def open_stores(paths: Sequence[str | Path]) -> FeatureStore:
    """One store over the given paths: a single shard, folder or JSON index, or several shard files
    (which must agree in provenance; :class:`FeatureStore` refuses them otherwise)."""
    if len(paths) == 1:
        return open_feature_store(paths[0])
    return FeatureStore([Path(path) for path in paths])


def load_training_data(paths: Sequence[str | Path], *, scores: Sequence[str], train_split: str = "train",
                       test_split: str | None = "test", streams: str = "auto", video_prefix: str = "",
                       labels: LabelTable | None = None,
                       expect_provenance: Provenance | None = None) -> TrainingData:
    """Read both splits into memory (only the training split when ``test_split`` is None: for
    cross-validation, or a final model trained on every labelled video). Raises a one-line
    :class:`AqaError` for a missing file, shards made differently, a score name no video has
    (naming the ones there are), an empty split (naming the splits there are), or features of
    different sizes."""
    with open_stores(paths) as store:
        if not scores:
            raise TrainingDataError(f"no score chosen; pick one with --score (scores in {store.source}: "
                                    f"{', '.join(available_scores(store, labels)) or 'none'})")
        if expect_provenance is not None:
            check_provenance(expect_provenance, store.provenance, what=f"features in {store.source}")
        splits = [split for split in (train_split, test_split) if split is not None]
        datasets = [FeatureDataset(store, split=split, scores=tuple(scores), labels=labels) for split in splits]
        has_actor = all(dataset.actor is not None for dataset in datasets)
        streams = resolve_streams(streams, has_actor)
        train, *tested = (_video_split(dataset, streams, video_prefix) for dataset in datasets)
        test = tested[0] if tested else None
        provenance, source = store.provenance, store.source
    for split, videos in zip(splits, (train, test)):
        if len(videos) < 2:
            raise TrainingDataError(f"{source}: the {split} split has {len(videos)} video(s); training and "
                                    "rank correlation need at least 2")
    if test is not None and train.input_dim != test.input_dim:
        raise TrainingDataError(f"{source}: the {train_split} split has features of size {train.input_dim}, the "
                                f"{test_split} split {test.input_dim}; they must come from one extraction")
    log.info("%s: %d train / %d test videos, streams %s (input size %d)", source, len(train),
             len(test) if test is not None else 0, streams, train.input_dim)
    return TrainingData(train, test, provenance, streams, source)


def _video_split(dataset: FeatureDataset, streams: str, video_prefix: str) -> VideoSplit:
    """The dataset's videos whose name starts with ``video_prefix``, streams combined, with the
    labels the dataset read (float64, exactly as written)."""
    rows = [i for i, name in enumerate(dataset.names) if name.startswith(video_prefix)]
    if not rows:
        examples = ", ".join(dataset.names[:3])
        raise TrainingDataError(f"{dataset.source}: no video name starts with {video_prefix!r} "
                                f"(names look like: {examples})")
    names = [dataset.names[i] for i in rows]
    clips = [combine_streams(dataset.scene[i], dataset.actor[i] if dataset.actor is not None else None, streams)
             for i in rows]
    # The dataset keeps float32 targets; metrics and predictions.csv use the labels exactly as written.
    records = [dataset.records[i] for i in rows]
    scores = torch.tensor([[record.scores[key] for key in dataset.score_names] for record in records],
                          dtype=torch.float64)
    difficulty = torch.tensor([math.nan if record.difficulty is None else record.difficulty for record in records],
                              dtype=torch.float64)
    return VideoSplit(names, clips, scores, dataset.score_names, difficulty)


def available_scores(store: FeatureStore, labels: LabelTable | None) -> list[str]:
    """Every score name the labels (or, without them, the store's labels) give some video."""
    if labels is not None:
        return list(labels.score_names)
    found: dict[str, None] = {}
    for name in store.names:
        record = store.label(name)
        if record is not None:
            found.update(dict.fromkeys(record.scores))
    return list(found)


def carve_validation(split: VideoSplit, fraction: float, seed: int) -> tuple[VideoSplit, VideoSplit | None]:
    """Move a seeded random ``fraction`` of the training videos into a validation split.

    The carve depends on ``seed`` only (not on the training seed), so every training seed is
    selected, and compared, on the same validation videos. ``fraction == 0`` gives no split.
    """
    if fraction == 0:
        return split, None
    if not 0 < fraction < 1:
        raise TrainingDataError(f"val_fraction must be in [0, 1), got {fraction}")
    count = round(fraction * len(split))
    if count < 2 or len(split) - count < 2:
        raise TrainingDataError(f"val_fraction {fraction} of {len(split)} training videos leaves {count} for "
                                "validation; both parts need at least 2 videos")
    order = np.random.default_rng(seed).permutation(len(split))
    val_rows, train_rows = sorted(order[:count].tolist()), sorted(order[count:].tolist())
    return split.subset(train_rows), split.subset(val_rows)
