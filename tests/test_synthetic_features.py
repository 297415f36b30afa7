"""aqa.synthetic.features: the scores are the stated function of the clips, and the video mean hides them."""

from __future__ import annotations

import numpy as np
import pytest

from aqa.data.dataset import FeatureDataset
from aqa.synthetic.features import (
    SCORE_NAMES,
    SyntheticTask,
    make_videos,
    synthetic_provenance,
    write_synthetic_store,
)

TASK = SyntheticTask(dim=12, min_clips=6, max_clips=14, noise=0.0)


def test_scores_follow_kinds_and_clean_elements():
    for video in make_videos(20, TASK, seed=0):
        values = np.asarray(TASK.kind_values)[video.kinds]
        assert video.scores["total"] == pytest.approx(10 * np.mean(values * video.clean))
        assert video.scores["execution"] == pytest.approx(10 * np.mean(video.clean))
        assert set(video.scores) == set(SCORE_NAMES)
        assert TASK.min_clips <= len(video.scene) <= TASK.max_clips and video.scene.dtype == np.float32


def test_the_wobble_cancels_in_the_mean_but_not_per_clip():
    directions = SyntheticTask(dim=12).directions()
    assert np.allclose(directions @ directions.T, np.eye(len(directions)), atol=1e-5)
    task = SyntheticTask(dim=12, min_clips=8, max_clips=8, element_clips=(2,), noise=0.0)
    wobble = task.directions()[-1]
    videos = make_videos(40, task, seed=3)
    sloppy = [v for v in videos if not v.clean.all()]
    assert sloppy
    for video in sloppy:
        assert abs(video.scene.mean(axis=0) @ wobble) < 1e-5  # the mean clip cannot see execution
        assert np.abs(video.scene @ wobble).max() == pytest.approx(task.wobble, rel=1e-5)  # single clips can


def test_same_seed_same_videos_and_a_store_that_reads_back(tmp_path):
    first, second = make_videos(3, TASK, seed=5), make_videos(3, TASK, seed=5)
    assert all(np.array_equal(a.scene, b.scene) and np.array_equal(a.actor, b.actor) for a, b in zip(first, second))
    noisy = make_videos(1, SyntheticTask(dim=12), seed=5)[0]
    assert not np.array_equal(noisy.scene, noisy.actor)  # the streams share the signal, not the noise
    assert make_videos(1, TASK, seed=5, actor=False)[0].actor is None
    path = write_synthetic_store(tmp_path / "s.h5", {"train": first, "test": make_videos(2, TASK, 6, prefix="t")}, TASK)
    dataset = FeatureDataset(path, split="train", scores="total")
    assert dataset.names == [video.name for video in first] and dataset.provenance == synthetic_provenance(TASK)
    assert np.allclose(dataset.targets[:, 0].numpy(), [video.scores["total"] for video in first])
