"""Siamese extraction over a pool of workers on this machine, with each video split into parts.

The steps of one video and their order are :class:`extractors.video_steps.VideoSteps`'s; this
module runs the work it asks for. ``workers`` threads each own a decoding child process
(:class:`~extractors.decode_worker.DecodeWorker`, timed out and replaced if it hangs) and a
person detector: they lay out, detect, plan and cut clips (:class:`Embed`: decode the part's
clips and cut both streams in the decoding child, a few clips at a time, onto a bounded queue).
The calling thread drives every video's steps from what the workers post, runs the one backbone
over each batch (scene and actor in one forward) and hands a video out once all its clips are in
(its :class:`Commit`). A video is cut into parts so that every worker helps with a single long
video (``aqa-predict``) as much as with a folder of short ones (``aqa-extract``).

Jobs wait in a priority queue ordered by video, then step: workers finish the earliest video
first and idle ones move on to the next. Host memory is bounded by the result queue, not by
video length.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aqa.extractors.backbones import VideoBackbone
from aqa.extractors.decode_worker import DecodeWorker, InlineDecoder
from aqa.extractors.detect import DetectorConfig, PersonDetector, build_detector
from aqa.extractors.stages import SiameseConfig, clip_batches, embed_batch
from aqa.extractors.video import Backend
from aqa.extractors.video_steps import (
    Embed,
    ExtractedVideo,
    FailedVideo,
    LayOut,
    Plan,
    Spread,
    VideoSteps,
    Work,
    failure_reason,
    run_detector_step,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolConfig:
    """How extraction is spread over workers; none of it changes the features.

    workers: threads, each with a decoding child process and a person detector.
    clips_per_batch: clips per stream per backbone forward (the batch holds twice that).
    min_part_frames: a video is split into parts of at least this many frames (each part's
        first read seeks back to the key frame before it).
    batch_queue: decoded batches waiting for the backbone, per worker (bounds host memory).
    """

    workers: int = 1
    clips_per_batch: int = 4
    decode_backend: Backend = "auto"
    decode_timeout_s: float = 120.0
    isolate_decoding: bool = True
    min_part_frames: int = 256
    batch_queue: int = 4

    def __post_init__(self) -> None:
        if self.workers < 1 or self.clips_per_batch < 1 or self.min_part_frames < 1 or self.batch_queue < 1:
            raise ValueError(f"workers, clips_per_batch, min_part_frames and batch_queue must be >= 1: {self}")

    def make_decoder(self) -> DecodeWorker | InlineDecoder:
        """A worker's decoder: a child process (timed out and replaced if it hangs) unless
        ``isolate_decoding`` is off."""
        return DecodeWorker(timeout_s=self.decode_timeout_s) if self.isolate_decoding else InlineDecoder()

    def spread(self, detectors: int, embedders: int) -> Spread:
        """How a video is split over ``detectors`` and ``embedders`` workers with these settings."""
        return Spread(detectors, embedders, self.min_part_frames)


class _Cancelled(Exception):
    """The run this job belongs to has ended (its caller stopped or failed)."""


@dataclass(eq=False)  # hashable by identity: the pool keeps its live runs in a set
class _Run:
    """One call of :meth:`WorkerPool.extract`: where its workers post, and whether it still listens."""

    results: queue.Queue
    cancelled: threading.Event = field(default_factory=threading.Event)

    def post(self, message: tuple) -> None:
        """Queue ``message`` for the caller; gives up (raises :class:`_Cancelled`) once the run ends."""
        while True:
            if self.cancelled.is_set():
                raise _Cancelled
            try:
                self.results.put(message, timeout=0.2)
                return
            except queue.Full:
                continue


@dataclass
class _Job:
    video: VideoSteps  # read by the workers only for ``finished`` (the caller's thread drives it)
    work: Work
    run: _Run


class WorkerPool:
    """Workers that extract Siamese features, kept alive between calls of :meth:`extract`.

    ``backbone`` runs on the calling thread, on ``device``. Use as a context manager, or call
    :meth:`close`. Building the pool builds one detector per worker (in parallel) and raises the
    first error if no worker could build one.
    """

    def __init__(self, config: SiameseConfig, backbone: VideoBackbone, *, device: str = "cpu",
                 precision: Literal["fp32", "bf16", "fp16"] = "fp32", pool: PoolConfig | None = None,
                 detector_factory: Callable[[DetectorConfig], PersonDetector] = build_detector):
        self.config = config
        self.backbone = backbone
        self.device = device
        self.precision = precision
        self.settings = pool or PoolConfig()
        self._detector_factory = detector_factory
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._sequence = itertools.count()  # ties in the priority queue keep their order
        self._detectors: list[PersonDetector] = []
        self._ready = threading.Barrier(self.settings.workers + 1)
        self._start_errors: list[BaseException] = []
        self._runs: set[_Run] = set()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"aqa-worker-{i}")
                         for i in range(self.settings.workers)]
        for thread in self._threads:
            thread.start()
        self._ready.wait()
        if not self._detectors:
            self.close()
            raise self._start_errors[0]
        if self._start_errors:
            log.warning("%d of %d workers could not start (%s); going on with %d", len(self._start_errors),
                        self.settings.workers, self._start_errors[0], len(self._detectors))

    @property
    def workers(self) -> int:
        """Workers running (fewer than asked for when some could not build their detector)."""
        return len(self._detectors)

    @property
    def detector(self) -> PersonDetector:
        """One worker's detector (they are all alike): its ``name`` and ``weights_id`` identify them."""
        return self._detectors[0]

    # ------------------------------------------------------------------ the caller's side

    def extract(self, videos: Sequence[tuple[str, Path]],
                on_clips: Callable[[str, int, int], None] | None = None,
                on_tracking: Callable[[str, int], None] | None = None) -> Iterator[ExtractedVideo | FailedVideo]:
        """Extract ``videos`` ((name, path) pairs), yielding each as it finishes or fails.

        ``on_clips(name, clips_done, clips_total)`` follows the backbone's progress (0 done when a
        video's plan is ready, that is, once its athlete is tracked); ``on_tracking(name,
        num_frames)`` says a video was opened and its athlete tracking began. Stopping the
        iteration early cancels the videos still in flight.
        """
        run = _Run(queue.Queue(maxsize=self.settings.batch_queue * self.workers))
        self._runs.add(run)
        spread = self.settings.spread(self.workers, self.workers)
        steps = [VideoSteps(order, name, path, spread) for order, (name, path) in enumerate(videos)]
        for video in steps:
            self._submit(video, video.start(), run)
        outstanding = len(steps)
        try:
            while outstanding:
                kind, video, payload = run.results.get()
                if video.finished:
                    continue  # late news of a video already handed out
                self._submit(video, self._advance(video, kind, payload, on_clips, on_tracking), run)
                if video.finished:
                    outstanding -= 1
                    yield video.outcome
        finally:
            run.cancelled.set()
            self._runs.discard(run)

    def _advance(self, video: VideoSteps, kind: str, payload, on_clips, on_tracking) -> list[Work]:
        """Tell ``video`` what a worker posted; returns the work due next."""
        if kind == "error":
            return video.failed(payload)
        if kind == "batch":
            scene, actor = embed_batch(self.backbone, payload, device=self.device, precision=self.precision)
            due = video.embedded(payload.first, scene, actor)
            if on_clips is not None:
                on_clips(video.name, video.clips_done, video.num_clips)
            return video.committed() if due else []  # its Commit: handing the video out is this engine's
        work, result = payload  # "step": a lay-out, detect or plan, and its result
        due = video.step_done(work, result)
        if on_tracking is not None and isinstance(work, LayOut):
            on_tracking(video.name, result.info.num_frames)
        if on_clips is not None and isinstance(work, Plan):
            on_clips(video.name, 0, video.num_clips)
        return due

    def _submit(self, video: VideoSteps, due: list[Work], run: _Run) -> None:
        for work in due:
            self._jobs.put(((video.order, work.stage), next(self._sequence), _Job(video, work, run)))

    # ------------------------------------------------------------------ the workers' side

    def _work(self) -> None:
        decoder = self.settings.make_decoder()
        detector = None
        try:
            try:
                detector = self._detector_factory(self.config.detector)
                self._detectors.append(detector)
            except Exception as error:  # reported by the constructor, which waits for every worker
                self._start_errors.append(error)
                return
            finally:
                self._ready.wait()
            while True:
                _, _, job = self._jobs.get()
                if job is None:
                    return
                if job.video.finished or job.run.cancelled.is_set():
                    continue
                try:
                    self._handle(job, decoder, detector)
                except _Cancelled:
                    continue
                except Exception as error:  # whatever went wrong, it is this video's problem alone
                    try:
                        job.run.post(("error", job.video, failure_reason(error)))
                    except _Cancelled:
                        pass
        finally:
            decoder.close()
            if detector is not None:
                detector.close()

    def _handle(self, job: _Job, decoder, detector: PersonDetector) -> None:
        """Run ``job``'s work and post its result to the caller's thread."""
        video, work, backend = job.video, job.work, self.settings.decode_backend
        if not isinstance(work, Embed):
            job.run.post(("step", video, (work, run_detector_step(work, decoder, detector, self.config, backend))))
            return
        for batch in clip_batches(decoder, work.plan, self.config, self.config.resolved_input_size,
                                  self.settings.clips_per_batch, backend, clips=work.clips):
            if video.finished:
                return
            job.run.post(("batch", video, batch))

    def close(self) -> None:
        """Stop the workers (their decoding children and detectors with them)."""
        for run in list(self._runs):  # a worker waiting for an abandoned caller gives up
            run.cancelled.set()
        for _ in self._threads:
            self._jobs.put(((-1, 0), next(self._sequence), None))
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
