"""Find the athlete in a video: the detector on key frames, in batches, and the misses followed.

The video reader stays outside: extraction passes its ``get_batch`` as ``read_frames``, so this
module holds no decoder and is tested with frames from memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from aqa.extractors.detect import PersonDetector

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


def follow_misses(read_frames: FrameReader, detections: list[np.ndarray | None], detector: PersonDetector,
                  longest: int) -> int:
    """Fill ``detections`` in place where the detector lost the athlete after a steady find.

    ``detections[t]`` is None where the detector did not run. A find is *steady* when the key
    frame before or after it has a find too; a lone find amid misses is as often a judge, a
    reflection or a wrong pose as the athlete (on a real dive, the one find amid nine missed
    somersault frames is off the diver). From each steady find that the next key frame misses,
    ``detector.follow`` carries the person forward through the key frames up to the next steady
    find, or, when none comes within ``longest`` frames, up to the last find that does (the
    athlete is seen again there); with no find at all within reach the athlete has gone and
    nothing is followed. Each key frame passed gets the followed box, beside whatever lone find
    it had: the tracker's association keeps what continues the track. Returns the frames filled.

    Detectors that cannot follow (YOLO) leave ``detections`` as they are: YOLO finds every person
    in a frame on its own, and the tracker bridges its misses.
    """
    if not detector.follows:
        return 0
    filled = 0
    for start, passed in _runs_to_follow(detections, longest):
        for frame, boxes in zip(passed, detector.follow(read_frames([start, *passed]))):
            if len(boxes):
                detections[frame] = np.concatenate([detections[frame], boxes])
                filled += 1
    return filled


def _runs_to_follow(detections: Sequence[np.ndarray | None], longest: int) -> list[tuple[int, list[int]]]:
    """(steady find, the key frames to follow through after it) for :func:`follow_misses`."""
    keys = [frame for frame, boxes in enumerate(detections) if boxes is not None]
    found = [len(detections[frame]) > 0 for frame in keys]
    steady = [found[i] and ((i > 0 and found[i - 1]) or (i + 1 < len(keys) and found[i + 1]))
              for i in range(len(keys))]
    runs = []
    for first in range(len(keys) - 1):
        if not steady[first] or found[first + 1]:
            continue
        reach = [i for i in range(first + 1, len(keys)) if keys[i] - keys[first] <= longest]
        finds = [i for i in reach if found[i]]
        end = next((i for i in finds if steady[i]), finds[-1] if finds else None)
        if end is not None:
            runs.append((keys[first], keys[first + 1:end]))
    return runs
