"""Find the athlete in a video: the detector on key frames, in batches, the misses followed, and
(optionally) a second look in a crop where the track says the athlete is.

The video reader stays outside: extraction passes its ``get_batch`` as ``read_frames``, so this
module holds no decoder and is tested with frames from memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aqa.extractors.crops import cut
from aqa.extractors.cuts import colour_histogram, histogram_change
from aqa.extractors.detect import PersonDetector
from aqa.extractors.tracking import DETECTED, ActorTrack, box_iou

FrameReader = Callable[[Sequence[int]], np.ndarray]  # indices -> [N, H, W, 3] uint8 RGB


@dataclass(frozen=True)
class Share:
    """Part ``part`` of ``parts``: which of a step's items one worker takes, so that the workers
    of a long video follow and look again side by side (each item is done on its own, so the
    result does not depend on how the items were shared)."""

    part: int = 0
    parts: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.part < self.parts:
            raise ValueError(f"part must be in 0 .. parts - 1, got part {self.part} of {self.parts}")

    def of(self, items: Sequence, weights: Sequence[float] | None = None) -> list:
        """This part's contiguous run of ``items`` (in order), cut where the running total of
        ``weights`` (1 each by default) crosses an equal share of the whole."""
        weights = np.ones(len(items)) if weights is None else np.asarray(weights, np.float64)
        if not len(items):
            return []
        ends = np.cumsum(weights) - weights / 2  # an item goes to the part its middle falls in
        owner = np.minimum((ends / weights.sum() * self.parts).astype(int), self.parts - 1)
        return [item for item, part in zip(items, owner) if part == self.part]


WHOLE = Share()


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


@dataclass(frozen=True)
class FollowBack:
    """Following backward in time, from the first steady find of a shot to the key frames before
    it (:func:`follow_misses`). Forward, a run ends at a find, so the athlete is known to be
    there; backward nothing is known before the first find: the athlete may be standing still on
    the platform, unseen by the detector (on two real London dives the diver stood 9 and 10 frames
    in plain view before the first find), or may not have entered yet. So a followed box is kept
    only while it is one the athlete would give: scored ``min_score`` or more (the landmarks'
    mean visibility: a diver standing side-on to the camera hides half the joints, and scored
    0.66-0.78 where the box was right), its area within ``scale`` times the first find's, overlapping the box
    after it by at least ``min_overlap`` (IoU), clear of the frame's edge (an athlete followed
    back out of the frame leaves a pose on whatever texture is there), and holding the colours the
    first find's box held (Bhattacharyya distance of their colour histograms at most
    ``max_colour_change``: where an athlete appears in a scene, the follower boxes the texture
    where they will be at scores of 0.4-0.7, and those boxes' colours were 0.84-0.93 from the
    athlete's; a real diver standing before the first find, 0.13-0.44). The first box that fails
    ends the run."""

    min_score: float = 0.5
    scale: float = 4.0
    min_overlap: float = 0.3
    max_colour_change: float = 0.6

    def keep(self, followed: Sequence[np.ndarray], frames: np.ndarray, start: np.ndarray) -> int:
        """How many of ``followed`` (each ``[K, 5]``, the latest first, in ``frames[1:]``) hold
        before one fails; ``start``: the find followed from, in ``frames[0]``."""
        height, width = frames.shape[1:3]
        athlete, after = colour_histogram(cut(frames[0], start)), start
        for kept, (boxes, frame) in enumerate(zip(followed, frames[1:])):
            if not len(boxes):
                return kept
            box = boxes[0]
            inside = box[0] > 1 and box[1] > 1 and box[2] < width - 1 and box[3] < height - 1
            if not (box[4] >= self.min_score and inside and _area_agrees(box[None], start, self.scale)[0]
                    and box_iou(box, after) >= self.min_overlap
                    and histogram_change(athlete, colour_histogram(cut(frame, box))) <= self.max_colour_change):
                return kept
            after = box
        return len(followed)


def follow_misses(read_frames: FrameReader, detections: list[np.ndarray | None], detector: PersonDetector,
                  longest: int, shot_starts: Sequence[int] = (), share: Share = WHOLE,
                  back: FollowBack | None = None) -> int:
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

    Following never crosses a camera cut (``shot_starts``, the first frame of each shot after the
    first): the follower never gives up, so past a cut it boxes whatever pose-like texture lies
    where the athlete was, and the tracker would then start the new shot from it.

    With ``back``, each shot's first steady find is also followed backward through the key frames
    before it (within ``longest`` frames, never past the shot's start), for as long as
    :class:`FollowBack` says the box is still the athlete's.

    Detectors that cannot follow (YOLO) leave ``detections`` as they are: YOLO finds every person
    in a frame on its own, and the tracker bridges its misses. ``share``: follow only this part's
    runs (shared by the frames they pass); the runs are chosen from ``detections`` as given, so
    parts done on copies of the same list fill what one whole call would.
    """
    if not detector.follows:
        return 0
    filled = 0
    runs = _runs_to_follow(detections, longest, shot_starts)
    if back is not None:
        runs += _runs_to_follow_back(detections, longest, shot_starts)
    for start, passed in share.of(runs, [1 + len(passed) for _, passed in runs]):
        frames = read_frames([start, *passed])
        followed = detector.follow(frames)
        if passed and passed[0] < start:  # backward: kept while the box is still the athlete's
            first = max(detections[start], key=lambda box: box[4])
            followed = followed[:back.keep(followed, frames, first)]
        for frame, boxes in zip(passed, followed):
            if len(boxes):
                detections[frame] = np.concatenate([detections[frame], boxes])
                filled += 1
    return filled


