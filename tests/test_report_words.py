"""pipeline.predict.report_words: what a prediction's numbers mean in words, and when a number is not said."""

from __future__ import annotations

import numpy as np
from predictions import make_prediction

from aqa.extractors.clips import ClipPlanConfig, plan_clips
from aqa.pipeline.predict.report_words import (
    athlete_phrase,
    attention_lines,
    attention_peaks,
    frames_not_scored,
    frames_not_scored_phrase,
    grade_phrase,
)
from aqa.pipeline.predict.result import FramesNotScored, Grade, GradedDetail


def test_a_procedures_moment_is_clear_from_twice_an_even_share():
    attention = np.array([[1 / 6] * 6, [0.14, 0.14, 0.14, 0.14, 0.14, 0.30], [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]])
    peaks = attention_peaks(attention)
    assert [(clip, round(ratio, 2), clear) for clip, ratio, clear in peaks] == \
        [(0, 1.0, False), (5, 1.8, False), (5, 3.0, True)]
    assert attention_peaks(np.array([[1.0]])) == [(0, 1.0, False)]  # one clip: nothing to locate
    assert attention_lines(make_prediction()) == [] and attention_lines(make_prediction(detail=GradedDetail())) == []


def test_frames_no_clip_covers_are_counted_at_both_ends_and_between():
    plan = plan_clips(103, 25.0, ClipPlanConfig(clip_length=16))  # 6 clips, 7 frames left: 3 before, 4 after
    left = frames_not_scored(plan.indices, 103, 25.0)
    assert left == FramesNotScored(start_frames=3, start_s=0.12, end_frames=4, end_s=0.16, skipped_between_frames=0,
                                   clip_frames=16)
    assert frames_not_scored_phrase(make_prediction(frames_not_scored=left)) == (
        "not scored: the first 0.12 s (3 frames) and the last 0.16 s (4 frames), left over from whole clips of 16 "
        "frames")
    whole = plan_clips(96, 25.0, ClipPlanConfig(clip_length=16))
    assert frames_not_scored_phrase(make_prediction(frames_not_scored=frames_not_scored(whole.indices, 96, 25.0))) \
        is None
    short = plan_clips(5, 25.0, ClipPlanConfig(clip_length=16))  # padded by repeating the last frame: all seen
    assert frames_not_scored(short.indices, 5, 25.0).end_frames == 0
    resampled = plan_clips(100, 50.0, ClipPlanConfig(clip_length=8, target_fps=25.0))  # every other frame
    left = frames_not_scored(resampled.indices, 100, 50.0)
    assert (left.start_frames, left.end_frames, left.skipped_between_frames) == (2, 3, 47)  # 48 seen
    assert "which the clips skip (they sample the video)" in frames_not_scored_phrase(make_prediction(
        frames_not_scored=left))


def test_athlete_box_counts_say_what_they_mean():
    report = make_prediction(athlete_frames={"detected": 162, "interpolated": 110, "held": 64, "fallback": 0})
    assert athlete_phrase(report) == ("found by the detector on 162 frames, filled in between detections on 110, "
                                      "held where last seen on 64")


def test_a_score_outside_its_grades_band_says_why():
    """makeup.avi scored 5.59 beside "grade 4 of 4 (scores 6.68-9.01)": the score is the expectation
    over grades, the grade the likeliest one; the text says so instead of contradicting itself."""
    def graded(score: float, grade: int, band: tuple[float, float]):
        return make_prediction(score=score, detail=GradedDetail(grade=Grade(grade, 4, (0.1, 0.2, 0.3, 0.4), band)))

    assert grade_phrase(graded(5.59, 4, (6.68, 9.01))) == (
        "grade 4 of 4 (scores above 6.68), 40% likely; the score is below that band because it weighs every grade by "
        "its likelihood")
    assert grade_phrase(graded(7.5, 3, (4.35, 6.68))).endswith("the score is above that band because it weighs every "
                                                                "grade by its likelihood")
    assert grade_phrase(graded(5.0, 3, (4.35, 6.68))) == "grade 3 of 4 (scores 4.35-6.68), 30% likely"
    assert grade_phrase(graded(7.0, 4, (6.68, 9.01))) == "grade 4 of 4 (scores above 6.68), 40% likely"
    assert grade_phrase(make_prediction()) is None  # a head that does not grade


def test_the_outer_grades_band_is_open_ended():
    """The lowest grade's band starts below the lowest training score (the normaliser's margin):
    "scores -0.36-2.24" on a 0-10 scale read as a mistake, so the outer grades say "below"/"above"."""
    report = make_prediction(score=1.2, detail=GradedDetail(grade=Grade(1, 4, score_range=(-0.36, 2.24))))
    assert grade_phrase(report) == "grade 1 of 4 (scores below 2.24)"


def test_camera_cuts_are_said_with_their_times():
    from aqa.pipeline.predict.report_words import cuts_phrase

    assert cuts_phrase(make_prediction()) is None
    assert cuts_phrase(make_prediction(camera_cuts_s=(0.5, 22.33))) == (
        "camera cuts at 0.50, 22.33 s: each shot tracked on its own, no box carried across a cut")
