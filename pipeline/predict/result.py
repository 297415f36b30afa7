"""A scored video as typed data: what ``aqa-predict``'s text and JSON, the page, its plots and the
Python API all read.

:class:`Prediction` holds what every head gives (the score on its scale, the video, how the
athlete was located, the warnings) and ``detail``, what only some heads give, typed by kind:
:class:`GradedDetail` (CoFInAl and its Likert variant: a grade, procedures that attend to
moments), :class:`ParsedDetail` (FSPN: sub-actions in time, exemplars voted with),
:class:`EnsembleDetail` (each member's score) or None (MLP, ridge). A reader asks
``isinstance(prediction.detail, GradedDetail)`` once, never whether a key happens to be there.

:meth:`Prediction.to_json` is ``aqa-predict --json``'s document for one video: flat, with the keys
it has always had (the detail's fields at the top level, absent where the head gives none), so
scripts written against it keep working. Counting from 1 (grades, procedures, sub-actions) and
rounding are done when the result is built (:mod:`pipeline.predict.report`), so the typed values
and the JSON agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ScoreScale:
    """The scores seen in training: lowest, highest, and over how many videos."""

    low: float
    high: float
    videos: int


@dataclass(frozen=True)
class FramesNotScored:
    """Frames no clip covers: before the first scored frame and after the last (with their seconds),
    skipped between them (a plan that samples frames), and the clips' length in frames."""

    start_frames: int
    start_s: float
    end_frames: int
    end_s: float
    skipped_between_frames: int
    clip_frames: int


@dataclass(frozen=True)
class ClipSpan:
    """One clip of the video: where it lies (seconds) and how much it weighed in the score where
    the head says (CoFInAl's strongest clear procedure attention; 1.0 each otherwise)."""

    start_s: float
    end_s: float
    weight: float


@dataclass(frozen=True)
class Grade:
    """A grading head's coarse grade: ``grade`` of ``grades`` (from 1), each grade's probability,
    and the band of scores the grade stands for (grades are equal bands of the training range;
    None when the head's scale is unknown)."""

    grade: int
    grades: int | None
    probs: tuple[float, ...] | None = None
    score_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ProcedureFocus:
    """Where one procedure looked: its peak clip (from 0, an index into ``attention``) and that clip's
    seconds, how many times an even share it weighs the clip, and whether that is a clear peak
    (the moment is named; :data:`pipeline.predict.report_words.CLEAR_PEAK`)."""

    procedure: int
    peak_clip: int
    peak_start_s: float
    peak_end_s: float
    peak_vs_even: float
    clear_peak: bool
    attention: tuple[float, ...]


@dataclass(frozen=True)
class GradedDetail:
    """CoFInAl (and its Likert variant): the score's two readings (the expectation over grades and
    the argmax's), the grade (None for a head without a coarse classifier), the fine classifier's
    pick within the grade (from 0, as the head computes it; not shown to people) and per
    procedure where it looked."""

    score_expectation: float | None = None
    score_argmax: float | None = None
    grade: Grade | None = None
    subgrade: int | None = None
    procedures: tuple[ProcedureFocus, ...] = ()


@dataclass(frozen=True)
class SubAction:
    """One of FSPN's parsed sub-actions, in seconds."""

    sub_action: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class ExemplarVote:
    """An exemplar FSPN voted with: its bank row, its training video's name (None when the checkpoint
    keeps no names) and its vote (the exemplar's score plus the predicted difference)."""

    bank_index: int
    vote: float
    name: str | None = None


@dataclass(frozen=True)
class ParsedDetail:
    """FSPN: the sub-actions it parsed and the exemplars it voted with."""

    sub_actions: tuple[SubAction, ...] = ()
    exemplars: tuple[ExemplarVote, ...] = ()


@dataclass(frozen=True)
class MemberScore:
    """One member of an ensemble and its own score."""

    member: str
    score: float


@dataclass(frozen=True)
class EnsembleDetail:
    """An ensemble: each member's score beside the combined one (``Prediction.score``)."""

    members: tuple[MemberScore, ...]


HeadDetail = GradedDetail | ParsedDetail | EnsembleDetail | None


