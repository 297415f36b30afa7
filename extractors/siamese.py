"""Siamese clip features of one video: the whole scene and the athlete's crop through one backbone.

The path of a video through this module:

1. :func:`plan_video` probes it, plans its clips (:mod:`extractors.clips`), decodes it at a
   working size (short side ``work_short_side``; never upscaled), finds and tracks the athlete
   (:mod:`extractors.actor`) and fixes a square crop box per frame (:mod:`extractors.crops`).
2. :func:`clip_batches` decodes the planned frames again, a few clips at a time (memory stays
   flat however long the video), and cuts each frame twice at the backbone's input size: the
   scene (the whole frame, squashed or centre-cropped) and the actor crop, aligned frame for frame.
3. :func:`embed_batch` runs **one** backbone forward over scene and actor clips stacked in one
   batch, and splits the pooled features back into the two streams.

:func:`extract_video` chains the three for a single video; ``pipeline.extract`` overlaps them
across videos. Decoding goes through a *decoder* with the face of
:class:`extractors.decode_worker.DecodeWorker` (``probe`` and ``read``), so hangs can be timed out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch

from extractors.actor import locate_actor
from extractors.backbones import VideoBackbone, backbone_spec
from extractors.clips import ClipPlan, ClipPlanConfig, plan_clips
from extractors.crops import crop_and_resize, square_crop_boxes
from extractors.decode_worker import ReadResult
from extractors.detect import DetectorConfig, PersonDetector
from extractors.tracking import ActorTrack, TrackerConfig
from extractors.video import Backend, VideoInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiameseConfig:
    """What the features mean: change any of these and features are no longer comparable.

    backbone / weights: registry name and weights file (None: the backbone's default file).
    input_size: square side the backbone sees (None: the backbone spec's, 224).
    clips: the clip plan; default 32-frame segments at the native rate (CoFInAl / GDLT).
    work_short_side: frames are decoded with this short side for detection and cropping
        (360 keeps the athlete sharp in 1080p footage at a fraction of the decode cost).
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
    scene: Literal["squash", "center_crop"] = "squash"
    crop_margin: float = 0.25

    @property
    def resolved_input_size(self) -> int:
        """The square side the backbone sees: ``input_size``, else the backbone spec's."""
        return self.input_size or backbone_spec(self.backbone).input_size[0]


class Decoder(Protocol):
    """What :mod:`extractors.decode_worker` offers: metadata and frames of a path."""

    def probe(self, path: str) -> VideoInfo: ...

    def read(self, path: str, indices, *, backend: Backend = "auto",
             resize: tuple[int, int] | None = None) -> ReadResult: ...


@dataclass(frozen=True)
class VideoPlan:
    """Everything decided about a video before the backbone runs (boxes in working pixels)."""

    path: str
    info: VideoInfo
    clips: ClipPlan
    work_size: tuple[int, int]  # (width, height) frames are decoded at
    track: ActorTrack
    crop_boxes: np.ndarray  # [T, 4] square actor crops, working pixels

    @property
    def boxes_in_source_pixels(self) -> np.ndarray:
        """The tracked athlete boxes ``[T, 4]`` scaled to the video's own upright pixel size."""
        scale_x = self.info.width / self.work_size[0]
        scale_y = self.info.height / self.work_size[1]
        return (self.track.boxes * np.array([scale_x, scale_y, scale_x, scale_y], np.float32)).astype(np.float32)


@dataclass(frozen=True)
class ClipBatch:
    """uint8 clips ``[N, L, S, S, 3]`` of both streams for clips ``first .. first + N - 1``."""

    first: int
    scene: np.ndarray
    actor: np.ndarray


def working_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Even (width, height) with the short side at most ``short_side``, aspect kept, never upscaled."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def plan_video(decoder: Decoder, path: str, detector: PersonDetector, config: SiameseConfig,
               backend: Backend = "auto") -> VideoPlan:
    """Probe, plan the clips and track the athlete (the first of two decoding passes)."""
    info = decoder.probe(path)
    clips = plan_clips(info.num_frames, info.fps, config.clips)
    if clips.padded_frames:
        log.warning("%s: %d frames, shorter than one %d-frame clip; its last frame is repeated",
                    path, info.num_frames, config.clips.clip_length)
    work_size = working_size(info.width, info.height, config.work_short_side)

    def read_frames(indices) -> np.ndarray:
        return decoder.read(path, indices, backend=backend, resize=work_size).frames

    track = locate_actor(read_frames, info.num_frames, work_size, detector, every_k=config.detector.every_k,
                         batch_size=config.detector.batch_size, tracker_config=config.tracker)
    crop_boxes = square_crop_boxes(track.boxes, work_size, margin=config.crop_margin)
    return VideoPlan(path, info, clips, work_size, track, crop_boxes)


def clip_batches(decoder: Decoder, plan: VideoPlan, config: SiameseConfig, input_size: int,
                 clips_per_batch: int = 4, backend: Backend = "auto") -> Iterator[ClipBatch]:
    """Decode the planned clips ``clips_per_batch`` at a time and cut both streams (second pass)."""
    width, height = plan.work_size
    full_frame = np.array([[0, 0, width, height]], np.float32)
    scene_box = full_frame if config.scene == "squash" else square_crop_boxes(full_frame, plan.work_size, 0.0)
    for first in range(0, plan.clips.num_clips, clips_per_batch):
        indices = plan.clips.indices[first:first + clips_per_batch]  # [N, L]
        unique, inverse = np.unique(indices, return_inverse=True)
        frames = decoder.read(plan.path, unique, backend=backend, resize=plan.work_size).frames
        scene = crop_and_resize(frames, np.repeat(scene_box, len(unique), axis=0), input_size)
        actor = crop_and_resize(frames, plan.crop_boxes[unique], input_size)
        shape = (*indices.shape, input_size, input_size, 3)
        yield ClipBatch(first, scene[inverse.ravel()].reshape(shape), actor[inverse.ravel()].reshape(shape))


@torch.inference_mode()
def embed_batch(backbone: VideoBackbone, batch: ClipBatch, *, device: str | torch.device = "cpu",
                precision: Literal["fp32", "bf16", "fp16"] = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Both streams through one forward: ``(scene [N, D], actor [N, D])`` float32."""
    clips = torch.from_numpy(np.concatenate([batch.scene, batch.actor]))
    device = torch.device(device)
    if device.type == "cuda":
        clips = clips.pin_memory().to(device, non_blocking=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        features = backbone.forward_features(backbone.preprocess(clips))
    features = features.float().cpu().numpy()
    count = len(batch.scene)
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
        on_progress(0, plan.clips.num_clips)
    for batch in clip_batches(decoder, plan, config, input_size, clips_per_batch, backend):
        scene_part, actor_part = embed_batch(backbone, batch, device=device, precision=precision)
        scene.append(scene_part)
        actor.append(actor_part)
        if on_progress is not None:
            on_progress(batch.first + len(batch.scene), plan.clips.num_clips)
    return SiameseFeatures(plan, np.concatenate(scene), np.concatenate(actor))
