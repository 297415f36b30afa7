"""CoFInAl (Zhou et al., IJCAI 2024): coarse-to-fine instruction alignment as a scoring head.

Two variants behind one config (see ``shared/spec/cofinal.md``):

- ``coarse="classify"`` (the paper, default, this module): TFM pools the clips into P procedure
  features with procedure queries; GPM lets G learnable grade prototypes attend over them, giving
  coarse features (an MLP classifies the grade) and masked fine features (scored against a fixed
  simplex ETF of G' sub-grades). Loss ``L = L_S + λ_C L_C + λ_F L_F + λ_R L_R`` (Eq. 2).
- ``coarse="likert"`` (the authors' code): see :mod:`models.cofinal_likert`.

With ``aux_scores`` either variant learns other scores of the same videos beside its own
(:mod:`models.auxiliary`, as the MLP does): one output in (0, 1) per auxiliary score, a linear map
and a sigmoid of the mean of the features that the score's paths share (here the P procedure
features; the likert variant's query embeddings), its MSE added with ``aux_weight``, never read when
scoring. Not from the fine features ``h_F``: L_F pins their direction to a sub-grade's ETF column
(the score's place within its grade), and the coarse features feed the grade classifier; an
auxiliary read there would pull against those terms instead of shaping the trunk both read.

All scores live on the normalised [0, 1) scale. The helpers ``simplex_etf``, ``decompose_score``
and ``reassemble_score`` are re-exported from :mod:`models.grading`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.config import added_setting
from aqa.models.auxiliary import AuxReadout, add_aux_loss, check_aux_settings, split_targets
from aqa.models.cofinal_likert import CoFInAlLikertHead
from aqa.models.grading import decompose_score, expected_class, reassemble_score, simplex_etf
from aqa.models.masking import segment_weights
from aqa.models.registry import (
    HeadConfig,
    HeadConfigError,
    HeadNeeds,
    ScoringHead,
    check_choices,
    register_head,
)
from aqa.models.windows import WindowScoredHead

__all__ = [
    "CoFInAlConfig",
    "CoFInAlHead",
    "build_cofinal",
    "decompose_score",
    "graph_regularization",
    "reassemble_score",
    "simplex_etf",
]

LikertActivation = Literal["relu", "relu-0.5", "sigmoid", "leaky-relu"]


@dataclass(frozen=True)
class CoFInAlConfig(HeadConfig):
    """CoFInAl settings; defaults from the paper (Sec. 4.1) and, for ``likert_*``, the authors' code."""

    coarse: Literal["classify", "likert"] = "classify"
    # Sizes (Sec. 4.1). score_dim is D_S for the paper's variant and the transformer width for likert.
    procedure_dim: int = 512  # D_P: TFM key/query/value width
    score_dim: int = 256  # D_S: GPM and FGS width; the ETF lives here, so >= num_subgrades
    num_procedures: int = 5  # P (appendix Tab. S5 pilot)
    num_grades: int = 4  # G (Fig. 4; the authors' code)
    num_subgrades: int = 100  # G' = S_C / S_F
    dropout: float = 0.3  # 0.3 RG / 0.7 Fis-V
    etf_seed: int = 0  # the fixed ETF is drawn from this seed and stored in the state dict
    # Loss weights (Eq. 2; all 1 in the paper). lambda_score also weighs the likert variant's Likert-head MSE.
    lambda_score: float = 1.0
    lambda_coarse: float = 1.0
    lambda_fine: float = 1.0
    lambda_graph: float = 1.0
    # Sub-grade probabilities are softmax(cos(h_F, e_j) / fine_temperature); argmax is Eq. 14's.
    fine_temperature: float = 0.1
    # Which read-out ``outputs["score"]`` is: the differentiable expectation or Eq. 6's argmax. Both
    # are always in the outputs. Expectation by measurement on the synthetic learning task (held-out
    # rho 0.95 vs 0.86, 3 seeds): argmax ties every video in a sub-grade. Re-measure on real features.
    score_readout: Literal["expectation", "argmax"] = "expectation"
    # At evaluation, a video longer than train_window clips scores as the mean over this many windows
    # of train_window clips spread evenly over it (models.windows), as it was trained; 1: every clip
    # at once (the paper's test). The Fis-V presets' value is chosen by CV (docs/accuracy.md).
    test_windows: int = 1
    # Ablations (Tab. 3): switch a component off.
    use_graph_reg: bool = True
    use_tfm: bool = True
    use_gpm: bool = True
    use_fgs: bool = True
    # The authors' variant (coarse="likert").
    likert_queries: int = 4
    likert_heads: int = 1
    likert_encoder_layers: int = 1
    likert_decoder_layers: int = 2
    likert_activation: LikertActivation = "leaky-relu"  # appendix activation modes 0-3
    likert_coarse_steps: int = 100  # coarse target: y truncated to 1/100 (its first two decimals)
    triplet_weight: float = 1.0  # α: 1 RG, 0.5 Fis-V
    triplet_margin: float = 1.0
    triplet_labels: Literal["query", "unique"] = "query"  # "loss_align" 1 (or 0) / 2 in their code
    # Training side: clips per random training window C (68 RG, 124 Fis-V); unused by the head.
    train_window: int = 68
    # Other score columns learnt beside the run's score (module docstring), and their MSE's weight.
    # Added later: at these defaults they leave the config hashes of runs made before unchanged.
    aux_scores: tuple[str, ...] = added_setting(())
    aux_weight: float = added_setting(1.0)

    def needs(self) -> HeadNeeds:
        # A preset's "cofinal:likert" mapping applies to the authors' variant only (models.registry.preset_key):
        # the two variants train differently enough to need their own recipes (docs/accuracy.md).
        return HeadNeeds(window=self.train_window, preset_variant=self.coarse)

    def __post_init__(self) -> None:
        check_choices(self)
        positive = ("procedure_dim", "score_dim", "num_procedures", "num_grades", "num_subgrades",
                    "likert_queries", "likert_heads", "likert_decoder_layers", "likert_coarse_steps",
                    "train_window", "test_windows")
        for name in positive:
            if getattr(self, name) < 1:
                raise HeadConfigError(f"cofinal: {name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise HeadConfigError(f"cofinal: dropout must be in [0, 1), got {self.dropout}")
        if self.fine_temperature <= 0:
            raise HeadConfigError(f"cofinal: fine_temperature must be positive, got {self.fine_temperature}")
        if self.use_fgs and self.score_dim < self.num_subgrades:
            raise HeadConfigError(
                f"cofinal: the ETF of {self.num_subgrades} sub-grades needs score_dim >= {self.num_subgrades},"
                f" got {self.score_dim}"
            )
        check_aux_settings("cofinal", self.aux_scores, self.aux_weight)
        if self.coarse == "likert":
            self._check_likert()

    def _check_likert(self) -> None:
        if not (self.use_gpm and self.use_graph_reg):
            raise HeadConfigError("cofinal: coarse='likert' has no grade prototypes; use_gpm and use_graph_reg apply"
                                  " to coarse='classify' only (set triplet_weight=0 to drop its query loss)")
        if self.score_dim % self.likert_heads:
            raise HeadConfigError(f"cofinal: score_dim {self.score_dim} is not divisible by likert_heads"
                                  f" {self.likert_heads}")
        if self.likert_activation in ("sigmoid", "leaky-relu") and self.likert_queries != 4:
            raise HeadConfigError(f"cofinal: likert_activation {self.likert_activation!r} has 4 fixed Likert"
                                  f" levels, so likert_queries must be 4, got {self.likert_queries}")


def graph_regularization(prototypes: Tensor) -> Tensor:
    """L_R (Eq. 8): the angles between grade prototypes should follow the grade distance.

    ``prototypes`` ``[G, D]`` -> scalar. Normalisation: both matrices are put on the same scale
    and turned into row distributions by a softmax, then compared with KL:

    - angles ``A_ij = arccos(<g_i, g_j> / (|g_i| |g_j|))`` in [0, π] (cosines clamped away from ±1,
      where arccos' gradient is infinite);
    - target ``D'_ij = π |i - j| / (G - 1)``: adjacent grades a step apart, the extreme grades
      opposite (attainable: the prototypes spaced evenly on a half circle);
    - ``L_R = mean_i KL(softmax_j(D'_i) || softmax_j(A_i))``.

    Both rows have 0 on the diagonal, so the KL is 0 exactly when ``A = D'`` (a softmax is
    blind only to a per-row constant, which the shared zero pins down).
    """
    num_grades = prototypes.shape[0]
    if num_grades < 2:
        return prototypes.sum() * 0.0
    unit = F.normalize(prototypes, dim=-1)
    angles = torch.arccos((unit @ unit.T).clamp(-1 + 1e-6, 1 - 1e-6))  # [G, G]
    index = torch.arange(num_grades, device=prototypes.device, dtype=prototypes.dtype)
    target = math.pi * (index[:, None] - index[None, :]).abs() / (num_grades - 1)
    return F.kl_div(F.log_softmax(angles, dim=-1), F.log_softmax(target, dim=-1), log_target=True,
                    reduction="batchmean")


class TemporalFusion(nn.Module):
    """TFM (Sec. 3.2): clips ``[B, T, D]`` -> P procedure features ``[B, P, D_P]`` (Eq. 7).

    Queries are the projected clips average-pooled into P segments (over real clips only);
    ``softmax(Q~ K^T / sqrt(D_P)) V`` with padded keys masked out. With ``attend=False`` (the
    "w/o TFM" ablation) the values are mean-pooled per segment instead of attended.
    Also returns the procedure-over-clip weights ``[B, P, T]``.

    Computed without projecting every clip (the same function, about T/P times fewer
    multiply-adds, which is what makes 200 epochs over 300-clip programs cheap on a CPU): pooling
    and attention rows sum to 1, so ``pool @ Linear(H) = Linear(pool @ H)``; and
    ``Q~ K^T = (Q~ W_K) H^T + Q~ b_K`` where the last term is constant along the keys, so the
    softmax ignores it: the key map has no bias (checkpoints that stored one load without it).
    """

    def __init__(self, input_dim: int, dim: int, num_procedures: int, attend: bool = True) -> None:
        super().__init__()
        self.num_procedures = num_procedures
        self.value = nn.Linear(input_dim, dim)
        self.query = nn.Linear(input_dim, dim) if attend else None
        self.key = nn.Linear(input_dim, dim, bias=False) if attend else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        state_dict.pop(f"{prefix}key.bias", None)  # a no-op under the softmax; older checkpoints have it
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, clips: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        pooling = segment_weights(mask, self.num_procedures)  # [B, P, T]
        if self.query is None:
            return self.value(pooling @ clips), pooling
        queries = self.query(pooling @ clips)  # [B, P, D_P]
        queries_in_clip_space = queries @ self.key.weight  # [B, P, D]
        logits = queries_in_clip_space @ clips.transpose(1, 2) / math.sqrt(queries.shape[-1])
        attention = torch.softmax(logits.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        return self.value(attention @ clips), attention


class GradeParsing(nn.Module):
    """GPM (Sec. 3.3): grade prototypes attend over procedures; coarse and fine features.

    ``procedures`` ``[B, P, D_P]`` -> coarse ``H_C`` ``[B, G, D_S]`` (Eq. 9), fine
    ``H_F = M * (H_C - Q_G)`` ``[B, G, D_S]`` (Eq. 11) and the grade mask ``M`` ``[B, G]``
    (Eq. 10). The paper subtracts "G"; the prototypes must be in D_S to be subtracted, so we
    use their query embedding ``Q_G`` (the prototypes as the attention sees them).
    """

    def __init__(self, in_dim: int, dim: int, num_grades: int) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(num_grades, in_dim))  # G in R^{G x D_P}
        self.query = nn.Linear(in_dim, dim)
        self.key = nn.Linear(in_dim, dim)
        self.value = nn.Linear(in_dim, dim)

    def forward(self, procedures: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        grade_queries = self.query(self.prototypes)  # [G, D_S]
        keys = self.key(procedures)  # [B, P, D_S]
        attention = torch.softmax(grade_queries @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1]), dim=-1)
        coarse = attention @ self.value(procedures)  # [B, G, D_S]
        grade_mask = torch.softmax(coarse.mean(dim=-1), dim=-1)  # [B, G]
        fine = grade_mask.unsqueeze(-1) * (coarse - grade_queries)
        return coarse, fine, grade_mask


