"""The training loop: random clip windows cut on the device, SGD with cosine decay, honest selection.

Clip features are small (a Fis-V training split is ~400 videos x <= 300 clips x 1024 floats), so a
whole split lives on the device as one zero-padded tensor with its lengths
(:class:`PaddedVideos`), and a batch is cut from it with tensor indexing: a random window of
``C`` consecutive clips per video (the paper's 68 for RG, 124 for Fis-V), padded and masked when
the video is shorter. No Dataset/DataLoader, no per-sample Python, no host-to-device copies.

Optimisation follows CoFInAl Sec. 4.1: SGD, momentum 0.9, weight decay 0.01, batch 32, the
learning rate decayed from 0.01 to 1e-4 by a cosine over all steps, 200 epochs. The loop talks to
the head only through the :class:`~models.registry.ScoringHead` face (``forward``, ``loss``), so
any registered head trains here. What differs between kinds of heads -- the optimiser, and what
one epoch's batches are -- is a :class:`Recipe`: :func:`video_recipe` (the above: every video
once per epoch as one random window) by default, :func:`models.fspn_training.pair_recipe` for a
pairwise head (FSPN: (query, exemplar) windows, Adam per its config).

Model selection never looks at the test split: :func:`fit` keeps either the last epoch
(``"fixed-epochs"``) or, when given a validation split carved from the training data, the epoch
with the best validation Spearman rho (``"val"``, earliest on ties).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aqa.errors import AqaError
from aqa.models.metrics import spearman
from aqa.models.registry import ScoringHead

log = logging.getLogger(__name__)


class TrainConfigError(AqaError, ValueError):
    """A training setting is out of range; the message says which."""


class TrainingDivergedError(AqaError):
    """The loss became NaN or infinite; the message says when and what to try."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults from CoFInAl (IJCAI 2024) Sec. 4.1."""

    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.01  # start of the cosine
    lr_min: float = 1e-4  # end of the cosine (reached at the last step)
    momentum: float = 0.9
    weight_decay: float = 0.01
    window: int | None = None  # clips per training window C; None: the head config's train_window
    eval_batch_size: int = 64  # videos per batch when scoring every clip
    # Standardise input clips per dimension with the training clips' mean and std
    # (ScoringHead.fit_input_standardization); False feeds the raw features.
    standardize_features: bool = True
    # Keep the mean of the weights at the end of each of the last ``average_last`` share of the
    # epochs instead of the last epoch's (stochastic weight averaging); 0 keeps the last epoch's.
    average_last: float = 0.0
    # Augmentation of each training window (issue 26; 0 = off, and then no random number is drawn,
    # so runs without it are bit-identical to before): Gaussian noise of this many per-dimension
    # standard deviations of the training clips, and each clip of a window masked out with this
    # probability (at least one clip stays).
    feature_noise: float = 0.0
    clip_dropout: float = 0.0
    deterministic: bool = True  # torch.use_deterministic_algorithms during training

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise TrainConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        if self.window is not None and self.window < 1:
            raise TrainConfigError(f"train.window must be positive (or null for the head's), got {self.window}")
        if not 0 < self.lr_min <= self.lr:
            raise TrainConfigError(f"need 0 < train.lr_min <= train.lr, got lr={self.lr}, lr_min={self.lr_min}")
        if self.feature_noise < 0 or not 0 <= self.clip_dropout < 1:
            raise TrainConfigError(f"train.feature_noise must be >= 0 and train.clip_dropout in [0, 1), got "
                                   f"{self.feature_noise} and {self.clip_dropout}")
        if not 0 <= self.average_last < 1:
            raise TrainConfigError(f"train.average_last must be in [0, 1), got {self.average_last}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise TrainConfigError(f"need 0 <= momentum < 1 and weight_decay >= 0, got {self.momentum}, "
                                   f"{self.weight_decay}")


