"""The instant floor: ridge regression on the mean clip, solved in closed form.

Every learned head is judged against it on the same folds: a temporal head that cannot beat a
linear map of the average clip has learned nothing about *when* things happen (on Fis-V it is a
strong floor: 5-fold CV rho 0.52 TES, 0.75 PCS, see ``docs/accuracy.md``).

There is no gradient descent: :meth:`RidgeHead.solve` fits the weights on the whole training
videos (every clip, no windows) and picks the penalty ``alpha`` among ``config.alphas`` by exact
leave-one-out cross-validation on those videos (the LOO residuals of ridge have a closed form,
``e_i / (1 - H_ii)``, so choosing alpha costs one eigendecomposition of the ``N x N`` Gram
matrix). The solution lives in buffers, so a checkpoint holds it like any state dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from aqa.models.masking import masked_mean
from aqa.models.registry import (
    HeadConfig,
    HeadConfigError,
    HeadNeeds,
    ScoringHead,
    check_choices,
    check_targets,
    register_head,
)


@dataclass(frozen=True)
class RidgeConfig(HeadConfig):
    """Candidate penalties (on features centred by the training mean; the Gram matrix is not scaled)."""

    alphas: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    train_window: int = 68  # unused: ridge sees whole videos; kept so presets apply alike
    # What a video becomes before the linear map: the mean clip, or the mean beside the per-dimension
    # max (the program's peaks: jumps, spins) or std over its clips ([2 D]).
    pool: Literal["mean", "mean+max", "mean+std"] = "mean"

    def needs(self) -> HeadNeeds:
        return HeadNeeds(window=self.train_window)

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.alphas or any(not alpha > 0 for alpha in self.alphas):
            raise HeadConfigError(f"ridge: alphas must be positive numbers, got {list(self.alphas)}")


def loo_ridge(inputs: Tensor, targets: Tensor, alphas: tuple[float, ...]) -> tuple[Tensor, Tensor, float, Tensor]:
    """Ridge with intercept, alpha chosen by leave-one-out MSE.

    ``inputs`` ``[N, D]``, ``targets`` ``[N]`` (float64 inside) -> (input mean ``[D]``, weights
    ``[D]``, intercept, LOO MSE per alpha ``[A]``). Works in the dual (``N x N``), so ``D`` may
    exceed ``N``.
    """
    x = inputs.double()
    y = targets.double()
    mean, offset = x.mean(dim=0), y.mean()
    centred, residual = x - mean, y - offset
    eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.T)  # [N], [N, N]
    eigenvalues = eigenvalues.clamp_min(0.0)
    projected = eigenvectors.T @ residual  # [N]
    count = len(y)
    losses = []
    for alpha in alphas:
        shrink = eigenvalues / (eigenvalues + alpha)  # [N]
        fitted = eigenvectors @ (shrink * projected)
        leverage = (eigenvectors**2 @ shrink) + 1.0 / count  # diag of the hat matrix with the intercept
        losses.append((((residual - fitted) / (1.0 - leverage).clamp_min(1e-9)) ** 2).mean())
    losses = torch.stack(losses)
    alpha = alphas[int(losses.argmin())]
    dual = eigenvectors @ (projected / (eigenvalues + alpha))  # [N]: weights = X_c^T dual
    return mean, centred.T @ dual, float(offset), losses


@register_head("ridge", RidgeConfig)
class RidgeHead(ScoringHead):
    """``[B, T, D]`` -> masked mean ``[B, D]`` -> linear ``score`` ``[B]`` (normalised scale, unbounded).

    Outputs ``score`` and ``clip_weights`` ``[B, 1, T]`` (uniform, as the MLP's). Untrained, it
    predicts 0 for every video.
    """

    closed_form = True

    def __init__(self, config: RidgeConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        pooled = input_dim * (1 if config.pool == "mean" else 2)
        self.register_buffer("input_mean", torch.zeros(pooled))
        self.register_buffer("weight", torch.zeros(pooled))
        self.register_buffer("bias", torch.zeros(()))
        self.register_buffer("alpha", torch.zeros(()))

    @torch.no_grad()
    def solve(self, features: Tensor, mask: Tensor, targets: Tensor) -> None:
        """Fit on whole training videos: ``features`` ``[N, T, D]``, ``mask`` ``[N, T]``, ``targets`` ``[N]``."""
        features, mask = self.prepare_inputs(features, mask)
        mean, weight, bias, losses = loo_ridge(self.pool(features, mask), targets, self.config.alphas)
        self.input_mean.copy_(mean)
        self.weight.copy_(weight)
        self.bias.fill_(bias)
        self.alpha.fill_(self.config.alphas[int(losses.argmin())])

    def forward(self, features: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        features, mask = self.prepare_inputs(features, mask)
        score = (self.pool(features, mask) - self.input_mean) @ self.weight + self.bias
        weights = mask.float() / mask.float().sum(dim=1, keepdim=True)
        return {"score": score, "clip_weights": weights.unsqueeze(1)}

    def pool(self, features: Tensor, mask: Tensor) -> Tensor:
        """Standardised, masked clips ``[B, T, D]`` -> ``[B, D]`` (mean) or ``[B, 2 D]`` (``config.pool``)."""
        mean = masked_mean(features, mask)
        if self.config.pool == "mean":
            return mean
        if self.config.pool == "mean+max":
            return torch.cat([mean, features.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)], dim=1)
        spread = masked_mean((features - mean.unsqueeze(1)) ** 2, mask).clamp_min(0).sqrt()
        return torch.cat([mean, spread], dim=1)

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """MSE between ``score`` and the normalised targets (reported; nothing back-propagates)."""
        total = F.mse_loss(outputs["score"], check_targets(targets, outputs["score"].shape[0]))
        return total, {"score": total.detach()}
