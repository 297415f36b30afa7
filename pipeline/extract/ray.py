"""``aqa-extract --engine ray``: the same extraction spread over a Ray cluster.

Why Ray Core actors (not Ray Data, not tasks): both stages hold a model that is slow to build
(the person detector, the backbone), so they live in long-lived actors that take one step per
call; Ray Data's streaming operators would add a second, block-based scheduler between videos
whose sizes differ by 100x, and plain tasks would rebuild the models per video. The steps of one
video and their order are :class:`extractors.video_steps.VideoSteps`'s, as for the local engine;
this module runs the work it asks for, with the same stage functions, so there is no second copy
of the extraction logic:

1. **planner** actors (CPU; ``planners`` of them) lay the video out, detect people on its key
   frames (a long video's parts over several planners), follow the misses and track the athlete
   (:func:`~extractors.video_steps.run_detector_step`): a :class:`VideoPlan` of a few kilobytes;
2. the driver hands the plan (or a long video's clip parts) to the **writer** actors with the
   fewest calls queued (GPU, ``gpus_per_actor`` each, fractions allowed; CPU when the cluster has
   none). A writer decodes the video again, cuts both streams from the plan and embeds them; the
   video is committed to a writer's own shard (``STORE_DIR/ray-shard-00003.h5``) through the
   crash-safe :class:`ShardWriter`, by the one writer that embedded all of it, else by one that
   gets the parts' features joined. Decoded frames never leave the machine that decoded them.
3. at the end each writer merges its shard and the driver writes ``STORE_DIR/index.json``.

Faults: actors restart when their process dies (killed, out of memory) and Ray retries the call
they were running (``max_retries``); a writer's retry lands in the same shard, whose
``name in writer`` check skips a video committed just before the death, so no video is stored
twice. A video that fails for its own reason (an unreadable file) comes back as its one-line
reason, once, and is not retried. A killed driver leaves shards whose committed videos the next
run skips (every shard in the folder is read, whatever writer made it).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aqa.data.feature_store import PARTS_SUFFIX, FeatureStore, VideoFeatures, write_index
from aqa.data.labels import LabelTable
from aqa.errors import AqaError, one_line
from aqa.extractors.stages import SiameseFeatures, clip_batches, embed_batch
from aqa.extractors.video_steps import (
    Commit,
    Embed,
    ExtractedVideo,
    VideoSteps,
    Work,
    failure_reason,
    run_detector_step,
)
from aqa.pipeline.extract.job_split import INDEX_NAME  # one index name, whichever way the store was split

log = logging.getLogger(__name__)

SHARD_PREFIX = "ray-shard-"


class RayEngineError(AqaError):
    """The Ray engine cannot run (no Ray, an unreachable cluster, impossible resources)."""


@dataclass(frozen=True)
class RayConfig:
    """How the Ray engine spreads the work; none of it changes the features.

    address: a running cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None starts a local
        Ray instance on this machine.
    gpus_per_actor: GPUs each writer (backbone) actor takes; fractions share a GPU. 0 on a cluster
        without GPUs.
    writers: writer actors (one shard each); 0: as many as the cluster's GPUs allow, else 1.
    planners: planner actors (detector on CPU); 0: the cluster's CPUs left by the writers' reserve
        (``writer_cpus``), at least 1.
    planner_cpus: CPUs each planner takes (Ray's bookkeeping, and its torch threads).
    writer_cpus: CPUs reserved for each writer. 0 (default): none; a writer's heavy work is on its
        GPU, and on a run without GPUs it time-shares the cores with the planners, as the local
        engine's backbone does with its workers (reserving a core for it left the planners one
        core short and the cores idle whenever the two stages were out of step).
    writer_threads: torch threads of each writer's backbone; 0: its machine's cores, as the local
        engine's backbone has (on a GPU the backbone barely uses them; on a CPU it needs them all).
    max_retries: how often a call is retried after its actor's process died.
    queue_per_writer: plans waiting per writer (small: a slow writer does not hoard work).
    """

    address: str | None = None
    gpus_per_actor: float = 1.0
    writers: int = 0
    planners: int = 0
    planner_cpus: int = 1
    writer_cpus: float = 0.0
    writer_threads: int = 0
    max_retries: int = 3
    queue_per_writer: int = 2

    def __post_init__(self) -> None:
        if self.gpus_per_actor < 0 or self.writers < 0 or self.planners < 0 or self.planner_cpus < 1 \
                or self.writer_cpus < 0 \
                or self.max_retries < 0 or self.queue_per_writer < 1 or self.writer_threads < 0:
            raise ValueError(f"impossible Ray engine settings: {self}")


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}.h5"


def stored_names(store_dir: Path) -> set[str]:
    """Every video committed in any shard of ``store_dir``: merged ones and those an interrupted
    run left as part files (a part file exists only once its video is complete)."""
    names: set[str] = set()
    for shard in sorted(store_dir.glob("*.h5")):
        with FeatureStore([shard], str(shard)) as store:
            names.update(store.names)
    for parts in store_dir.glob(f"*.h5{PARTS_SUFFIX}"):
        names.update(part.name[:-len(".h5")] for part in parts.glob("*.h5"))
    return names


# ---------------------------------------------------------------------------------- the actors


class Planner:
    """The steps beside a person detector (lay out, detect a part, plan), one per call."""

    def __init__(self, config, pool, threads: int) -> None:
        from aqa.extractors.detect import build_detector

        _limit_threads(threads)
        self.config, self.backend = config, pool.decode_backend
        self.decoder = pool.make_decoder()  # as the local engine's workers decode
        self.detector = build_detector(config.detector)

    def run(self, work) -> tuple[object, str]:
        """``(result or failure reason, node)`` of a :class:`LayOut`, :class:`Detect` or :class:`Plan`."""
        try:
            return run_detector_step(work, self.decoder, self.detector, self.config, self.backend), _node()
        except Exception as error:  # this video's own problem: reported, never retried
            return failure_reason(error), _node()

    def identity(self) -> tuple[str, str]:
        """The detector's name and weights id (for the features' provenance)."""
        return self.detector.name, self.detector.weights_id

    def pid(self) -> int:
        return os.getpid()


class Writer:
    """Cut both streams from a plan, embed them and commit the video to this actor's shard."""

    def __init__(self, config, shard: str, detector: tuple[str, str], weights: str | None, device: str,
                 precision: str, pool, threads: int) -> None:
        from aqa.data.provenance import feature_provenance
        from aqa.data.shard_writer import ShardWriter
        from aqa.extractors.backbones import build_backbone
        from aqa.pipeline.devices import resolve_device

        _limit_threads(threads or os.cpu_count() or 1)
        device = resolve_device(device)  # "auto": the GPU Ray gave this actor, else the CPU
        self.config, self.device, self.precision = config, device, precision
        self.clips_per_batch, self.backend = pool.clips_per_batch, pool.decode_backend
        self.backbone = build_backbone(config.backbone, weights=weights, device=device)
        self.decoder = pool.make_decoder()
        provenance = feature_provenance(config, self.backbone, _DetectorIdentity(*detector))
        self.writer, self.refusal = None, None
        try:
            self.writer = ShardWriter(shard, provenance)
        except AqaError as error:  # a shard of other settings, an unwritable folder: the driver says so
            self.refusal = one_line(error)

    def ready(self) -> str | None:
        """None, or why this writer cannot write its shard (one line)."""
        return self.refusal

    def embed_and_commit(self, name: str, path: str, work: Embed, label) -> tuple[str | None, str]:
        """A video's one :class:`Embed` (``work.whole``), embedded and committed: ``(failure reason
        or None, node)``. A video already in the shard (a retry after this actor died past its
        commit) is not written again."""
        if name in self.writer:
            return None, _node()
        streams = self.embed(work)
        if isinstance(streams, str):
            return streams, _node()
        return self.commit(ExtractedVideo(name, Path(path), SiameseFeatures(work.plan, *streams)), label)

    def embed(self, work: Embed):
        """``(scene, actor)`` ``[N, D]`` of the clips ``work.clips``, or the failure reason."""
        try:
            scene, actor = [], []
            batches = clip_batches(self.decoder, work.plan, self.config, self.config.resolved_input_size,
                                   self.clips_per_batch, self.backend, clips=work.clips)
            for batch in _ahead(batches, depth=2):
                scene_part, actor_part = embed_batch(self.backbone, batch, device=self.device,
                                                     precision=self.precision)
                scene.append(scene_part)
                actor.append(actor_part)
        except Exception as error:
            return failure_reason(error)
        return np.concatenate(scene), np.concatenate(actor)

    def commit(self, video: ExtractedVideo, label) -> tuple[str | None, str]:
        """Write a video whose clips are embedded (here or by other writers) to this actor's shard:
        ``(None, node)``."""
        if video.name not in self.writer:
            self.writer.write(VideoFeatures.of_extracted(video, label))
        return None, _node()

    def pid(self) -> int:
        return os.getpid()

    def provenance(self):
        return self.writer.provenance

    def close(self) -> str | None:
        if self.writer is None:
            return None
        self.writer.close()
        return str(self.writer.path)


