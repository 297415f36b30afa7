"""Tiny synthetic videos for tests: moving shapes with known boxes, written as real H.264.

Every frame has a textured background, a tall "figure" rectangle moving on a known path and
optionally a smaller distractor. The frame index is encoded in the top-left block's colour,
so a reader's frame order can be checked after lossy compression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqa.video_writer import write_video


@dataclass(frozen=True)
class MovingShapes:
    """Frames ``[T, H, W, 3]`` uint8 RGB and the figure's box per frame ``[T, 4]`` (x1, y1, x2, y2)."""

    frames: np.ndarray
    figure_boxes: np.ndarray
    distractor_boxes: np.ndarray
    fps: float


def moving_shapes(num_frames: int = 24, height: int = 96, width: int = 128, fps: float = 25.0,
                  *, distractor: bool = True, seed: int = 0) -> MovingShapes:
    """Draw the clip: the figure sweeps left to right and bobs; the distractor drifts back."""
    rng = np.random.default_rng(seed)
    # Coarse 8x8 tiles: textured enough to look like a scene, smooth enough for H.264.
    tiles = rng.integers(40, 90, size=(-(-height // 8), -(-width // 8), 3))
    background = np.kron(tiles, np.ones((8, 8, 1)))[:height, :width].astype(np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    fig_h, fig_w = height // 2, max(4, width // 8)
    figure_boxes = np.zeros((num_frames, 4), dtype=np.float32)
    distractor_boxes = np.zeros((num_frames, 4), dtype=np.float32)
    for t in range(num_frames):
        progress = t / max(1, num_frames - 1)
        x1 = int(round(4 + progress * (width - fig_w - 8)))
        y1 = int(round(height / 4 + np.sin(progress * np.pi) * height / 8))
        if distractor:  # drawn first: the figure passes in front of it
            dx1 = int(round(width - 4 - fig_w // 2 - progress * width / 3))
            dy1 = height - height // 4 - 2
            distractor_boxes[t] = (dx1, dy1, dx1 + fig_w // 2, dy1 + height // 4)
            frames[t, dy1:dy1 + height // 4, dx1:dx1 + fig_w // 2] = (40, 200, 220)
        figure_boxes[t] = (x1, y1, x1 + fig_w, y1 + fig_h)
        frames[t, y1:y1 + fig_h, x1:x1 + fig_w] = (230, 60, 40)
        frames[t, :8, :8] = frame_index_colour(t)
    return MovingShapes(frames, figure_boxes, distractor_boxes, fps)


def frame_index_colour(index: int) -> tuple[int, int, int]:
    """A grey level that identifies frame ``index`` modulo 25, robust to H.264 at crf 18."""
    level = 10 * (index % 25) + 5
    return (level, level, level)


def read_frame_index(frame: np.ndarray) -> int:
    """Invert :func:`frame_index_colour` from the top-left block of a decoded frame."""
    level = float(frame[1:7, 1:7].mean())
    return int(round((level - 5) / 10))


def write_moving_shapes(path: str | Path, **kwargs) -> MovingShapes:
    """Draw a clip with :func:`moving_shapes` and write it as H.264 to ``path``."""
    clip = moving_shapes(**kwargs)
    write_video(path, clip.frames, clip.fps)
    return clip