def _runs_to_follow(detections: Sequence[np.ndarray | None], longest: int,
                    shot_starts: Sequence[int] = ()) -> list[tuple[int, list[int]]]:
    """(steady find, the key frames to follow through after it, within its shot) for :func:`follow_misses`."""
    keys = [frame for frame, boxes in enumerate(detections) if boxes is not None]
    found = [len(detections[frame]) > 0 for frame in keys]
    steady = [found[i] and ((i > 0 and found[i - 1]) or (i + 1 < len(keys) and found[i + 1]))
              for i in range(len(keys))]
    runs = []
    for first in range(len(keys) - 1):
        if not steady[first] or found[first + 1]:
            continue
        next_shot = min((start for start in shot_starts if start > keys[first]), default=len(detections))
        reach = [i for i in range(first + 1, len(keys)) if keys[i] - keys[first] <= longest and keys[i] < next_shot]
        finds = [i for i in reach if found[i]]
        end = next((i for i in finds if steady[i]), finds[-1] if finds else None)
        if end is not None:
            runs.append((keys[first], keys[first + 1:end]))
    return runs


def _runs_to_follow_back(detections: Sequence[np.ndarray | None], longest: int,
                         shot_starts: Sequence[int] = ()) -> list[tuple[int, list[int]]]:
    """(each shot's first steady find, the key frames before it in its shot within ``longest``
    frames, latest first) where one of those is a miss, for :func:`follow_misses`'s ``back``."""
    keys = [frame for frame, boxes in enumerate(detections) if boxes is not None]
    found = [len(detections[frame]) > 0 for frame in keys]
    bounds = [0, *sorted(shot_starts), len(detections)]
    runs = []
    for shot_start, shot_stop in zip(bounds, bounds[1:]):
        shot = range(bisect.bisect_left(keys, shot_start), bisect.bisect_left(keys, shot_stop))  # its key frames
        first = next((i for i in shot if found[i] and ((i - 1 in shot and found[i - 1])
                                                       or (i + 1 in shot and found[i + 1]))), None)
        if first is None:
            continue
        before = [i for i in shot if i < first and keys[first] - keys[i] <= longest]
        if any(not found[i] for i in before):
            runs.append((keys[first], [keys[i] for i in reversed(before)]))
    return runs


