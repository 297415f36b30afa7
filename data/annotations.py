"""Readers for the real annotation files of the four AQA datasets, each into a :class:`LabelTable`.

Every reader gives the score the papers regress as ``total``, so ``score="total"`` works for all:

- **Fis-V** (``fisv/``): ``train_dataset.txt`` / ``test_dataset.txt`` hold ``id TES PCS deductions``
  without header; names are the ids as written (``"1"``, the ``1.npy`` of the feature releases).
  Scores ``TES``, ``PCS``, ``deductions`` and ``total = TES + PCS - deductions`` (the rule of the
  sport). ``fs_dataset.csv`` adds skater, year and event to ``extra``; its own ``total`` column is
  not used because 14 of its rows disagree with its TES/PCS/ded columns by typos (id 90: 59.97 for
  36.79 + 33.18).
- **RG** (``rg/``): ``train.txt`` / ``test.txt`` with a header ``Video_Name Difficulty_Score
  Execution_Score Total_Score Penalty Video_length``; scores ``D``, ``E``, ``total``, ``penalty``
  (``total = D + E - penalty``), ``extra["length"]`` the number of clips. RG's D is a judged score,
  not a difficulty multiplier, so ``difficulty`` stays empty.
- **MTL-AQA** (``mtl_aqa/``): a pickled dict keyed by ``(event, index)`` ints, with
  ``final_score`` (``total``), ``difficulty``, seven ``judge_scores`` and the dive's frame range and
  codes (``extra``); ``train_split_0.pkl`` / ``test_split_0.pkl`` list the keys of each split.
- **FineDiving** (``finediving/``): ``fine-grained_annotation_aqa.pkl`` maps ``(event, index)`` to
  ``[action_type, dive_score, difficulty, steps_transit_frames, frames_labels]``;
  ``train_split.pkl`` / ``test_split.pkl`` list the keys.

Video names for ``(event, index)`` keys: :func:`pair_name` gives ``"<event>_<index:04d>"``, the
event zero-padded to two digits when it is a number: MTL-AQA ``(1, 1)`` is ``"01_0001"``, and
FineDiving's ``("01", 1)`` (its events taken from MTL-AQA) is the same ``"01_0001"``;
``("FINADivingWorldCup2021_Men3m_final_r1", 8)`` is ``"FINADivingWorldCup2021_Men3m_final_r1_0008"``.
The index is always the text after the last ``_``, so ``name.rsplit("_", 1)`` recovers the pair.

Pickles are read only through :func:`aqa.safe_pickle.load_pickle` (plain containers and
numpy arrays; nothing else is ever imported or called).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from aqa.data.labels import LabelError, LabelRecord, LabelTable, read_label_table
from aqa.errors import MissingFileError
from aqa.safe_pickle import load_pickle

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


def pair_name(event: int | str, index: int) -> str:
    """Stable video name for an ``(event, index)`` key: ``(1, 1)`` -> ``"01_0001"``."""
    event_text = f"{event:02d}" if isinstance(event, (int, np.integer)) else str(event)
    return f"{event_text}_{int(index):04d}"


def read_fisv(folder: str | Path) -> LabelTable:
    """Fis-V: 400 train + 100 test ladies' short programs (TES, PCS, deductions, total)."""
    folder = Path(folder)
    details = _fisv_details(folder / "fs_dataset.csv")
    records = []
    for split in SPLITS:
        path = folder / f"{split}_dataset.txt"
        for record in read_label_table(path, columns=("id", "TES", "PCS", "deductions"), split=split):
            s = record.scores
            scores = {**s, "total": round(s["TES"] + s["PCS"] - s["deductions"], 6)}
            records.append(replace(record, scores=scores, extra=details.get(record.name, {})))
    return LabelTable(tuple(records), str(folder))


def _fisv_details(path: Path) -> dict[str, dict[str, Any]]:
    """Skater, year and event per id from ``fs_dataset.csv`` (rows with empty scores are padding)."""
    if not path.is_file():
        log.warning("Fis-V details not found at %s; skater names and events left out", path)
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    return {row[0]: {"skater": row[5], "year": int(row[6]), "event": row[7]}
            for row in rows if len(row) >= 8 and row[1].strip()}


_RG_COLUMNS = ("name", "D", "E", "total", "penalty", "length")


def read_rg(folder: str | Path) -> LabelTable:
    """Rhythmic Gymnastics: 800 train + 200 test routines (D, E, total, penalty)."""
    folder = Path(folder)
    records = []
    for split in SPLITS:
        for record in read_label_table(folder / f"{split}.txt", columns=_RG_COLUMNS, split=split):
            scores = dict(record.scores)
            length = int(scores.pop("length"))
            records.append(replace(record, scores=scores, extra={"length": length}))
    return LabelTable(tuple(records), str(folder))


def read_mtl_aqa(folder: str | Path) -> LabelTable:
    """MTL-AQA: 1412 dives (final score, difficulty, 7 judge scores), split 0: 1059 train + 353 test."""
    folder = Path(folder)
    annotations = _load_mapping(folder / "final_annotations_dict_with_dive_number.pkl")
    splits = _load_splits(folder, "{split}_split_0.pkl", annotations)

    def record(key: tuple[int, int], value: Any) -> LabelRecord:
        if not isinstance(value, Mapping):
            raise LabelError(f"{folder}: MTL-AQA entry {key} is a {type(value).__name__}, expected a dict")
        extra = {k: v for k, v in value.items() if k not in ("final_score", "difficulty")}
        extra["judge_scores"] = np.asarray(value["judge_scores"], dtype=np.float64)
        return LabelRecord(pair_name(*key), {"total": float(value["final_score"])},
                           float(value["difficulty"]), splits.get(key), extra)

    return _table(folder, annotations, record)


_FINEDIVING_FIELDS = ("action_type", "total", "difficulty", "steps_transit_frames", "frames_labels")


def read_finediving(folder: str | Path) -> LabelTable:
    """FineDiving: 3000 dives (dive score, difficulty, action type, step frames), 2251 train + 749 test."""
    folder = Path(folder)
    annotations = _load_mapping(folder / "fine-grained_annotation_aqa.pkl")
    splits = _load_splits(folder, "{split}_split.pkl", annotations)

    def record(key: tuple[str, int], value: Any) -> LabelRecord:
        if not isinstance(value, Sequence) or len(value) != len(_FINEDIVING_FIELDS):
            raise LabelError(f"{folder}: FineDiving entry {key} is not a list of {list(_FINEDIVING_FIELDS)}")
        fields = dict(zip(_FINEDIVING_FIELDS, value))
        extra = {"action_type": str(fields["action_type"]),
                 "steps_transit_frames": np.asarray(fields["steps_transit_frames"]),
                 "frames_labels": np.asarray(fields["frames_labels"])}
        return LabelRecord(pair_name(*key), {"total": float(fields["total"])}, float(fields["difficulty"]),
                           splits.get(key), extra)

    return _table(folder, annotations, record)


def _load_mapping(path: Path) -> dict[Any, Any]:
    value = load_pickle(path)
    if not isinstance(value, dict):
        raise LabelError(f"{path}: expected a pickled dict of annotations, got {type(value).__name__}")
    return value


def _load_splits(folder: Path, pattern: str, annotations: Mapping[Any, Any]) -> dict[Any, str]:
    """``key -> split`` from the split pickles; unknown or doubly assigned keys are an error."""
    splits: dict[Any, str] = {}
    for split in SPLITS:
        path = folder / pattern.format(split=split)
        keys = load_pickle(path)
        if not isinstance(keys, (list, tuple)):
            raise LabelError(f"{path}: expected a pickled list of keys, got {type(keys).__name__}")
        for key in map(tuple, keys):
            if key not in annotations:
                raise LabelError(f"{path}: split lists {key}, which has no annotation")
            if key in splits:
                raise LabelError(f"{path}: {key} is already in the {splits[key]} split")
            splits[key] = split
    return splits


def _table(folder: Path, annotations: Mapping[Any, Any], record: Callable[[Any, Any], LabelRecord]) -> LabelTable:
    records = tuple(record(key, value) for key, value in sorted(annotations.items(), key=lambda kv: _key_order(kv[0])))
    unsplit = sum(r.split is None for r in records)
    if unsplit:
        log.info("%s: %d annotated videos are in no split", folder, unsplit)
    return LabelTable(records, str(folder))


def _key_order(key: Any) -> tuple[str, int]:
    return pair_name(*key).rsplit("_", 1)[0], int(key[1])


#: Dataset name (as used by ``--labels-format``) -> reader of its annotation folder.
ANNOTATION_READERS: dict[str, Callable[[str | Path], LabelTable]] = {
    "fisv": read_fisv,
    "rg": read_rg,
    "mtl_aqa": read_mtl_aqa,
    "finediving": read_finediving,
}


def read_annotations(dataset: str, folder: str | Path) -> LabelTable:
    """Read ``folder`` with the reader registered for ``dataset`` (a key of :data:`ANNOTATION_READERS`)."""
    try:
        reader = ANNOTATION_READERS[dataset]
    except KeyError:
        raise LabelError(f"unknown annotation format {dataset!r}; known: {', '.join(ANNOTATION_READERS)}") from None
    if not Path(folder).is_dir():
        raise MissingFileError(f"annotation folder not found: {folder}")
    return reader(folder)
