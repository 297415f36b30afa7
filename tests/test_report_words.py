"""pipeline.report_words: what a prediction's numbers mean in words, and when a number is not said."""

from __future__ import annotations

import numpy as np

from aqa.extractors.clips import ClipPlanConfig, plan_clips
from aqa.pipeline.report_words import (
    athlete_phrase,
    attention_lines,
    attention_peaks,
    frames_not_scored,
    frames_not_scored_phrase,
)


def test_a_procedures_moment_is_clear_from_twice_an_even_share():
    attention = np.array([[1 / 6] * 6, [0.14, 0.14, 0.14, 0.14, 0.14, 0.30], [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]])
    peaks = attention_peaks(attention)
    assert [(clip, round(ratio, 2), clear) for clip, ratio, clear in peaks] == \
        [(0, 1.0, False), (5, 1.8, False), (5, 3.0, True)]
    assert attention_peaks(np.array([[1.0]])) == [(0, 1.0, False)]  # one clip: nothing to locate
    assert attention_lines({}) == [] and attention_lines({"procedures": []}) == []


def test_frames_no_clip_covers_are_counted_at_both_ends_and_between():
    plan = plan_clips(103, 25.0, ClipPlanConfig(clip_length=16))  # 6 clips, 7 frames left: 3 before, 4 after
    left = frames_not_scored(plan.indices, 103, 25.0)
    assert left == {"start_frames": 3, "start_s": 0.12, "end_frames": 4, "end_s": 0.16, "skipped_between_frames": 0,
                    "clip_frames": 16}
    assert frames_not_scored_phrase({"frames_not_scored": left}) == (
        "not scored: the first 0.12 s (3 frames) and the last 0.16 s (4 frames), left over from whole clips of 16 "
        "frames")
    whole = plan_clips(96, 25.0, ClipPlanConfig(clip_length=16))
    assert frames_not_scored_phrase({"frames_not_scored": frames_not_scored(whole.indices, 96, 25.0)}) is None
    short = plan_clips(5, 25.0, ClipPlanConfig(clip_length=16))  # padded by repeating the last frame: all seen
    assert frames_not_scored(short.indices, 5, 25.0)["end_frames"] == 0
    resampled = plan_clips(100, 50.0, ClipPlanConfig(clip_length=8, target_fps=25.0))  # every other frame
    left = frames_not_scored(resampled.indices, 100, 50.0)
    assert (left["start_frames"], left["end_frames"], left["skipped_between_frames"]) == (2, 3, 47)  # 48 seen
    assert "which the clips skip (they sample the video)" in frames_not_scored_phrase({"frames_not_scored": left})


def test_athlete_box_counts_say_what_they_mean():
    report = {"athlete_frames": {"detected": 162, "interpolated": 110, "held": 64, "fallback": 0}}
    assert athlete_phrase(report) == ("found by the detector on 162 frames, filled in between detections on 110, "
                                      "held where last seen on 64")