def look_again(read_frames: FrameReader, detections: list[np.ndarray | None], track: ActorTrack,
               detector: PersonDetector, frame_size: tuple[int, int], *, crop: float, reach: int,
               aspect: float, scale: float = np.inf, min_score: float = 0.0, batch_size: int = 16,
               share: Share = WHOLE) -> int:
    """Run the detector once more, on a crop around where ``track`` says the athlete is, on each key
    frame it did not detect them on but within ``reach`` frames of one it did; add what it finds
    there to ``detections`` (in place) for the tracker's second look. Returns the frames that got a box.

    The crop is a square ``crop`` times the tracked box's longer side (at least
    :data:`LOOK_AGAIN_MIN_SIDE` pixels, inside the frame), so the person detector's small input
    sees a far, small athlete 2-3 times larger than in the whole frame: on the 51-second vault
    clip, 104 of its 126 finds on the frames scored against hand-drawn boxes were the gymnast (79
    where the tracked box had been wrong: the run-ups seen from far). A find whose width-to-height
    ratio differs from the tracked box's by more than ``aspect`` times is dropped (a standing diver
    boxed 140 x 80 wide), so is one whose area differs from it by more than ``scale`` times (a
    crop's whole texture boxed as a person, 4.5 times the athlete's area, before they entered
    the scene), and so is one scored under ``min_score``: in a crop of a scene with
    nobody in it BlazePose boxes textures at 0.2-0.66. Extra boxes can split the chain's
    tracklets (``TrackerConfig.linker``: the path keeps them better, measured in docs/benchmarks.md).
    ``share``: look only at this part's frames (each frame is looked at on its own).
    """
    detected = np.flatnonzero(track.status == DETECTED)
    if not len(detected):
        return 0
    looked = share.of([frame for frame, boxes in enumerate(detections)
                       if boxes is not None and track.status[frame] != DETECTED
                       and np.abs(detected - frame).min() <= reach])
    found = 0
    for start in range(0, len(looked), batch_size):
        batch = looked[start:start + batch_size]
        for frame, image in zip(batch, read_frames(batch)):
            x1, y1, side = crop_around(track.boxes[frame], frame_size, crop)
            boxes = detector.detect(np.ascontiguousarray(image[y1:y1 + side, x1:x1 + side])[None])[0].copy()
            boxes[:, [0, 2]] += x1
            boxes[:, [1, 3]] += y1
            like_the_track = (_aspect_agrees(boxes, track.boxes[frame], aspect)
                              & _area_agrees(boxes, track.boxes[frame], scale))
            boxes = boxes[like_the_track & (boxes[:, 4] >= min_score)]
            if len(boxes):
                detections[frame] = np.concatenate([detections[frame], boxes.astype(np.float32)])
                found += 1
    return found


LOOK_AGAIN_MIN_SIDE = 64  # pixels: BlazePose needs some context around a tiny box


def crop_around(box: np.ndarray, frame_size: tuple[int, int], factor: float) -> tuple[int, int, int]:
    """``(x1, y1, side)`` of the square ``factor`` times ``box``'s longer side (at least
    :data:`LOOK_AGAIN_MIN_SIDE`, at most the frame's shorter side) centred on it, moved inside the frame."""
    width, height = frame_size
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = min(max(LOOK_AGAIN_MIN_SIDE, factor * max(box[2] - box[0], box[3] - box[1])), width, height)
    x1 = float(np.clip(centre_x - side / 2, 0, width - side))
    y1 = float(np.clip(centre_y - side / 2, 0, height - side))
    return int(round(x1)), int(round(y1)), int(round(side))


def _area_agrees(boxes: np.ndarray, reference: np.ndarray, limit: float) -> np.ndarray:
    """``[K]`` bool: each box's area within ``limit`` times ``reference``'s."""
    def area(b: np.ndarray) -> np.ndarray:
        return np.maximum(b[..., 2] - b[..., 0], 1e-6) * np.maximum(b[..., 3] - b[..., 1], 1e-6)
    change = area(boxes) / area(reference)
    return (change <= limit) & (change >= 1 / limit)


def _aspect_agrees(boxes: np.ndarray, reference: np.ndarray, limit: float) -> np.ndarray:
    """``[K]`` bool: each box's width-to-height ratio within ``limit`` times ``reference``'s."""
    def ratio(b: np.ndarray) -> np.ndarray:
        return np.maximum(b[..., 2] - b[..., 0], 1e-6) / np.maximum(b[..., 3] - b[..., 1], 1e-6)
    change = ratio(boxes) / ratio(reference)
    return (change <= limit) & (change >= 1 / limit)
