"""Actor-centric crops: square boxes around the athlete, and the frames cut and resized to them.

Pure functions, no I/O. The actor stream of the Siamese backbone sees a square crop (the
backbones take square inputs, and squashing a tall athlete would distort the motion), centred on
the tracked box, with some context around it, kept inside the frame.

When tracking found no athlete (FALLBACK) the track box is the whole frame; the square crop of
a whole frame is its centre square (side = the frame's shorter side). We take the centre square
rather than squashing the whole frame: the aspect ratio stays that of every other crop, and
broadcast cameras keep the action near the centre.
"""

from __future__ import annotations

import cv2
import numpy as np


def square_crop_boxes(boxes: np.ndarray, frame_size: tuple[int, int], margin: float = 0.25,
                      min_size: int = 32) -> np.ndarray:
    """Square crop boxes ``[T, 4]`` around boxes ``[T, 4]`` (x1, y1, x2, y2), inside the frame.

    The side is the box's longer side times ``1 + 2 * margin`` (``margin`` of context on each
    side, as a fraction of the longer side), at least ``min_size`` pixels. The square keeps the
    box's centre, is shifted to lie inside the frame ``(W, H)``, and shrinks to the frame's
    shorter side only when it is larger than that.
    Corners are whole pixels, so cropping by slicing is exact.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = frame_size
    if margin < 0 or min_size < 1:
        raise ValueError(f"margin must be >= 0 and min_size >= 1, got {margin} and {min_size}")
    longest = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    side = np.clip(np.round(longest * (1 + 2 * margin)), min(min_size, width, height), min(width, height))
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    x1 = np.clip(np.round(centre_x - side / 2), 0, width - side)
    y1 = np.clip(np.round(centre_y - side / 2), 0, height - side)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float32)


def crop_and_resize(frames: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut box i out of frame i and resize it to ``size x size``: ``[N, size, size, 3]`` uint8.

    frames: ``[N, H, W, 3]`` uint8; boxes: ``[N, 4]`` (x1, y1, x2, y2), rounded to whole pixels
    and clamped to the frame (at least one pixel). Shrinking uses ``INTER_AREA`` (averages the
    source pixels, no aliasing), enlarging ``INTER_LINEAR`` (``INTER_AREA`` falls back to
    nearest-neighbour there). Non-square boxes are squashed: pass :func:`square_crop_boxes`.
    """
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if frames.ndim != 4 or len(frames) != len(boxes):
        raise ValueError(f"expected frames [N, H, W, 3] and boxes [N, 4], got {frames.shape} and {boxes.shape}")
    out = np.empty((len(frames), size, size, frames.shape[3]), np.uint8)
    for index, (frame, box) in enumerate(zip(frames, boxes)):
        out[index] = cut_and_resize(frame, box, size)
    return out


def cut(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of ``frame`` ``[H, W, C]`` inside ``box`` (x1, y1, x2, y2, rounded to whole pixels,
    inside the frame, at least one pixel): a view, not a copy."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (int(corner) for corner in np.round(np.asarray(box[:4], np.float64)))
    x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
    x2, y2 = min(max(x2, x1 + 1), width), min(max(y2, y1 + 1), height)
    return frame[y1:y2, x1:x2]


def cut_and_resize(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """:func:`crop_and_resize` for one frame ``[H, W, C]`` and its box: ``[size, size, C]``."""
    crop = cut(frame, box)
    shrinking = crop.shape[0] >= size and crop.shape[1] >= size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
