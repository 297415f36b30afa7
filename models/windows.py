"""Scoring a long video as its training windows: the mean over evenly spaced windows.

A head that trains on random windows of ``C`` clips but is tested on whole videos sees inputs at
test that it never saw in training: CoFInAl's TFM pools a sequence into P procedures by position,
so a procedure is "a fifth of 124 clips" in training and "a fifth of 234 clips" at test (Fis-V).
Scoring ``K`` windows of ``C`` clips spread evenly from a video's start to its end and averaging
them gives the head its training distribution at test and still covers every clip (measured on
Fis-V, ``docs/accuracy.md``). A video of at most ``C`` clips is one window, itself, so it scores
exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from aqa.models.registry import ScoringHead


def evenly_spaced_windows(features: Tensor, mask: Tensor, length: int, count: int) -> tuple[Tensor, Tensor]:
    """``count`` windows of ``length`` real clips per video, first at its start, last at its end.

    ``features`` ``[B, T, D]``, ``mask`` ``[B, T]`` (True = real clip, anywhere) -> window features
    ``[B * count, W, D]`` and mask ``[B * count, W]`` with ``W = min(length, T)``; video ``b``'s
    windows are rows ``b * count ... b * count + count - 1``. A video with ``n <= length`` real
    clips gives ``count`` copies of itself (padded), so their mean is its whole-video score.
    """
    if length < 1 or count < 1:
        raise ValueError(f"window length and count must be positive, got {length} and {count}")
    batch, steps, _ = features.shape
    width = min(length, steps)
    real = mask.long().sum(dim=1)  # [B]
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # real clips first, in order
    spread = (real - width).clamp_min(0).double()  # [B]: the last window's start
    fractions = torch.linspace(0.0, 1.0, count, dtype=torch.float64, device=mask.device)  # [0.] for count 1
    starts = torch.round(spread.unsqueeze(1) * fractions).long()  # [B, K]
    rank = starts.unsqueeze(-1) + torch.arange(width, device=mask.device)  # [B, K, W]
    window_mask = rank < real.view(batch, 1, 1)
    index = order.gather(1, rank.clamp_max(steps - 1).flatten(1)).view(batch, count, width)
    gathered = features.gather(1, index.flatten(1).unsqueeze(-1).expand(-1, -1, features.shape[-1]))
    window_features = gathered.view(batch * count, width, -1).masked_fill(~window_mask.view(-1, width, 1), 0.0)
    return window_features, window_mask.view(batch * count, width)


def average_windows(outputs: dict[str, Tensor], windowed: dict[str, Tensor], count: int,
                    keys: Iterable[str]) -> dict[str, Tensor]:
    """``outputs`` with each of ``keys`` (where present) replaced by the mean over each video's
    ``count`` windows of ``windowed[key]`` ``[B * count, ...]``."""
    merged = dict(outputs)
    for key in keys:
        if key in windowed:
            values = windowed[key]
            merged[key] = values.view(-1, count, *values.shape[1:]).mean(dim=1)
    return merged


def score_in_windows(score_clips: Callable[[Tensor, Tensor], dict[str, Tensor]], features: Tensor, mask: Tensor,
                     length: int, count: int, keys: Iterable[str]) -> dict[str, Tensor]:
    """A head's outputs on whole videos, with ``keys`` averaged over ``count`` windows of ``length``
    clips (:func:`evenly_spaced_windows`) when some video is longer than a window and ``count > 1``.

    ``score_clips(features, mask)`` is the head's forward on already prepared inputs. Outputs not
    in ``keys`` (attention over the clips, grade masks) stay those of the whole video, whose clip
    positions they describe."""
    outputs = score_clips(features, mask)
    if count == 1 or int(mask.sum(dim=1).max()) <= length:
        return outputs
    windows, window_mask = evenly_spaced_windows(features, mask, length, count)
    return average_windows(outputs, score_clips(windows, window_mask), count, keys)


class WindowScoredHead(ScoringHead):
    """A head trained on one random window of ``config.train_window`` clips per video that scores a
    video, in eval mode, as the mean over ``config.test_windows`` windows (:func:`score_in_windows`)
    of the outputs named in ``window_averaged``; ``_score_clips`` scores one batch of clips."""

    window_averaged: tuple[str, ...] = ("score",)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        features, mask = self.prepare_inputs(features, mask)
        if self.training:
            return self._score_clips(features, mask)
        return score_in_windows(self._score_clips, features, mask, self.config.train_window, self.config.test_windows,
                                self.window_averaged)

    def _score_clips(self, features: Tensor, mask: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError
