"""What ``aqa-app`` does with one uploaded video, without the web page: check the upload, score it
with a loaded :class:`~aqa.pipeline.predict.LoadedPredictor`, and lay out what the page shows (the text,
the overlay video, the timeline figure, the downloadable JSON).

Kept apart from :mod:`aqa.pipeline.app.page` (the Gradio page) so that the rules a server must keep
(limits on what is accepted, one-line messages instead of stack traces, no path but the upload's,
a bounded number of jobs at once) are plain code that tests can call directly.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from aqa.errors import AqaError, one_line
from aqa.extractors.video import probe_video
from aqa.models.checkpoint import check_difficulty
from aqa.pipeline.extract import VIDEO_SUFFIXES
from aqa.pipeline.predict.overlay import box_legend, strip_legend
from aqa.pipeline.predict.predictor import LoadedPredictor, StageCallback, predict_video
from aqa.pipeline.predict.report import exemplar_votes, member_scores, save_prediction_overlay
from aqa.pipeline.predict.report_words import (
    athlete_phrase,
    attention_lines,
    cuts_phrase,
    description_phrase,
    frames_not_scored_phrase,
    grade_phrase,
    scale_phrase,
)
from aqa.pipeline.predict.result import Prediction
from aqa.pipeline.predict.timeline import timeline_figure

log = logging.getLogger(__name__)


class UploadError(AqaError):
    """An upload the app will not score (too large, not a video file); its message is for the page."""


@dataclass(frozen=True)
class AppLimits:
    """How much one server accepts: the largest upload, jobs scored at once, jobs waiting, and the
    longest video (``max_minutes``, and as many frames as that lasts at 30 fps): a 391 KB upload
    of 30,000 tiny frames held the page's one worker for 25 minutes under every tool's own limit
    (3 hours). A routine, a program or a dive lasts minutes; a longer video is aqa-predict's."""

    max_upload_mb: float = 200.0
    max_concurrent: int = 1
    max_queue: int = 8
    max_minutes: float = 10.0

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0 or self.max_concurrent < 1 or self.max_queue < 1 or not self.max_minutes > 0:
            raise ValueError(f"limits must be positive, got {self}")

    @property
    def max_frames(self) -> int:
        return int(self.max_minutes * 60 * 30)


def check_upload(path: Path, limits: AppLimits) -> None:
    """Refuse, with a line for the page, what is too large or is plainly not a video; whether the
    bytes really are a video is for the decoder to say (a text file renamed ``.mp4`` passes here)."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UploadError(f"{path.name}: not a video file (expected one of {', '.join(sorted(VIDEO_SUFFIXES))})")
    if not path.is_file():
        raise UploadError(f"{path.name}: the upload is no longer on the server (uploads are kept a few hours); "
                          "upload it again")
    size_mb = path.stat().st_size / 1e6
    if size_mb > limits.max_upload_mb:
        raise UploadError(f"{path.name}: {size_mb:.1f} MB is over this server's upload limit of "
                          f"{limits.max_upload_mb:g} MB")
    if size_mb == 0:
        raise UploadError(f"{path.name}: the file is empty")


def check_length(path: Path, limits: AppLimits) -> None:
    """Refuse, with a line for the page, a video longer than ``limits`` allow, before any frame is
    decoded (the probe counts packets; a file that is no video is refused by it in its own words)."""
    info = probe_video(path)
    minutes = info.num_frames / info.fps / 60 if info.fps > 0 else 0.0
    if minutes > limits.max_minutes or info.num_frames > limits.max_frames:
        raise UploadError(f"{path.name}: {info.num_frames} frames ({minutes:.1f} min) is longer than this page scores "
                          f"({limits.max_minutes:g} min, {limits.max_frames} frames); score it with aqa-predict, or "
                          "start aqa-app with a larger --max-minutes")


class JobGauge:
    """Counts the scoring jobs running and logs each start and end with that count, so whoever
    runs the server (and the concurrency test) can see that the limit held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.peak = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    @contextmanager
    def job(self, name: str) -> Iterator[int]:
        with self._lock:
            number = next(self._numbers)
            self.running += 1
            self.peak = max(self.peak, self.running)
            log.info("job %d started at %.3f: %s (%d running, limit %d)", number, time.time(), name, self.running,
                     self.limit)
        started = time.perf_counter()
        try:
            yield number
        finally:
            with self._lock:
                self.running -= 1
                log.info("job %d finished at %.3f after %.1f s (%d running)", number, time.time(),
                         time.perf_counter() - started, self.running)


@dataclass(frozen=True)
class ScoredUpload:
    """Everything the page shows for one scored video."""

    prediction: Prediction
    summary: str  # Markdown
    figure: Figure
    json_path: Path
    overlay: Path | None  # None when it could not be drawn (the report's warnings say why)
    legend: str = ""  # Markdown: what the overlay's box colours and strip mean ("" without an overlay)


