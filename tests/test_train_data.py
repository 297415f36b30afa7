"""pipeline.train.data: the validation carve, and reading a store's splits for training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aqa.models import ScoreNormalizer
from aqa.pipeline.train.data import TrainingDataError, VideoSplit, carve_validation, load_training_data
from aqa.synthetic.features import SyntheticTask, make_videos, write_synthetic_store


def split(count: int, difficulty: list[float] | None = None) -> VideoSplit:
    difficulty = torch.full((count,), math.nan) if difficulty is None else torch.tensor(difficulty)
    return VideoSplit([f"v{i}" for i in range(count)], [torch.full((2, 1), float(i)) for i in range(count)],
                      torch.arange(count, dtype=torch.float64).unsqueeze(1), ("total",), difficulty.double())


def test_validation_carve_is_seeded_disjoint_and_complete():
    train, val = carve_validation(split(20), 0.25, seed=0)
    assert len(train) == 15 and len(val) == 5 and set(train.names).isdisjoint(val.names)
    assert sorted(train.names + val.names) == sorted(split(20).names)
    assert carve_validation(split(20), 0.25, seed=0)[1].names == val.names
    assert carve_validation(split(20), 0.25, seed=1)[1].names != val.names
    whole = split(20)
    assert carve_validation(whole, 0.0, seed=0) == (whole, None)
    row = val.names.index(val.names[0])
    assert float(val.column("total")[row]) == float(val.clips[row][0, 0])  # scores travel with their clips
    with pytest.raises(TrainingDataError, match="at least 2 videos"):
        carve_validation(split(4), 0.25, seed=0)


def test_padded_targets_are_normalised():
    videos = split(4).padded("total", ScoreNormalizer(0.0, 4.0), "cpu")
    assert videos.targets.tolist() == [0.0, 0.25, 0.5, 0.75] and videos.features.shape == (4, 2, 1)


def test_load_reads_both_splits_with_exact_labels(tmp_path):
    task = SyntheticTask(dim=6, min_clips=3, max_clips=5)
    train, test = make_videos(5, task, 1, prefix="a"), make_videos(3, task, 2, prefix="b")
    path = write_synthetic_store(tmp_path / "s.h5", {"train": train, "test": test}, task)
    data = load_training_data([path], scores=["execution", "total"], streams="scene")
    assert data.streams == "scene" and data.train.input_dim == 6 and data.test.names == [v.name for v in test]
    assert data.train.column("total").tolist() == [v.scores["total"] for v in train]  # float64, as labelled
    assert torch.equal(data.train.clips[2], torch.from_numpy(train[2].scene))
    assert load_training_data([path], scores=["total"]).train.input_dim == 12  # auto: both streams


def test_w_dd_targets_divide_by_difficulty_and_scores_multiply_back():
    videos = split(4, [2.0, 2.0, 3.5, 1.0])
    targets = videos.targets("total", divide_by_difficulty=True)
    assert targets.tolist() == [0.0, 0.5, 2.0 / 3.5, 3.0]
    assert np.allclose(videos.to_scores(targets.numpy(), divide_by_difficulty=True), [0.0, 1.0, 2.0, 3.0])
    assert torch.equal(videos.targets("total"), videos.column("total"))
    normalizer = ScoreNormalizer.fit(targets)
    padded = videos.padded("total", normalizer, "cpu", divide_by_difficulty=True, group_by_difficulty=True)
    assert torch.allclose(padded.targets.double(), normalizer.to_unit(targets), atol=1e-6)
    assert padded.groups.tolist() == [2.0, 2.0, 3.5, 1.0]
    assert videos.padded("total", normalizer, "cpu").groups is None  # no grouping asked
    assert split(4).padded("total", normalizer, "cpu", group_by_difficulty=True).groups is None  # none known
    with pytest.raises(TrainingDataError, match=r"needs a positive difficulty for every video, but 1 of 3 .*v1"):
        split(3, [2.0, math.nan, 1.0]).targets("total", divide_by_difficulty=True)