def _ahead(items: Iterator, depth: int) -> Iterator:
    """``items``, produced by a thread up to ``depth`` ahead: the next batch is decoded and cut
    while the backbone embeds this one, as the local engine's workers do for its backbone."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                buffer.put((item, None))
        except BaseException as error:  # re-raised on the consuming side
            buffer.put((None, error))
        buffer.put((done, None))

    threading.Thread(target=produce, daemon=True, name="aqa-ray-cut").start()
    while True:
        item, error = buffer.get()
        if error is not None:
            raise error
        if item is done:
            return
        yield item


@dataclass(frozen=True)
class _DetectorIdentity:
    name: str
    weights_id: str


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _node() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


# ---------------------------------------------------------------------------------- the driver


@dataclass
class RayRunSummary:
    """What the driver saw: videos written and failed, and which node did each video's stages."""

    written: list[str]
    failures: dict[str, str]
    nodes: dict[str, tuple[str, str]]  # name -> (planner node, writer node)
    index: Path | None
    startup_s: float = 0.0  # from the call to every actor built (models loaded), before any video
    parts: dict[str, int] = field(default_factory=dict)  # name -> parts of its key frames


# What a local instance's workers are reniced by: none (start_ray's docstring says why).
WORKER_NICENESS = 0


def start_ray(address: str | None, *, num_cpus: int | None = None, num_gpus: float | None = None) -> None:
    """Join the cluster at ``address``, or start a local instance (this machine's CPUs and GPUs;
    ``num_gpus`` may declare logical GPUs on a CPU machine, which tests do).

    A local instance runs its workers at the priority of the command that started it. Ray's own
    default renices every worker to 15 (to keep its raylet responsive), and on a machine where
    anything else is busy those workers then get a few per cent of a core: an extraction that
    takes 35 s on an idle 2-core machine sat over 390 s in its actors' start-up beside two
    training runs, using 16 CPU-seconds. The extraction *is* the work here, so it competes as
    the local engine's processes do. (A cluster joined by address keeps its own setting.)"""
    try:
        import ray
    except ImportError:
        raise RayEngineError("--engine ray needs Ray: pip install ray (setup.sh installs it)") from None
    if ray.is_initialized():
        return
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False,
                     _system_config={"worker_niceness": WORKER_NICENESS})
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RayEngineError(f"cannot start or reach Ray at {address or 'a local instance'}: "
                             f"{one_line(error)}") from None


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, on a cluster address nobody answers at (Ray itself waits
    minutes for its head node before it gives up)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayEngineError(f"--ray-address must be auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise RayEngineError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}") from None


