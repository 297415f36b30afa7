"""The baseline head: mean of the real clips, an MLP, a sigmoid; MSE on the normalised score.

It is the floor every structured head must beat: it sees only the average clip, so it cannot
tell *when* something happened or how a few clips differ from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.models.masking import masked_mean
from aqa.models.registry import HeadConfig, HeadConfigError, HeadNeeds, ScoringHead, check_targets, register_head


@dataclass(frozen=True)
class MLPConfig(HeadConfig):
    """Baseline settings; ``dropout`` and ``train_window`` follow the per-dataset presets."""

    hidden_dims: tuple[int, ...] = (256,)
    dropout: float = 0.3
    train_window: int = 68  # clips per random training window C; unused by the head

    def needs(self) -> HeadNeeds:
        return HeadNeeds(window=self.train_window)

    def __post_init__(self) -> None:
        if any(width < 1 for width in self.hidden_dims):
            raise HeadConfigError(f"mlp: hidden_dims must be positive, got {list(self.hidden_dims)}")
        if not 0.0 <= self.dropout < 1.0:
            raise HeadConfigError(f"mlp: dropout must be in [0, 1), got {self.dropout}")
        if self.train_window < 1:
            raise HeadConfigError(f"mlp: train_window must be positive, got {self.train_window}")


@register_head("mlp", MLPConfig)
class MLPHead(ScoringHead):
    """``[B, T, D]`` -> masked mean ``[B, D]`` -> MLP -> sigmoid -> ``score`` ``[B]`` in (0, 1).

    Outputs: ``score`` ``[B]`` and ``clip_weights`` ``[B, 1, T]`` (the uniform pooling weights,
    so detail views can treat every head alike).
    """

    def __init__(self, config: MLPConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        features, mask = self.prepare_inputs(features, mask)
        score = torch.sigmoid(self.mlp(masked_mean(features, mask)).squeeze(-1))
        weights = mask.float() / mask.float().sum(dim=1, keepdim=True)
        return {"score": score, "clip_weights": weights.unsqueeze(1)}

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """MSE between ``score`` and the normalised targets."""
        total = F.mse_loss(outputs["score"], check_targets(targets, outputs["score"].shape[0]))
        return total, {"score": total.detach()}
