"""Siamese clip features of one video: the whole scene and the athlete's crop through one backbone.

The path of a video through this module:

1. :func:`plan_video` probes it and plans its clips (:func:`layout_video`), decodes its key
   frames at a working size (short side ``work_short_side``; never upscaled) for the person
   detector (:mod:`extractors.athlete`), then tracks the athlete and fixes a square crop box per
   frame (:func:`plan_from_detections`, :mod:`extractors.crops`).
2. :func:`clip_batches` decodes the planned frames again, a few clips at a time (memory stays
   flat however long the video), and has the decoder cut each frame twice at the backbone's
   input size: the scene (the whole frame, squashed or centre-cropped) and the actor crop,
   aligned frame for frame.
3. :func:`embed_batch` runs **one** backbone forward over scene and actor clips stacked in one
   batch, and splits the pooled features back into the two streams.

:func:`extract_video` chains the three for a single video, in sequence (the reference the
engines are tested against); :mod:`extractors.video_steps` orders the same steps when they are
spread over workers or actors, parts of one video included. Decoding goes through a
*decoder* with the face of :class:`extractors.decode_worker.DecodeWorker` (``probe`` and
``read``), so hangs can be timed out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import torch

from aqa.extractors.athlete import WHOLE, FollowBack, Share, detect_people, follow_misses, keyframe_indices, look_again
from aqa.extractors.backbones import VideoBackbone, backbone_spec
from aqa.extractors.clips import ClipPlan, ClipPlanConfig, plan_clips
from aqa.extractors.crops import square_crop_boxes
from aqa.extractors.cuts import colour_histogram, histogram_change, shot_starts
from aqa.extractors.decode_worker import ReadResult
from aqa.extractors.detect import DetectorConfig, PersonDetector
from aqa.extractors.tracking import ActorTrack, TrackerConfig, track_actor
from aqa.extractors.video import Backend, VideoInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiameseConfig:
    """What the features mean: change any of these and features are no longer comparable.

    backbone / weights: registry name and weights file (None: the backbone's default file).
    input_size: square side the backbone sees (None: the backbone spec's, 224).
    clips: the clip plan; default 32-frame segments at the native rate (CoFInAl / GDLT).
    work_short_side: frames are decoded with this short side for detection and cropping
        (360 keeps the athlete sharp in 1080p footage at a fraction of the decode cost).
    keep_source_size: a video whose short side is within ``work_short_side`` is worked at its own
        size; False rounds it to even sides (the behaviour before: an odd-sized video was
        resampled by a pixel, which cost the 500x281 dive 4 of its 17 athlete frames).
    scene: "squash" resizes the whole frame to the square input (nothing is cut off);
        "center_crop" takes the centre square (no distortion, loses the sides).
    crop_margin: context around the athlete, as a fraction of the box's longer side per side.
    """

    backbone: str = "i3d"
    weights: str | None = None
    input_size: int | None = None
    clips: ClipPlanConfig = field(default_factory=ClipPlanConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    work_short_side: int = 360
    keep_source_size: bool = True
    scene: Literal["squash", "center_crop"] = "squash"
    crop_margin: float = 0.25

    def __post_init__(self) -> None:
        if self.input_size is not None and self.input_size < 16:
            raise ValueError(f"input_size must be at least 16 pixels (or null for the backbone's), "
                             f"got {self.input_size}")
        if self.work_short_side < 32:
            raise ValueError(f"work_short_side must be at least 32 pixels, got {self.work_short_side}")
        if self.crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0, got {self.crop_margin}")

    @property
    def resolved_input_size(self) -> int:
        """The square side the backbone sees: ``input_size``, else the backbone spec's."""
        return self.input_size or backbone_spec(self.backbone).input_size[0]


class Decoder(Protocol):
    """What :mod:`extractors.decode_worker` offers: metadata and frames of a path."""

    def probe(self, path: str) -> VideoInfo: ...

    def read(self, path: str, indices, *, backend: Backend = "auto", resize: tuple[int, int] | None = None,
             crops: np.ndarray | None = None, crop_size: int = 0) -> ReadResult: ...


@dataclass(frozen=True)
class VideoLayout:
    """What the metadata alone decides: the clips, the working size and the detector's frames."""

    path: str
    info: VideoInfo
    clips: ClipPlan
    work_size: tuple[int, int]  # (width, height) frames are decoded at
    key_frames: np.ndarray  # [K] sorted frames the person detector runs on


@dataclass(frozen=True)
class VideoPlan:
    """Everything decided about a video before the backbone runs (boxes in working pixels)."""

    layout: VideoLayout  # the video, its clips and working size
    track: ActorTrack
    crop_boxes: np.ndarray  # [T, 4] square actor crops, working pixels

    @property
    def boxes_in_source_pixels(self) -> np.ndarray:
        """The tracked athlete boxes ``[T, 4]`` scaled to the video's own upright pixel size."""
        scale_x = self.layout.info.width / self.layout.work_size[0]
        scale_y = self.layout.info.height / self.layout.work_size[1]
        return (self.track.boxes * np.array([scale_x, scale_y, scale_x, scale_y], np.float32)).astype(np.float32)


@dataclass(frozen=True)
class ClipBatch:
    """uint8 clips of both streams for clips ``first .. first + N - 1``: ``streams``
    ``[2, N, L, S, S, 3]``, scene then actor, already in the one-batch layout the backbone takes."""

    first: int
    streams: np.ndarray

    @property
    def scene(self) -> np.ndarray:
        return self.streams[0]

    @property
    def actor(self) -> np.ndarray:
        return self.streams[1]

    @property
    def num_clips(self) -> int:
        return int(self.streams.shape[1])


def working_size(width: int, height: int, short_side: int, keep_source_size: bool = True) -> tuple[int, int]:
    """(width, height) with the short side at most ``short_side``, aspect kept, never upscaled: a
    frame small enough is worked at its own size (``keep_source_size``), a downscaled one at even
    sides. Without ``keep_source_size`` every size is made even, which resamples an odd-sized frame
    by a pixel: every row of a 500x281 dive interpolated into 280, for nothing."""
    scale = min(1.0, short_side / min(width, height))
    if scale == 1.0 and keep_source_size:
        return width, height
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def layout_video(decoder: Decoder, path: str, config: SiameseConfig) -> VideoLayout:
    """Probe ``path`` and decide its clips, working size and detector frames."""
    info = decoder.probe(path)
    clips = plan_clips(info.num_frames, info.fps, config.clips)
    if clips.padded_frames:
        log.warning("%s: %d frames, shorter than one %d-frame clip; its last frame is repeated",
                    path, info.num_frames, config.clips.clip_length)
    work_size = working_size(info.width, info.height, config.work_short_side, config.keep_source_size)
    keys = np.asarray(keyframe_indices(info.num_frames, config.detector.every_k), np.int64)
    return VideoLayout(path, info, clips, work_size, keys)


def _frame_reader(decoder: Decoder, layout: VideoLayout, backend: Backend):
    """``indices -> frames`` at the working size: what :mod:`extractors.athlete` reads from."""

    def read_frames(indices) -> np.ndarray:
        return decoder.read(layout.path, indices, backend=backend, resize=layout.work_size).frames

    return read_frames


@dataclass(frozen=True)
class KeyFrameFindings:
    """What the first pass learns from one key frame: the people in it (``[K, 5]``, working
    pixels) and how much its colours changed since the key frame before it (a camera cut is
    near 1, :mod:`extractors.cuts`; None for the first key frame, or where shots are not split)."""

    boxes: np.ndarray
    change: float | None = None


class _ChangeRecorder:
    """Wraps a frame reader: measures each frame's colour change against the frame read before
    it, so the detector's frames are decoded once for both (one histogram a frame). ``previous``
    is the key frame before the first one read (one extra frame decoded; None at the video's start)."""

    def __init__(self, read_frames, previous: int | None):
        self._read_frames = read_frames
        self._last = colour_histogram(read_frames([previous])[0]) if previous is not None else None
        self.changes: list[float | None] = []

    def read(self, indices) -> np.ndarray:
        frames = self._read_frames(indices)
        for frame in frames:
            histogram = colour_histogram(frame)
            self.changes.append(None if self._last is None else histogram_change(self._last, histogram))
            self._last = histogram
        return frames


def detect_key_frames(decoder: Decoder, layout: VideoLayout, keys: np.ndarray, detector: PersonDetector,
                      config: SiameseConfig, backend: Backend = "auto") -> list[KeyFrameFindings]:
    """People and colour change in each of the key frames ``keys`` (sorted, consecutive among the
    layout's key frames): one part of a video, for :func:`plan_from_detections` to join with the
    others. The change is measured when the tracker splits the video at cuts (``tracker.split_shots``)."""
    reader = _frame_reader(decoder, layout, backend)
    if not config.tracker.split_shots:
        return [KeyFrameFindings(boxes) for boxes in detect_people(reader, keys.tolist(), layout.work_size, detector,
                                                                   config.detector.batch_size)]
    position = int(np.searchsorted(layout.key_frames, keys[0]))
    previous = int(layout.key_frames[position - 1]) if position > 0 else None
    recorder = _ChangeRecorder(reader, previous)
    found = detect_people(recorder.read, keys.tolist(), layout.work_size, detector, config.detector.batch_size)
    return [KeyFrameFindings(boxes, change) for boxes, change in zip(found, recorder.changes)]


NewFindings = dict[int, KeyFrameFindings]  # key frame -> what a step found there, with what it had


def follow_missed_key_frames(decoder: Decoder, layout: VideoLayout, findings: list[KeyFrameFindings | None],
                             detector: PersonDetector, config: SiameseConfig, backend: Backend = "auto",
                             share: Share = WHOLE) -> NewFindings:
    """The key frames the detector missed between two finds (all parts joined), filled by following
    the athlete from the last find (:func:`extractors.athlete.follow_misses`), when
    ``config.detector.follow_misses``; ``share``: this part's runs only. ``findings`` is only read
    (the parts of a video read it side by side); :func:`keep_findings` puts the result in."""
    if not config.detector.follow_misses:
        return {}
    boxes = _boxes_of(findings)
    tracker = config.tracker
    starts = shot_starts(_changes_of(findings), tracker.cut_threshold, tracker.cut_spike) if tracker.split_shots else []
    detector_config = config.detector
    back = FollowBack(scale=detector_config.look_again_scale) if detector_config.follow_back else None
    follow_misses(_frame_reader(decoder, layout, backend), boxes, detector, tracker.max_bridge, starts, share, back)
    return _new_findings(findings, boxes)


def look_again_at_key_frames(decoder: Decoder, layout: VideoLayout, findings: list[KeyFrameFindings | None],
                             detector: PersonDetector, config: SiameseConfig, backend: Backend = "auto",
                             share: Share = WHOLE) -> NewFindings:
    """What the detector finds in a crop around the tracked athlete on the key frames it missed
    them on (:func:`extractors.athlete.look_again`), when ``config.detector.look_again``;
    ``share``: this part's frames only. ``findings`` is only read; the plan is then made again
    from the findings with these kept (:func:`keep_findings`)."""
    if not config.detector.look_again:
        return {}
    # Where to look is the chain's track, whatever links the final one: on the reference clips the
    # crops around the path's own first track found the vault clip's gymnast far less often
    # (66.6 against 87.5 % of its frames at IoU >= 0.5 after the path linked them).
    track = _track(layout, findings, replace(config.tracker, linker="chain"))
    boxes = _boxes_of(findings)
    detector_config = config.detector
    look_again(_frame_reader(decoder, layout, backend), boxes, track, detector, layout.work_size,
               crop=detector_config.look_again_crop, reach=detector_config.look_again_reach,
               aspect=detector_config.look_again_aspect, scale=detector_config.look_again_scale,
               min_score=detector_config.look_again_min_score,
               batch_size=detector_config.batch_size, share=share)
    return _new_findings(findings, boxes)


def keep_findings(findings: list[KeyFrameFindings | None], new: NewFindings) -> None:
    """Put ``new`` (what a step found, part by part) into ``findings``, in place."""
    for frame, found in new.items():
        findings[frame] = found


def _boxes_of(findings: list[KeyFrameFindings | None]) -> list[np.ndarray | None]:
    """Each key frame's people (None where the detector did not run), as :mod:`extractors.athlete` takes them."""
    return [None if found is None else found.boxes for found in findings]


def _changes_of(findings: list[KeyFrameFindings | None]) -> list[float | None]:
    """Each key frame's colour change (None where not measured), as :func:`extractors.cuts.shot_starts` takes them."""
    return [None if found is None else found.change for found in findings]


def _new_findings(findings: list[KeyFrameFindings | None], boxes: list[np.ndarray | None]) -> NewFindings:
    """The key frames whose ``boxes`` a step replaced, as findings (with the colour change they had)."""
    return {frame: KeyFrameFindings(boxes[frame], found.change) for frame, found in enumerate(findings)
            if found is not None and found.boxes is not boxes[frame]}


def _track(layout: VideoLayout, findings: list[KeyFrameFindings | None], tracker: TrackerConfig) -> ActorTrack:
    """The athlete through all frames from what the key frames showed, split at the cuts they measured."""
    return track_actor(_boxes_of(findings), layout.work_size, tracker, _changes_of(findings))


def plan_from_detections(layout: VideoLayout, findings: list[KeyFrameFindings | None],
                         config: SiameseConfig) -> VideoPlan:
    """Track the athlete through all frames (``findings[t]``: what key frame t showed, or None
    where the detector did not run) and fix the square actor crop of each frame."""
    track = _track(layout, findings, config.tracker)
    crop_boxes = square_crop_boxes(track.boxes, layout.work_size, margin=config.crop_margin)
    return VideoPlan(layout, track, crop_boxes)


def plan_video(decoder: Decoder, path: str, detector: PersonDetector, config: SiameseConfig,
               backend: Backend = "auto") -> VideoPlan:
    """Probe, plan the clips and track the athlete (the first of two decoding passes), in one go:
    the steps of :mod:`extractors.video_steps` in sequence, with every key frame in one part."""
    layout = layout_video(decoder, path, config)
    return plan_from_detections(layout, key_frame_findings(decoder, layout, detector, config, backend), config)


def key_frame_findings(decoder: Decoder, layout: VideoLayout, detector: PersonDetector, config: SiameseConfig,
                       backend: Backend = "auto") -> list[KeyFrameFindings | None]:
    """What the first pass learns from ``layout``'s key frames (None on other frames): detected,
    followed and looked at again, in sequence, every key frame in one part."""
    detections: list[KeyFrameFindings | None] = [None] * layout.info.num_frames
    found = detect_key_frames(decoder, layout, layout.key_frames, detector, config, backend)
    for frame, findings in zip(layout.key_frames.tolist(), found):
        detections[frame] = findings
    keep_findings(detections, follow_missed_key_frames(decoder, layout, detections, detector, config, backend))
    keep_findings(detections, look_again_at_key_frames(decoder, layout, detections, detector, config, backend))
    return detections


def clip_batches(decoder: Decoder, plan: VideoPlan, config: SiameseConfig, input_size: int,
                 clips_per_batch: int = 4, backend: Backend = "auto",
                 clips: range | None = None) -> Iterator[ClipBatch]:
    """Decode the planned clips (all, or the range ``clips``) ``clips_per_batch`` at a time and
    cut both streams (second pass). The decoder does the cutting, next to the decoded frames."""
    width, height = plan.layout.work_size
    full_frame = np.array([[0, 0, width, height]], np.float32)
    scene_box = full_frame if config.scene == "squash" else square_crop_boxes(full_frame, plan.layout.work_size, 0.0)
    clips = clips if clips is not None else range(plan.layout.clips.num_clips)
    for first in range(clips.start, clips.stop, clips_per_batch):
        indices = plan.layout.clips.indices[first:min(first + clips_per_batch, clips.stop)]  # [N, L]
        unique, inverse = np.unique(indices, return_inverse=True)
        boxes = np.stack([np.repeat(scene_box, len(unique), axis=0), plan.crop_boxes[unique]])
        streams = decoder.read(plan.layout.path, unique, backend=backend, resize=plan.layout.work_size, crops=boxes,
                               crop_size=input_size).frames  # [2, U, S, S, 3]
        if not np.array_equal(indices.ravel(), unique):  # overlapping snippets or repeated padding
            streams = streams[:, inverse.ravel()]
        yield ClipBatch(first, streams.reshape(2, *indices.shape, input_size, input_size, 3))


@torch.inference_mode()
def embed_batch(backbone: VideoBackbone, batch: ClipBatch, *, device: str | torch.device = "cpu",
                precision: Literal["fp32", "bf16", "fp16"] = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Both streams through one forward: ``(scene [N, D], actor [N, D])`` float32."""
    clips = torch.from_numpy(batch.streams.reshape(-1, *batch.streams.shape[2:]))
    device = torch.device(device)
    if device.type == "cuda":
        clips = clips.pin_memory().to(device, non_blocking=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        features = backbone.forward_features(backbone.preprocess(clips))
    features = features.float().cpu().numpy()
    count = batch.num_clips
    return features[:count], features[count:]


@dataclass(frozen=True)
class SiameseFeatures:
    """One video's result: both streams ``[C, D]`` and what they were made from."""

    plan: VideoPlan
    scene: np.ndarray
    actor: np.ndarray


def extract_video(decoder: Decoder, path: str, backbone: VideoBackbone, detector: PersonDetector,
                  config: SiameseConfig, *, device: str = "cpu", precision: Literal["fp32", "bf16", "fp16"] = "fp32",
                  clips_per_batch: int = 4, backend: Backend = "auto",
                  on_progress: Callable[[int, int], None] | None = None) -> SiameseFeatures:
    """Plan, decode, crop and embed one video, in sequence.

    ``on_progress(clips_done, clips_total)`` is called after the plan and after every batch
    (a progress bar at the command-line edge hangs off it).
    """
    plan = plan_video(decoder, path, detector, config, backend)
    input_size = config.resolved_input_size
    scene, actor = [], []
    if on_progress is not None:
        on_progress(0, plan.layout.clips.num_clips)
    for batch in clip_batches(decoder, plan, config, input_size, clips_per_batch, backend):
        scene_part, actor_part = embed_batch(backbone, batch, device=device, precision=precision)
        scene.append(scene_part)
        actor.append(actor_part)
        if on_progress is not None:
            on_progress(batch.first + batch.num_clips, plan.layout.clips.num_clips)
    return SiameseFeatures(plan, np.concatenate(scene), np.concatenate(actor))