def run_ray_extraction(videos: Sequence[tuple[str, Path]], store_dir: Path, config, *,
                       labels: LabelTable | None = None, progress: bool = True) -> RayRunSummary:
    """Extract every video not yet in ``store_dir`` on the Ray cluster (see the module docstring).

    ``config`` is the :class:`~pipeline.extract.ExtractConfig`, its ``ray`` the actors' settings;
    Ray must be started (:func:`start_ray`).
    """
    import ray

    called = time.perf_counter()
    ray_config = config.ray
    store_dir = Path(store_dir)
    if store_dir.exists() and not store_dir.is_dir():
        raise RayEngineError(f"--engine ray writes a folder of shards; {store_dir} is a file")
    store_dir.mkdir(parents=True, exist_ok=True)
    done = stored_names(store_dir)
    todo = [(name, path) for name, path in videos if name not in done]
    if len(todo) < len(videos):
        log.info("%s: %d of %d videos already extracted; skipping them", store_dir, len(videos) - len(todo),
                 len(videos))
    writers_n, planners_n, gpus = _actor_counts(ray_config)
    retry = {"max_restarts": -1, "max_task_retries": ray_config.max_retries}
    cpus = ray_config.planner_cpus
    planner_cls = ray.remote(Planner).options(num_cpus=cpus, **retry)
    writer_cls = ray.remote(Writer).options(num_cpus=ray_config.writer_cpus, num_gpus=gpus, **retry)
    features, pool = config.features, config.pool_config()
    planners = [planner_cls.remote(features, pool, cpus) for _ in range(planners_n)]
    identity = ray.get(planners[0].identity.remote())
    writers = [writer_cls.remote(features, str(store_dir / shard_name(index)), identity, features.weights,
                                 config.device, config.precision, pool, ray_config.writer_threads)
               for index in range(writers_n)]
    summary = RayRunSummary([], {}, {}, None)
    try:
        ray.get([planner.pid.remote() for planner in planners])
        refusals = [refusal for refusal in ray.get([writer.ready.remote() for writer in writers]) if refusal]
        if refusals:
            raise RayEngineError(refusals[0])
        summary.startup_s = time.perf_counter() - called  # every actor built, its model loaded
        provenance = ray.get(writers[0].provenance.remote())
        steps = [VideoSteps(order, name, path, pool.spread(len(planners), len(writers)))
                 for order, (name, path) in enumerate(todo)]
        _Driver(planners, writers, summary, labels, ray_config, len(steps), progress).run(steps)
    finally:
        shards = ray.get([writer.close.remote() for writer in writers])
        for actor in planners + writers:
            ray.kill(actor)
    _merge_leftovers(store_dir, provenance)
    everything = sorted({Path(shard) for shard in shards if shard} | set(store_dir.glob("*.h5")))
    summary.index = write_index(store_dir / INDEX_NAME, everything)
    return summary