@dataclass(frozen=True, eq=False)
class PaddedVideos:
    """A split resident on one device.

    ``features`` ``[N, T_max, D]`` float32, zero after each video's end; ``lengths`` ``[N]`` int64 on
    the CPU (window starts are drawn there, so sampling never waits for the device); ``targets``
    ``[N]`` float32 on the device, normalised to [0, 1). ``groups`` ``[N]`` float64 on the CPU (NaN =
    unknown) or None: the exemplar group key of each video (the difficulty), which only pairwise
    heads use, to pair within a group and to vote over the group's exemplars. ``aux`` ``[N, A]``
    float32 on the device or None: other scores of the same videos, normalised, that a head learns
    beside ``targets`` (a head's ``aux_scores``, :mod:`models.auxiliary`); :func:`video_recipe` hands
    them to the head's loss as targets ``[B, 1 + A]``.
    """

    features: Tensor
    lengths: Tensor
    targets: Tensor
    groups: Tensor | None = None
    aux: Tensor | None = None

    @classmethod
    def from_sequences(cls, sequences: Sequence[Tensor], targets: Tensor, device: str | torch.device = "cpu",
                       groups: Tensor | None = None) -> PaddedVideos:
        """Pad per-video clips ``[T_i, D]`` into one tensor on ``device``."""
        if not sequences:
            raise ValueError("no videos to pad")
        lengths = torch.tensor([len(clips) for clips in sequences], dtype=torch.int64)
        if int(lengths.min()) < 1:
            raise ValueError("every video needs at least one clip")
        if groups is not None and groups.shape != (len(sequences),):
            raise ValueError(f"expected {len(sequences)} group keys, got {tuple(groups.shape)}")
        features = torch.zeros(len(sequences), int(lengths.max()), sequences[0].shape[1], device=device)
        for row, clips in enumerate(sequences):
            features[row, :len(clips)] = clips.to(device=device, dtype=torch.float32)
        return cls(features, lengths, targets.to(device=device, dtype=torch.float32).reshape(len(sequences)),
                   None if groups is None else groups.detach().to("cpu", torch.float64))

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def device(self) -> torch.device:
        return self.features.device

    def mask(self) -> Tensor:
        """``[N, T_max]`` bool on the device: True for each video's real clips."""
        return (torch.arange(self.features.shape[1]).unsqueeze(0) < self.lengths.unsqueeze(1)).to(self.device)


