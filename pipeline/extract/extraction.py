"""The extraction run behind ``aqa-extract`` and ``aqa.extract``: videos -> Siamese clip features
(scene + actor) in a resumable HDF5 shard. :class:`ExtractRequest` says what to extract,
:func:`run` does it and returns an :class:`ExtractionResult`; the command line is
:mod:`pipeline.extract.cli`.

The work runs on a :class:`extractors.parallel.WorkerPool`: ``--workers`` threads, each owning a
decoding child process (timed out and replaced if it hangs) and a person detector, plan the
videos (probe, clip plan, athlete track) and cut their clips, long videos split into parts, while
this thread runs the one backbone over scene and actor clips together. Each finished video is
written at once through :class:`ShardWriter`, which makes it durable. A failed video is reported
and skipped; a re-run skips finished videos.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tqdm import tqdm

from aqa.config import apply_values, layered_values, load_config
from aqa.data.feature_store import FeatureStoreError, VideoFeatures, check_video_name
from aqa.data.labels import LabelTable, parse_column_names, read_label_files
from aqa.data.provenance import feature_provenance
from aqa.data.shard_writer import ShardWriter
from aqa.errors import AqaError, one_line
from aqa.extractors.backbones import VideoBackbone, build_backbone
from aqa.extractors.parallel import PoolConfig, WorkerPool
from aqa.extractors.stages import SiameseConfig
from aqa.extractors.video import Backend, VideoLimits
from aqa.extractors.video_steps import ExtractedVideo
from aqa.pipeline.devices import resolve_device, resolve_workers, with_detector_on
from aqa.pipeline.extract.job_split import shard_of, shard_path, videos_of_shard
from aqa.pipeline.extract.ray import RayConfig, run_ray_extraction, start_ray

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".wmv", ".flv"}


@dataclass(frozen=True)
class ExtractConfig:
    """``features`` decides what the features mean; the rest only how fast they are made."""

    features: SiameseConfig = field(default_factory=SiameseConfig)
    device: str = "auto"  # "auto": cuda when available
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # fp32 measured fastest for I3D on H100
    clips_per_batch: int = 4  # clips per stream per forward; the batch holds twice that
    workers: int = 0  # threads, each with a decoding process and a detector; 0: one per core, at most 8
    decode_backend: Backend = "auto"
    decode_timeout_s: float = 120.0
    isolate_decoding: bool = True  # decode in child processes (hangs can be timed out)
    min_part_frames: int = 256  # long videos are split into parts of at least this many frames
    engine: Literal["local", "ray"] = "local"  # local: this machine's worker pool; ray: a Ray cluster
    ray: RayConfig = field(default_factory=RayConfig)  # the Ray engine's actors (docs/scale-out.md)

    def pool_config(self) -> PoolConfig:
        """How the :class:`WorkerPool` spreads the work (``workers`` 0 resolved to this machine)."""
        return PoolConfig(workers=resolve_workers(self.workers), clips_per_batch=self.clips_per_batch,
                          decode_backend=self.decode_backend, decode_timeout_s=self.decode_timeout_s,
                          isolate_decoding=self.isolate_decoding, min_part_frames=self.min_part_frames)


class ExtractionError(AqaError):
    """The inputs to aqa-extract are unusable as a whole (no videos, clashing names)."""


@dataclass
class FoundVideos:
    """What :func:`find_videos` found: videos to extract, and files refused on their name alone (and
    folders that could not be read)."""

    videos: list[tuple[str, Path]]  # (name, path), sorted by name
    refused: dict[str, str] = field(default_factory=dict)  # path -> why it cannot be extracted


def find_videos(inputs: Sequence[Path]) -> FoundVideos:
    """(name, path) for each video file given or found (recursively, through linked folders) in a
    given folder, sorted.

    Names are file stems; they key labels and store groups and name part files on disk. A file whose
    name cannot (empty, too long for the file system once the part suffix is added, not UTF-8) or
    whose stem another video already has is refused *alone*, with its reason: one odd file never
    ends the run for the others. A folder that cannot be listed is named in ``refused`` too, its
    reason saying so (its videos are missing from the run).
    """
    found: list[Path] = []
    refused: dict[str, str] = {}
    for item in inputs:
        if item.is_dir():
            files, unreadable = walk_files(item)
            found += sorted(p for p in files if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            refused.update(unreadable)
        else:
            found.append(item)  # a missing or odd file fails later, as that video's own error
    if not found:
        unreadable_note = "".join(f"; {path}: {why}" for path, why in refused.items())
        raise ExtractionError(f"no videos found in {', '.join(map(str, inputs))} "
                              f"(looked for {', '.join(sorted(VIDEO_SUFFIXES))}){unreadable_note}")
    named: dict[str, Path] = {}
    for path in found:
        name = path.stem
        try:
            check_video_name(name)
        except FeatureStoreError as error:
            refused[str(path)] = one_line(error)
            continue
        if name in named and named[name] != path:
            refused[str(path)] = f"its name {name!r} is already taken by {named[name]}; rename one"
            continue
        named[name] = path
    return FoundVideos(sorted(named.items()), refused)


def walk_files(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """Every file under ``folder``, following linked sub-folders (``Path.rglob`` does not before
    Python 3.13), each real folder once, so a link loop ends; and each folder that could not be
    listed (``os.walk`` would skip it without a word), with why."""
    files, seen, unreadable = [], set(), {}

    def note(error: OSError) -> None:
        unreadable[str(error.filename)] = f"this folder cannot be read ({error.strerror or error}): its videos, " \
                                          "if any, are not extracted"

    for root, folders, names in os.walk(folder, followlinks=True, onerror=note):
        real = os.path.realpath(root)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders.sort()
        files += [Path(root) / name for name in sorted(names)]
    return files, unreadable


def run_extraction(videos: Sequence[tuple[str, Path]], output: Path, config: ExtractConfig, *,
                   labels: LabelTable | None = None, overwrite: bool = False, progress: bool = True,
                   backbone: VideoBackbone | None = None) -> tuple[list[str], dict[str, str]]:
    """Extract every video not yet in ``output``; returns (names written, {name: failure reason}).

    ``backbone``: an already built model to use instead of building ``config.features.backbone``
    (benchmarks pass random-weight models whose real weights are not on the machine).
    """
    device = resolve_device(config.device)
    if backbone is None:
        backbone = build_backbone(config.features.backbone, weights=config.features.weights, device=device)
    written: list[str] = []
    failures: dict[str, str] = {}
    with WorkerPool(with_detector_on(config.features, device), backbone, device=device, precision=config.precision,
                    pool=config.pool_config()) as pool:
        provenance = feature_provenance(config.features, backbone, pool.detector)
        with ShardWriter(output, provenance, overwrite=overwrite) as writer:
            todo = [(name, path) for name, path in videos if name not in writer]
            if len(todo) < len(videos):
                log.info("%s: %d of %d videos already extracted; skipping them", output,
                         len(videos) - len(todo), len(videos))
            if not todo:
                return written, failures
            bar = tqdm(total=len(todo), unit="video", desc="extract", disable=not progress)
            frames_done, started, clips_seen = 0, time.perf_counter(), {}
            clip_frames = config.features.clips.clip_length

            def on_clips(name: str, done: int, total: int) -> None:
                nonlocal frames_done
                frames_done += (done - clips_seen.get(name, 0)) * clip_frames
                clips_seen[name] = done
                bar.set_postfix(video=name, fps=f"{frames_done / (time.perf_counter() - started):.0f}")

            labels_of = labels.get if labels is not None else (lambda name: None)
            try:
                for result in pool.extract(todo, on_clips=on_clips):
                    clips_seen.pop(result.name, None)
                    if isinstance(result, ExtractedVideo):
                        writer.write(VideoFeatures.of_extracted(result, labels_of(result.name)))
                        written.append(result.name)
                    else:
                        failures[result.name] = result.reason
                        log.warning("%s: %s", result.name, result.reason)
                    bar.update(1)
            finally:
                bar.close()
    return written, failures


SETTINGS: dict[str, str] = {
    "backbone": "features.backbone", "weights": "features.weights", "detector": "features.detector.kind",
    "detector_weights": "features.detector.weights", "every_k": "features.detector.every_k",
    "clip_length": "features.clips.clip_length", "target_fps": "features.clips.target_fps", "device": "device",
    "workers": "workers", "engine": "engine", "ray_address": "ray.address", "gpus_per_actor": "ray.gpus_per_actor",
}
"""The dedicated flags' keys in :class:`ExtractConfig` (``--every-k`` sets ``features.detector.every_k``);
``aqa.extract`` takes the same names as keywords."""


def resolve_extract_config(*, config_file: str | Path | None = None, set_text: Sequence[str] = (),
                           overrides: Mapping[str, Any] | None = None,
                           settings: Mapping[str, Any] | None = None) -> ExtractConfig:
    """Defaults < ``config_file`` YAML < ``--set`` text < typed ``overrides`` (dotted keys) < the
    dedicated ``settings`` (:data:`SETTINGS`; None: not given). Only ``set_text`` is parsed; every
    other value keeps its Python type (``ray_address="1:30"`` stays text)."""
    values = layered_values(set_text, overrides, settings, SETTINGS)
    return apply_values(load_config(ExtractConfig, config_file), values)


@dataclass(frozen=True)
class ExtractRequest:
    """One extraction run, typed: what :func:`run` needs, whoever asks (``aqa-extract`` parses its
    command line into one, ``aqa.extract`` builds one from keywords).

    videos: video files and/or folders (searched recursively); a path is a path, whatever it looks like.
    output: the feature shard (.h5); a folder of shards with the Ray engine or ``num_shards``.
    labels / columns: label files read into the store, and column names for files without a header.
    overwrite: replace ``output`` instead of resuming into it.
    num_shards / shard_index: this job's share of the videos when N independent jobs split them.
    progress: show a progress bar.
    config: the resolved settings (:func:`resolve_extract_config`).
    """

    videos: Sequence[Path]
    output: Path
    config: ExtractConfig = field(default_factory=ExtractConfig)
    labels: Sequence[Path] = ()
    columns: str | None = None
    overwrite: bool = False
    num_shards: int | None = None
    shard_index: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class ExtractionResult:
    """What one extraction run did: the store, the videos written now (in the order they were found,
    whichever finished first), how many were already there, and each video that failed (or was
    refused on its name) with its reason."""

    store: Path
    written: list[str]
    already_done: int
    failures: dict[str, str]


def run(request: ExtractRequest) -> ExtractionResult:
    """The whole of aqa-extract but the printing (``aqa.extract`` calls it too)."""
    config = request.config
    VideoLimits.from_environment()  # unusable limits are one line before any video, not a failure per video
    found = find_videos(list(request.videos))
    videos, refused, output = found.videos, found.refused, request.output
    if request.num_shards is not None or request.shard_index is not None:
        if request.num_shards is None or request.shard_index is None:
            raise ExtractionError("--num-shards and --shard-index go together")
        if config.engine == "ray":
            raise ExtractionError("--num-shards splits work over jobs without Ray; with --engine ray, Ray splits it")
        videos = videos_of_shard(videos, request.num_shards, request.shard_index)
        refused = {path: why for path, why in refused.items()
                   if shard_of(path, request.num_shards) == request.shard_index}
        output = shard_path(request.output, request.shard_index, request.num_shards)
    labels = read_label_files(list(request.labels), parse_column_names(request.columns)) if request.labels else None
    engine = ENGINES[config.engine]
    done = engine(videos, output, config, labels=labels, overwrite=request.overwrite, progress=request.progress)
    skipped = len(videos) - len(done.written) - len(done.failures)
    failures = {**done.failures, **refused}
    written_now = set(done.written)  # the engines hand videos out as they finish; the result keeps the input's order
    written = [name for name, _ in videos if name in written_now]
    return ExtractionResult(done.store, written, skipped, dict(sorted(failures.items())))


# ---------------------------------------------------------------------------------- the engines


@dataclass(frozen=True)
class EngineRun:
    """What an engine did with the videos it was given: where their features are (the shard, or
    a folder's index), the videos written and those that failed, with their reasons."""

    store: Path
    written: list[str]
    failures: dict[str, str]


class Engine(Protocol):
    """An executor of :class:`extractors.video_steps.VideoSteps`: every video of ``videos`` not yet in
    ``output`` extracted into it. Engines differ only in where the steps run; the features are the
    same whichever runs them."""

    def __call__(self, videos: Sequence[tuple[str, Path]], output: Path, config: ExtractConfig, *,
                 labels: LabelTable | None, overwrite: bool, progress: bool) -> EngineRun: ...


def local_engine(videos: Sequence[tuple[str, Path]], output: Path, config: ExtractConfig, *,
                 labels: LabelTable | None, overwrite: bool, progress: bool) -> EngineRun:
    """This machine's worker pool (:class:`extractors.parallel.WorkerPool`) into one shard."""
    written, failures = run_extraction(videos, output, config, labels=labels, overwrite=overwrite, progress=progress)
    return EngineRun(output, written, failures)


def ray_engine(videos: Sequence[tuple[str, Path]], output: Path, config: ExtractConfig, *,
               labels: LabelTable | None, overwrite: bool, progress: bool) -> EngineRun:
    """Ray actors (:mod:`pipeline.extract.ray`) into a folder of shards and its index."""
    if overwrite:
        raise ExtractionError("--overwrite is not offered with --engine ray; delete the folder instead")
    start_ray(config.ray.address)
    summary = run_ray_extraction(videos, output, config, labels=labels, progress=progress)
    return EngineRun(summary.index, summary.written, summary.failures)


ENGINES: dict[str, Engine] = {"local": local_engine, "ray": ray_engine}
"""``ExtractConfig.engine`` -> its executor; a new one is a function of :class:`Engine`'s face here."""
