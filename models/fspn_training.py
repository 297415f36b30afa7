"""What a training loop does for a pairwise head (FSPN): set-up, pair batches, a step.

A loop drives FSPN like any head (``features`` ``[B, T, 2D]`` = scene and actor concatenated per
clip, targets normalised to [0, 1)) with these differences:

1. set-up, once, from the training split: :func:`prepare` fits the difference bins and fills the
   exemplar bank (both live in the state dict, so every checkpoint predicts on its own);
2. an epoch is (query, exemplar) index pairs from :func:`pair_batches` (an exemplar of the same
   group when there is one) instead of single videos; both are windowed like any video;
3. one step is :func:`train_step`: ``forward`` also gets ``exemplars=Exemplars(features, mask,
   targets)`` of the exemplars, ``loss`` takes the queries' targets as usual;
4. optimiser per the config's ``train_*`` hints: Adam, lr 1e-3, weight decay 0, batch 8,
   200 epochs (:func:`make_optimizer`);
5. evaluation and prediction need nothing new: in eval mode ``forward(features, mask)`` votes over
   the bank (pass ``groups=`` to use each video's group, else the shared set) and ``loss`` on
   those outputs is the MSE of the voted score.

:func:`pair_recipe` is all of that as a :class:`~models.training.Recipe` for
:func:`models.training.fit`: the generic loop then adds seeds, determinism, validation and
selection exactly as for any other head. The query and its exemplar each get their own random
window of the training window's length (the paper trains on whole videos: its 9-10 clips are
shorter than any window).

With ``train_divide_by_difficulty`` (MTL-AQA "w/ DD") the loop normalises :func:`difficulty_ratio`
of the scores instead of the scores and multiplies the de-normalised prediction by the
difficulty. Groups are the difficulty when ``train_exemplar_groups == "difficulty"`` (NaN where
unknown), else None.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import Tensor

from aqa.models.fspn_exemplars import Exemplars, pair_candidates
from aqa.models.registry import ScoringHead
from aqa.models.training import Batch, PaddedVideos, Recipe, optimizer_step, sample_windows

__all__ = ["difficulty_ratio", "make_optimizer", "pair_batches", "pair_recipe", "prepare", "train_step"]

log = logging.getLogger(__name__)


@torch.no_grad()
def prepare(head: ScoringHead, features: Tensor, mask: Tensor, scores: Tensor, groups: Tensor | None = None) -> Tensor:
    """Fit the bins on the training scores and fill the bank from the training videos.

    ``features`` ``[N, T, D']`` and ``mask`` ``[N, T]`` of the whole training split, normalised
    ``scores`` ``[N]``, ``groups`` ``[N]`` (NaN = none). Returns the bank's training indices ``[E]``.
    """
    head.fit_bins(scores, groups)
    return head.exemplars.fill(features, mask, scores, groups)


def make_optimizer(head: ScoringHead) -> torch.optim.Optimizer:
    """Adam with the config's ``train_lr`` and ``train_weight_decay`` (paper: 1e-3, 0).

    The fused implementation where the parameters live on the CPU or a CUDA device: one kernel over
    FSPN's 6.3 M parameters instead of a dozen passes (measured on one CPU thread: 36 -> 12 ms a step,
    a quarter of a Fis-V training step with ``parse_max_steps``); the same update up to rounding.
    """
    params = list(head.parameters())
    fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
    return torch.optim.Adam(params, lr=head.config.train_lr, weight_decay=head.config.train_weight_decay, fused=fused)


def pair_batches(count: int, batch_size: int, generator: torch.Generator,
                 groups: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of (query ``[B]``, exemplar ``[B]``) index pairs over ``count`` training videos.

    Every video is a query once per epoch (shuffled); its exemplar is drawn uniformly from the
    other videos of its group, or from all other videos when its group has no other member.
    """
    if count < 2:
        raise ValueError(f"pair training needs at least 2 training videos, got {count}")
    candidates = pair_candidates(None if groups is None else groups.double().cpu(), count).float()
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        query = order[start:start + batch_size]
        yield query, torch.multinomial(candidates[query], 1, generator=generator).squeeze(1)


def train_step(head: ScoringHead, optimizer: torch.optim.Optimizer, features: Tensor, mask: Tensor, targets: Tensor,
               exemplars: Exemplars) -> dict[str, Tensor]:
    """One optimisation step on pairs: queries ``[B, T, D']`` + ``mask`` + ``targets`` ``[B]``, one exemplar each.

    Returns the detached ``loss`` and its parts (``gc``, ``bce``, ``reg`` as configured).
    """
    return optimizer_step(head, optimizer, features, mask, targets, exemplars=exemplars)[1]


def pair_recipe(head: ScoringHead, train: PaddedVideos, window: int) -> Recipe:
    """Set ``head`` up on the training split (:func:`prepare`, grouped by ``train.groups``) and return
    its recipe (``bank_index``: the training rows in the bank): :func:`make_optimizer`, no schedule, and
    epochs of :func:`pair_batches` of
    ``head.config.train_batch_size`` pairs, each side cut to a random window of ``window`` clips."""
    if not head.pairwise:
        raise ValueError(f"head {head.head_name!r} is not pairwise; train it with models.training.video_recipe")
    bank_index = prepare(head, train.features, train.mask(), train.targets, train.groups).cpu()
    config = head.config
    log.info("%s: %d exemplars in the bank; Adam lr %g, weight decay %g, %d pairs per batch, windows of %d clips",
             head.head_name, len(bank_index), config.train_lr, config.train_weight_decay, config.train_batch_size,
             window)

    def epoch(generator: torch.Generator) -> Iterator[Batch]:
        for query, exemplar in pair_batches(len(train), config.train_batch_size, generator, train.groups):
            features, mask = sample_windows(train, query, window, generator)
            exemplar_features, exemplar_mask = sample_windows(train, exemplar, window, generator)
            exemplars = Exemplars(exemplar_features, exemplar_mask, train.targets[exemplar.to(train.device)])
            yield features, mask, train.targets[query.to(train.device)], {"exemplars": exemplars}

    return Recipe(make_optimizer(head), None, epoch, bank_index)


def difficulty_ratio(scores: Tensor, difficulty: Tensor) -> Tensor:
    """``score / difficulty`` ``[N]``, the "w/ DD" training target; every difficulty must be known and positive."""
    known = torch.isfinite(difficulty) & (difficulty > 0)
    if not bool(known.all()):
        raise ValueError("train_divide_by_difficulty needs a positive difficulty for every video; "
                         f"{int((~known).sum())} lack one")
    return scores / difficulty
