"""The baseline head: mean of the real clips, an MLP, a sigmoid; MSE on the normalised score.

It is the floor every structured head must beat: it sees only the average clip, so it cannot
tell *when* something happened or how a few clips differ from the rest.

With ``aux_scores`` it learns other scores of the same videos beside its own, through the same
hidden layers (TES with PCS on Fis-V: one trunk for both, docs/accuracy.md): a second output per
auxiliary score, trained with its own loss and never read when scoring (:mod:`models.auxiliary`).
The checkpoint keeps one score's model, as every head's does. ``linear_readout`` adds a linear map
of the mean clip to the score's logit: a score that reads best linearly (PCS on Fis-V) keeps that
path while the hidden layers, shared with the auxiliary scores, add what they learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.models.auxiliary import add_aux_loss, check_aux_settings, split_targets
from aqa.models.masking import masked_mean
from aqa.models.registry import HeadConfig, HeadConfigError, HeadNeeds, ScoringHead, register_head


@dataclass(frozen=True)
class MLPConfig(HeadConfig):
    """Baseline settings; ``dropout`` and ``train_window`` follow the per-dataset presets."""

    hidden_dims: tuple[int, ...] = (256,)
    dropout: float = 0.3
    train_window: int = 68  # clips per random training window C; unused by the head
    aux_scores: tuple[str, ...] = ()  # other score columns learnt beside the run's score (module docstring)
    aux_weight: float = 1.0  # their MSE's weight beside the score's
    linear_readout: bool = False  # the score also reads the mean clip linearly, beside the hidden layers

    def needs(self) -> HeadNeeds:
        return HeadNeeds(window=self.train_window)

    def __post_init__(self) -> None:
        if any(width < 1 for width in self.hidden_dims):
            raise HeadConfigError(f"mlp: hidden_dims must be positive, got {list(self.hidden_dims)}")
        if not 0.0 <= self.dropout < 1.0:
            raise HeadConfigError(f"mlp: dropout must be in [0, 1), got {self.dropout}")
        if self.train_window < 1:
            raise HeadConfigError(f"mlp: train_window must be positive, got {self.train_window}")
        check_aux_settings("mlp", self.aux_scores, self.aux_weight)


@register_head("mlp", MLPConfig)
class MLPHead(ScoringHead):
    """``[B, T, D]`` -> masked mean ``[B, D]`` -> MLP -> sigmoid -> ``score`` ``[B]`` in (0, 1).

    Outputs: ``score`` ``[B]`` and ``clip_weights`` ``[B, 1, T]`` (the uniform pooling weights,
    so detail views can treat every head alike); with ``aux_scores``, ``aux`` ``[B, A]`` in (0, 1).
    """

    def __init__(self, config: MLPConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1 + len(config.aux_scores)))
        self.mlp = nn.Sequential(*layers)
        self.readout = nn.Linear(input_dim, 1) if config.linear_readout else None

    def forward(self, features: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        features, mask = self.prepare_inputs(features, mask)
        pooled = masked_mean(features, mask)
        logits = self.mlp(pooled)  # [B, 1 + A]
        if self.readout is not None:  # onto the score's logit only
            logits = logits + F.pad(self.readout(pooled), (0, len(self.config.aux_scores)))
        outputs = torch.sigmoid(logits)
        weights = mask.float() / mask.float().sum(dim=1, keepdim=True)
        scored = {"score": outputs[:, 0], "clip_weights": weights.unsqueeze(1)}
        return {**scored, "aux": outputs[:, 1:]} if self.config.aux_scores else scored

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """MSE between ``score`` and the normalised targets ``[B]``; with auxiliary scores, targets
        ``[B, 1 + A]`` (the score's, then each auxiliary score's) add ``aux_weight`` x their MSE. A
        split scored without them (validation, ``[B]``) is scored on the score alone."""
        targets, aux_targets = split_targets(targets, outputs["score"].shape[0], self.config.aux_scores)
        parts = {"score": F.mse_loss(outputs["score"], targets)}
        total = add_aux_loss(parts["score"], parts, outputs, aux_targets, self.config.aux_weight)
        return total, {name: value.detach() for name, value in parts.items()}