def _merge_leftovers(store_dir: Path, provenance) -> None:
    """Merge the part files an interrupted run left in shards no writer of this run owned (that run
    had more writers), so that the index names every committed video."""
    from aqa.data.shard_writer import ShardWriter

    for parts in sorted(store_dir.glob(f"*.h5{PARTS_SUFFIX}")):
        if any(parts.glob("*.h5")):
            with ShardWriter(parts.with_name(parts.name[:-len(PARTS_SUFFIX)]), provenance):
                pass


def _actor_counts(ray_config: RayConfig) -> tuple[int, int, float]:
    """(writers, planners, GPUs per writer) for the cluster Ray is connected to."""
    import ray

    resources = ray.cluster_resources()
    cluster_gpus, cluster_cpus = float(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    gpus = ray_config.gpus_per_actor if cluster_gpus > 0 else 0.0
    writers = ray_config.writers or (max(1, int(cluster_gpus // gpus)) if gpus > 0 else 1)
    if gpus * writers > cluster_gpus + 1e-9:
        raise RayEngineError(f"{writers} writer actors x {gpus} GPUs each need more than the cluster's "
                             f"{cluster_gpus:g} GPUs")
    cpus_left = cluster_cpus - writers * ray_config.writer_cpus
    if cpus_left < ray_config.planner_cpus:
        needed = writers * ray_config.writer_cpus + ray_config.planner_cpus
        raise RayEngineError(f"{writers} writer actors and one planner need {needed:g} CPUs; the cluster has "
                             f"{cluster_cpus}")
    planners = ray_config.planners or max(1, int(cpus_left // ray_config.planner_cpus))
    return writers, planners, gpus


class _Driver:
    """Runs the work the videos' steps ask for: the detector's steps on free planners, embedding
    and commits on the writers with the fewest calls queued, the earliest video's work first;
    tells each video what came back, and the summary and progress bar what finished."""

    def __init__(self, planners: list, writers: list, summary: RayRunSummary, labels: LabelTable | None,
                 ray_config: RayConfig, videos: int, progress: bool):
        self.planners, self.writers, self.summary, self.ray_config = planners, writers, summary, ray_config
        self.labels_of = labels.get if labels is not None else (lambda name: None)
        self.waiting: dict[str, list] = {"planner": [], "writer": []}  # heaps of (order, stage, seq, video, work)
        self.sequence = itertools.count()  # ties in the heaps keep their order
        self.in_flight: dict = {}  # ref -> (video, work, "planner" or "writer", actor index)
        self.queued = [0] * len(writers)
        self.free_planners = deque(range(len(planners)))
        self.planner_nodes: dict[str, str] = {}
        self.frames_done, self.started = 0, time.perf_counter()
        self.bar = tqdm(total=videos, unit="video", desc="extract (ray)", disable=not progress)

    def run(self, steps: list[VideoSteps]) -> None:
        import ray

        for video in steps:
            self.schedule(video, video.start())
        try:
            while self.waiting["planner"] or self.waiting["writer"] or self.in_flight:
                self.hand_out()
                if not self.in_flight:
                    continue
                ready, _ = ray.wait(list(self.in_flight), num_returns=1)
                video, work, kind, index = self.in_flight.pop(ready[0])
                if kind == "planner":
                    self.free_planners.append(index)
                else:
                    self.queued[index] -= 1
                if video.finished:
                    continue  # whatever of a stored or failed video still ran is dropped
                try:
                    self.schedule(video, self.on_result(video, work, ray.get(ready[0])))
                except ray.exceptions.RayError as error:
                    if isinstance(error, ray.exceptions.RayTaskError):  # raised in the actor: its message
                        video.failed(failure_reason(error.cause if error.cause is not None else error))
                    else:  # the actor's process died more often than it may
                        video.failed(f"its worker died {self.ray_config.max_retries + 1} times "
                                     f"({type(error).__name__})")
                if video.finished:
                    self.finished(video)
        finally:
            self.bar.close()

    def schedule(self, video: VideoSteps, due: list[Work]) -> None:
        for work in due:
            kind = "writer" if isinstance(work, (Embed, Commit)) else "planner"
            heapq.heappush(self.waiting[kind], (video.order, work.stage, next(self.sequence), video, work))

    def hand_out(self) -> None:
        """Call free planners, and writers with room in their queue, with the earliest work waiting."""
        while self.waiting["planner"] and self.free_planners:
            *_, video, work = heapq.heappop(self.waiting["planner"])
            if not video.finished:
                self.call("planner", self.free_planners.popleft(), video, work)
        while self.waiting["writer"] and min(self.queued) < self.ray_config.queue_per_writer:
            *_, video, work = heapq.heappop(self.waiting["writer"])
            if not video.finished:
                index = self.queued.index(min(self.queued))
                self.queued[index] += 1
                self.call("writer", index, video, work)

    def call(self, kind: str, index: int, video: VideoSteps, work: Work) -> None:
        label = self.labels_of(video.name)
        if kind == "planner":
            ref = self.planners[index].run.remote(work)
        elif isinstance(work, Commit):
            ref = self.writers[index].commit.remote(work.video, label)
        elif work.whole:
            ref = self.writers[index].embed_and_commit.remote(video.name, str(video.path), work, label)
        else:
            ref = self.writers[index].embed.remote(work)
        self.in_flight[ref] = (video, work, kind, index)

    def on_result(self, video: VideoSteps, work: Work, result) -> list[Work]:
        """Tell ``video`` what its ``work`` returned (a failure reason is a string); the work due next."""
        if isinstance(work, Embed) and not work.whole:  # a part's (scene, actor)
            return video.failed(result) if isinstance(result, str) else video.embedded(work.clips.start, *result)
        value, node = result
        if isinstance(work, (Embed, Commit)):  # the video is stored (value None) or failed
            self.summary.nodes[video.name] = (self.planner_nodes.get(video.name, ""), node)
            self.frames_done += int(video.plan.layout.clips.indices.size)
            self.bar.set_postfix(fps=f"{self.frames_done / (time.perf_counter() - self.started):.0f}")
            return video.committed() if value is None else video.failed(value)
        self.planner_nodes[video.name] = node
        if isinstance(value, str):
            return video.failed(value)
        due = video.step_done(work, value)
        self.summary.parts[video.name] = video.parts
        return due

    def finished(self, video: VideoSteps) -> None:
        if video.reason is None:
            self.summary.written.append(video.name)
        else:
            self.summary.failures[video.name] = video.reason
            log.warning("%s: %s", video.name, video.reason)
        self.bar.update(1)
