"""A prediction's report: the plain, JSON-ready data made from a scored video (:func:`build_report`),
the warnings it carries, its text for a terminal (:func:`format_report`) and its overlay video."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aqa.extractors.siamese import SiameseFeatures
from aqa.models.checkpoint import CheckpointInfo
from aqa.models.normalization import ScoreNormalizer
from aqa.pipeline.predict.overlay import write_overlay
from aqa.pipeline.predict.report_words import (
    athlete_phrase,
    attention_lines,
    attention_peaks,
    description_phrase,
    frames_not_scored,
    frames_not_scored_phrase,
    grade_phrase,
    scale_phrase,
)


def build_report(path: Path, score: float, details: dict[str, Any], features: SiameseFeatures,
                 info: CheckpointInfo, *, normalizer: ScoreNormalizer | None = None) -> dict[str, Any]:
    """What a judge or a script wants to know about one prediction, as plain data: whatever of
    grade, procedures (CoFInAl), sub-actions and exemplars (FSPN) the head's details hold.

    Keys beside the score (how the text report words them: :mod:`pipeline.predict.report_words`):
    ``model_description`` (the checkpoint's one line, null for an older checkpoint), ``scale``
    (``{low, high, videos}``: the scores seen in training, null when not recorded),
    ``frames_not_scored`` (``start_frames``/``start_s``, ``end_frames``/``end_s``: frames before
    the first and after the last clip; ``skipped_between_frames``; ``clip_frames``), for a grading
    head ``grade`` (from 1) of ``grades``, ``grade_probs``, ``grade_range`` (the band of scores the
    grade stands for, with ``normalizer``) and ``subgrade`` (the fine classifier's pick within the
    grade, counted from 0, as the head computes it; not shown to people), and per procedure
    ``procedure`` (from 1), ``attention`` (per clip, summing to 1), ``peak_clip`` (an index into
    ``attention``, from 0), ``peak_start_s``/``peak_end_s``, ``peak_vs_even`` (the peak over an
    even share 1/clips) and ``clear_peak`` (``peak_vs_even`` at least 2: the moment is named)."""
    plan = features.plan
    ranges = plan.layout.clips.frame_ranges
    fps = plan.layout.info.fps
    report: dict[str, Any] = {
        "video": str(path), "score": round(score, 4), "score_name": info.score_name, "head": info.head_name,
        "model_description": info.description, "scale": info.scale,
        "frames": plan.layout.info.num_frames, "fps": round(fps, 3), "clips": plan.layout.clips.num_clips,
        "frames_not_scored": frames_not_scored(plan.layout.clips.indices, plan.layout.info.num_frames, fps),
        "partial_video": plan.layout.info.partial, "athlete_frames": plan.track.summary(),
    }
    share, spans = not_located_spans(features)
    report["athlete_not_located_share"] = round(share, 4)
    if spans:
        report["athlete_not_located"] = [list(span) for span in spans]
    report["warnings"] = prediction_warnings(report, features, info)
    for key in ("score_expectation", "score_argmax"):
        if key in details:
            report[key] = round(float(details[key]), 4)
    if "grade" in details:
        probs = details.get("grade_probs")
        report["grade"] = int(details["grade"]) + 1
        report["grades"] = int(probs.shape[-1]) if probs is not None else None
        if probs is not None:
            report["grade_probs"] = [round(float(p), 4) for p in probs]
            if normalizer is not None:  # grades are equal bands of the normalised scale
                edges = [normalizer.from_unit(edge / len(probs)) for edge in (report["grade"] - 1, report["grade"])]
                report["grade_range"] = [round(float(edge), 4) for edge in edges]
    if "subgrade" in details:
        report["subgrade"] = int(details["subgrade"])
    attention = details.get("procedure_attention")
    if attention is not None:
        attention = np.asarray(attention, np.float64)  # [P, T]
        report["procedures"] = [
            {"procedure": index + 1, "peak_clip": peak, "peak_start_s": round(ranges[peak, 0] / fps, 2),
             "peak_end_s": round(ranges[peak, 1] / fps, 2), "peak_vs_even": round(ratio, 2), "clear_peak": clear,
             "attention": [round(float(v), 4) for v in row]}
            for index, (row, (peak, ratio, clear)) in enumerate(zip(attention, attention_peaks(attention)))]
    if "boundaries" in details:
        report["sub_actions"] = sub_action_spans(np.asarray(details["boundaries"], np.float64), ranges, fps)
    if "exemplar_index" in details:
        report["exemplars"] = exemplars_used(details["exemplar_index"], details["votes"],
                                             info.extra.get("exemplar_names") or [])
    if "member_scores" in details:  # an ensemble: each member's score beside the combined one
        labels = info.extra.get("members") or [f"member {index + 1}" for index in range(len(details["member_scores"]))]
        report["members"] = [{"member": label, "score": round(float(value), 4)}
                             for label, value in zip(labels, np.asarray(details["member_scores"]).tolist())]
    return report


def prediction_warnings(report: dict[str, Any], features: SiameseFeatures, info: CheckpointInfo) -> list[str]:
    """Why this score deserves less trust than it looks, in words (empty when nothing is wrong): a
    grade printed with confidence must not hide that the athlete was never found or that the video
    is shorter than one clip."""
    warnings = []
    found = {name: count for name, count in report["athlete_frames"].items() if name != "fallback" and count}
    if not found and info.streams != "scene":
        warnings.append("the athlete was never found (every box is the whole-frame fallback): the actor stream "
                        "saw the whole scene")
    if features.plan.layout.clips.padded_frames:
        warnings.append(f"the video ({report['frames']} frames) is shorter than one clip: its last frame was "
                        f"repeated {features.plan.layout.clips.padded_frames} times")
    if report["partial_video"]:
        warnings.append("the video is damaged: only its readable frames were scored")
    spans = report.get("athlete_not_located", [])
    if spans and info.streams != "scene" and found:
        share = report["athlete_not_located_share"]
        warnings.append(f"the athlete was not located on {share:.0%} of the scored frames (held, fallback or low "
                        "confidence: the actor stream saw a guess there): "
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


def sub_action_spans(boundaries: np.ndarray, ranges: np.ndarray, fps: float) -> list[dict[str, Any]]:
    """The S parsed sub-actions in seconds, from the S - 1 boundaries ``[S - 1]`` (clip positions)."""
    edges = [0.0, *boundaries.tolist(), float(len(ranges))]
    return [{"sub_action": index + 1, "start_s": round(clip_time(start, ranges, fps), 2),
             "end_s": round(clip_time(end, ranges, fps), 2)}
            for index, (start, end) in enumerate(zip(edges, edges[1:]))]


def exemplars_used(index: Any, votes: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """The exemplars voted with: bank row, training video name (when the checkpoint keeps names) and
    its vote (exemplar score + predicted difference, original scale); ``index`` -1 = unused slot."""
    used = []
    for row, vote in zip(np.asarray(index).tolist(), np.asarray(votes, np.float64).tolist()):
        if row >= 0:
            used.append({"bank_index": row, **({"name": names[row]} if row < len(names) else {}),
                         "vote": round(vote, 4)})
    return used


def timeline_curve(report: dict[str, Any], num_clips: int) -> np.ndarray:
    """Per-clip emphasis for the overlay: the strongest attention on each clip of the procedures whose
    moment the report names (``clear_peak``); even (all ones) when none does, as the text says then."""
    procedures = [entry for entry in report.get("procedures") or [] if entry.get("clear_peak", True)]
    if not procedures:
        return np.ones(num_clips)
    return np.max(np.array([p["attention"] for p in procedures]), axis=0)


def save_prediction_overlay(target: Path, report: dict[str, Any], features: SiameseFeatures, caption: str) -> Path:
    """The scored video with the tracked athlete, ``caption`` and the per-clip emphasis timeline."""
    plan = features.plan
    return write_overlay(target, report["video"], plan.boxes_in_source_pixels, plan.track.status,
                         plan.layout.clips.frame_ranges, timeline_curve(report, plan.layout.clips.num_clips), caption,
                         fps=plan.layout.info.fps)


def exemplar_votes(report: dict[str, Any]) -> list[str]:
    """Each exemplar an FSPN head voted with, by name (or bank row) and vote: "dive_017 (80.50)"."""
    return [f"{entry.get('name', '#' + str(entry['bank_index']))} ({entry['vote']:.2f})"
            for entry in report.get("exemplars", [])]


def member_scores(report: dict[str, Any]) -> str | None:
    """An ensemble's members and their scores, "cofinal 25.10, mlp 24.37"; None for another head."""
    if "members" not in report:
        return None
    return ", ".join(f"{entry['member']} {entry['score']:.2f}" for entry in report["members"])


def format_report(report: dict[str, Any]) -> str:
    """The human-readable lines for one video: the score on its scale, what the model is, then what
    stands behind the score (:mod:`pipeline.predict.report_words` decides what is said and how)."""
    lines = [f"{Path(report['video']).name}: {report['score_name']} {report['score']:.2f}"]
    told = [phrase for phrase in (scale_phrase(report), grade_phrase(report)) if phrase]
    if told:
        lines[0] += f"  ({'; '.join(told)})"
    description = description_phrase(report)
    if description:
        lines.append(f"  model: {description}")
    clip_frames = (report.get("frames_not_scored") or {}).get("clip_frames")
    lines.append(f"  {report['frames']} frames at {report['fps']:g} fps, {report['clips']} clips"
                 + (f" of {clip_frames} frames" if clip_frames else "")
                 + (f"; athlete boxes {athlete_phrase(report)}" if athlete_phrase(report) else ""))
    left_out = frames_not_scored_phrase(report)
    if left_out:
        lines.append(f"  {left_out}")
    lines += [f"  warning: {warning}" for warning in report.get("warnings", [])]
    lines += [f"  {line}" for line in attention_lines(report)]
    if "sub_actions" in report:
        lines.append("  sub-actions: " + ", ".join(f"{span['sub_action']}: {span['start_s']:.2f}-{span['end_s']:.2f} s"
                                                   for span in report["sub_actions"]))
    if "exemplars" in report:
        votes = exemplar_votes(report)
        lines.append(f"  voted over {len(votes)} exemplars: " + ", ".join(votes))
    members = member_scores(report)
    if members:
        lines.append(f"  mean of {len(report['members'])} members: {members}")
    return "\n".join(lines)
