"""What comes next for one video: the steps of its extraction, as a state machine.

Both engines (:class:`extractors.parallel.WorkerPool` on this machine's threads,
``pipeline.extract.ray`` on Ray actors) extract a video in the same steps, from the stage
functions of :mod:`extractors.stages`:

1. **lay out** (:class:`LayOut`): probe, plan the clips, pick the key frames; the video is cut
   into parts (:meth:`Spread.parts_of`), one :class:`Detect` each;
2. **detect** (:class:`Detect`, one per part, in any order): find people on the part's key frames;
3. **follow** (:class:`Follow`, once the last part is in, one per part): with every part's
   detections joined in frame order, follow the athlete through the detector's misses, each
   part a share of the runs to follow;
4. **look again** (:class:`LookAgain`, once every part has followed, one per part): run the
   detector in a crop where the track expects the athlete, each part a share of those frames;
5. **plan** (:class:`Plan`, once every part has looked): track the athlete;
6. **embed** (:class:`Embed`, one per part of the clips): cut both streams and run the backbone;
   the embedded clips come back in pieces of any size (a batch, a part), in any order;
7. **commit** (:class:`Commit`, once every clip is in): store the video.

Steps 3 and 4 each need the whole video's findings before any part starts, and each part only
reads them: what the parts found is put in once the last of them is in.

:class:`VideoSteps` holds one video's state. Each event (:meth:`~VideoSteps.laid_out`,
:meth:`~VideoSteps.detected`, :meth:`~VideoSteps.followed`, :meth:`~VideoSteps.looked_again`,
:meth:`~VideoSteps.planned`, :meth:`~VideoSteps.embedded`, :meth:`~VideoSteps.committed`,
:meth:`~VideoSteps.failed`) returns the work it makes due. A failure
at any step ends the video with its one-line reason, and news of a finished video is ignored.
The machine does no work and knows no thread or process: an engine runs the work it asks for
(:func:`run_detector_step` for the detector's side, which both engines share) and reports back.
Features do not depend on how a video is split: each frame is decoded, detected and cut on its
own, and the tracker sees all detections at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from aqa.errors import AqaError, one_line
from aqa.extractors.athlete import Share
from aqa.extractors.detect import PersonDetector
from aqa.extractors.stages import (
    Decoder,
    KeyFrameFindings,
    NewFindings,
    SiameseConfig,
    SiameseFeatures,
    VideoLayout,
    VideoPlan,
    detect_key_frames,
    follow_missed_key_frames,
    keep_findings,
    layout_video,
    look_again_at_key_frames,
    plan_from_detections,
)
from aqa.extractors.video import Backend

# ------------------------------------------------------------------------------ what a video ends as


@dataclass(frozen=True)
class ExtractedVideo:
    """A finished video: its name, path and Siamese features."""

    name: str
    path: Path
    features: SiameseFeatures


@dataclass(frozen=True)
class FailedVideo:
    """A video that could not be extracted, and why (one line)."""

    name: str
    path: Path
    reason: str


def failure_reason(error: BaseException) -> str:
    """A step's failure as one line: our own and the decoders' errors by their message, anything
    else with its type first (it may be a bug)."""
    known = isinstance(error, (AqaError, IndexError, ValueError))
    return one_line(error) if known else f"{type(error).__name__}: {one_line(error)}"


# ------------------------------------------------------------------------------ how a video is split


def split_evenly(count: int, parts: int) -> list[range]:
    """``parts`` contiguous ranges covering ``0 .. count - 1``, sizes differing by at most one."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return [range(start, stop) for start, stop in zip(bounds, bounds[1:])]


