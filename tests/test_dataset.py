"""data.dataset: a split of a feature store in memory, scores chosen by name, provenance checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aqa.data.dataset import FeatureDataset
from aqa.data.feature_store import FeatureStoreError, VideoFeatures, open_feature_store
from aqa.data.labels import LabelError, LabelRecord, LabelTable
from aqa.data.provenance import Provenance, ProvenanceMismatchError
from aqa.data.shard_writer import ShardWriter

PROVENANCE = Provenance(backbone="i3d", weights_sha256="ab", clip_plan={"kind": "segments"}, input_size=(224, 224),
                        detector="yolo11n", detector_weights="cd", package_version="0.1.0", config_hash="ef")


def video(name: str, clips: int, *, actor: bool = True, label: LabelRecord | None = None, dim: int = 8):
    rng = np.random.default_rng(clips)
    return VideoFeatures(name, rng.standard_normal((clips, dim)),
                         rng.standard_normal((clips, dim)) if actor else None, label=label)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "features.h5"
    with ShardWriter(path, PROVENANCE) as writer:
        writer.write(video("a", 3, label=LabelRecord("a", {"total": 10.0, "E": 1.0}, 3.0, "train")))
        writer.write(video("b", 5, label=LabelRecord("b", {"total": 20.0, "E": 2.0}, None, "train")))
        writer.write(video("c", 4, label=LabelRecord("c", {"total": 30.0, "E": 3.0}, 2.0, "test")))
        writer.write(video("d", 2))  # no label known
    return path


def test_split_items_hold_features_scores_and_difficulty(store_path):
    dataset = FeatureDataset(store_path, split="train", scores="total")
    assert len(dataset) == 2 and dataset.names == ["a", "b"] and dataset.score_names == ("total",)
    with open_feature_store(store_path) as store:
        expected = store.read("b")
    item = dataset[1]
    assert item["name"] == "b"
    assert item["scene"].shape == (5, 8) and item["scene"].dtype == torch.float32
    assert torch.equal(item["scene"], torch.from_numpy(expected.scene))
    assert torch.equal(item["actor"], torch.from_numpy(expected.actor))
    assert item["score"].tolist() == [20.0]
    assert math.isnan(item["difficulty"]) and dataset[0]["difficulty"] == 3.0
    assert dataset.targets.shape == (2, 1) and dataset.feature_dim == 8


def test_all_labelled_videos_and_several_scores(store_path):
    dataset = FeatureDataset(store_path, scores=["E", "total"])
    assert dataset.names == ["a", "b", "c"]  # d has no label
    assert dataset.targets.tolist() == [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]
    assert FeatureDataset(store_path, split="test").score_names == ("total", "E")  # default: all, stored order


def test_a_label_table_overrides_the_stored_labels(store_path):
    labels = LabelTable((LabelRecord("d", {"total": 40.0}, None, "val"),
                         LabelRecord("a", {"total": 11.0}, None, "val")))
    dataset = FeatureDataset(store_path, split="val", scores="total", labels=labels)
    assert dataset.names == ["a", "d"] and dataset.targets[:, 0].tolist() == [11.0, 40.0]


def test_missing_scores_and_empty_splits_are_user_errors(store_path):
    with pytest.raises(LabelError, match=r"video 'a' has no score TES \(it has: total, E\)"):
        FeatureDataset(store_path, scores=["TES"])
    with pytest.raises(FeatureStoreError, match="no labelled videos in split 'val' .*labelled videos: test, train"):
        FeatureDataset(store_path, split="val")


def test_scene_only_store_has_no_actor_key(tmp_path):
    path = tmp_path / "imported.h5"
    with ShardWriter(path, PROVENANCE) as writer:
        writer.write(video("x", 3, actor=False, label=LabelRecord("x", {"total": 1.0}, split="train")))
    dataset = FeatureDataset(path)
    assert dataset.actor is None and "actor" not in dataset[0]


def test_mixed_actor_streams_and_feature_sizes_are_refused(tmp_path):
    path = tmp_path / "mixed.h5"
    with ShardWriter(path, PROVENANCE) as writer:
        writer.write(video("x", 3, label=LabelRecord("x", {"total": 1.0})))
        writer.write(video("y", 3, actor=False, label=LabelRecord("y", {"total": 2.0})))
    with pytest.raises(FeatureStoreError, match="1 of 2 videos have an actor stream"):
        FeatureDataset(path)
    path = tmp_path / "dims.h5"
    with ShardWriter(path, PROVENANCE) as writer:
        writer.write(video("x", 3, label=LabelRecord("x", {"total": 1.0}), dim=8))
        writer.write(video("y", 3, label=LabelRecord("y", {"total": 2.0}), dim=16))
    with pytest.raises(FeatureStoreError, match=r"different feature sizes \[8, 16\]"):
        FeatureDataset(path)


def test_provenance_check(store_path):
    dataset = FeatureDataset(store_path)
    dataset.check_provenance(PROVENANCE)
    other = Provenance(**{**PROVENANCE.to_dict(), "clip_plan": {"kind": "snippets"}, "input_size": (224, 224)})
    with pytest.raises(ProvenanceMismatchError, match="features in .*features.h5 .*differing keys: clip_plan.kind"):
        dataset.check_provenance(other)
    dataset.check_provenance(other, ignore=["clip_plan"])


def test_an_open_store_is_left_open(store_path):
    with open_feature_store(store_path) as store:
        FeatureDataset(store, split="test")
        assert store.read("a").num_clips == 3
