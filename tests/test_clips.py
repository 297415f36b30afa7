"""extractors.clips: clip plans against hand-computed index lists."""

from __future__ import annotations

import numpy as np
import pytest

from aqa.extractors.clips import (
    ClipPlanConfig,
    plan_clips,
    resample_indices,
    snippet_starts,
    uniform_indices,
)


def test_segments_trim_the_remainder_evenly_from_both_ends():
    plan = plan_clips(100, 25.0, ClipPlanConfig(clip_length=32))
    # 100 = 3 * 32 + 4: two frames trimmed at each end.
    assert plan.num_clips == 3
    assert plan.indices[0].tolist() == list(range(2, 34))
    assert plan.indices[-1].tolist() == list(range(66, 98))
    assert plan.frame_ranges.tolist() == [[2, 34], [34, 66], [66, 98]]


def test_odd_remainder_trims_the_extra_frame_from_the_end():
    plan = plan_clips(11, 25.0, ClipPlanConfig(clip_length=4))
    # 11 = 2 * 4 + 3: one frame from the start, two from the end.
    assert plan.indices.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_exact_multiple_uses_every_frame_once():
    plan = plan_clips(64, 30.0)
    assert plan.indices.ravel().tolist() == list(range(64))
    assert plan.padded_frames == 0


def test_resampling_to_25_fps_from_50_takes_every_other_frame():
    assert resample_indices(10, 50.0, 25.0).tolist() == [0, 2, 4, 6, 8]


def test_resampling_from_30_to_25_fps_keeps_the_latest_frame_at_each_tick():
    # Ticks at source positions 0, 1.2, 2.4, 3.6, 4.8 -> floor.
    assert resample_indices(6, 30.0, 25.0).tolist() == [0, 1, 2, 3, 4]


def test_upsampling_repeats_frames():
    assert resample_indices(3, 10.0, 20.0).tolist() == [0, 0, 1, 1, 2, 2]


def test_segments_after_resampling_index_source_frames():
    plan = plan_clips(20, 50.0, ClipPlanConfig(clip_length=4, target_fps=25.0))
    # resampled timeline 0, 2, ..., 18 (10 ticks) -> 2 clips, 1 tick trimmed each end.
    assert plan.indices.tolist() == [[2, 4, 6, 8], [10, 12, 14, 16]]


@pytest.mark.parametrize(("window", "expected"), [
    (103, [0, 10, 20, 30, 40, 50, 60, 70, 80, 87]),  # CoRe / FSPN on MTL-AQA
    (96, [0, 10, 20, 30, 40, 50, 60, 70, 80]),  # TSA / FineDiving
])
def test_snippet_starts_match_the_published_plans(window, expected):
    assert snippet_starts(window, 16, 10).tolist() == expected


def test_snippets_over_a_103_frame_video_are_the_core_plan():
    plan = plan_clips(103, 25.0, ClipPlanConfig(kind="snippets", clip_length=16))
    assert plan.indices.shape == (10, 16)
    assert plan.indices[-1].tolist() == list(range(87, 103))
    assert plan.unique_frames().tolist() == list(range(103))


def test_snippets_spread_a_long_video_uniformly():
    plan = plan_clips(1031, 25.0, ClipPlanConfig(kind="snippets", clip_length=16, window=103))
    assert plan.indices[0, 0] == 0 and plan.indices[-1, -1] == 1030
    assert (np.diff(plan.indices, axis=1) > 0).all()


def test_uniform_indices_repeat_when_the_video_is_short():
    assert uniform_indices(3, 5).tolist() == [0, 0, 1, 2, 2]  # numpy rounds half to even


@pytest.mark.parametrize("num_frames", [1, 5, 31])
def test_a_video_shorter_than_one_clip_gives_one_padded_clip(num_frames):
    plan = plan_clips(num_frames, 25.0, ClipPlanConfig(clip_length=32))
    assert plan.num_clips == 1
    assert plan.padded_frames == 32 - num_frames
    assert plan.indices[0, :num_frames].tolist() == list(range(num_frames))
    assert (plan.indices[0, num_frames:] == num_frames - 1).all()


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one frame"):
        plan_clips(0, 25.0)
    with pytest.raises(ValueError, match="positive"):
        resample_indices(10, 0.0, 25.0)
    with pytest.raises(ValueError, match="do not fit"):
        snippet_starts(10, 16, 10)
