"""Find the athlete in a video: detector on key frames, in batches, then main-actor tracking.

The video reader stays outside: extraction passes its ``get_batch`` as ``read_frames``, so this
module holds no decoder and is tested with frames from memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from extractors.detect import PersonDetector
from extractors.tracking import ActorTrack, TrackerConfig, track_actor

logger = logging.getLogger(__name__)

FrameReader = Callable[[Sequence[int]], np.ndarray]  # indices -> [N, H, W, 3] uint8 RGB


def keyframe_indices(num_frames: int, every_k: int) -> list[int]:
    """Frames the detector runs on: 0, k, 2k, ... and always the last (so nothing is extrapolated)."""
    if num_frames < 1 or every_k < 1:
        raise ValueError(f"need num_frames >= 1 and every_k >= 1, got {num_frames} and {every_k}")
    indices = list(range(0, num_frames, every_k))
    return indices if indices[-1] == num_frames - 1 else indices + [num_frames - 1]


def detect_people(read_frames: FrameReader, indices: Sequence[int], frame_size: tuple[int, int],
                  detector: PersonDetector, batch_size: int = 16) -> list[np.ndarray]:
    """Person boxes ``[K, 5]`` in each frame of ``indices`` (sorted), read ``batch_size`` at a time.

    Memory stays bounded on long videos; several callers may cover disjoint parts of one video
    and :func:`extractors.tracking.track_actor` joins them (each frame is detected on its own).
    """
    found: list[np.ndarray] = []
    for start in range(0, len(indices), batch_size):
        batch = list(indices[start:start + batch_size])
        frames = read_frames(batch)
        if frames.shape[0] != len(batch) or frames.shape[1:3] != (frame_size[1], frame_size[0]):
            raise ValueError(f"read_frames gave {frames.shape} for {len(batch)} frames of size {frame_size} (W, H)")
        found += detector.detect(frames)
    return found


def locate_actor(read_frames: FrameReader, num_frames: int, frame_size: tuple[int, int], detector: PersonDetector,
                 *, every_k: int = 1, batch_size: int = 16,
                 tracker_config: TrackerConfig | None = None) -> ActorTrack:
    """The athlete's box in each of ``num_frames`` frames of size ``frame_size`` (W, H).

    Runs ``detector`` on the key frames (:func:`detect_people`) and tracks the main actor
    through all frames.
    """
    keys = keyframe_indices(num_frames, every_k)
    detections: list[np.ndarray | None] = [None] * num_frames
    started = time.perf_counter()
    for index, boxes in zip(keys, detect_people(read_frames, keys, frame_size, detector, batch_size)):
        detections[index] = boxes
    track = track_actor(detections, frame_size, tracker_config)
    logger.debug("%s on %d of %d frames in %.1f s: %s", detector.name, len(keys), num_frames,
                 time.perf_counter() - started, track.summary())
    return track
