"""Scoring relative to exemplars (FSPN Sec. III-D, after CoRe): difference bins, the exemplar bank, voting.

FSPN predicts the score *difference* between a query video and an exemplar of known score. The
difference range is split into I intervals fitted on training differences; a classifier picks
the interval (``L_bce``) and a regressor places the difference inside it (``L_reg``). At
inference the score is the mean of ``exemplar score + predicted difference`` over M exemplars
(Eq. 17) held in an :class:`ExemplarBank` that travels in the state dict.

Decisions the paper leaves open (CoRe's choices where it has one):

- Bins are quantiles of the differences between training pairs that training can draw (same
  group, else any other video), so every interval holds about as many pairs. Until fitted, the
  edges split [-1, 1] evenly (every difference of two normalised scores lies there). Repeated
  quantiles (discrete scores) are pushed apart by 1e-6 so every interval has a width.
- The regressor predicts the *relative* position in the interval, a sigmoid in (0, 1), and
  ``L_reg`` is the MSE on that position (CoRe); a difference is ``lower + width * position`` of
  the argmax interval.
- The bank keeps, per group key (difficulty, action type: whatever the loop passes), the first
  M videos of a seeded permutation of that group's training videos, and M of the whole training
  set for queries whose group is unknown or absent. Selection depends only on the seed and the
  query's group, so a video's score never depends on its batch; a group with fewer than M videos
  votes over what it has.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["ExemplarBank", "Exemplars", "bin_readout", "bin_targets", "fit_bin_edges", "pair_candidates",
           "uniform_bin_edges", "vote"]


class Exemplars(NamedTuple):
    """One exemplar per query: ``features`` ``[B, T, D']`` (laid out as the queries'), ``mask``
    ``[B, T]`` and normalised ``score`` ``[B]``."""

    features: Tensor
    mask: Tensor
    score: Tensor


def uniform_bin_edges(num_bins: int) -> Tensor:
    """``[I + 1]`` edges splitting [-1, 1] evenly: the unfitted default."""
    return torch.linspace(-1.0, 1.0, num_bins + 1)


def pair_candidates(groups: Tensor | None, count: int) -> Tensor:
    """Which exemplars training may pair with each query: ``[N, N]`` bool.

    Another video of the same group (equal, non-NaN key) when the group has one; otherwise any
    other video. Never the query itself.
    """
    others = ~torch.eye(count, dtype=torch.bool)
    if groups is None:
        return others
    same = (groups.unsqueeze(0) == groups.unsqueeze(1)) & others  # NaN never equals anything
    return torch.where(same.any(dim=1, keepdim=True), same, others)


def fit_bin_edges(scores: Tensor, num_bins: int, groups: Tensor | None = None, max_videos: int = 2048,
                  seed: int = 0) -> Tensor:
    """Quantile edges ``[I + 1]`` of the training pair differences ``score_query - score_exemplar``.

    ``scores`` ``[N]`` normalised training scores; ``groups`` ``[N]`` optional keys (NaN = none).
    Above ``max_videos`` a seeded subset is used (the pair count grows as N^2).
    """
    scores = scores.detach().double().cpu().reshape(-1)
    if scores.numel() < 2 or not bool(torch.isfinite(scores).all()):
        raise ValueError(f"fit_bins needs at least 2 finite training scores, got {scores.numel()}")
    if groups is not None:
        groups = groups.detach().double().cpu().reshape(-1)
        if groups.shape != scores.shape:
            raise ValueError(f"groups {tuple(groups.shape)} and scores {tuple(scores.shape)} differ in length")
    if scores.numel() > max_videos:
        keep = torch.randperm(scores.numel(), generator=torch.Generator().manual_seed(seed))[:max_videos]
        scores, groups = scores[keep], (None if groups is None else groups[keep])
    differences = (scores.unsqueeze(1) - scores.unsqueeze(0))[pair_candidates(groups, scores.numel())]
    edges = torch.quantile(differences, torch.linspace(0, 1, num_bins + 1, dtype=torch.float64))
    for index in range(1, num_bins + 1):  # keep every interval open
        edges[index] = torch.maximum(edges[index], edges[index - 1] + 1e-6)
    return edges.float()


def bin_targets(differences: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
    """True interval ``[B]`` (long) and relative position in it ``[B]`` in [0, 1] of ``differences`` ``[B]``.

    A difference outside the fitted range counts in the first or last interval, clamped to its end.
    """
    interval = (torch.bucketize(differences, edges[1:-1].contiguous(), right=True)).clamp(0, edges.numel() - 2)
    lower, upper = edges[interval], edges[interval + 1]
    return interval, ((differences - lower) / (upper - lower)).clamp(0.0, 1.0)


def bin_readout(logits: Tensor, positions: Tensor, edges: Tensor) -> Tensor:
    """The difference ``[...]``: ``lower + width * position`` in the argmax interval of ``logits`` ``[..., I]``."""
    interval = logits.argmax(dim=-1, keepdim=True)
    lower, upper = edges[interval], edges[interval + 1]
    return (lower + (upper - lower) * positions.gather(-1, interval)).squeeze(-1)


def vote(exemplar_scores: Tensor, differences: Tensor, valid: Tensor) -> Tensor:
    """Eq. 17: the mean of ``exemplar score + difference`` over the valid exemplars, ``[B, M]`` -> ``[B]``."""
    weights = valid.to(differences.dtype)
    return ((exemplar_scores + differences) * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class ExemplarBank(nn.Module):
    """Training videos to score against, as buffers (so they load with ``torch.load(weights_only=True)``).

    Buffers (E stored videos, T their longest real length): ``features`` ``[E, T, D']`` (the head's
    input), ``mask`` ``[E, T]``, ``score`` ``[E]`` (normalised), ``group`` ``[E]`` (float64 key,
    NaN = none) and ``shared`` ``[E]`` (member of the set used for queries with an unknown group).
    Empty until :meth:`fill`; a state dict of any size loads into an empty bank.
    """

    _NAMES = ("features", "mask", "score", "group", "shared")

    def __init__(self, input_dim: int, num_exemplars: int, seed: int = 0) -> None:
        super().__init__()
        self.num_exemplars, self.seed = num_exemplars, seed
        self.register_buffer("features", torch.zeros(0, 0, input_dim))
        self.register_buffer("mask", torch.zeros(0, 0, dtype=torch.bool))
        self.register_buffer("score", torch.zeros(0))
        self.register_buffer("group", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("shared", torch.zeros(0, dtype=torch.bool))

    def __len__(self) -> int:
        return int(self.score.numel())

    def choose(self, groups: Tensor | None, count: int) -> tuple[Tensor, Tensor]:
        """Which of ``count`` training videos to store: indices ``[E]`` and which are shared ``[E]``.

        Per group key (``groups`` ``[N]``, NaN = none) the first M of a permutation seeded with
        ``seed``; the first M of that permutation overall form the shared set (unknown groups).
        """
        if count < 1:
            raise ValueError("the exemplar bank needs at least one training video")
        keys = _keys(groups, count, torch.device("cpu"))
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed))
        chosen, shared = torch.zeros(count, dtype=torch.bool), torch.zeros(count, dtype=torch.bool)
        shared[order[: self.num_exemplars]] = True
        for key in keys[~keys.isnan()].unique():
            chosen[order[keys[order] == key][: self.num_exemplars]] = True
        index = torch.nonzero(chosen | shared).squeeze(1)
        return index, shared[index]

    @torch.no_grad()
    def store(self, features: Tensor, mask: Tensor, scores: Tensor, shared: Tensor,
              groups: Tensor | None = None) -> None:
        """Keep these E videos: ``features`` ``[E, T, D']``, ``mask`` ``[E, T]``; scores, shared, groups ``[E]``."""
        count = scores.shape[0]
        if features.shape[:2] != mask.shape or features.shape[0] != count or shared.shape != (count,):
            raise ValueError(f"bank videos disagree: features {tuple(features.shape)}, mask {tuple(mask.shape)}, "
                             f"scores {tuple(scores.shape)}, shared {tuple(shared.shape)}")
        if features.shape[-1] != self.features.shape[-1]:
            raise ValueError(f"bank features must have {self.features.shape[-1]} channels, got {features.shape[-1]}")
        if count == 0 or not bool(mask.any(dim=1).all()):
            raise ValueError("the exemplar bank needs at least one video, each with at least one real clip")
        length = int((mask * torch.arange(1, mask.shape[1] + 1, device=mask.device)).max())  # last real clip
        device = self.features.device
        self.features = features[:, :length].detach().to(device, self.features.dtype)
        self.mask = mask[:, :length].to(device)
        self.score = scores.detach().to(device, torch.float32)
        self.group = _keys(groups, count, device)
        self.shared = shared.to(device, torch.bool)

    def fill(self, features: Tensor, mask: Tensor, scores: Tensor, groups: Tensor | None = None) -> Tensor:
        """:meth:`choose` among all training videos ``[N, T, D']`` and :meth:`store` them; returns the indices."""
        index, shared = self.choose(groups, scores.shape[0])
        self.store(features[index], mask[index], scores[index], shared, None if groups is None else groups[index])
        return index

    def select(self, groups: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        """Exemplars for each query: indices ``[B, M]`` into the bank and which are valid ``[B, M]``.

        A query whose group key (``groups`` ``[B]``, NaN = unknown) has stored videos takes those
        (in stored order, at most M); any other takes the shared set.
        """
        if len(self) == 0:
            raise ValueError("the exemplar bank is empty: fill it from the training videos first "
                             "(models.fspn_training.prepare)")
        keys = _keys(groups, batch, self.score.device)
        member = keys.unsqueeze(1) == self.group.unsqueeze(0)  # [B, E]
        member = torch.where(member.any(dim=1, keepdim=True), member, self.shared.unsqueeze(0))
        ranked = torch.where(member, torch.arange(len(self), device=member.device), len(self))  # members first
        ranked = ranked.sort(dim=1).values[:, : self.num_exemplars]
        if ranked.shape[1] < self.num_exemplars:  # a bank smaller than M
            ranked = torch.cat([ranked, ranked.new_full((batch, self.num_exemplars - ranked.shape[1]), len(self))], 1)
        valid = ranked < len(self)
        return ranked.clamp_max(len(self) - 1), valid

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in self._NAMES:  # resize the buffers to the stored bank, then load as usual
            stored = state_dict.get(prefix + name)
            if isinstance(stored, Tensor):
                setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _keys(groups: Tensor | None, count: int, device: torch.device) -> Tensor:
    """Group keys ``[count]`` as float64 on ``device``; None means every key unknown (NaN)."""
    if groups is None:
        return torch.full((count,), math.nan, dtype=torch.float64, device=device)
    if groups.numel() != count:
        raise ValueError(f"expected {count} group keys, got {groups.numel()}")
    return groups.detach().reshape(count).to(device, torch.float64)