@dataclass(frozen=True)
class Prediction:
    """One scored video.

    video: the video as the caller named it; score, score_name: the score on the training labels'
        scale and which score it is (TES...); head: the head's registry name.
    model_description: the checkpoint's one line (None for an older checkpoint); scale: the scores
        seen in training (None when not recorded).
    frames, fps, clips: the video's frames and rate, and how many clips were scored;
        frames_not_scored: what no clip covers; clip_spans: each clip in seconds with its weight.
    partial_video: only the readable frames of a damaged file were scored.
    athlete_frames: frames per tracking status (detected, interpolated, held, fallback);
        athlete_not_located_share: the share of scored frames where the athlete was not located,
        athlete_not_located: their time ranges (seconds) when that share calls for a warning;
        camera_cuts_s: where the camera cut (seconds): each shot was tracked on its own.
    warnings: why the score deserves less trust than it looks, in words (empty when nothing is wrong).
    detail: what only this kind of head gives (module docstring).
    difficulty: the degree of difficulty it was scored with, when given; overlay: where its overlay
        video was written, when one was.
    """

    video: str
    score: float
    score_name: str
    head: str
    model_description: str | None
    scale: ScoreScale | None
    frames: int
    fps: float
    clips: int
    frames_not_scored: FramesNotScored
    partial_video: bool
    athlete_frames: dict[str, int]
    athlete_not_located_share: float
    athlete_not_located: tuple[tuple[float, float], ...] = ()
    camera_cuts_s: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()
    detail: HeadDetail = None
    clip_spans: tuple[ClipSpan, ...] = field(default=(), repr=False)
    difficulty: float | None = None
    overlay: str | None = None

    @property
    def grade(self) -> Grade | None:
        """The grade of a grading head, else None."""
        return self.detail.grade if isinstance(self.detail, GradedDetail) else None

    @property
    def procedures(self) -> tuple[ProcedureFocus, ...]:
        """Where each procedure looked (a CoFInAl head), else none."""
        return self.detail.procedures if isinstance(self.detail, GradedDetail) else ()

    @property
    def sub_actions(self) -> tuple[SubAction, ...]:
        """FSPN's parsed sub-actions, else none."""
        return self.detail.sub_actions if isinstance(self.detail, ParsedDetail) else ()

    @property
    def members(self) -> dict[str, float] | None:
        """An ensemble's members and each one's score; None for one head."""
        if not isinstance(self.detail, EnsembleDetail):
            return None
        return {member.member: member.score for member in self.detail.members}

    def with_changes(self, **changes: Any) -> Prediction:
        """A copy with ``changes`` (the page names the upload, a run records the overlay)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of this video (module docstring): plain data, keys in a fixed order."""
        document: dict[str, Any] = {
            "video": self.video, "score": self.score, "score_name": self.score_name, "head": self.head,
            "model_description": self.model_description, "scale": _plain(self.scale), "frames": self.frames,
            "fps": self.fps, "clips": self.clips, "frames_not_scored": _plain(self.frames_not_scored),
            "partial_video": self.partial_video, "athlete_frames": dict(self.athlete_frames),
            "athlete_not_located_share": self.athlete_not_located_share,
        }
        if self.athlete_not_located:
            document["athlete_not_located"] = [list(span) for span in self.athlete_not_located]
        document["camera_cuts_s"] = list(self.camera_cuts_s)
        document["warnings"] = list(self.warnings)
        document.update(_detail_json(self.detail))
        document["clip_spans"] = [_plain(span) for span in self.clip_spans]
        if self.difficulty is not None:
            document["difficulty"] = self.difficulty
        if self.overlay is not None:
            document["overlay"] = self.overlay
        return document


def _plain(value: Any) -> Any:
    """A dataclass as a plain dict (None stays None)."""
    return None if value is None else asdict(value)


def _detail_json(detail: HeadDetail) -> dict[str, Any]:
    """A head's detail as the flat keys the JSON document has always had."""
    if isinstance(detail, GradedDetail):
        document: dict[str, Any] = {key: value for key, value in (("score_expectation", detail.score_expectation),
                                                                   ("score_argmax", detail.score_argmax))
                                    if value is not None}
        if detail.grade is not None:
            document.update(grade=detail.grade.grade, grades=detail.grade.grades)
            if detail.grade.probs is not None:
                document["grade_probs"] = list(detail.grade.probs)
            if detail.grade.score_range is not None:
                document["grade_range"] = list(detail.grade.score_range)
        if detail.subgrade is not None:
            document["subgrade"] = detail.subgrade
        if detail.procedures:
            document["procedures"] = [{**asdict(focus), "attention": list(focus.attention)}
                                      for focus in detail.procedures]
        return document
    if isinstance(detail, ParsedDetail):
        document = {}
        if detail.sub_actions:
            document["sub_actions"] = [asdict(span) for span in detail.sub_actions]
        if detail.exemplars:
            document["exemplars"] = [{"bank_index": vote.bank_index,
                                      **({"name": vote.name} if vote.name is not None else {}), "vote": vote.vote}
                                     for vote in detail.exemplars]
        return document
    if isinstance(detail, EnsembleDetail):
        return {"members": [asdict(member) for member in detail.members]}
    return {}