def sample_windows(videos: PaddedVideos, index: Tensor, window: int,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One random window of ``window`` consecutive clips per chosen video.

    ``index`` ``[B]`` (CPU int64) -> features ``[B, C, D]`` and mask ``[B, C]`` (True = real clip),
    where ``C = min(window, longest chosen video)`` (heads are padding-invariant, so trimming
    all-padding columns changes nothing). A video longer than ``C`` gets a uniform random start; a
    shorter one is taken whole, from its first clip, zero-padded and masked.
    """
    lengths = videos.lengths[index]  # [B]
    width = min(window, int(lengths.max()))
    room = (lengths - width).clamp_min(0)  # [B]: possible starts - 1
    starts = (torch.rand(len(index), generator=generator) * (room + 1)).long().clamp(max=room)
    offsets = torch.arange(width)
    mask = offsets.unsqueeze(0) < lengths.unsqueeze(1)  # [B, C]
    # A short video starts at 0 and its window runs into its own zero padding (width <= T_max), so
    # the gather needs no masking; one index_select on the flattened clips is the cheapest gather.
    _, max_clips, dim = videos.features.shape
    flat = (index.unsqueeze(1) * max_clips + starts.unsqueeze(1) + offsets).reshape(-1)  # [B * C]
    features = videos.features.reshape(-1, dim).index_select(0, flat.to(videos.device))
    return features.reshape(len(index), width, dim), mask.to(videos.device)


def augment_windows(features: Tensor, mask: Tensor, config: TrainConfig, clip_std: Tensor,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """:attr:`TrainConfig.feature_noise` and :attr:`TrainConfig.clip_dropout` on a batch of windows
    (``clip_std`` ``[D]``: the training clips' per-dimension std). Random numbers come from
    ``generator`` on the CPU, so a seed fixes them; with both settings 0 nothing is drawn."""
    if config.feature_noise > 0:
        noise = torch.randn(features.shape, generator=generator).to(features.device)
        features = features + config.feature_noise * clip_std * noise * mask.unsqueeze(-1)
    if config.clip_dropout > 0:
        keep = (torch.rand(mask.shape, generator=generator) >= config.clip_dropout).to(mask.device) & mask
        first = mask.float().argmax(dim=1)  # a window whose every clip was dropped keeps its first
        keep[torch.arange(len(mask), device=mask.device), first] |= ~keep.any(dim=1)
        mask = keep
        features = features * mask.unsqueeze(-1)
    return features, mask


def full_batches(videos: PaddedVideos, batch_size: int) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """Every clip of every video, ``batch_size`` videos at a time, in order:
    ``(rows, features [b, T_b, D], mask [b, T_b])`` with ``T_b`` the longest video of the batch."""
    for start in range(0, len(videos), batch_size):
        rows = slice(start, min(start + batch_size, len(videos)))
        lengths = videos.lengths[rows]
        width = int(lengths.max())
        mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).to(videos.device)
        yield rows, videos.features[rows, :width], mask


@torch.no_grad()
def evaluate(head: ScoringHead, videos: PaddedVideos, batch_size: int = 64) -> tuple[Tensor, float]:
    """Score every video on all its clips in eval mode: (normalised scores ``[N]`` on the CPU,
    mean loss). A pairwise head votes over its exemplar bank, each video over its group's exemplars
    when ``videos.groups`` is set. Leaves the head in eval mode."""
    head.eval()
    scores, loss_sum = [], 0.0
    for rows, features, mask in full_batches(videos, batch_size):
        grouped = head.pairwise and videos.groups is not None
        outputs = head(features, mask, **({"groups": videos.groups[rows]} if grouped else {}))
        loss, _ = head.loss(outputs, videos.targets[rows])
        loss_sum += float(loss) * features.shape[0]
        scores.append(outputs["score"].float().cpu())
    return torch.cat(scores), loss_sum / len(videos)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every device): call before building a head so its init repeats."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the block (warn-only: an op without a deterministic
    kernel warns instead of failing), restored afterwards. Sets ``CUBLAS_WORKSPACE_CONFIG`` for
    CUDA matmuls when it is unset.

    Deterministic mode also fills every new uninitialised tensor with NaN by default (a debugging
    aid); that fill was a third of a CPU epoch. Our kernels never read memory they did not write,
    so it is off inside the block."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    fill_before = torch.utils.deterministic.fill_uninitialized_memory
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)
        torch.utils.deterministic.fill_uninitialized_memory = fill_before


def check_single_videos(head: ScoringHead) -> None:
    """Refuse pairwise heads for the default :func:`video_recipe`: they train on (query, exemplar)
    pairs, by their own :meth:`~models.registry.ScoringHead.training_recipe`."""
    if head.pairwise:
        raise TrainConfigError(f"head {head.head_name!r} trains on exemplar pairs; the default recipe feeds single "
                               "videos (use the head's own training_recipe)")


def resolve_window(config: TrainConfig, head: ScoringHead) -> int:
    """The training window: ``config.window``, else the one the head's config declares."""
    window = config.window if config.window is not None else head.config.needs().window
    if window is None:
        raise TrainConfigError(f"head {head.head_name!r} declares no training window; set train.window")
    return int(window)


Batch = tuple[Tensor, Tensor, Tensor, dict[str, Any]]
"""One step's input: features ``[B, C, D']``, mask ``[B, C]``, normalised targets ``[B]`` (``[B, 1 + A]``
with auxiliary scores, the score's first) and extra keyword arguments for ``forward`` (a pairwise
head's ``exemplars``)."""


@dataclass
class Recipe:
    """How one kind of head is optimised: its optimiser, an optional schedule stepped after every
    optimiser step, and ``epoch(generator)``, which yields one epoch's batches drawn from
    ``generator`` (so a seed fixes the order and the windows)."""

    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler | None
    epoch: Callable[[torch.Generator], Iterator[Batch]]
    bank_index: Tensor | None = None  # a pairwise head's: the training rows in its exemplar bank ``[E]`` (CPU)


def video_recipe(head: ScoringHead, train: PaddedVideos, config: TrainConfig) -> Recipe:
    """CoFInAl's recipe: SGD with momentum, cosine decay over all steps; an epoch visits every training
    video once, in a random order, as one random window of :func:`resolve_window` clips."""
    check_single_videos(head)
    window = resolve_window(config, head)
    optimizer = torch.optim.SGD(head.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch,
                                                          eta_min=config.lr_min)

    augmenting = config.feature_noise > 0 or config.clip_dropout > 0
    clip_std = train.features[train.mask()].std(dim=0) if augmenting else None

    def epoch(generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), config.batch_size):
            index = order[start:start + config.batch_size]
            features, mask = sample_windows(train, index, window, generator)
            if augmenting:
                features, mask = augment_windows(features, mask, config, clip_std, generator)
            rows = index.to(train.device)
            targets = train.targets[rows]
            if train.aux is not None:
                targets = torch.cat([targets.unsqueeze(1), train.aux[rows]], dim=1)
            yield features, mask, targets, {}

    return Recipe(optimizer, schedule, epoch)


def optimizer_step(head: ScoringHead, optimizer: torch.optim.Optimizer, features: Tensor, mask: Tensor,
                   targets: Tensor, **forward: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One step in train mode: the head's outputs and ``{"loss", **parts}`` (detached)."""
    head.train()
    outputs = head(features, mask, **forward)
    loss, parts = head.loss(outputs, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return outputs, {"loss": loss.detach(), **parts}


@dataclass
class FitResult:
    """What :func:`fit` learned. ``history`` has one dict per epoch (``epoch`` from 1, ``lr``,
    ``train_loss``, ``train_loss_<part>``, ``train_srcc`` on the training windows, ``val_loss`` and
    ``val_srcc`` or None, ``seconds``). ``best_state`` is the selected epoch's weights (CPU
    copies), ``last_state`` the last epoch's."""

    selection: str  # "fixed-epochs", "val" or "closed-form" (one solve, no epochs)
    best_epoch: int
    best_state: dict[str, Tensor]
    last_state: dict[str, Tensor]
    history: list[dict[str, float | None]] = field(default_factory=list)


def fit(head: ScoringHead, train: PaddedVideos, config: TrainConfig, *, seed: int, val: PaddedVideos | None = None,
        recipe: Recipe | None = None,
        on_epoch: Callable[[dict[str, float | None]], None] | None = None) -> FitResult:
    """Train ``head`` (already on ``train.device``) for ``config.epochs`` epochs of ``recipe``
    (default: the head's own :meth:`~models.registry.ScoringHead.training_recipe`, else
    :func:`video_recipe`; build one after the head is on its device).

    ``seed`` drives the order and the windows (dropout draws from torch's global RNG: seed it with
    :func:`seed_everything` before building the head). ``on_epoch`` gets each epoch's record (for
    progress bars). The head ends in eval mode holding the *last* epoch's weights, or their
    average over the last epochs with ``config.average_last``.
    """
    if config.standardize_features:
        head.fit_input_standardization(train.features, train.mask())
    if head.closed_form:
        return _solve(head, train, val)
    recipe = recipe or head.training_recipe(train, config) or video_recipe(head, train, config)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float | None]] = []
    best_srcc, best_epoch, best_state = -math.inf, config.epochs, None
    average = WeightAverage(first_epoch=config.epochs - math.floor(config.average_last * config.epochs) + 1)
    with deterministic_algorithms(config.deterministic):
        for epoch in range(1, config.epochs + 1):
            started, lr = time.perf_counter(), recipe.optimizer.param_groups[0]["lr"]
            record = {"epoch": epoch, "lr": lr, **_train_epoch(head, recipe, generator, epoch, len(train))}
            record["val_loss"] = record["val_srcc"] = None
            if val is not None:
                scores, record["val_loss"] = evaluate(head, val, config.eval_batch_size)
                record["val_srcc"] = spearman(scores, val.targets)
                if nan_to_minus_inf(record["val_srcc"]) > best_srcc:
                    best_srcc, best_epoch, best_state = record["val_srcc"], epoch, _copy_state(head)
            average.add(head, epoch)
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
    head.eval()
    average.load_into(head)
    last_state = _copy_state(head)
    selection = "val" if val is not None else "fixed-epochs"
    return FitResult(selection, best_epoch, best_state if best_state is not None else last_state, last_state, history)


class WeightAverage:
    """Running mean of a head's floating-point state (weights and buffers such as batch-norm
    statistics) at the end of every epoch from ``first_epoch`` on; other buffers keep their last value."""

    def __init__(self, first_epoch: int) -> None:
        self.first_epoch = first_epoch
        self.count = 0
        self.sums: dict[str, Tensor] = {}

    def add(self, head: ScoringHead, epoch: int) -> None:
        if epoch < self.first_epoch:
            return
        self.count += 1
        for name, value in head.state_dict().items():
            if value.is_floating_point():
                self.sums[name] = self.sums[name] + value.detach() if name in self.sums else value.detach().clone()

    def load_into(self, head: ScoringHead) -> None:
        """Put the average into ``head`` (nothing to do for one epoch or none)."""
        if self.count > 1:
            averaged = {name: total / self.count for name, total in self.sums.items()}
            head.load_state_dict({**head.state_dict(), **averaged})


def _solve(head: ScoringHead, train: PaddedVideos, val: PaddedVideos | None) -> FitResult:
    """A closed-form head: one solve on the whole training videos, recorded as a single epoch."""
    started = time.perf_counter()
    head.solve(train.features, train.mask(), train.targets)
    scores, loss = evaluate(head, train)
    record: dict[str, float | None] = {"epoch": 1, "lr": 0.0, "train_loss": loss,
                                       "train_srcc": spearman(scores, train.targets), "val_loss": None,
                                       "val_srcc": None}
    if val is not None:
        val_scores, record["val_loss"] = evaluate(head, val)
        record["val_srcc"] = spearman(val_scores, val.targets)
    record["seconds"] = time.perf_counter() - started
    state = _copy_state(head)
    return FitResult("closed-form", 1, state, state, [record])


def _train_epoch(head: ScoringHead, recipe: Recipe, generator: torch.Generator, epoch: int,
                 count: int) -> dict[str, float]:
    """One epoch of ``recipe`` over ``count`` training videos: mean loss (and parts) per video, rho on the windows."""
    totals: dict[str, Tensor] = {}
    scores, targets = [], []
    for features, mask, batch_targets, forward in recipe.epoch(generator):
        outputs, parts = optimizer_step(head, recipe.optimizer, features, mask, batch_targets, **forward)
        if recipe.schedule is not None:
            recipe.schedule.step()
        weight = len(batch_targets)  # videos in the batch
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + value * weight  # summed on the device: no sync per step
        scores.append(outputs["score"].detach())
        targets.append(batch_targets if batch_targets.ndim == 1 else batch_targets[:, 0])
    means = {name: float(total) / count for name, total in totals.items()}
    if not math.isfinite(means["loss"]):
        raise TrainingDivergedError(f"the training loss became {means['loss']} in epoch {epoch}; "
                                    "lower the learning rate or check the features for NaN")
    record = {f"train_loss_{name}": value for name, value in means.items() if name != "loss"}
    return {"train_loss": means["loss"], **record,
            "train_srcc": spearman(torch.cat(scores).float(), torch.cat(targets))}


def _copy_state(head: ScoringHead) -> dict[str, Tensor]:
    return {name: value.detach().to("cpu", copy=True) for name, value in head.state_dict().items()}


def nan_to_minus_inf(value: float | None) -> float:
    """For picking the best rho: NaN (a diverged model) or None never wins."""
    return -math.inf if value is None or math.isnan(value) else value
