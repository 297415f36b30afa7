"""The training-side reader: a split of a feature store, in memory, as torch tensors.

Clip features are small (a 5-minute Fis-V program is ~300 clips x 1024 floats, 1.2 MB per
stream), so the whole split is loaded once and every epoch runs from memory. Labels come from the
store (stored at extraction or import) unless a :class:`LabelTable` is given, which then wins, so a
corrected annotation file never needs a re-extraction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from aqa.data.feature_store import FeatureStore, FeatureStoreError, open_feature_store
from aqa.data.labels import LabelError, LabelRecord, LabelTable, MissingScoreError
from aqa.data.provenance import Provenance, check_provenance

log = logging.getLogger(__name__)


class FeatureDataset(Dataset):
    """Videos of one split with their features and scores.

    Item ``i`` is a dict: ``name``; ``scene`` ``[T, D]`` float32 (T clips); ``actor`` ``[T, D]`` when
    the store has an actor stream; ``score`` ``[K]`` float32 for the K chosen score names;
    ``difficulty`` a float32 scalar (NaN when unknown). ``T`` varies between videos.

    ``split=None`` takes every labelled video; ``scores=None`` takes every score name of the first
    selected video (``score_names`` says which, in order). A video without labels is left out.
    """

    def __init__(self, store: FeatureStore | str | Path, *, split: str | None = None,
                 scores: str | Sequence[str] | None = None, labels: LabelTable | None = None) -> None:
        owned = not isinstance(store, FeatureStore)
        opened = open_feature_store(store) if owned else store
        try:
            self.source = opened.source
            self.provenance: Provenance = opened.provenance
            selected = self._select(opened, split, labels)
            self.score_names = _score_names(selected, scores)
            self.records = selected  # the labels as written (float scores unrounded), in ``names`` order
            self.names = [record.name for record in selected]
            self.targets = torch.tensor([[record.scores[key] for key in self.score_names] for record in selected],
                                        dtype=torch.float32).reshape(len(selected), len(self.score_names))
            self.difficulty = torch.tensor(
                [math.nan if record.difficulty is None else record.difficulty for record in selected],
                dtype=torch.float32)
            self.scene, self.actor = self._load(opened, self.names)
        finally:
            if owned:
                opened.close()
        log.info("%s: %d videos%s, scores %s, feature dim %d%s", self.source, len(self), _of(split),
                 list(self.score_names), self.feature_dim, " (scene + actor)" if self.actor is not None else "")

    def _select(self, store: FeatureStore, split: str | None, labels: LabelTable | None) -> list[LabelRecord]:
        found = [labels.get(name) if labels is not None else store.label(name) for name in store.names]
        labelled = [record for record in found if record is not None]
        if len(labelled) < len(found):
            log.warning("%s: %d video(s) without labels left out", self.source, len(found) - len(labelled))
        records = [record for record in labelled if split is None or record.split == split]
        if not records:
            present = sorted({record.split or "(none)" for record in labelled})
            raise FeatureStoreError(f"{self.source}: no labelled videos{_of(split)} "
                                    f"(splits of labelled videos: {', '.join(present) or 'none'})")
        return records

    @staticmethod
    def _load(store: FeatureStore, names: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        scene, actor = [], []
        for name in names:
            video = store.read(name)
            scene.append(torch.from_numpy(video.scene))
            if video.actor is not None:
                actor.append(torch.from_numpy(video.actor))
        dims = {tensor.shape[1] for tensor in scene}
        if len(dims) > 1:
            raise FeatureStoreError(f"{store.source}: videos have different feature sizes {sorted(dims)}")
        if actor and len(actor) != len(scene):
            raise FeatureStoreError(f"{store.source}: {len(actor)} of {len(scene)} videos have an actor stream; "
                                    "all or none must")
        return scene, (actor or None)

    @property
    def feature_dim(self) -> int:
        return int(self.scene[0].shape[1])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, object]:
        item: dict[str, object] = {"name": self.names[index], "scene": self.scene[index],
                                   "score": self.targets[index], "difficulty": self.difficulty[index]}
        if self.actor is not None:
            item["actor"] = self.actor[index]
        return item

    def check_provenance(self, expected: Provenance, *, ignore: Iterable[str] = ()) -> None:
        """Raise :class:`~data.provenance.ProvenanceMismatchError` unless these features were made
        like ``expected`` (e.g. the provenance saved in a checkpoint)."""
        check_provenance(expected, self.provenance, ignore=ignore, what=f"features in {self.source}")


def _score_names(records: Sequence[LabelRecord], scores: str | Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(records[0].scores) if scores is None else (scores,) if isinstance(scores, str) else tuple(scores)
    if not names:
        raise LabelError(f"video {records[0].name!r} has no scores")
    for record in records:
        missing = [key for key in names if key not in record.scores]
        if missing:
            raise MissingScoreError(f"video {record.name!r} has no score {', '.join(missing)} "
                                    f"(it has: {', '.join(record.scores) or 'none'})", tuple(missing))
    return names


def _of(split: str | None) -> str:
    return "" if split is None else f" in split {split!r}"
