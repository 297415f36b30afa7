"""What a prediction's numbers mean, in words a coach can check: the rules that decide what the
text report (``aqa-predict``) and the page (``aqa-app``) say about a score, and what they leave out.

A head's internals are not a reading: "sub-grade 25" was the same for 8 of 10 demo videos, and
"procedure 3 attends most" was printed when every procedure spread its attention almost evenly
(0.14-0.20 per clip against an even 1/6). So each number is either said with its meaning or left
out when it carries no information:

- the score comes with the scale it was learned on (the lowest and highest training score) and
  the model's one-line description (its model card's);
- a grade comes with the band of scores it stands for (grades are equal bands of the training range)
  and how likely the head found it, and a score outside that band says why; the sub-grade (the
  fine classifier's pick within the grade) is not said: the score already places the video within
  its grade, more finely;
- a procedure's moment is named only when it weighs that clip at least :data:`CLEAR_PEAK` times an
  even share (twice as much as if it looked at every clip alike); else the report says the
  attention was spread about evenly, with its strongest ratio;
- moments are times in seconds, never clip indices (which counted from 0 while procedures counted
  from 1); procedures, grades and sub-actions are counted from 1;
- frames no clip covers (a video's length is rarely a whole number of clips) are said, with their time.
"""

from __future__ import annotations

import numpy as np

from aqa.pipeline.predict.result import FramesNotScored, Grade, Prediction

CLEAR_PEAK = 2.0  # a procedure's peak is named when it weighs a clip at least this many times an even share

ATHLETE_BOX_WORDS = {"detected": "found by the detector on {} frames",
                     "interpolated": "filled in between detections on {}",
                     "held": "held where last seen on {}",
                     "fallback": "the whole frame (athlete not found) on {}"}
"""What each tracking status (``Prediction.athlete_frames``, ``extractors.tracking``) means, in words."""


def athlete_phrase(prediction: Prediction) -> str:
    """How the athlete's boxes were got, by tracking status, each in words: "found by the detector on
    162 frames, filled in between detections on 110, held where last seen on 64" (a bare "held 64"
    left a reader guessing)."""
    return ", ".join(ATHLETE_BOX_WORDS.get(status, status + " on {}").format(count)
                     for status, count in prediction.athlete_frames.items() if count)


def scale_phrase(prediction: Prediction) -> str:
    """The scale the score is read on: "scores seen in training: 0.35-9.54, 30 videos"; a checkpoint
    from before scales were recorded says so."""
    scale = prediction.scale
    if scale is None:
        return "the training scores' range was not recorded (a checkpoint from an older aqa)"
    return f"scores seen in training: {scale.low:.2f}-{scale.high:.2f}, {scale.videos} videos"


def description_phrase(prediction: Prediction) -> str:
    """The model's one-line description, "no description recorded" for an older checkpoint."""
    return prediction.model_description or "no description recorded (a checkpoint from an older aqa)"


def grade_phrase(prediction: Prediction) -> str | None:
    """"grade 3 of 4 (scores 4.91-7.49), 62% likely" for a head that grades (CoFInAl); None otherwise.
    The band and the likelihood are left out when the head's result lacks them."""
    grade = prediction.grade
    if grade is None:
        return None
    phrase = f"grade {grade.grade} of {grade.grades}"
    if grade.score_range:
        phrase += f" ({_band_words(grade)})"
    if grade.probs:
        phrase += f", {grade.probs[grade.grade - 1]:.0%} likely"
    side = _outside_band(prediction.score, grade)
    if side:
        phrase += f"; the score is {side} that band because it weighs every grade by its likelihood"
    return phrase


def _band_words(grade: Grade) -> str:
    """"scores 4.91-7.49"; the lowest grade "scores below 2.24" and the highest "scores above 7.30":
    their outer edges are the training range widened by the normaliser's margin ("scores
    -0.36-2.24" on a 0-10 scale read as a mistake)."""
    low, high = grade.score_range
    if grade.grades and grade.grades > 1 and grade.grade == 1:
        return f"scores below {high:.2f}"
    if grade.grades and grade.grades > 1 and grade.grade == grade.grades:
        return f"scores above {low:.2f}"
    return f"scores {low:.2f}-{high:.2f}"


