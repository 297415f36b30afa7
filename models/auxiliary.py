"""Auxiliary scores: other score columns of the same videos that a head learns beside its own.

A head with ``aux_scores`` (the MLP, CoFInAl) has one extra output per auxiliary score, read from
the representation its score is read from too, so that learning the other score shapes the layers
both share (TES with PCS beside it on Fis-V, docs/accuracy.md). The extra outputs are trained with
their own MSE, weighed by ``aux_weight``, and never read when scoring; a checkpoint keeps one
score's model. The training loop hands such a head targets ``[B, 1 + A]`` (the score's, then each
auxiliary score's; :func:`models.training.video_recipe`); a split scored without them (validation)
hands ``[B]`` and is scored on the score alone. This module is what every such head shares: the
settings' check, the target split and the auxiliary loss term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.models.registry import HeadConfigError, check_targets


def check_aux_settings(head: str, aux_scores: tuple[str, ...], aux_weight: float) -> None:
    """Raise :class:`HeadConfigError` unless ``aux_scores`` are distinct non-empty names and
    ``aux_weight >= 0``; ``head`` names the head in the message."""
    if len(set(aux_scores)) != len(aux_scores) or not all(aux_scores):
        raise HeadConfigError(f"{head}: aux_scores must be distinct score names, got {list(aux_scores)}")
    if aux_weight < 0:
        raise HeadConfigError(f"{head}: aux_weight must be >= 0, got {aux_weight}")


def split_targets(targets: Tensor, batch: int, aux_scores: tuple[str, ...]) -> tuple[Tensor, Tensor | None]:
    """Targets ``[B]`` or, for a head with auxiliary scores, ``[B, 1 + A]`` -> the score's ``[B]``
    (float) and the auxiliary scores' ``[B, A]`` (float; None for ``[B]`` targets or a head without
    auxiliary scores, which only takes ``[B]``). Any other shape is a ``ValueError``."""
    if targets.ndim == 1 or not aux_scores:
        return check_targets(targets, batch), None
    width = 1 + len(aux_scores)
    if targets.shape != (batch, width):
        raise ValueError(f"expected targets [{batch}, {width}], got {tuple(targets.shape)}")
    return targets[:, 0].float(), targets[:, 1:].float()


def add_aux_loss(total: Tensor, parts: dict[str, Tensor], outputs: dict[str, Tensor], aux_targets: Tensor | None,
                 weight: float) -> Tensor:
    """``total`` plus ``weight`` x the MSE of ``outputs["aux"]`` ``[B, A]`` against ``aux_targets``,
    recorded (undetached) as ``parts["aux"]``; ``total`` unchanged when ``aux_targets`` is None."""
    if aux_targets is None:
        return total
    parts["aux"] = F.mse_loss(outputs["aux"], aux_targets)
    return total + weight * parts["aux"]


class AuxReadout(nn.Module):
    """Pooled shared features ``[B, N, D]`` (mean over N) -> ``aux`` ``[B, A]`` in (0, 1): a linear map
    and a sigmoid per auxiliary score, the MLP's own read-out shape on a structured head's trunk."""

    def __init__(self, dim: int, count: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, count)

    def forward(self, shared: Tensor) -> Tensor:
        return torch.sigmoid(self.linear(shared.mean(dim=1)))
