"""CoFInAl as the authors' code builds it (``coarse="likert"``): Likert coarse regression + ETF digits.

Read from the authors' public code, re-written here; see ``shared/spec/cofinal.md``:

- clips ``[B, T, D]`` -> per-clip projection ``D -> D/2 -> H`` with batch norm (the code's 1x1
  Conv1d stack; a 1x1 convolution over time is a per-clip linear map, so we use ``nn.Linear``
  and a batch norm that skips padded clips) -> a transformer encoder without positional
  encoding (the "TFM") -> a decoder whose 4 learnable queries attend over the clips (the "GPM").
- Coarse (GDLT-style): each query gives a sigmoid weight; normalised weights dot fixed Likert
  levels give the coarse score; a mirrored head with mirrored levels is trained on ``1 - y``;
  the coarse read-out is the mean of the head and the un-mirrored mirror.
- Fine: self-attention over the queries, two linear maps to ``D_S`` and L2 normalisation; the
  class is the sub-grade of ``y`` on a ``likert_coarse_steps x G'`` grid (with 100 x 100: the 3rd
  and 4th decimals of ``y``), trained with L1 to its ETF column. ``score = coarse + class / 10^4``.
- A hard triplet loss (cosine distance, margin 1) on the query embeddings, weight α.

The ETF lives in D_S dims (the code uses a square 100 x 100 one; the Gram matrix is the same).
With ``aux_scores`` (not in the authors' code; :mod:`models.auxiliary`), one more output per auxiliary
score from the mean query embedding, which the Likert heads and the fine path both read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.models.auxiliary import AuxReadout, add_aux_loss, split_targets
from aqa.models.grading import decompose_score, expected_class, simplex_etf
from aqa.models.masking import MaskedBatchNorm1d
from aqa.models.windows import WindowScoredHead

if TYPE_CHECKING:
    from aqa.models.cofinal import CoFInAlConfig

# Appendix "activation modes" 0-3 (the code's ``activate_regular_restrictions``): the Likert
# levels of the head and of the mirrored head, as functions of the number of queries n.
LIKERT_LEVELS = {
    "relu": lambda n: (torch.linspace(0, 1, n), torch.linspace(0, 1, n).flip(0)),  # mode 0
    "relu-0.5": lambda n: (torch.linspace(0, 1, n + 1)[1:], torch.linspace(0, 1, n + 1)[1:].flip(0)),  # mode 1
    "sigmoid": lambda n: (torch.tensor([0.1, 0.2, 0.8, 1.0]), torch.tensor([1.0, 1.0, -1.0, -1.0])),  # mode 2
    "leaky-relu": lambda n: (torch.tensor([-1.0, -0.8, 0.8, 1.0]), torch.tensor([1.0, 0.8, -0.8, -1.0])),  # mode 3
}


def hard_triplet_loss(embeddings: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Batch-hard triplet loss with cosine distance: ``[N, D]``, labels ``[N]`` -> scalar.

    For each anchor: the farthest same-label embedding (distance 0 when it has none) against the
    nearest other-label one; ``mean(relu(d_pos - d_neg + margin))`` over anchors that have a
    negative (0 when none has).
    """
    unit = F.normalize(embeddings, dim=-1)
    distance = 1.0 - unit @ unit.T  # [N, N] in [0, 2]
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    others = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    hardest_positive = (distance * (same & others)).amax(dim=1)
    has_negative = (~same).any(dim=1)
    if not bool(has_negative.any()):
        return embeddings.sum() * 0.0
    hardest_negative = distance.masked_fill(same, float("inf")).amin(dim=1)
    losses = F.relu(hardest_positive - hardest_negative + margin)
    return losses[has_negative].mean()