def _outside_band(score: float, grade: Grade) -> str | None:
    """"below" or "above" when the score lies outside its most likely grade's band, else None. The
    score is the expectation over grades (and sub-grades), the grade their argmax, so a video split
    between two grades can score outside the likelier one's band: said, or a coach reads "5.59,
    grade 4 (scores 6.68-9.01)" as a contradiction."""
    if not grade.score_range:
        return None
    low, high = grade.score_range
    if score < low:
        return "below"
    return "above" if score > high else None


def attention_peaks(attention: np.ndarray) -> list[tuple[int, float, bool]]:
    """Per procedure (rows of ``attention`` ``[P, T]``, each summing to 1 over the T clips): the
    peak clip, how many times an even share (1/T) it weighs that clip, and whether that is a clear
    peak (at least :data:`CLEAR_PEAK`; never with one clip, where there is nothing to locate)."""
    clips = attention.shape[-1]
    return [(int(row.argmax()), float(row.max()) * clips, clips > 1 and float(row.max()) * clips >= CLEAR_PEAK)
            for row in attention]


def attention_lines(prediction: Prediction) -> list[str]:
    """Where the head looked, in seconds, only where a procedure clearly did (module doc); one line
    saying the attention was even otherwise; nothing for a head without procedures."""
    procedures = prediction.procedures
    if not procedures:
        return []
    clear = [focus for focus in procedures if focus.clear_peak]
    if not clear:
        strongest = max(focus.peak_vs_even for focus in procedures)
        return [f"attention spread about evenly over the clips: no moment stood out (its strongest weighs a clip "
                f"{strongest:.1f} times an even share; a moment is named from {CLEAR_PEAK:g} times)"]
    lines = [f"where the model looked hardest (its {len(procedures)} procedures are parts of the routine it weighs "
             f"on their own; one is named where it weighs a moment at least {CLEAR_PEAK:g} times an even share):"]
    return lines + [f"  procedure {focus.procedure}: {focus.peak_start_s:.2f}-{focus.peak_end_s:.2f} s"
                    f" ({focus.peak_vs_even:.1f} times an even share)" for focus in clear]


def frames_not_scored(indices: np.ndarray, num_frames: int, fps: float) -> FramesNotScored:
    """Frames that no clip covers (``indices`` ``[C, L]``: each clip's source frames): before the
    first scored frame, after the last, and skipped between them (a resampled or snippet plan
    samples frames); with each end's duration in seconds."""
    used = np.unique(indices)
    start, end = int(used.min()), max(int(num_frames - 1 - used.max()), 0)
    return FramesNotScored(start_frames=start, start_s=round(start / fps, 2), end_frames=end,
                           end_s=round(end / fps, 2),
                           skipped_between_frames=int(max(num_frames - start - end - len(used), 0)),
                           clip_frames=int(indices.shape[-1]))


def frames_not_scored_phrase(prediction: Prediction) -> str | None:
    """"not scored: the first 0.12 s (3 frames) and the last 0.16 s (4 frames), left over from whole
    clips of 16 frames"; None when every frame was scored."""
    left = prediction.frames_not_scored
    ends = (("first", left.start_s, left.start_frames), ("last", left.end_s, left.end_frames))
    parts = [f"the {side} {seconds:.2f} s ({_frames(count)})" for side, seconds, count in ends if count]
    if parts:
        parts = [" and ".join(parts) + f", left over from whole clips of {left.clip_frames} frames"]
    if left.skipped_between_frames:
        parts.append(f"{_frames(left.skipped_between_frames)} between them, which the clips skip "
                     "(they sample the video)")
    return "not scored: " + "; ".join(parts) if parts else None


def _frames(count: int) -> str:
    return f"{count} frame{'s' if count != 1 else ''}"


def cuts_phrase(prediction: Prediction) -> str | None:
    """"camera cuts at 0.50, 22.33 s: each shot tracked on its own, no box carried across a cut";
    None without cuts."""
    if not prediction.camera_cuts_s:
        return None
    times = ", ".join(f"{seconds:.2f}" for seconds in prediction.camera_cuts_s)
    return f"camera cut{'s' if len(prediction.camera_cuts_s) > 1 else ''} at {times} s: each shot tracked on its " \
           "own, no box carried across a cut"