class CoFInAlHead(WindowScoredHead):
    """The paper's CoFInAl head (``coarse="classify"``), with the Tab. 3 ablation switches.

    ``forward`` outputs (B videos, T clips, P procedures, G grades, G' sub-grades):
    ``score`` ``[B]`` (the configured read-out), ``score_expectation`` ``[B]`` (differentiable:
    ``E[grade] S_C + E[sub-grade] S_F``), ``score_argmax`` ``[B]`` (Eq. 6 on the argmax classes),
    ``coarse_logits`` ``[B, G]``, ``fine_logits`` ``[B, G']`` (cosine to each ETF column /
    temperature; absent without FGS), ``fine_features`` ``h_F`` ``[B, D_S]``, ``grade_mask``
    ``[B, G]`` (absent without GPM) and ``procedure_attention`` ``[B, P, T]``; with ``aux_scores``,
    ``aux`` ``[B, A]`` in (0, 1) from the mean procedure feature (module docstring).
    Without FGS the sub-grade is read as the middle of the grade.

    In eval mode with ``test_windows > 1`` the scores and logits are means over windows
    (:mod:`models.windows`); ``procedure_attention`` and ``grade_mask`` are the whole video's.
    """

    window_averaged = ("score", "score_argmax", "score_expectation", "coarse_logits", "fine_logits", "fine_features",
                       "aux")

    def __init__(self, config: CoFInAlConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        c = config
        self.fusion = TemporalFusion(input_dim, c.procedure_dim, c.num_procedures, attend=c.use_tfm)
        self.dropout = nn.Dropout(c.dropout)
        if c.use_gpm:
            self.parsing = GradeParsing(c.procedure_dim, c.score_dim, c.num_grades)
            coarse_rows = c.num_grades
        else:  # "w/o GPM": procedures projected to D_S serve as both coarse and fine features
            self.to_score = nn.Linear(c.procedure_dim, c.score_dim)
            coarse_rows = c.num_procedures
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(coarse_rows * c.score_dim, c.score_dim),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.score_dim, c.num_grades),
        )
        if c.use_fgs:
            self.register_buffer("etf", simplex_etf(c.score_dim, c.num_subgrades, c.etf_seed))  # [D_S, G']
        # Built last: the layers above start as they do without auxiliary scores.
        self.aux_readout = AuxReadout(c.procedure_dim, len(c.aux_scores)) if c.aux_scores else None

    def _score_clips(self, features: Tensor, mask: Tensor) -> dict[str, Tensor]:
        c = self.config
        procedures, procedure_attention = self.fusion(features, mask)
        procedures = self.dropout(procedures)
        out = {"procedure_attention": procedure_attention}
        if self.aux_readout is not None:
            out["aux"] = self.aux_readout(procedures)
        if c.use_gpm:
            coarse, fine, out["grade_mask"] = self.parsing(procedures)
        else:
            coarse = fine = self.to_score(procedures)
        out["coarse_logits"] = self.classifier(coarse)
        out["fine_features"] = fine.mean(dim=1)  # h_F = avgPool(H_F), Eq. 14
        grade = out["coarse_logits"].argmax(dim=-1)
        expected_grade = expected_class(out["coarse_logits"])
        if c.use_fgs:
            cosine = F.normalize(out["fine_features"], dim=-1) @ self.etf
            out["fine_logits"] = cosine / c.fine_temperature
            subgrade, expected_subgrade = out["fine_logits"].argmax(dim=-1), expected_class(out["fine_logits"])
        else:
            subgrade = expected_subgrade = torch.full_like(expected_grade, c.num_subgrades / 2)
        out["score_argmax"] = reassemble_score(grade, subgrade, c.num_grades, c.num_subgrades)
        out["score_expectation"] = reassemble_score(expected_grade, expected_subgrade, c.num_grades, c.num_subgrades)
        out["score"] = out[f"score_{c.score_readout}"]
        return out

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``λ_S L_S`` (MSE on the expectation) + ``λ_C`` CE on the grade + ``λ_F L_F`` + ``λ_R L_R``; with
        auxiliary scores and targets ``[B, 1 + A]``, + ``aux_weight`` x their MSE (:mod:`models.auxiliary`)."""
        c = self.config
        targets, aux_targets = split_targets(targets, outputs["score"].shape[0], c.aux_scores)
        grade, subgrade = decompose_score(targets, c.num_grades, c.num_subgrades)
        parts = {
            "score": F.mse_loss(outputs["score_expectation"], targets),
            "coarse": F.cross_entropy(outputs["coarse_logits"], grade),
        }
        total = c.lambda_score * parts["score"] + c.lambda_coarse * parts["coarse"]
        if c.use_fgs:  # Eq. 15: the normalised h_F should coincide with its sub-grade's ETF column
            target_cosine = (F.normalize(outputs["fine_features"], dim=-1) * self.etf[:, subgrade].T).sum(-1)
            parts["fine"] = ((target_cosine - 1.0) ** 2).mean()
            total = total + c.lambda_fine * parts["fine"]
        if c.use_gpm and c.use_graph_reg:
            parts["graph"] = graph_regularization(self.parsing.prototypes)
            total = total + c.lambda_graph * parts["graph"]
        total = add_aux_loss(total, parts, outputs, aux_targets, c.aux_weight)
        return total, {name: value.detach() for name, value in parts.items()}

    def predict_details(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """``score``, both read-outs, ``grade`` ``[B]`` and ``grade_probs`` ``[B, G]``, ``subgrade``
        ``[B]`` (with FGS), ``grade_mask`` ``[B, G]`` (with GPM), ``procedure_attention`` ``[B, P, T]``."""
        details = {key: outputs[key].detach() for key in
                   ("score", "score_argmax", "score_expectation", "procedure_attention", "grade_mask")
                   if key in outputs}
        details["grade"] = outputs["coarse_logits"].argmax(dim=-1)
        details["grade_probs"] = torch.softmax(outputs["coarse_logits"].detach(), dim=-1)
        if "fine_logits" in outputs:
            details["subgrade"] = outputs["fine_logits"].argmax(dim=-1)
        return details


@register_head("cofinal", CoFInAlConfig)
def build_cofinal(config: CoFInAlConfig, input_dim: int) -> ScoringHead:
    """The paper's head for ``coarse="classify"``, the authors' Likert head for ``"likert"``."""
    if config.coarse == "likert":
        return CoFInAlLikertHead(config, input_dim)
    return CoFInAlHead(config, input_dim)
