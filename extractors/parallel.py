"""Siamese extraction over a pool of workers, with each video split into parts.

:func:`extractors.siamese.extract_video` does one video's steps in sequence, from the same stage
functions (layout, key-frame detection, following the misses, tracking, clip batches). Here they
run on ``workers`` threads, each owning a decoding child process
(:class:`~extractors.decode_worker.DecodeWorker`, timed out and replaced if it hangs) and a
person detector, while the calling thread runs the one backbone. A video is cut into parts
(runs of key frames for the detector, runs of clips for the backbone) so that every worker helps
with a single long video (``aqa-predict``) as much as with a folder of short ones
(``aqa-extract``). The path of one video:

1. **layout**: probe, plan the clips, split the key frames into parts;
2. **detect** (one job per part): decode the part's key frames at working size, find people;
   the worker that finishes the last part tracks the athlete through the whole video, hands
   the plan to the caller and queues the cut jobs;
3. **cut** (one job per part): decode the part's clips and cut both streams in the decoding
   child, a few clips at a time, onto a bounded queue;
4. the caller embeds each batch (scene and actor in one forward) and hands the video out once
   all its clips are in.

Jobs wait in a priority queue ordered by video, then stage: workers finish the earliest video
first and idle ones move on to the next. Host memory is bounded by the batch queue, not by
video length. A part's first read seeks back to the key frame before it, so parts are kept at
least ``min_part_frames`` long; PyAV-only videos (GIF) decode from their start on every seek
backwards and stay in one part. Features do not depend on the number of workers or parts:
each frame is decoded, detected and cut on its own, and the tracker sees all detections at once.
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

import numpy as np

from aqa.errors import AqaError, one_line
from aqa.extractors.backbones import VideoBackbone
from aqa.extractors.decode_worker import DecodeWorker, InlineDecoder
from aqa.extractors.detect import DetectorConfig, PersonDetector, build_detector
from aqa.extractors.siamese import (
    SiameseConfig,
    SiameseFeatures,
    VideoLayout,
    VideoPlan,
    clip_batches,
    detect_key_frames,
    embed_batch,
    follow_missed_key_frames,
    layout_video,
    plan_from_detections,
)
from aqa.extractors.video import Backend

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

    def parts_of(self, layout: VideoLayout, workers: int) -> int:
        """How many parts ``layout``'s video is cut into for ``workers`` workers; PyAV-only videos
        (GIF) stay whole, since PyAV decodes from the start on every backward seek."""
        if self.decode_backend == "pyav" or layout.info.codec == "gif":
            return 1
        return count_parts(layout.info.num_frames, workers, self.min_part_frames)


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


def split_evenly(count: int, parts: int) -> list[range]:
    """``parts`` contiguous ranges covering ``0 .. count - 1``, sizes differing by at most one."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return [range(start, stop) for start, stop in zip(bounds, bounds[1:])]


