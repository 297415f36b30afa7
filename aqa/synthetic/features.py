"""Synthetic clip features whose scores are a known function of the clips: a learning task for heads.

A video is a routine of *elements*, each 2 or 4 consecutive clips showing one of ``K`` element
kinds (a fixed prototype direction ``P_k`` in feature space; kind ``k`` is worth
``kind_values[k]``). Each element is executed either cleanly or sloppily:

- clean: every clip of the element is ``amplitude * P_k + noise``;
- sloppy: the clips wobble, alternating ``amplitude * P_k + wobble * W`` and ``... - wobble * W``
  (``W`` another fixed direction), so over the element the wobble averages out *exactly*.

Scores (``score_scale`` times): ``total`` = mean over elements of ``kind_value * clean`` and
``execution`` = the share of clean elements. Each video draws its own probability of a clean
element, so execution varies a lot between videos.

Why this shape: the mean clip of a video shows which kinds it contains but nothing of how they
were executed, because the wobble cancels over time. A head that pools first (the MLP baseline)
can only guess ``total`` from the kinds; a head that looks at clips one by one before pooling
(CoFInAl's attention) can see the wobble. CoFInAl is blind to the *order* of its P procedures
(its grade prototypes attend over them as a set), so the task deliberately does not hinge on the
order of elements. Clip features are ``[T, dim]`` float32; the actor stream, when made, carries
the same signal under independent noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqa.data.feature_store import VideoFeatures
from aqa.data.labels import LabelRecord
from aqa.data.provenance import Provenance
from aqa.data.shard_writer import ShardWriter

SCORE_NAMES = ("total", "execution")


@dataclass(frozen=True)
class SyntheticTask:
    """The generator's settings; ``pattern_seed`` fixes the directions, so two stores made with the
    same task share one feature space (and a checkpoint trained on one scores the other)."""

    dim: int = 64
    min_clips: int = 16
    max_clips: int = 40
    kind_values: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    element_clips: tuple[int, ...] = (2, 4)
    amplitude: float = 2.0
    wobble: float = 2.0
    noise: float = 0.5
    score_scale: float = 10.0
    pattern_seed: int = 1234

    def __post_init__(self) -> None:
        if self.dim < len(self.kind_values) + 1:
            raise ValueError(f"dim {self.dim} cannot hold {len(self.kind_values)} kinds and the wobble direction")
        if not 1 <= self.min_clips <= self.max_clips:
            raise ValueError(f"need 1 <= min_clips <= max_clips, got {self.min_clips}, {self.max_clips}")
        if any(length < 2 or length % 2 for length in self.element_clips):
            raise ValueError(f"element_clips must be even (the wobble cancels in pairs), got {self.element_clips}")

    def directions(self) -> np.ndarray:
        """``[K + 1, dim]`` orthonormal rows: the K kind prototypes, then the wobble direction."""
        rng = np.random.default_rng(self.pattern_seed)
        q, _ = np.linalg.qr(rng.standard_normal((self.dim, len(self.kind_values) + 1)))
        return q.T.astype(np.float32)


@dataclass(frozen=True)
class SyntheticVideo:
    """One generated video: ``scene`` / ``actor`` ``[T, dim]``, its scores and the ground truth."""

    name: str
    scene: np.ndarray
    actor: np.ndarray | None
    scores: dict[str, float]
    kinds: np.ndarray  # [E] kind of each element
    clean: np.ndarray  # [E] bool


def make_video(name: str, task: SyntheticTask, rng: np.random.Generator, *, actor: bool = True) -> SyntheticVideo:
    """Draw one video (see the module docstring for the rules)."""
    directions = task.directions()
    prototypes, wobble = directions[:-1], directions[-1]
    length = int(rng.integers(task.min_clips, task.max_clips + 1))
    clean_probability = rng.uniform()
    signal = np.zeros((length, task.dim), np.float32)
    kinds, clean = [], []
    start = 0
    while start < length:
        clips = min(int(rng.choice(task.element_clips)), length - start)
        kind = int(rng.integers(len(task.kind_values)))
        is_clean = bool(rng.uniform() < clean_probability)
        signal[start:start + clips] = task.amplitude * prototypes[kind]
        if not is_clean:
            signs = np.where(np.arange(clips) % 2 == 0, 1.0, -1.0).astype(np.float32)
            signal[start:start + clips] += task.wobble * signs[:, None] * wobble
        kinds.append(kind)
        clean.append(is_clean)
        start += clips
    kinds_array, clean_array = np.asarray(kinds), np.asarray(clean)
    values = np.asarray(task.kind_values)[kinds_array]
    scores = {"total": float(task.score_scale * np.mean(values * clean_array)),
              "execution": float(task.score_scale * np.mean(clean_array))}

    def observe() -> np.ndarray:
        return (signal + task.noise * rng.standard_normal(signal.shape)).astype(np.float32)

    return SyntheticVideo(name, observe(), observe() if actor else None, scores, kinds_array, clean_array)


def make_videos(count: int, task: SyntheticTask, seed: int, *, prefix: str = "video",
                actor: bool = True) -> list[SyntheticVideo]:
    """``count`` videos named ``<prefix>_0000``...; the same seed gives the same videos."""
    rng = np.random.default_rng(seed)
    return [make_video(f"{prefix}_{index:04d}", task, rng, actor=actor) for index in range(count)]


def synthetic_provenance(task: SyntheticTask, package_version: str = "synthetic") -> Provenance:
    """A provenance that says these features are synthetic and which task made them."""
    settings = json.dumps(dataclasses.asdict(task), sort_keys=True, separators=(",", ":"))
    return Provenance(backbone="synthetic", weights_sha256="", clip_plan={}, input_size=(), detector="",
                      detector_weights="", package_version=package_version,
                      config_hash=hashlib.sha256(settings.encode()).hexdigest()[:16],
                      extra={"generator": "aqa.synthetic.features"})


def write_synthetic_store(path: str | Path, splits: dict[str, Sequence[SyntheticVideo]], task: SyntheticTask,
                          *, provenance: Provenance | None = None) -> Path:
    """Write videos through :class:`ShardWriter` as a feature shard, labelled with their split.

    ``splits`` maps a split name (``"train"``, ``"test"``) to its videos; names must be unique.
    """
    path = Path(path)
    with ShardWriter(path, provenance or synthetic_provenance(task), overwrite=True) as writer:
        for split, videos in splits.items():
            for video in videos:
                label = LabelRecord(video.name, dict(video.scores), None, split)
                writer.write(VideoFeatures(video.name, video.scene, video.actor, label=label))
    return path