def score_upload(predictor: LoadedPredictor, upload: Path, job_dir: Path, *, checkpoint_name: str,
                 difficulty: float | None = None, on_stage: StageCallback | None = None) -> ScoredUpload:
    """Score ``upload`` and write its overlay video and JSON report into ``job_dir`` (made here).

    The report names the video by its uploaded file name, never by where the server keeps it.
    ``on_stage`` hears :func:`predict_video`'s stages, then ``("overlay", 0, 0)``. Raises
    :class:`AqaError` (one line) when the video cannot be scored.
    """
    check_difficulty(predictor.head, difficulty)
    prediction, features = predict_video(predictor, upload, difficulty=difficulty, on_stage=on_stage)
    job_dir.mkdir(parents=True, exist_ok=True)
    overlay: Path | None = job_dir / f"{upload.stem}_overlay.mp4"
    if on_stage is not None:
        on_stage("overlay", 0, 0)
    try:
        save_prediction_overlay(overlay, prediction, features, f"{prediction.score_name} {prediction.score:.2f}")
    except (AqaError, OSError) as error:  # the score stands whatever happens to its picture
        prediction = prediction.with_changes(
            warnings=(*prediction.warnings, f"the overlay video could not be drawn: {one_line(error)}"))
        overlay = None
    prediction = prediction.with_changes(video=upload.name)
    json_path = job_dir / f"{upload.stem}_score.json"  # the name the page's download link offers
    json_path.write_text(json.dumps({"checkpoint": checkpoint_name, "predictions": [prediction.to_json()],
                                     "failures": []}, indent=2) + "\n")
    return ScoredUpload(prediction, summary_markdown(prediction), timeline_figure(prediction, size=PAGE_FIGURE),
                        json_path, overlay, overlay_legend(prediction) if overlay else "")


# The timeline's size on the page, in inches at 130 dpi (585 x 416 pixels, shown at its own size on a
# computer): on a phone, about 335 px wide for the plot, its 10-point text stays about 10 px tall
# (at 8 x 3 inches it was 6 px).
PAGE_FIGURE = (4.5, 3.2, 130)


def overlay_legend(prediction: Prediction) -> str:
    """What the overlay's box colours and its strip mean, one line each, for this video's kinds of
    box and whether its strip is shaded by the model (the clips' weights, as they are drawn)."""
    weighted = bool(np.ptp([span.weight for span in prediction.clip_spans]) > 0)
    return f"{box_legend(prediction.athlete_frames)}  \n{strip_legend(prediction.clips, weighted)}"


def summary_markdown(prediction: Prediction) -> str:
    """The result as a judge reads it: the score on its scale and grade first, what the model is,
    then what stands behind it. What is said about each number, and what is left out, is the text
    report's (:mod:`pipeline.predict.report_words`): the page and ``aqa-predict`` never disagree."""
    lines = [f"## {prediction.score_name}: {prediction.score:.2f}", ""]
    grade = grade_phrase(prediction)
    if grade:  # its own line: in the headline it took six bold lines of a phone's screen
        lines += [f"**{grade[0].upper() + grade[1:]}**", ""]
    scale, description = scale_phrase(prediction), description_phrase(prediction)
    if scale or description:
        lines += ["  \n".join(f"*{text}*" for text in (scale and scale[0].upper() + scale[1:],
                                                        description and f"Model: {description}") if text), ""]
    lines += [f"> **Warning:** {warning}" for warning in prediction.warnings]
    if prediction.warnings:
        lines.append("")
    boxes = athlete_phrase(prediction)
    lines.append(f"**{prediction.video}**: {prediction.frames} frames at {prediction.fps:g} fps, {prediction.clips} "
                 f"clips, scored by a {prediction.head} head." + (f" Athlete boxes: {boxes}." if boxes else ""))
    left_out = frames_not_scored_phrase(prediction)
    if left_out:
        lines.append(f"- {left_out}")
    cuts = cuts_phrase(prediction)
    if cuts:
        lines.append(f"- {cuts}")
    # The text report indents what belongs to the line above (each named procedure): a nested item.
    lines += [f"{'  ' if line.startswith(' ') else ''}- {line.strip()}" for line in attention_lines(prediction)]
    for span in prediction.sub_actions:
        lines.append(f"- sub-action {span.sub_action}: {span.start_s:.2f}-{span.end_s:.2f} s")
    votes = exemplar_votes(prediction)
    if votes:
        lines.append(f"- voted over {len(votes)} exemplars: {', '.join(votes)}")
    members = member_scores(prediction)
    if members:
        lines.append(f"- the mean of {len(prediction.members)} members: {members}")
    return "\n".join(lines)


def prune_jobs(work_dir: Path, *, older_than_s: float = 3600.0) -> None:
    """Delete job folders older than ``older_than_s``: a long-running server keeps only the recent
    overlays (the page has copied what it shows by then)."""
    cutoff = time.time() - older_than_s
    for folder in work_dir.glob("job-*"):
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            continue
