"""Clip plans: which source frames make up each clip a backbone sees. Pure functions, no I/O.

Two plans cover the AQA literature:

* ``segments`` (GDLT, CoFInAl and their Fis-V / RG features): the video, optionally resampled
  to ``target_fps`` (those features use 25 fps), is cut into non-overlapping clips of
  ``clip_length`` (32) frames; the remainder that does not fill a clip is trimmed evenly from
  both ends (the extra frame, if odd, from the end).
* ``snippets`` (CoRe, TSA, FSPN on MTL-AQA, AQA-7, FineDiving): ``window`` frames (103) sampled
  uniformly over the video, then clips of ``clip_length`` (16) starting every ``stride`` (10)
  frames, plus one ending exactly at the window's end if the stride left a tail. That gives the
  published 10 snippets over 103 frames (starts 0, 10, ..., 80, 87) and 9 over 96 (0, ..., 80).

A video shorter than one clip still gives one clip, its last frame repeated to fill it
(``ClipPlan.padded_frames`` says how many); callers may warn or refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class ClipPlanConfig:
    """How clips are cut. Defaults: the CoFInAl / GDLT 32-frame segments at the native rate."""

    kind: Literal["segments", "snippets"] = "segments"
    clip_length: int = 32
    target_fps: float | None = None  # segments only: resample to this rate first (25 in GDLT)
    window: int = 103  # snippets only: frames sampled over the whole video
    stride: int = 10  # snippets only: distance between snippet starts

    def __post_init__(self) -> None:
        """Impossible plans fail when the config is made, before any video is opened (a clip length
        of 0 once failed every video alone, each with a ZeroDivisionError)."""
        for name in ("clip_length", "window", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number of frames, got {getattr(self, name)}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"target_fps must be positive (or null for the native rate), got {self.target_fps}")


@dataclass(frozen=True)
class ClipPlan:
    """Source frame indices per clip, ``indices`` ``[C, L]`` int64, and how many were padding."""

    indices: np.ndarray
    padded_frames: int = 0

    @property
    def num_clips(self) -> int:
        return int(self.indices.shape[0])

    @property
    def frame_ranges(self) -> np.ndarray:
        """``[C, 2]``: first source frame and one past the last, per clip."""
        return np.stack([self.indices.min(axis=1), self.indices.max(axis=1) + 1], axis=1)

    def unique_frames(self) -> np.ndarray:
        """Sorted source frames to decode, each once (snippets overlap)."""
        return np.unique(self.indices)


def plan_clips(num_frames: int, fps: float, config: ClipPlanConfig = ClipPlanConfig()) -> ClipPlan:
    """The clip plan for a video of ``num_frames`` frames at ``fps``."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if config.kind == "snippets":
        timeline = uniform_indices(num_frames, config.window)
        starts = snippet_starts(config.window, config.clip_length, config.stride)
        return ClipPlan(timeline[starts[:, None] + np.arange(config.clip_length)])
    timeline = np.arange(num_frames)
    if config.target_fps is not None:
        timeline = resample_indices(num_frames, fps, config.target_fps)
    return segment_timeline(timeline, config.clip_length)


def segment_timeline(timeline: np.ndarray, clip_length: int) -> ClipPlan:
    """Non-overlapping clips over ``timeline`` (source indices), remainder trimmed at both ends."""
    num_clips, remainder = divmod(len(timeline), clip_length)
    if num_clips == 0:
        padded = clip_length - len(timeline)
        filled = np.concatenate([timeline, np.full(padded, timeline[-1])])
        return ClipPlan(filled.reshape(1, clip_length).astype(np.int64), padded)
    start = remainder // 2
    used = timeline[start:start + num_clips * clip_length]
    return ClipPlan(used.reshape(num_clips, clip_length).astype(np.int64))


def resample_indices(num_frames: int, source_fps: float, target_fps: float) -> np.ndarray:
    """Source frames that show each tick of a ``target_fps`` clock: the latest frame at or before it.

    The resampled video covers the same duration, so it has ``floor(num_frames * target / source)``
    frames (at least one). Equal rates give every frame once.
    """
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {source_fps} and {target_fps}")
    count = max(1, int(np.floor(num_frames * target_fps / source_fps + 1e-9)))
    ticks = np.arange(count) * (source_fps / target_fps)
    return np.minimum(np.floor(ticks + 1e-9).astype(np.int64), num_frames - 1)


def uniform_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` source frames spread evenly from the first to the last (repeats if too few)."""
    return np.round(np.linspace(0, num_frames - 1, count)).astype(np.int64)


def snippet_starts(window: int, clip_length: int, stride: int) -> np.ndarray:
    """Starts every ``stride`` frames, plus one flush with the window's end if a tail remains."""
    if clip_length > window:
        raise ValueError(f"snippets of {clip_length} frames do not fit a window of {window}")
    starts = list(range(0, window - clip_length + 1, stride))
    if starts[-1] != window - clip_length:
        starts.append(window - clip_length)
    return np.asarray(starts, dtype=np.int64)
