"""extractors.cuts: a camera cut is a colour change that stands out; a pan, however fast, is not one."""

from __future__ import annotations

import cv2
import numpy as np

from aqa.extractors.cuts import colour_change, shot_starts


def scene(seed: int, tint: tuple[float, float, float] = (1.0, 1.0, 1.0),
          size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """A wide random landscape ``[H, 2W, 3]`` to pan across."""
    rng = np.random.default_rng(seed)
    width, height = size
    field = cv2.resize(rng.uniform(30, 225, (6, 16, 3)).astype(np.float32), (2 * width, height),
                       interpolation=cv2.INTER_CUBIC)
    return (field * np.array(tint, np.float32)).clip(0, 255).astype(np.uint8)


def test_a_pan_changes_little_and_a_cut_to_another_venue_a_lot():
    wide = scene(0)
    panned = [colour_change(wide[:, shift:shift + 320], wide[:, shift + 16:shift + 336]) for shift in range(0, 160, 16)]
    cut = colour_change(wide[:, :320], scene(1, tint=(0.3, 0.6, 1.2))[:, :320])
    assert max(panned) < 0.25 < cut, (np.round(panned, 2), round(cut, 2))
    assert colour_change(wide[:, :320], wide[:, :320]) == 0.0


def test_shot_starts_are_spikes_above_the_threshold():
    steady = [None, *[0.05] * 9, 0.6, *[0.05] * 9]  # a cut at frame 10
    assert shot_starts(steady, threshold=0.25, spike=2.5) == [10]
    fast_pan = [None, *[0.3, 0.35, 0.4, 0.45, 0.4, 0.35, 0.3] * 2]  # every frame changes a lot: no cut
    assert shot_starts(fast_pan, threshold=0.25, spike=2.5) == []
    skipped = [0.05 if frame % 3 == 0 else None for frame in range(30)]  # every_k = 3: only key frames count
    skipped[15] = 0.7
    assert shot_starts(skipped, threshold=0.25, spike=2.5) == [15]
    assert shot_starts([None, 0.2, 0.05, 0.05], threshold=0.25, spike=2.5) == []  # a spike under the threshold