def count_parts(num_frames: int, workers: int, min_part_frames: int) -> int:
    """How many parts to cut a video of ``num_frames`` into: one per worker, none shorter than
    ``min_part_frames``."""
    return max(1, min(workers, num_frames // min_part_frames))


def failure_reason(error: BaseException) -> str:
    """A video's failure as one line: our own and the decoders' errors by their message, anything
    else with its type first (it may be a bug)."""
    known = isinstance(error, (AqaError, IndexError, ValueError))
    return one_line(error) if known else f"{type(error).__name__}: {one_line(error)}"


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
class _Video:
    """A video in flight, shared by the workers on its parts."""

    order: int
    name: str
    path: Path
    run: _Run
    layout: VideoLayout | None = None
    plan: VideoPlan | None = None
    detections: list = field(default_factory=list)
    parts: int = 1  # detect and cut parts alike
    parts_left: int = 0
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Job:
    stage: Literal["layout", "detect", "cut"]
    video: _Video
    part: range = range(0)


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
        for order, (name, path) in enumerate(videos):
            self._submit(_Job("layout", _Video(order, name, Path(path), run)))
        outstanding = len(videos)
        assemblies: dict[int, _Assembly] = {}
        finished: set[int] = set()
        try:
            while outstanding:
                kind, video, payload = run.results.get()
                if video.order in finished:
                    continue  # late news of a video already handed out
                if kind == "layout":
                    if on_tracking is not None:
                        on_tracking(video.name, payload)
                    continue
                if kind == "plan":
                    assemblies[video.order] = _Assembly(payload)
                    if on_clips is not None:
                        on_clips(video.name, 0, payload.layout.clips.num_clips)
                    continue
                if kind == "batch":
                    assembly = assemblies[video.order]
                    scene, actor = embed_batch(self.backbone, payload, device=self.device, precision=self.precision)
                    assembly.add(payload.first, scene, actor)
                    if on_clips is not None:
                        on_clips(video.name, assembly.clips_done, assembly.plan.layout.clips.num_clips)
                    if not assembly.complete:
                        continue
                    result = ExtractedVideo(video.name, video.path, assembly.features())
                else:  # "error"
                    result = FailedVideo(video.name, video.path, payload)
                assemblies.pop(video.order, None)
                finished.add(video.order)
                outstanding -= 1
                yield result
        finally:
            run.cancelled.set()
            self._runs.discard(run)

    def _submit(self, job: _Job) -> None:
        stage = {"layout": 0, "detect": 1, "cut": 2}[job.stage]
        self._jobs.put(((job.video.order, stage, job.part.start), next(self._sequence), job))

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
                if job.video.failed or job.video.run.cancelled.is_set():
                    continue
                try:
                    self._handle(job, decoder, detector)
                except _Cancelled:
                    continue
                except Exception as error:  # whatever went wrong, it is this video's problem alone
                    self._fail(job.video, failure_reason(error))
        finally:
            decoder.close()
            if detector is not None:
                detector.close()

    def _handle(self, job: _Job, decoder, detector: PersonDetector) -> None:
        video = job.video
        backend = self.settings.decode_backend
        if job.stage == "layout":
            layout = layout_video(decoder, str(video.path), self.config)
            parts = self.settings.parts_of(layout, self.workers)
            video.layout, video.detections = layout, [None] * layout.info.num_frames
            pieces = split_evenly(len(layout.key_frames), parts)
            video.parts = video.parts_left = len(pieces)
            video.run.post(("layout", video, layout.info.num_frames))
            for piece in pieces:
                self._submit(_Job("detect", video, piece))
        elif job.stage == "detect":
            layout = video.layout
            keys = layout.key_frames[job.part.start:job.part.stop]
            found = detect_key_frames(decoder, layout, keys, detector, self.config, backend)
            with video.lock:
                for index, boxes in zip(keys.tolist(), found):
                    video.detections[index] = boxes
                video.parts_left -= 1
                last = video.parts_left == 0
            if last:
                follow_missed_key_frames(decoder, layout, video.detections, detector, self.config, backend)
                video.plan = plan_from_detections(layout, video.detections, self.config)
                video.detections = []
                video.run.post(("plan", video, video.plan))
                for piece in split_evenly(video.plan.layout.clips.num_clips, video.parts):
                    self._submit(_Job("cut", video, piece))
        else:
            for batch in clip_batches(decoder, video.plan, self.config, self.config.resolved_input_size,
                                      self.settings.clips_per_batch, backend, clips=job.part):
                if video.failed:
                    return
                video.run.post(("batch", video, batch))

    def _fail(self, video: _Video, reason: str) -> None:
        """Report ``video`` failed, once, and let its remaining jobs be skipped."""
        with video.lock:
            if video.failed:
                return
            video.failed = True
        try:
            video.run.post(("error", video, reason))
        except _Cancelled:
            pass

    def close(self) -> None:
        """Stop the workers (their decoding children and detectors with them)."""
        for run in list(self._runs):  # a worker waiting for an abandoned caller gives up
            run.cancelled.set()
        for _ in self._threads:
            self._jobs.put(((-1, 0, 0), next(self._sequence), None))
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Assembly:
    """A video's features as its batches come back, in any order."""

    def __init__(self, plan: VideoPlan):
        self.plan = plan
        self.scene: np.ndarray | None = None
        self.actor: np.ndarray | None = None
        self.clips_done = 0

    def add(self, first: int, scene: np.ndarray, actor: np.ndarray) -> None:
        if self.scene is None:
            shape = (self.plan.layout.clips.num_clips, scene.shape[1])
            self.scene, self.actor = np.empty(shape, np.float32), np.empty(shape, np.float32)
        self.scene[first:first + len(scene)] = scene
        self.actor[first:first + len(actor)] = actor
        self.clips_done += len(scene)

    @property
    def complete(self) -> bool:
        return self.clips_done == self.plan.layout.clips.num_clips

    def features(self) -> SiameseFeatures:
        return SiameseFeatures(self.plan, self.scene, self.actor)
