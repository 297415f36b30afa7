"""A prediction's report: the typed result made from a scored video (:func:`build_prediction`; the
types are :mod:`.result`'s), the warnings it carries, its text for a terminal (:func:`format_report`)
and its overlay video."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aqa.extractors.stages import SiameseFeatures
from aqa.models.checkpoint import CheckpointInfo
from aqa.models.normalization import ScoreNormalizer
from aqa.pipeline.predict.overlay import write_overlay
from aqa.pipeline.predict.report_words import (
    athlete_phrase,
    attention_lines,
    attention_peaks,
    cuts_phrase,
    description_phrase,
    frames_not_scored,
    frames_not_scored_phrase,
    grade_phrase,
    scale_phrase,
)
from aqa.pipeline.predict.result import (
    ClipSpan,
    EnsembleDetail,
    ExemplarVote,
    Grade,
    GradedDetail,
    HeadDetail,
    MemberScore,
    ParsedDetail,
    Prediction,
    ProcedureFocus,
    ScoreScale,
    SubAction,
)


def build_prediction(path: Path, score: float, details: dict[str, Any], features: SiameseFeatures,
                     info: CheckpointInfo, *, normalizer: ScoreNormalizer | None = None,
                     difficulty: float | None = None) -> Prediction:
    """What a judge or a script wants to know about one prediction, typed
    (:class:`~pipeline.predict.result.Prediction`): the score with its scale and the model's line,
    the frames left out, how the athlete was located and the warnings, and the head's ``details``
    (as :func:`models.checkpoint.predict_features` gives them) read into the detail of its kind.
    ``normalizer`` places a grade's band on the score's scale."""
    plan = features.plan
    ranges = plan.layout.clips.frame_ranges
    fps = plan.layout.info.fps
    share, spans = not_located_spans(features)
    scale = ScoreScale(**info.scale) if info.scale is not None else None
    detail = head_detail(details, ranges, fps, info, normalizer)
    weights = timeline_curve(detail, plan.layout.clips.num_clips)
    prediction = Prediction(
        video=str(path), score=round(score, 4), score_name=info.score_name, head=info.head_name,
        model_description=info.description, scale=scale, frames=plan.layout.info.num_frames, fps=round(fps, 3),
        clips=plan.layout.clips.num_clips,
        frames_not_scored=frames_not_scored(plan.layout.clips.indices, plan.layout.info.num_frames, fps),
        partial_video=plan.layout.info.partial, athlete_frames=plan.track.summary(),
        athlete_not_located_share=round(share, 4), athlete_not_located=tuple(spans),
        camera_cuts_s=tuple(round(float(frame) / fps, 2) for frame in plan.track.cuts), detail=detail,
        clip_spans=tuple(ClipSpan(round(float(start) / fps, 3), round(float(end) / fps, 3), round(float(weight), 4))
                         for (start, end), weight in zip(ranges, weights)),
        difficulty=difficulty)
    return prediction.with_changes(warnings=tuple(prediction_warnings(prediction, features, info)))


def head_detail(details: dict[str, Any], ranges: np.ndarray, fps: float, info: CheckpointInfo,
                normalizer: ScoreNormalizer | None) -> HeadDetail:
    """The head's raw ``details`` as the typed detail of its kind: an ensemble's member scores, FSPN's
    boundaries and exemplar votes, a grading head's grade and procedure attention; None for a head
    that gives nothing beside its score. Times are seconds (``ranges`` ``[T, 2]``: each clip's
    frames), counts start at 1."""
    if "member_scores" in details:
        labels = info.extra.get("members") or [f"member {index + 1}" for index in range(len(details["member_scores"]))]
        return EnsembleDetail(tuple(MemberScore(label, round(float(value), 4))
                                    for label, value in zip(labels, np.asarray(details["member_scores"]).tolist())))
    if "boundaries" in details or "exemplar_index" in details:
        names = info.extra.get("exemplar_names") or []
        return ParsedDetail(
            sub_actions=sub_action_spans(np.asarray(details["boundaries"], np.float64), ranges, fps)
            if "boundaries" in details else (),
            exemplars=exemplars_used(details["exemplar_index"], details["votes"], names)
            if "exemplar_index" in details else ())
    graded_keys = ("grade", "subgrade", "procedure_attention", "score_expectation", "score_argmax")
    if not any(key in details for key in graded_keys):
        return None
    readings = {key: round(float(details[key]), 4) if key in details else None
                for key in ("score_expectation", "score_argmax")}
    subgrade = int(details["subgrade"]) if "subgrade" in details else None
    attention = details.get("procedure_attention")
    procedures = () if attention is None else procedure_focus(np.asarray(attention, np.float64), ranges, fps)
    return GradedDetail(**readings, grade=grade_of(details, normalizer), subgrade=subgrade, procedures=procedures)


def grade_of(details: dict[str, Any], normalizer: ScoreNormalizer | None) -> Grade | None:
    """The coarse grade (from 1) with its probabilities and, with ``normalizer``, its band of scores
    (grades are equal bands of the normalised scale); None for a head that does not grade."""
    if "grade" not in details:
        return None
    number = int(details["grade"]) + 1
    probs = details.get("grade_probs")
    if probs is None:
        return Grade(number, None)
    band = None
    if normalizer is not None:
        edges = [normalizer.from_unit(edge / len(probs)) for edge in (number - 1, number)]
        band = (round(float(edges[0]), 4), round(float(edges[1]), 4))
    return Grade(number, int(probs.shape[-1]), tuple(round(float(p), 4) for p in probs), band)


def procedure_focus(attention: np.ndarray, ranges: np.ndarray, fps: float) -> tuple[ProcedureFocus, ...]:
    """Per procedure (rows of ``attention`` ``[P, T]``), its peak clip in seconds and how clear it is."""
    return tuple(ProcedureFocus(procedure=index + 1, peak_clip=peak, peak_start_s=round(ranges[peak, 0] / fps, 2),
                                peak_end_s=round(ranges[peak, 1] / fps, 2), peak_vs_even=round(ratio, 2),
                                clear_peak=clear, attention=tuple(round(float(v), 4) for v in row))
                 for index, (row, (peak, ratio, clear)) in enumerate(zip(attention, attention_peaks(attention))))


def prediction_warnings(prediction: Prediction, features: SiameseFeatures, info: CheckpointInfo) -> list[str]:
    """Why this score deserves less trust than it looks, in words (empty when nothing is wrong): a
    grade printed with confidence must not hide that the athlete was never found or that the video
    is shorter than one clip."""
    warnings = []
    found = {name: count for name, count in prediction.athlete_frames.items() if name != "fallback" and count}
    if not found and info.streams != "scene":
        warnings.append("the athlete was never found (every box is the whole-frame fallback): the actor stream "
                        "saw the whole scene")
    if features.plan.layout.clips.padded_frames:
        warnings.append(f"the video ({prediction.frames} frames) is shorter than one clip: its last frame was "
                        f"repeated {features.plan.layout.clips.padded_frames} times")
    if prediction.partial_video:
        warnings.append("the video is damaged: only its readable frames were scored")
    spans = prediction.athlete_not_located
    if spans and info.streams != "scene" and found:
        warnings.append(f"the athlete was not located on {prediction.athlete_not_located_share:.0%} of the scored "
                        "frames (held, fallback or low confidence: the actor stream saw a guess there): "
                        + ", ".join(f"{start:.1f}-{end:.1f} s" for start, end in spans))
    return warnings


NOT_LOCATED_WARNING = 0.2  # share of the scored frames past which a score warns


def not_located_spans(features: SiameseFeatures) -> tuple[float, list[tuple[float, float]]]:
    """The share of the scored frames (those in some clip) where the athlete was not located
    (:meth:`extractors.tracking.ActorTrack.not_located`), and their time ranges in seconds when
    that share exceeds :data:`NOT_LOCATED_WARNING` (else no ranges)."""
    plan = features.plan
    scored = np.unique(plan.layout.clips.indices)
    lost = np.zeros(len(plan.track), bool)
    lost[scored] = plan.track.not_located()[scored]
    share = float(lost[scored].mean()) if len(scored) else 0.0
    if share <= NOT_LOCATED_WARNING:
        return share, []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], lost.astype(np.int8), [0]])))
    fps = plan.layout.info.fps
    return share, [(round(start / fps, 2), round(stop / fps, 2)) for start, stop in zip(edges[::2], edges[1::2])]


def clip_time(position: float, ranges: np.ndarray, fps: float) -> float:
    """Seconds at a fractional clip position (clip ``k`` plus a fraction of it, as FSPN's boundaries):
    that far through clip ``k``'s frame range (``ranges`` ``[T, 2]``: first frame, one past the last)."""
    clip = min(int(position), len(ranges) - 1)
    start, end = ranges[clip]
    return float(start + (position - clip) * (end - start)) / fps


def sub_action_spans(boundaries: np.ndarray, ranges: np.ndarray, fps: float) -> tuple[SubAction, ...]:
    """The S parsed sub-actions in seconds, from the S - 1 boundaries ``[S - 1]`` (clip positions)."""
    edges = [0.0, *boundaries.tolist(), float(len(ranges))]
    return tuple(SubAction(index + 1, round(clip_time(start, ranges, fps), 2), round(clip_time(end, ranges, fps), 2))
                 for index, (start, end) in enumerate(zip(edges, edges[1:])))


def exemplars_used(index: Any, votes: Any, names: Sequence[str]) -> tuple[ExemplarVote, ...]:
    """The exemplars voted with: bank row, training video name (when the checkpoint keeps names) and
    its vote (exemplar score + predicted difference, original scale); ``index`` -1 = unused slot."""
    return tuple(ExemplarVote(row, round(vote, 4), names[row] if row < len(names) else None)
                 for row, vote in zip(np.asarray(index).tolist(), np.asarray(votes, np.float64).tolist()) if row >= 0)


def timeline_curve(detail: HeadDetail, num_clips: int) -> np.ndarray:
    """Per-clip emphasis for the overlay: the strongest attention on each clip of the procedures whose
    moment the report names (``clear_peak``); even (all ones) when none does, as the text says then."""
    named = detail.procedures if isinstance(detail, GradedDetail) else ()
    procedures = [focus for focus in named if focus.clear_peak]
    if not procedures:
        return np.ones(num_clips)
    return np.max(np.array([focus.attention for focus in procedures]), axis=0)


def save_prediction_overlay(target: Path, prediction: Prediction, features: SiameseFeatures, caption: str) -> Path:
    """The scored video with the tracked athlete, ``caption`` and the per-clip emphasis timeline."""
    plan = features.plan
    return write_overlay(target, prediction.video, plan.boxes_in_source_pixels, plan.track.status,
                         plan.layout.clips.frame_ranges, np.array([span.weight for span in prediction.clip_spans]),
                         caption, fps=plan.layout.info.fps)


def exemplar_votes(prediction: Prediction) -> list[str]:
    """Each exemplar an FSPN head voted with, by name (or bank row) and vote: "dive_017 (80.50)"."""
    exemplars = prediction.detail.exemplars if isinstance(prediction.detail, ParsedDetail) else ()
    return [f"{vote.name if vote.name is not None else '#' + str(vote.bank_index)} ({vote.vote:.2f})"
            for vote in exemplars]


def member_scores(prediction: Prediction) -> str | None:
    """An ensemble's members and their scores, "cofinal 25.10, mlp 24.37"; None for another head."""
    members = prediction.members
    if members is None:
        return None
    return ", ".join(f"{member} {score:.2f}" for member, score in members.items())


def format_report(prediction: Prediction) -> str:
    """The human-readable lines for one video: the score on its scale, what the model is, then what
    stands behind the score (:mod:`pipeline.predict.report_words` decides what is said and how)."""
    lines = [f"{Path(prediction.video).name}: {prediction.score_name} {prediction.score:.2f}"]
    told = [phrase for phrase in (scale_phrase(prediction), grade_phrase(prediction)) if phrase]
    if told:
        lines[0] += f"  ({'; '.join(told)})"
    lines.append(f"  model: {description_phrase(prediction)}")
    clip_frames = prediction.frames_not_scored.clip_frames
    boxes = athlete_phrase(prediction)
    lines.append(f"  {prediction.frames} frames at {prediction.fps:g} fps, {prediction.clips} clips"
                 + (f" of {clip_frames} frames" if clip_frames else "") + (f"; athlete boxes {boxes}" if boxes else ""))
    left_out = frames_not_scored_phrase(prediction)
    if left_out:
        lines.append(f"  {left_out}")
    cuts = cuts_phrase(prediction)
    if cuts:
        lines.append(f"  {cuts}")
    lines += [f"  warning: {warning}" for warning in prediction.warnings]
    lines += [f"  {line}" for line in attention_lines(prediction)]
    if prediction.sub_actions:
        lines.append("  sub-actions: " + ", ".join(f"{span.sub_action}: {span.start_s:.2f}-{span.end_s:.2f} s"
                                                   for span in prediction.sub_actions))
    votes = exemplar_votes(prediction)
    if votes:
        lines.append(f"  voted over {len(votes)} exemplars: " + ", ".join(votes))
    members = member_scores(prediction)
    if members:
        lines.append(f"  mean of {len(prediction.members)} members: {members}")
    return "\n".join(lines)
