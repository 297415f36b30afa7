"""Camera cuts: where one shot of a video ends and the next begins.

A broadcast cuts from the platform to the pool, from the vault to a replay, to the coach. A box
carried across a cut lands on whatever the new shot shows there, so the tracker
(:mod:`extractors.tracking`) tracks each shot on its own. A cut changes the colours of the whole
frame at once; a pan or a tilt, however fast, moves them and changes their mix little. So each key
frame's **change** is the Bhattacharyya distance between its colour histogram (8 x 8 x 8 RGB bins)
and the key frame's before it: 0 the same colours, 1 nothing in common. A cut is a change above a
threshold that also stands out from the changes around it (a **spike**): a fast pan at 10 fps
changes every frame's colours a lot, a cut changes one frame's.

Chosen by looking at the real clips (``docs/benchmarks.md``): the cuts there change 0.28-0.96 and
stand 3-230 times above their neighbours' median; the ten-frames-a-second dive's pan changes up to
0.49 but only 1.8 times its neighbours'; on the four 30 fps dives, whose camera pans 15-35 pixels a
frame down to the pool, no change exceeds 0.27 nor stands 1.4 times above its neighbours'. Hue and
saturation were measured first and dropped: the hue of snow and grey walls is noise, and an LED
advertising board turning from teal to purple moved them as much as a cut.

Pure functions over frames in memory; nothing here decodes.
"""

from __future__ import annotations

import cv2
import numpy as np


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """A frame's normalised RGB histogram (8 x 8 x 8 bins), its shot signature; the frame
    ``[H, W, 3]`` uint8 RGB is shrunk to 64 x 36 first (colours, not detail, make the signature)."""
    small = cv2.resize(np.ascontiguousarray(frame), (64, 36), interpolation=cv2.INTER_AREA)
    histogram = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    return cv2.normalize(histogram, histogram, 1.0, 0.0, cv2.NORM_L1)


def histogram_change(previous: np.ndarray, histogram: np.ndarray) -> float:
    """The change, 0..1, between two frames' :func:`colour_histogram` (Bhattacharyya distance)."""
    return float(np.clip(cv2.compareHist(previous, histogram, cv2.HISTCMP_BHATTACHARYYA), 0.0, 1.0))


def colour_change(previous: np.ndarray, frame: np.ndarray) -> float:
    """How much ``frame``'s colours differ from ``previous``'s, 0..1 (module docstring)."""
    return histogram_change(colour_histogram(previous), colour_histogram(frame))


def shot_starts(changes: list[float | None], threshold: float, spike: float, window: int = 5) -> list[int]:
    """The frames where a new shot starts: those whose ``changes`` entry (None: not measured)
    exceeds ``threshold`` and ``spike`` times the median of the measured changes of the ``window``
    key frames on either side (module docstring). Frame 0 is not listed."""
    measured = [(frame, change) for frame, change in enumerate(changes) if frame > 0 and change is not None]
    values = np.array([change for _, change in measured])
    starts = []
    for index, (frame, change) in enumerate(measured):
        around = np.concatenate([values[max(0, index - window):index], values[index + 1:index + 1 + window]])
        usual = float(np.median(around)) if len(around) else 0.0
        if change > threshold and change > spike * usual:
            starts.append(frame)
    return starts
