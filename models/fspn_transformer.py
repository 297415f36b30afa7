"""FSPN's spatio-temporal multiscale transformer (SMT, Sec. III-C1) and multiscale fusion (MTF, III-C2).

SMT: N stages of width 64, 128, 256. A stage applies one kernel-3 Conv1d (stride 1, so the token
count is kept) to both streams, then L = 3 blocks of 8-head cross-attention in which the actor
tokens are the queries and the scene tokens the keys and values (Eq. 8-10), each with
pre-LayerNorm, a residual and a GELU MLP. Its output ``F_n`` ``[B, T', C_n]`` feeds the next
stage. MTF (Eq. 11-13) projects every ``F_n`` to a common width, adds each fused level into the
next (``F_{n+1} <- U(F_n W^n) + F_{n+1} W^{n+1}``), concatenates the levels and average-pools the
real tokens into one vector per video.

Decisions the paper leaves open:

- The residual of a block is the *query* (actor) stream: the rows of a cross-attention belong
  to the queries, as in every pre-LN transformer decoder. Eq. 9-10 write ``+ f_i`` (scene); taken
  literally the actor's content would reach the score only through attention weights.
- The scene stream is memory only: per stage it passes the stage's convolution (shared with the
  actor stream, Siamese) and is not updated by the blocks. Keys and values get their own
  LayerNorm. No positional encoding (the paper names none); the kernel-3 convolutions carry order.
- The MLP is 4x wide (ViT's ratio; the paper says "two linear layers with a GELU").
- Stride-1 stages keep the token count, so every ``F_n`` has the same length and Eq. 11's
  temporal "Upsampling" is the identity; what differs between scales is the width, which the
  projections ``W^n`` (to the last stage's width by default) bring to a common size.
- Padding (only when IAP is off and the tokens are the clips): padded keys are masked out of the
  attention, padded tokens are zeroed after every step (so a kernel-3 convolution sees zeros past
  the end, exactly as on the unpadded video) and left out of the pooling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aqa.models.masking import masked_mean

__all__ = ["CrossAttentionBlock", "MultiscaleFusion", "MultiscaleTransformer", "TransformerStage"]


def _zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    return x.masked_fill(~mask.unsqueeze(-1), 0.0)


class CrossAttentionBlock(nn.Module):
    """One SMT block: ``actor`` ``[B, T', C]`` attends over ``scene`` ``[B, T', C]``; returns new actor tokens.

    ``a <- a + MHA(LN(a), LN_kv(s), LN_kv(s))``; ``a <- a + MLP(LN(a))``.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(width)
        self.norm_memory = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, actor: Tensor, scene: Tensor, mask: Tensor) -> Tensor:
        memory = self.norm_memory(scene)
        attended, _ = self.attention(self.norm_query(actor), memory, memory, key_padding_mask=~mask,
                                     need_weights=False)
        actor = actor + attended
        actor = actor + self.mlp(self.norm_mlp(actor))
        return _zero_padding(actor, mask)


class TransformerStage(nn.Module):
    """Conv1d(k=3) on both streams, then ``blocks`` cross-attention blocks: -> (actor ``F_n``, scene)."""

    def __init__(self, in_dim: int, width: int, blocks: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, width, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(CrossAttentionBlock(width, heads, mlp_ratio) for _ in range(blocks))

    def project(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``[B, T', C_in]`` -> ``[B, T', C_n]``, padded tokens zero."""
        return _zero_padding(self.conv(tokens.transpose(1, 2)).transpose(1, 2), mask)

    def forward(self, actor: Tensor, scene: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        actor, scene = self.project(actor, mask), self.project(scene, mask)
        for block in self.blocks:
            actor = block(actor, scene, mask)
        return actor, scene


class MultiscaleTransformer(nn.Module):
    """SMT: tokens ``[B, T', C_in]`` per stream + mask ``[B, T']`` -> stages' ``F_n`` ``[B, T', C_n]``."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], blocks: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        inputs = (in_dim, *widths[:-1])
        self.stages = nn.ModuleList(TransformerStage(a, b, blocks, heads, mlp_ratio) for a, b in zip(inputs, widths))

    def forward(self, actor: Tensor, scene: Tensor, mask: Tensor) -> list[Tensor]:
        outputs = []
        for stage in self.stages:
            actor, scene = stage(actor, scene, mask)
            outputs.append(actor)
        return outputs


class MultiscaleFusion(nn.Module):
    """MTF (Eq. 11-13): stage outputs ``[B, T', C_n]`` -> pooled multiscale feature ``[B, N * dim]``."""

    def __init__(self, widths: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(width, dim) for width in widths)  # W^n

    def forward(self, stages: list[Tensor], mask: Tensor) -> Tensor:
        if len({tuple(stage.shape[:2]) for stage in stages}) != 1:
            raise ValueError(f"MTF expects stages of one length, got {[tuple(s.shape) for s in stages]}")
        levels: list[Tensor] = []
        for projection, stage in zip(self.projections, stages):
            level = projection(stage)
            levels.append(level if not levels else levels[-1] + level)  # Eq. 12: progressive addition
        return masked_mean(torch.cat(levels, dim=-1), mask)  # Eq. 13 concat, then average pooling (Sec. III-D)