def count_parts(num_frames: int, workers: int, min_part_frames: int) -> int:
    """How many parts to cut a video of ``num_frames`` into: one per worker, none shorter than
    ``min_part_frames``."""
    return max(1, min(workers, num_frames // min_part_frames))


@dataclass(frozen=True)
class Spread:
    """How an engine spreads one video: ``detectors`` workers share its key frames, ``embedders``
    its clips. A part's first read seeks back to the key frame before it, so no part is shorter
    than ``min_part_frames``; a GIF has no key frames to seek to and stays whole."""

    detectors: int
    embedders: int
    min_part_frames: int = 256

    def __post_init__(self) -> None:
        if self.detectors < 1 or self.embedders < 1 or self.min_part_frames < 1:
            raise ValueError(f"detectors, embedders and min_part_frames must be >= 1: {self}")

    def parts_of(self, layout: VideoLayout) -> int:
        """How many parts ``layout``'s key frames are cut into."""
        if layout.info.codec == "gif":
            return 1
        return count_parts(layout.info.num_frames, self.detectors, self.min_part_frames)


# ------------------------------------------------------------------------------ the work it asks for


@dataclass(frozen=True)
class LayOut:
    """Probe the video, plan its clips, pick its key frames."""

    stage: ClassVar[int] = 0
    path: Path


@dataclass(frozen=True)
class Detect:
    """Find people on the key frames ``keys`` (part ``part``; ``[K]`` sorted frame indices)."""

    stage: ClassVar[int] = 1
    layout: VideoLayout
    part: int
    keys: np.ndarray


@dataclass(frozen=True)
class _FindingsPart:
    """Part ``part`` of ``parts`` of a step over the whole video's ``detections`` (every key
    frame's findings, by frame; None where no key frame), which it only reads."""

    layout: VideoLayout
    part: int
    parts: int
    detections: list[KeyFrameFindings | None]

    @property
    def share(self) -> Share:
        return Share(self.part, self.parts)


@dataclass(frozen=True)
class Follow(_FindingsPart):
    """Follow the athlete through the detector's misses: this part's share of the runs to follow."""

    stage: ClassVar[int] = 2


@dataclass(frozen=True)
class LookAgain(_FindingsPart):
    """Look again where the track expects the athlete: this part's share of those key frames
    (the followed ones in)."""

    stage: ClassVar[int] = 3


@dataclass(frozen=True)
class Plan:
    """Track the athlete through ``detections`` (every key frame's findings, followed and looked
    at again; None where no key frame). The work owns ``detections``."""

    stage: ClassVar[int] = 4
    layout: VideoLayout
    detections: list[KeyFrameFindings | None]


@dataclass(frozen=True)
class Embed:
    """Cut and embed the clips ``clips`` of ``plan``. ``whole``: they are all of the video's clips,
    so an engine may embed and commit them in one go, and report :meth:`VideoSteps.committed`."""

    stage: ClassVar[int] = 5
    plan: VideoPlan
    clips: range
    whole: bool


@dataclass(frozen=True)
class Commit:
    """Store the finished video."""

    stage: ClassVar[int] = 6
    video: ExtractedVideo


Work = LayOut | Detect | Follow | LookAgain | Plan | Embed | Commit
DetectorWork = LayOut | Detect | Follow | LookAgain | Plan  # what runs beside a person detector
State = Literal["layout", "detect", "follow", "look", "plan", "embed", "commit", "done", "failed"]


class StepOrderError(RuntimeError):
    """An engine reported an event the video's state does not expect (a bug in the engine)."""


# ------------------------------------------------------------------------------ the state machine


class VideoSteps:
    """One video's extraction: which step it is at and what is due next (the module docstring).

    ``order`` ranks it among a run's videos (engines do the earliest video's work first). An event
    returns the work it makes due (often none). Not thread-safe: one thread drives a video.
    """

    def __init__(self, order: int, name: str, path: Path | str, spread: Spread):
        self.order, self.name, self.path, self.spread = order, name, Path(path), spread
        self.state: State = "layout"
        self.reason: str | None = None  # why it failed
        self.parts = 1  # how many parts its key frames were cut into
        self.plan: VideoPlan | None = None
        self._detections: list[KeyFrameFindings | None] = []
        self._layout: VideoLayout | None = None
        self._waiting: set[int] = set()  # parts of the step at hand not in yet
        self._found: NewFindings = {}  # what the step's parts found, put in once the last is in
        self._streams: tuple[np.ndarray, np.ndarray] | None = None  # scene, actor [C, D]
        self._embedded = np.zeros(0, bool)  # [C] which clips are in
        self._whole = False  # the clips are one part (embedded and committed in one go, maybe)
        self._result: ExtractedVideo | None = None

    @property
    def finished(self) -> bool:
        """Committed or failed: whatever of it is still running can be dropped."""
        return self.state in ("done", "failed")

    @property
    def num_clips(self) -> int:
        return self.plan.layout.clips.num_clips if self.plan is not None else 0

    @property
    def clips_done(self) -> int:
        return int(self._embedded.sum())

    @property
    def outcome(self) -> ExtractedVideo | FailedVideo:
        """What the video ended as, once :attr:`finished` (the features only where they came
        through :meth:`embedded`, not kept by the engine that embedded and committed them)."""
        if self.state == "failed":
            return FailedVideo(self.name, self.path, self.reason or "")
        if self._result is None or self.state != "done":
            raise StepOrderError(f"{self.name}: no features here ({self.state})")
        return self._result

    # -------------------------------------------------------------------------- the events

    def start(self) -> list[Work]:
        return [LayOut(self.path)] if self._expect("layout") else []

    def laid_out(self, layout: VideoLayout) -> list[Work]:
        """The layout is known: its key frames' parts are due for detection."""
        if not self._expect("layout"):
            return []
        pieces = split_evenly(len(layout.key_frames), self.spread.parts_of(layout))
        self._layout, self._detections = layout, [None] * layout.info.num_frames
        self.parts, self._waiting, self.state = len(pieces), set(range(len(pieces))), "detect"
        return [Detect(layout, part, layout.key_frames[piece.start:piece.stop]) for part, piece in enumerate(pieces)]

    def detected(self, work: Detect, found: list[KeyFrameFindings]) -> list[Work]:
        """Part ``work.part``'s detections are in (``found[i]`` for key frame ``work.keys[i]``);
        after the last part, following the misses is due, part by part."""
        if not self._part_in("detect", work.part, "detections"):
            return []
        for frame, findings in zip(work.keys.tolist(), found):
            self._detections[frame] = findings
        if self._waiting:
            return []
        return self._parts_due("follow", Follow)

    def followed(self, work: Follow, found: NewFindings) -> list[Work]:
        """Part ``work.part`` has followed its runs (``found``: the key frames it filled); after
        the last part, looking again is due, part by part."""
        if not self._part_in("follow", work.part, "followed frames"):
            return []
        self._found.update(found)
        return [] if self._waiting else self._parts_due("look", LookAgain)

    def looked_again(self, work: LookAgain, found: NewFindings) -> list[Work]:
        """Part ``work.part`` has looked again at its frames; after the last part, the plan is due."""
        if not self._part_in("look", work.part, "second looks"):
            return []
        self._found.update(found)
        if self._waiting:
            return []
        keep_findings(self._detections, self._found)
        self.state, detections, self._detections, self._found = "plan", self._detections, [], {}
        return [Plan(self._layout, detections)]

    def _part_in(self, state: State, part: int, what: str) -> bool:
        """Part ``part`` of the step ``state`` came back (False: late news of a finished video)."""
        if not self._expect(state):
            return False
        if part not in self._waiting:
            raise StepOrderError(f"{self.name}: part {part}'s {what} came twice or were not asked for")
        self._waiting.discard(part)
        return True

    def _parts_due(self, state: State, step: type[Follow] | type[LookAgain]) -> list[Work]:
        """Every part of ``step`` on the findings so far (the previous step's put in first)."""
        keep_findings(self._detections, self._found)
        self.state, self._found, self._waiting = state, {}, set(range(self.parts))
        return [step(self._layout, part, self.parts, self._detections) for part in range(self.parts)]

    def planned(self, plan: VideoPlan) -> list[Work]:
        """The athlete is tracked: the clips' parts (as many as the key frames', at most one per
        embedder) are due for embedding."""
        if not self._expect("plan"):
            return []
        self.plan, self.state = plan, "embed"
        self._embedded = np.zeros(plan.layout.clips.num_clips, bool)
        pieces = split_evenly(plan.layout.clips.num_clips, min(self.parts, self.spread.embedders))
        self._whole = len(pieces) == 1
        return [Embed(plan, piece, whole=self._whole) for piece in pieces]

    def embedded(self, first: int, scene: np.ndarray, actor: np.ndarray) -> list[Work]:
        """Clips ``first .. first + N - 1`` are embedded (``scene``/``actor`` ``[N, D]``); once every
        clip is in, the commit is due."""
        if not self._expect("embed"):
            return []
        clips = slice(first, first + len(scene))
        if len(scene) != len(actor) or clips.stop > self.num_clips or self._embedded[clips].any():
            raise StepOrderError(f"{self.name}: clips {first}..{clips.stop - 1} came twice or do not fit")
        if self._streams is None:
            shape = (self.num_clips, scene.shape[1])
            self._streams = np.empty(shape, np.float32), np.empty(shape, np.float32)
        self._streams[0][clips], self._streams[1][clips] = scene, actor
        self._embedded[clips] = True
        if not self._embedded.all():
            return []
        features = SiameseFeatures(self.plan, *self._streams)
        self.state, self._streams, self._result = "commit", None, ExtractedVideo(self.name, self.path, features)
        return [Commit(self._result)]

    def committed(self) -> list[Work]:
        """The video is stored (after its :class:`Commit`, or its one ``whole`` :class:`Embed`)."""
        if self.state == "embed" and self._whole:
            self.state = "done"  # embedded and committed in one go: the features stayed with the engine
        elif self._expect("commit"):
            self.state = "done"
        return []

    def failed(self, reason: str) -> list[Work]:
        """A step failed (``reason``: one line): the video ends; its other work can be dropped."""
        if not self.finished:
            self.state, self.reason = "failed", reason
            self._detections, self._found, self._streams = [], {}, None
        return []

    def step_done(self, work: DetectorWork, result) -> list[Work]:
        """The detector's side of the work returned ``result`` (:func:`run_detector_step`)."""
        if isinstance(work, LayOut):
            return self.laid_out(result)
        if isinstance(work, Detect):
            return self.detected(work, result)
        if isinstance(work, Follow):
            return self.followed(work, result)
        if isinstance(work, LookAgain):
            return self.looked_again(work, result)
        return self.planned(result)

    def _expect(self, state: State) -> bool:
        """True in ``state``; False once finished (late news is ignored); a bug otherwise."""
        if self.state == state:
            return True
        if self.finished:
            return False
        raise StepOrderError(f"{self.name}: expected the {state} step, the video is at {self.state}")


def run_detector_step(work: DetectorWork, decoder: Decoder, detector: PersonDetector, config: SiameseConfig,
                      backend: Backend):
    """Do one of the steps beside a person detector (:data:`DetectorWork`); the result is what
    :meth:`VideoSteps.step_done` takes: a layout, a part's detections, a part's new findings, a plan."""
    if isinstance(work, LayOut):
        return layout_video(decoder, str(work.path), config)
    if isinstance(work, Detect):
        return detect_key_frames(decoder, work.layout, work.keys, detector, config, backend)
    if isinstance(work, Follow):
        return follow_missed_key_frames(decoder, work.layout, work.detections, detector, config, backend, work.share)
    if isinstance(work, LookAgain):
        return look_again_at_key_frames(decoder, work.layout, work.detections, detector, config, backend, work.share)
    return plan_from_detections(work.layout, work.detections, config)