class QueryDecoderLayer(nn.Module):
    """One post-norm transformer decoder layer that also returns its cross-attention.

    ``queries`` ``[B, n, H]``, ``memory`` ``[B, T, H]``, ``padding`` ``[B, T]`` (True = padded)
    -> (queries ``[B, n, H]``, cross-attention ``[B, n, T]`` averaged over heads).
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 3 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(3 * dim, dim)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, memory: Tensor, padding: Tensor) -> tuple[Tensor, Tensor]:
        attended = self.self_attention(queries, queries, queries, need_weights=False)[0]
        queries = self.norms[0](queries + self.dropout(attended))
        context, attention = self.cross_attention(queries, memory, memory, key_padding_mask=padding)
        queries = self.norms[1](queries + self.dropout(context))
        queries = self.norms[2](queries + self.dropout(self.feed_forward(queries)))
        return queries, attention


class CoFInAlLikertHead(WindowScoredHead):
    """The authors' CoFInAl (``coarse="likert"``); ``use_tfm`` and ``use_fgs`` switch parts off.

    ``forward`` outputs: ``score``, ``score_expectation``, ``score_argmax`` ``[B]``; ``coarse`` and
    ``coarse_mirror`` ``[B]`` (the two Likert heads), ``coarse_score`` ``[B]`` (their mean read-out),
    ``query_embeddings`` ``[B, n, H]``, ``fine_embedding`` ``[B, D_S]`` (unit norm) and
    ``fine_logits`` ``[B, G']`` (with FGS), ``procedure_attention`` ``[B, n, T]`` (the last decoder
    layer's cross-attention); with ``aux_scores``, ``aux`` ``[B, A]`` in (0, 1) from the mean query
    embedding. Without FGS the coarse heads regress ``y`` itself (plain GDLT).
    In eval mode with ``test_windows > 1`` the scores and logits are means over windows
    (:mod:`models.windows`); the attention is the whole video's.
    """

    window_averaged = ("score", "score_argmax", "score_expectation", "coarse", "coarse_mirror", "coarse_score",
                       "fine_logits", "aux")

    def __init__(self, config: CoFInAlConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        c, width = config, config.score_dim
        self.project_in = nn.Linear(input_dim, input_dim // 2 or 1)
        self.norm_in = MaskedBatchNorm1d(input_dim // 2 or 1)
        self.project_out = nn.Linear(input_dim // 2 or 1, width)
        self.norm_out = MaskedBatchNorm1d(width)
        self.encoder = None
        if c.use_tfm:
            layer = nn.TransformerEncoderLayer(width, c.likert_heads, 3 * width, c.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, c.likert_encoder_layers, enable_nested_tensor=False)
        self.queries = nn.Parameter(torch.randn(c.likert_queries, width))
        self.decoder = nn.ModuleList(
            QueryDecoderLayer(width, c.likert_heads, c.dropout) for _ in range(c.likert_decoder_layers)
        )
        # Per-query Likert logits for the head [0] and the mirrored head [1] (the diagonal of the
        # code's Linear(H, n) applied to the n query embeddings).
        bound = width**-0.5
        self.likert_weight = nn.Parameter(torch.empty(2, c.likert_queries, width).uniform_(-bound, bound))
        self.likert_bias = nn.Parameter(torch.empty(2, c.likert_queries).uniform_(-bound, bound))
        levels, mirrored = LIKERT_LEVELS[c.likert_activation](c.likert_queries)
        self.register_buffer("likert_levels", torch.stack([levels, mirrored]).float(), persistent=False)
        if c.use_fgs:
            self.fine_attention = nn.MultiheadAttention(width, c.likert_heads, dropout=c.dropout, batch_first=True)
            self.fine_project = nn.Sequential(
                nn.Flatten(), nn.Linear(c.likert_queries * width, width), nn.Dropout(c.dropout), nn.Linear(width, width)
            )
            self.register_buffer("etf", simplex_etf(width, c.num_subgrades, c.etf_seed))  # [D_S, G']
        # Built last: the layers above start as they do without auxiliary scores.
        self.aux_readout = AuxReadout(width, len(c.aux_scores)) if c.aux_scores else None

    def _score_clips(self, features: Tensor, mask: Tensor) -> dict[str, Tensor]:
        c = self.config
        clips = F.relu(self.norm_in(self.project_in(features), mask))
        clips = self.norm_out(self.project_out(clips), mask)  # [B, T, H]
        if self.encoder is not None:
            clips = self.encoder(clips, src_key_padding_mask=~mask)
        queries = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1)
        for layer in self.decoder:
            queries, attention = layer(queries, clips, ~mask)
        logits = torch.einsum("bnh,knh->bkn", queries, self.likert_weight) + self.likert_bias  # [B, 2, n]
        weights = torch.sigmoid(logits)
        likert = ((weights / weights.sum(dim=-1, keepdim=True)) * self.likert_levels).sum(dim=-1)  # [B, 2]
        out = {"coarse": likert[:, 0], "coarse_mirror": likert[:, 1], "query_embeddings": queries,
               "procedure_attention": attention}
        if self.aux_readout is not None:
            out["aux"] = self.aux_readout(queries)
        out["coarse_score"] = (likert[:, 0] + 1.0 - likert[:, 1]) / 2
        out["score_argmax"] = out["score_expectation"] = out["coarse_score"]
        if c.use_fgs:
            fine = self.fine_attention(queries, queries, queries, need_weights=False)[0]
            out["fine_embedding"] = F.normalize(self.fine_project(fine), dim=-1)
            out["fine_logits"] = out["fine_embedding"] @ self.etf / c.fine_temperature
            step = 1.0 / (c.likert_coarse_steps * c.num_subgrades)
            out["score_argmax"] = out["coarse_score"] + out["fine_logits"].argmax(dim=-1) * step
            out["score_expectation"] = out["coarse_score"] + expected_class(out["fine_logits"]) * step
        out["score"] = out[f"score_{c.score_readout}"]
        return out

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``λ_S`` x MSE of both Likert heads + ``λ_F`` L1 to the target ETF column + ``α`` hard triplet.

        The Likert heads' MSE is this variant's score regression, so ``lambda_score`` weighs it as it
        weighs the paper variant's score MSE (1 by default: the authors' code; on [0, 1) targets the
        MSE is ~0.02 against ~1 for the other two terms, which the Fis-V presets correct with 25). With
        auxiliary scores and targets ``[B, 1 + A]``, + ``aux_weight`` x their MSE (:mod:`models.auxiliary`)."""
        c = self.config
        targets, aux_targets = split_targets(targets, outputs["score"].shape[0], c.aux_scores)
        coarse_target = targets
        if c.use_fgs:
            steps, subgrade = decompose_score(targets, c.likert_coarse_steps, c.num_subgrades)
            coarse_target = steps.float() / c.likert_coarse_steps
        parts = {"coarse": F.mse_loss(outputs["coarse"], coarse_target)
                 + F.mse_loss(outputs["coarse_mirror"], 1.0 - coarse_target)}
        total = c.lambda_score * parts["coarse"]
        if c.use_fgs:
            parts["fine"] = F.l1_loss(outputs["fine_embedding"], self.etf[:, subgrade].T)
            total = total + c.lambda_fine * parts["fine"]
        if c.triplet_weight > 0:
            queries = outputs["query_embeddings"]
            labels = torch.arange(queries.shape[0] * queries.shape[1], device=queries.device)
            if c.triplet_labels == "query":
                labels = labels % queries.shape[1]
            parts["triplet"] = hard_triplet_loss(queries.flatten(0, 1), labels, c.triplet_margin)
            total = total + c.triplet_weight * parts["triplet"]
        total = add_aux_loss(total, parts, outputs, aux_targets, c.aux_weight)
        return total, {name: value.detach() for name, value in parts.items()}

    def predict_details(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """``score``, both read-outs, ``coarse_score`` ``[B]``, ``subgrade`` ``[B]`` (with FGS) and
        ``procedure_attention`` ``[B, n, T]`` (each Likert query's attention over the clips)."""
        keys = ("score", "score_argmax", "score_expectation", "coarse_score", "procedure_attention")
        details = {key: outputs[key].detach() for key in keys}
        if "fine_logits" in outputs:
            details["subgrade"] = outputs["fine_logits"].argmax(dim=-1)
        return details
