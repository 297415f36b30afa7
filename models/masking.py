"""Padding-aware building blocks: masked pooling and a batch norm that ignores padded clips.

Videos in a batch have different numbers of clips; the data layer pads them to a common ``T``
and passes a mask ``[B, T]`` (True = real clip). Everything here gives the same result for a
video whatever padding follows it, which is what makes the heads padding-invariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over real clips: ``x`` ``[B, T, D]``, ``mask`` ``[B, T]`` -> ``[B, D]``."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def segment_weights(mask: Tensor, num_segments: int) -> Tensor:
    """Adaptive average pooling of the real clips into ``P`` segments, as weights ``[B, P, T]``.

    For a video with ``L`` real clips (in order, wherever the mask puts them), segment ``p``
    averages real clips ``floor(p L / P)`` to ``ceil((p + 1) L / P) - 1``: the rule of
    ``torch.nn.functional.adaptive_avg_pool1d`` applied to the real clips only. When ``L < P``
    segments overlap (``L = 1`` gives every segment the single clip). Rows sum to 1; padded clips
    get weight 0. ``weights @ x`` pools ``x`` ``[B, T, D]`` to ``[B, P, D]``.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    rank = mask.long().cumsum(dim=1) - 1  # [B, T]: position of each real clip among real clips
    length = mask.long().sum(dim=1, keepdim=True)  # [B, 1]
    p = torch.arange(num_segments, device=mask.device).view(1, -1, 1)  # [1, P, 1]
    start = (p * length.unsqueeze(1)) // num_segments  # [B, P, 1]
    end = ((p + 1) * length.unsqueeze(1) + num_segments - 1) // num_segments
    rank = rank.unsqueeze(1)  # [B, 1, T]
    inside = (rank >= start) & (rank < end) & mask.unsqueeze(1)
    weights = inside.float()
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(1.0)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the channel axis of ``[B, T, C]`` whose batch statistics skip padded clips.

    A plain ``BatchNorm1d`` in train mode would mix padding into the mean and variance, so a
    video's output (and the running statistics) would depend on how much padding its batch
    carries. Padded positions come out as zeros.
    """

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        out = torch.zeros_like(x)
        out[mask] = super().forward(x[mask])  # [N_real, C]
        return out
