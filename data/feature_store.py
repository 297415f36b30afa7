"""The HDF5 feature store: one video per group, provenance on every file, readers over many shards.

Layout of a shard (``docs/feature-store.md`` has the full table and the reasons)::

    /                      attrs: format="aqa-features", format_version=1, provenance=<JSON>
    /videos/<name>/        attrs: name, source_path, fps, num_frames, label=<JSON>, complete=True (last)
        scene        [C, D] float32     whole-frame clip features
        actor        [C, D] float32     actor-crop clip features (absent for imported features)
        clip_frames  [C, L] int64       source frame index of every frame of every clip
        boxes        [T, 4] float32     actor box per source frame, x1 y1 x2 y2 in pixels
        box_status   [T]    uint8       detected/interpolated/held/fallback per frame, the codes of
                                        ``extractors.tracking`` (also in the ``codes`` attribute)
        box_scores   [T]    float32     detector confidence per frame (0 where not detected)

A group without ``complete`` is a video whose writing did not finish: readers ignore it and the
writer (:mod:`data.shard_writer`) redoes it. A store is a single shard, a folder of shards, or a
JSON index naming shards (:func:`write_index`); :func:`open_feature_store` takes any of the three.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from aqa.data.labels import LabelRecord
from aqa.data.provenance import Provenance, ProvenanceMismatchError, provenance_differences
from aqa.errors import AqaError, MissingFileError, one_line
from aqa.extractors.tracking import STATUS_NAMES

if TYPE_CHECKING:
    from aqa.extractors.video_steps import ExtractedVideo

log = logging.getLogger(__name__)

FORMAT = "aqa-features"
FORMAT_VERSION = 1
INDEX_FORMAT = "aqa-feature-index"
VIDEOS = "videos"
COMPLETE = "complete"
PARTS_SUFFIX = ".parts"  # folder of per-video files of an unfinished write (see data.shard_writer)
_ARRAYS = ("scene", "actor", "clip_frames", "boxes", "box_status", "box_scores")


class FeatureStoreError(AqaError):
    """A feature file, folder or index is missing pieces, damaged, or inconsistent."""


@dataclass(frozen=True, eq=False)
class VideoFeatures:
    """One video's features and what they came from; what the writer takes and the reader gives.

    Shapes: ``scene``/``actor`` ``[C, D]`` float32 (C clips), ``clip_frames`` ``[C, L]`` int64
    source frame indices (resampling and padding show as they are), ``boxes`` ``[T, 4]`` float32,
    ``box_status`` ``[T]`` uint8 (``extractors.tracking`` codes) and ``box_scores`` ``[T]`` float32
    over the T source frames.
    Everything but ``name`` and ``scene`` is optional (imported features have nothing else).
    """

    name: str
    scene: np.ndarray
    actor: np.ndarray | None = None
    clip_frames: np.ndarray | None = None
    boxes: np.ndarray | None = None
    box_status: np.ndarray | None = None
    box_scores: np.ndarray | None = None
    fps: float | None = None
    num_frames: int | None = None
    source_path: str = ""
    label: LabelRecord | None = None

    def __post_init__(self) -> None:
        check_video_name(self.name)
        set_ = object.__setattr__
        set_(self, "scene", _array(self.scene, np.float32, 2, "scene"))
        clips = self.scene.shape[0]
        if clips == 0:
            raise ValueError(f"{self.name}: scene has no clips (a video has at least one)")
        if self.actor is not None:
            set_(self, "actor", _array(self.actor, np.float32, 2, "actor"))
            if self.actor.shape != self.scene.shape:
                raise ValueError(f"{self.name}: actor {self.actor.shape} and scene {self.scene.shape} differ")
        if self.clip_frames is not None:
            set_(self, "clip_frames", _array(self.clip_frames, np.int64, 2, "clip_frames"))
            if self.clip_frames.shape[0] != clips:
                raise ValueError(f"{self.name}: clip_frames has {self.clip_frames.shape[0]} clips, scene {clips}")
        self._check_boxes()

    def _check_boxes(self) -> None:
        parts = (self.boxes, self.box_status, self.box_scores)
        if all(part is None for part in parts):
            return
        if any(part is None for part in parts):
            raise ValueError(f"{self.name}: boxes, box_status and box_scores go together")
        set_ = object.__setattr__
        set_(self, "boxes", _array(self.boxes, np.float32, 2, "boxes"))
        set_(self, "box_status", _array(self.box_status, np.uint8, 1, "box_status"))
        set_(self, "box_scores", _array(self.box_scores, np.float32, 1, "box_scores"))
        frames = self.boxes.shape[0]
        if self.boxes.shape[1] != 4 or len(self.box_status) != frames or len(self.box_scores) != frames:
            raise ValueError(f"{self.name}: boxes {self.boxes.shape}, box_status {self.box_status.shape} and "
                             f"box_scores {self.box_scores.shape} do not describe the same frames")
        if self.num_frames is not None and frames != self.num_frames:
            raise ValueError(f"{self.name}: {frames} boxes for {self.num_frames} frames")

    def __repr__(self) -> str:
        arrays = {key: getattr(self, key) for key in _ARRAYS}
        shapes = ", ".join(f"{key}={tuple(value.shape)}" for key, value in arrays.items() if value is not None)
        return f"VideoFeatures({self.name!r}, {shapes}, fps={self.fps}, num_frames={self.num_frames})"

    @classmethod
    def of_extracted(cls, video: ExtractedVideo, label: LabelRecord | None) -> VideoFeatures:
        """What the store keeps of one extracted video (both extraction engines write this)."""
        plan = video.features.plan
        return cls(
            name=video.name, scene=video.features.scene, actor=video.features.actor,
            clip_frames=plan.layout.clips.indices, boxes=plan.boxes_in_source_pixels, box_status=plan.track.status,
            box_scores=plan.track.scores, fps=plan.layout.info.fps, num_frames=plan.layout.info.num_frames,
            source_path=str(video.path), label=label,
        )

    @property
    def num_clips(self) -> int:
        return int(self.scene.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.scene.shape[1])

    @property
    def clip_ranges(self) -> np.ndarray | None:
        """``[C, 2]``: first source frame of each clip and one past its last (None if unknown)."""
        if self.clip_frames is None:
            return None
        return np.stack([self.clip_frames.min(axis=1), self.clip_frames.max(axis=1) + 1], axis=1)


def _array(value: Any, dtype: type, ndim: int, what: str) -> np.ndarray:
    array = np.ascontiguousarray(value, dtype=dtype)
    if array.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {array.shape}")
    return array


# A video's part file is ``<name>.h5.tmp`` while written; its name must fit the file system's limit
# (255 bytes on ext4, XFS, APFS, NTFS) with that suffix.
PART_FILE_SUFFIX_BYTES = len(".h5.tmp")
NAME_MAX_BYTES = 255


def check_video_name(name: str) -> str:
    """Video names become HDF5 group and file names: non-empty, no ``/`` or NUL, not ``.``/``..``,
    UTF-8 (HDF5 stores names as UTF-8; an undecodable file name arrives with surrogates), and short
    enough for a part file name."""
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (".", ".."):
        raise FeatureStoreError(f"{name!r} cannot be a video name (empty, '.', '..', or holds '/')")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise FeatureStoreError(f"{name!r} cannot be a video name: it is not valid UTF-8; rename the file") from None
    if size + PART_FILE_SUFFIX_BYTES > NAME_MAX_BYTES:
        raise FeatureStoreError(f"{name[:40]!r}... cannot be a video name: {size} bytes, at most "
                                f"{NAME_MAX_BYTES - PART_FILE_SUFFIX_BYTES} fit a file name; rename the file")
    return name


# --- one video group: write and read ------------------------------------------------------------------


def write_shard_attrs(file: h5py.File, provenance: Provenance) -> None:
    """Root attributes every shard (and every per-video part file) carries."""
    file.attrs["format"] = FORMAT
    file.attrs["format_version"] = FORMAT_VERSION
    file.attrs["provenance"] = provenance.to_json()
    file.require_group(VIDEOS)


def read_shard_provenance(file: h5py.File, where: str) -> Provenance:
    """The provenance of an open shard; raises :class:`FeatureStoreError` if it is not one of ours
    or its metadata is damaged (never HDF5's or Python's own error: that would read as a bug)."""
    try:
        attrs = file.attrs
        if attrs.get("format") != FORMAT:
            raise FeatureStoreError(f"{where} is not an aqa feature file (no format={FORMAT!r} attribute)")
        if "provenance" not in attrs:
            raise FeatureStoreError(f"{where} has no provenance attribute; it cannot be trusted for training")
        check_format_version(attrs.get("format_version"), where)
        if not isinstance(file.get(VIDEOS), h5py.Group):
            raise FeatureStoreError(f"{where} is damaged: its {VIDEOS!r} group is missing; re-extract into a new file")
        return Provenance.from_json(attrs["provenance"])
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise FeatureStoreError(f"{where} is damaged ({one_line(error)}); re-extract into a new file") from None


def check_format_version(version: object, where: str, remedy: str = "re-extract into a new file") -> None:
    """A shard's or an index's ``format_version``: an integer this aqa reads (a newer one asks for an upgrade)."""
    if not isinstance(version, numbers.Integral) or isinstance(version, bool) or version < 1:
        raise FeatureStoreError(f"{where} is damaged: its format_version {version!r} is not a version number; "
                                f"{remedy}")
    if version > FORMAT_VERSION:
        raise FeatureStoreError(f"{where} has format version {version}, newer than this aqa reads "
                                f"({FORMAT_VERSION}); upgrade aqa")


def complete_videos(file: h5py.File, where: str) -> tuple[list[str], int]:
    """The names of a shard's complete video groups, and how many are incomplete (one line if the
    group index itself is damaged)."""
    try:
        complete = [name for name, group in file[VIDEOS].items() if is_complete(group)]
        return complete, len(file[VIDEOS]) - len(complete)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise FeatureStoreError(f"{where} is damaged ({one_line(error)}); re-extract into a new file") from None


def write_video(file: h5py.File, video: VideoFeatures) -> None:
    """Write ``video`` under ``/videos/<name>`` (replacing an earlier group), marking it complete last."""
    videos = file.require_group(VIDEOS)
    if video.name in videos:
        del videos[video.name]
    group = videos.create_group(video.name)
    for key in _ARRAYS:
        value = getattr(video, key)
        if value is not None:  # a checksum per chunk (HDF5's fletcher32 filter), verified on every read
            value = np.asarray(value)
            group.create_dataset(key, data=value, fletcher32=value.ndim > 0 and value.size > 0)
    if video.box_status is not None:
        group["box_status"].attrs["codes"] = json.dumps({name: code for code, name in STATUS_NAMES.items()})
    group.attrs["name"] = video.name
    group.attrs["source_path"] = video.source_path
    if video.fps is not None:
        group.attrs["fps"] = float(video.fps)
    if video.num_frames is not None:
        group.attrs["num_frames"] = int(video.num_frames)
    if video.label is not None:
        group.attrs["label"] = label_to_json(video.label)
    file.flush()
    group.attrs[COMPLETE] = True
    file.flush()


def is_complete(group: h5py.Group) -> bool:
    return bool(group.attrs.get(COMPLETE, False))


def read_video(group: h5py.Group) -> VideoFeatures:
    """A complete video group back into :class:`VideoFeatures`, arrays in memory (checksums verified).

    Anything that does not validate (an array that is damaged, of the wrong shape or type; a name,
    fps or label that is missing or malformed) is a :class:`FeatureStoreError` naming the video,
    never garbage features; :func:`video_damage` is the same check for a resume to redo the video."""
    try:
        return _video_from_group(group)
    except _DamagedVideo as error:
        raise FeatureStoreError(f"video {_group_name(group)!r} in {group.file.filename}: {error}; re-run aqa-extract "
                                "on the same output to redo it") from None


def video_damage(group: h5py.Group) -> str | None:
    """Why a complete video group cannot be read back (None when it can); reads every array."""
    try:
        _video_from_group(group)
    except _DamagedVideo as error:
        return str(error)
    return None


class _DamagedVideo(Exception):
    """What is wrong with one video group (said by :func:`read_video` with the video's name)."""


def _group_name(group: h5py.Group) -> str:
    return group.name.rsplit("/", 1)[-1]


def _video_from_group(group: h5py.Group) -> VideoFeatures:
    data = {}
    for key in _ARRAYS:
        if key in group:
            try:
                data[key] = group[key][()]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise _DamagedVideo(f"its {key!r} array is damaged ({one_line(error)})") from None
    try:
        attrs = dict(group.attrs)
        name = attrs.get("name")
        if name != _group_name(group):
            raise ValueError(f"its name attribute is {name!r}, not the name of its group")
        fps = _number(attrs, "fps", float)
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps {fps} is not a positive number")
        return VideoFeatures(name=name, fps=fps, num_frames=_number(attrs, "num_frames", int),
                             source_path=str(attrs.get("source_path", "")), label=_label(group, attrs), **data)
    except (KeyError, TypeError, ValueError, OSError, FeatureStoreError) as error:
        raise _DamagedVideo(f"it does not validate ({one_line(error)})") from None


def _number(attrs: dict, key: str, kind: type) -> Any:
    """An optional numeric attribute, refused when it is stored as anything but a number."""
    if key not in attrs:
        return None
    value = attrs[key]
    if not isinstance(value, numbers.Real) or isinstance(value, bool) \
            or (kind is int and not isinstance(value, numbers.Integral)):
        raise ValueError(f"{key} {value!r} is not {'an integer' if kind is int else 'a number'}")
    return kind(value)


def label_to_json(label: LabelRecord) -> str:
    """Scores, difficulty and split as JSON (``extra`` is not stored: it is dataset-specific)."""
    return json.dumps({"scores": {k: float(v) for k, v in label.scores.items()},
                       "difficulty": label.difficulty, "split": label.split})  # score order kept


def read_label(group: h5py.Group) -> LabelRecord | None:
    """The label stored with a video group, or None when it was unknown at extraction."""
    try:
        return _label(group, group.attrs)
    except _DamagedVideo as error:
        raise FeatureStoreError(f"video {_group_name(group)!r} in {group.file.filename}: {error}; re-extract it") \
            from None


def _label(group: h5py.Group, attrs: Any) -> LabelRecord | None:
    try:
        if "label" not in attrs:
            return None
        values = json.loads(attrs["label"])
        scores, difficulty, split = values["scores"], values["difficulty"], values["split"]
        if not isinstance(scores, dict) or not all(isinstance(key, str) and _is_number(value)
                                                   for key, value in scores.items()):
            raise ValueError(f"scores must map names to numbers, got {scores!r:.60}")
        if not (difficulty is None or _is_number(difficulty)) or not (split is None or isinstance(split, str)):
            raise ValueError(f"difficulty {difficulty!r:.20} or split {split!r:.20} is malformed")
        return LabelRecord(_group_name(group), scores, difficulty, split)
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
        raise _DamagedVideo(f"its stored label is damaged ({type(error).__name__}: {one_line(error)})") from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- reading a store of one or many shards ------------------------------------------------------------


class FeatureStore:
    """Read-only view of the complete videos in one or more shards with equal provenance.

    Shards stay open (read-only) until :meth:`close`; arrays are read on :meth:`read`.
    """

    def __init__(self, shards: Sequence[str | Path], source: str = "") -> None:
        self.source = source or ", ".join(map(str, shards))
        self.shards = [Path(path) for path in shards]
        self._files: list[h5py.File] = []
        self._where: dict[str, tuple[h5py.File, Path]] = {}
        self.provenance: Provenance | None = None
        try:
            for path in self.shards:
                self._add_shard(path)
        except BaseException:
            self.close()
            raise
        if self.provenance is None:
            raise FeatureStoreError(f"{self.source}: no feature shards")

    def _add_shard(self, path: Path) -> None:
        file = open_shard_file(path)
        self._files.append(file)
        provenance = read_shard_provenance(file, str(path))
        if self.provenance is None:
            self.provenance = provenance
        elif differing := provenance_differences(self.provenance, provenance):
            raise ProvenanceMismatchError(f"{path} was made differently from {self.shards[0]} "
                                          f"(differing keys: {', '.join(differing)}); keep them in separate stores")
        complete, incomplete = complete_videos(file, str(path))
        for name in complete:
            if name in self._where:
                raise FeatureStoreError(f"video {name!r} is in both {self._where[name][1]} and {path}")
            self._where[name] = (file, path)
        if incomplete:
            log.warning("%s: %d incomplete video(s) ignored; re-run extraction to redo them", path, incomplete)
        parts = path.with_name(path.name + PARTS_SUFFIX)
        if parts.is_dir() and any(parts.glob("*.h5")):
            log.warning("%s: an unfinished run left videos in %s; re-run it to merge them", path, parts)

    @property
    def names(self) -> list[str]:
        """Complete videos, sorted."""
        return sorted(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def _group(self, name: str) -> h5py.Group:
        try:
            file, _ = self._where[name]
        except KeyError:
            raise FeatureStoreError(f"{self.source}: no features for video {name!r}") from None
        return file[VIDEOS][name]

    def read(self, name: str) -> VideoFeatures:
        """All of one video's data, in memory."""
        return read_video(self._group(name))

    def label(self, name: str) -> LabelRecord | None:
        """The label stored with a video (cheap: no arrays are read)."""
        return read_label(self._group(name))

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files.clear()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_shard_file(path: Path) -> h5py.File:
    """Open a shard read-only, turning HDF5's errors into one a user can act on."""
    if not path.is_file():
        parts = path.with_name(path.name + PARTS_SUFFIX)
        unmerged = len(list(parts.glob("*.h5"))) if parts.is_dir() else 0
        hint = f" (an unfinished run left {unmerged} video(s) in {parts}; re-run it to finish)" if unmerged else ""
        raise MissingFileError(f"feature file not found: {path}{hint}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise FeatureStoreError(f"{path} cannot be read as HDF5 (damaged or not a feature file): "
                                f"{str(error).splitlines()[0]}") from None


def open_feature_store(path: str | Path) -> FeatureStore:
    """Open a single shard (``.h5``), a JSON index of shards, or a folder of ``*.h5`` shards."""
    path = Path(path)
    if path.is_dir():
        shards = sorted(path.glob("*.h5"))
        if not shards:
            raise FeatureStoreError(f"no feature shards (*.h5) in folder {path}")
        return FeatureStore(shards, str(path))
    if path.suffix.lower() == ".json":
        return FeatureStore(read_index(path), str(path))
    return FeatureStore([path], str(path))


def write_index(path: str | Path, shards: Sequence[str | Path]) -> Path:
    """Write a JSON index of ``shards`` (paths stored relative to the index) after checking they
    open together: same provenance, no video twice. Written to a temp name and renamed."""
    path = Path(path)
    with FeatureStore(shards, str(path)):
        pass
    relative = [os.path.relpath(Path(shard).resolve(), path.resolve().parent) for shard in shards]
    text = json.dumps({"format": INDEX_FORMAT, "format_version": FORMAT_VERSION, "shards": relative}, indent=2)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text + "\n")
    os.replace(temp, path)
    return path


def read_index(path: Path) -> list[Path]:
    """Shard paths named by a JSON index, resolved against the index's folder."""
    if not path.is_file():
        raise MissingFileError(f"feature index not found: {path}")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FeatureStoreError(f"{path} is not a valid JSON index: {error}") from None
    valid = isinstance(values, dict) and values.get("format") == INDEX_FORMAT
    if not valid or not isinstance(values.get("shards"), list):
        raise FeatureStoreError(f"{path} is not an aqa feature index (format={INDEX_FORMAT!r} with a shards list)")
    check_format_version(values.get("format_version", FORMAT_VERSION), str(path), "write it again with aqa-index")
    shards = values["shards"]
    if not all(isinstance(shard, str) and shard and "\0" not in shard for shard in shards):
        wrong = next(shard for shard in shards if not (isinstance(shard, str) and shard and "\0" not in shard))
        raise FeatureStoreError(f"{path} is damaged: its shards list holds {wrong!r:.60}, not a shard path; "
                                "write it again with aqa-index")
    return [path.parent / shard for shard in shards]
