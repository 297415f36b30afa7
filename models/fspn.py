"""FSPN (Gedamu et al., IEEE TIP 2023): fine-grained spatio-temporal parsing as a pairwise scoring head.

Per video, two aligned clip streams from one backbone, scene and actor ``[T, D]``, reach the head
as one ``[T, 2D]`` input, scene first (``models.streams.combine_streams(..., "both")``);
``input_dim`` is then 2D and the head splits the last axis in halves. Each video is encoded on
its own (see ``shared/spec/fspn.md``):

1. IAP (:mod:`models.fspn_parsing`): each stream is up-sampled to 8T steps, parsed into S
   ordered sub-actions (Eq. 4-5) and pooled into S tokens; a video longer than
   ``parse_max_steps`` clips is first average-pooled to that many (see the config);
2. SMT (:mod:`models.fspn_transformer`): three stages (64, 128, 256) of cross-attention, actor
   tokens asking scene tokens;
3. MTF: the stage outputs fused and pooled into one vector per video.

The score is relative (Sec. III-D, after CoRe, :mod:`models.fspn_exemplars`): a pair (query,
exemplar) -> interval logits over the fitted difference bins and a position inside each interval;
``score = exemplar score + difference``. Loss ``L_gc + L_bce + L_reg`` (Eq. 16). In eval mode
without explicit exemplars, ``forward`` votes over the M exemplars of the query's group stored in
the head's bank (Eq. 17); ``loss`` on those outputs is the MSE of the voted score (a validation
loss; there are no pairs to classify). Everything is on the normalised [0, 1) score scale.

Voting without gradients (``torch.no_grad``, as evaluation and prediction run) encodes each bank
exemplar once and reuses its vector for every later query batch, until any parameter or buffer of
the head changes (an optimiser step, a load, a refilled bank: tracked by the tensors' version
counters) or the head is put in train mode. Changes made through ``.data`` bypass the version
counters: call :meth:`FSPNHead.clear_bank_cache` after those.

Decisions the paper leaves open (more in the three helper modules):

- S = 4 sub-actions by default: FineDiving annotates three steps (take-off, flight, entry; TSA
  predicts their two transitions) and the flight splits into rotation and opening for most dives;
  with 4, every Eq. 5 window holds at least two up-sampled steps even for a single clip.
- The pair regressor sees ``[v_query, v_exemplar, exemplar score]`` (CoRe feeds the exemplar's
  score too); two 2-layer MLPs (width 256) give the interval logits and the positions. I = 16
  intervals (CoRe-like granularity). ``L_bce`` is the mean BCE over the I outputs (CoRe's
  ``BCELoss``; Eq. 14's sum would weigh it I times). The read-out takes the argmax interval.
- Without IAP the SMT runs on the clips themselves (``[B, T, D]`` with the padding mask).
  Without the actor stream (``use_actor=False``) the input is one stream ``[T, D]``
  (``input_dim = D``), which serves as both queries and memory, and L_gc compares its parse with
  itself. Without ``L_bce`` the regressor predicts the
  difference directly (one output, MSE on the difference), Tab. IV's "I3D+IAP+MLP".
- ``use_gc=False`` keeps IAP, but L_gc is its MLP's only training signal, so the parse then stays
  at its initialisation; the paper's "w/o l_gc" row (Tab. IV, I3D+SMT+MTF) has no IAP at all,
  which is ``use_iap=False``.
- No dropout by default (the paper names none). ``pair_dropout`` (ours) drops units of the pair
  regressor's hidden layer (each of its two-layer MLPs: Linear, ReLU, Dropout, Linear) in train
  mode, as the MLP head does; at 0 the modules and their state-dict keys are the paper's.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from itertools import chain
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.config import added_setting
from aqa.models.fspn_exemplars import (
    ExemplarBank,
    Exemplars,
    bin_readout,
    bin_targets,
    fit_bin_edges,
    uniform_bin_edges,
    vote,
)
from aqa.models.fspn_parsing import (
    ActionParser,
    group_contrastive_loss,
    parse_boundaries,
    pool_clips,
    segment_pool,
)
from aqa.models.fspn_training import pair_recipe
from aqa.models.fspn_transformer import MultiscaleFusion, MultiscaleTransformer
from aqa.models.registry import (
    HeadConfig,
    HeadConfigError,
    HeadNeeds,
    OwnOptimizer,
    ScoringHead,
    check_choices,
    check_targets,
    register_head,
)
from aqa.models.training import PaddedVideos, Recipe, TrainConfig, resolve_window

__all__ = ["ABLATIONS", "FSPNConfig", "FSPNHead"]

# The paper's ablations (Tab. I, IV, V, VI) as config overrides.
ABLATIONS: dict[str, dict[str, object]] = {
    "no_iap": {"use_iap": False},
    "no_actor": {"use_actor": False},
    "single_scale": {"smt_widths": (64,)},
    "no_gc": {"use_gc": False},
    "no_bce": {"use_bce": False},
}


@dataclass(frozen=True)
class FSPNConfig(HeadConfig):
    """FSPN settings; defaults from the paper (Sec. III, IV-A) and ``shared/spec/fspn.md``."""

    # IAP (Sec. III-B). parser_channels: widths of the x2 up-sampling blocks after the D-wide input.
    num_subactions: int = 4  # S
    parser_channels: tuple[int, ...] = (512, 256, 128)
    # parse_max_steps: the most inputs the parser sees per video (0: no cap, the paper's FSPN). Ours:
    # the paper up-samples 8x because a dive has 9-10 clips; a 124-234-clip program needs no
    # up-sampling for S = 4 sub-actions, and the parser on every clip was two thirds of an FSPN
    # training step on Fis-V. A longer video is average-pooled over its real clips into this many
    # inputs (adaptive pooling, models.fspn_parsing.pool_clips) and its boundaries are mapped back
    # to clip positions; batches padded to at most this many clips (dives) compute bit for bit
    # what they computed without the cap.
    parse_max_steps: int = 32
    temperature: float = 0.1  # tau of L_gc
    # SMT and MTF (Sec. III-C).
    smt_widths: tuple[int, ...] = (64, 128, 256)  # one stage per width; (64,) is the single-scale ablation
    smt_blocks: int = 3  # L
    smt_heads: int = 8
    mlp_ratio: int = 4
    fusion_dim: int = 256  # MTF's common width
    # Scoring (Sec. III-D).
    num_bins: int = 16  # I
    regressor_dim: int = 256
    # pair_dropout: dropout on the hidden layer of the MLPs that read a (query, exemplar) pair (ours; the
    # paper names none): FSPN memorises Fis-V's 320 training programs (training rho 0.98-1.00).
    pair_dropout: float = added_setting(0.0)  # added later: at 0 the config hashes of runs made before hold
    num_exemplars: int = 10  # M
    exemplar_seed: int = 0
    # Ablations: switch a component off.
    use_iap: bool = True
    use_actor: bool = True
    use_gc: bool = True
    use_bce: bool = True
    # Training side (Sec. IV-A), read by the training loop; unused by the head. train_window: clips
    # per training window; the paper trains on whole videos (9 or 10 clips) and 300 covers every
    # video we handle (the per-dataset presets set 68 / 124 as for the other heads). Exemplar
    # groups: the key pairs and the bank are grouped by. train_divide_by_difficulty: train on
    # score / difficulty and multiply back at inference (MTL-AQA "w/ DD"). aqa-train reads lr,
    # weight decay and batch size here (models.fspn_training.pair_recipe); train_epochs is the
    # default of its --epochs.
    train_window: int = 300
    train_lr: float = 1e-3
    train_weight_decay: float = 0.0
    train_batch_size: int = 8
    train_epochs: int = 200
    train_exemplar_groups: Literal["difficulty", "none"] = "difficulty"
    train_divide_by_difficulty: bool = False

    def needs(self) -> HeadNeeds:
        return HeadNeeds(window=self.train_window,
                         own_optimizer=OwnOptimizer(self.train_lr, self.train_weight_decay, self.train_batch_size,
                                                    self.train_epochs),
                         actor_stream=self.use_actor, divide_by_difficulty=self.train_divide_by_difficulty,
                         group_by_difficulty=self.train_exemplar_groups == "difficulty")

    def __post_init__(self) -> None:
        check_choices(self)
        positive = ("num_subactions", "smt_blocks", "smt_heads", "mlp_ratio", "fusion_dim", "num_bins",
                    "regressor_dim", "num_exemplars", "train_window", "train_batch_size", "train_epochs")
        for name in positive:
            if getattr(self, name) < 1:
                raise HeadConfigError(f"fspn: {name} must be positive, got {getattr(self, name)}")
        for name in ("parser_channels", "smt_widths"):
            widths = getattr(self, name)
            if not widths or any(width < 1 for width in widths):
                raise HeadConfigError(f"fspn: {name} must be a non-empty list of positive widths, got {list(widths)}")
        if self.num_subactions > 2 ** len(self.parser_channels):
            raise HeadConfigError(f"fspn: {len(self.parser_channels)} up-sampling blocks give a single clip "
                                  f"{2 ** len(self.parser_channels)} steps, fewer than num_subactions "
                                  f"{self.num_subactions}")
        if any(width % self.smt_heads for width in self.smt_widths):
            raise HeadConfigError(f"fspn: every smt_widths entry must be divisible by smt_heads {self.smt_heads}, "
                                  f"got {list(self.smt_widths)}")
        if self.parse_max_steps < 0:
            raise HeadConfigError(f"fspn: parse_max_steps must be 0 (no cap) or positive, got {self.parse_max_steps}")
        if not 0.0 <= self.pair_dropout < 1.0:
            raise HeadConfigError(f"fspn: pair_dropout must be in [0, 1), got {self.pair_dropout}")
        if self.temperature <= 0 or self.train_lr <= 0:
            raise HeadConfigError(f"fspn: temperature and train_lr must be positive, got {self.temperature}, "
                                  f"{self.train_lr}")


@register_head("fspn", FSPNConfig)
class FSPNHead(ScoringHead):
    """FSPN as a pairwise :class:`~models.registry.ScoringHead` (``pairwise = True``).

    ``forward(features, mask, *, exemplars=None, groups=None)``: ``features`` ``[B, T, 2D]`` is
    scene and actor concatenated per clip (``[B, T, D]``, one stream, with ``use_actor=False``).

    - With ``exemplars`` (:class:`~models.fspn_exemplars.Exemplars`, one per query, features laid
      out alike; required in train mode): pair outputs ``score`` ``[B]`` (exemplar score +
      difference), ``difference`` ``[B]``, ``exemplar_score`` ``[B]``, ``bin_logits`` /
      ``bin_positions`` ``[B, I]`` (with L_bce) and, with IAP, ``parse_logits`` ``[2, 2B, 8P, S]``
      (scene, actor; queries then exemplars) and ``step_mask`` ``[2B, 8P]`` for L_gc.
    - Without, in eval mode: Eq. 17 over the bank; ``groups`` ``[B]`` picks each query's exemplars
      (NaN or None = the shared set). Outputs ``score`` ``[B]``, ``votes`` ``[B, M]`` (exemplar
      score + difference; NaN where a small group has fewer than M), ``exemplar_index`` and
      ``exemplar_valid`` ``[B, M]``.

    Both modes add, with IAP, the query's parse: ``boundaries`` ``[B, 2, S - 1]`` (first step of
    sub-actions 2..S on the 8P-step axis; scene then actor), ``sub_action_probs``
    ``[B, 2, S, 8P]`` (zero on padded steps) and ``clips_per_step`` ``[B]`` (1/8, or more for a video
    pooled to ``parse_max_steps``). P = T, or ``parse_max_steps`` when T is longer.
    """

    pairwise = True

    def __init__(self, config: FSPNConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        c = config
        if c.use_actor and input_dim % 2:
            raise HeadConfigError(f"fspn takes scene and actor concatenated per clip, so input_dim must be even "
                                  f"(2 D), got {input_dim}; features of one stream need use_actor=False")
        self.stream_dim = input_dim // 2 if c.use_actor else input_dim  # D
        tokens_dim = self.stream_dim
        if c.use_iap:
            self.parser = ActionParser(self.stream_dim, c.parser_channels, c.num_subactions)
            tokens_dim = c.parser_channels[-1]
        self.transformer = MultiscaleTransformer(tokens_dim, c.smt_widths, c.smt_blocks, c.smt_heads, c.mlp_ratio)
        self.fusion = MultiscaleFusion(c.smt_widths, c.fusion_dim)
        pair_dim = 2 * len(c.smt_widths) * c.fusion_dim + 1
        outputs = c.num_bins if c.use_bce else 1
        if c.use_bce:
            self.classifier = _two_layer_mlp(pair_dim, c.regressor_dim, c.num_bins, c.pair_dropout)
        self.regressor = _two_layer_mlp(pair_dim, c.regressor_dim, outputs, c.pair_dropout)
        self.register_buffer("bin_edges", uniform_bin_edges(c.num_bins))
        self.exemplars = ExemplarBank(input_dim, c.num_exemplars, c.exemplar_seed)
        self._bank_cache: _BankCache | None = None

    def train(self, mode: bool = True) -> FSPNHead:
        """As :meth:`torch.nn.Module.train`; also forgets the bank's cached encodings."""
        self.clear_bank_cache()
        return super().train(mode)

    def clear_bank_cache(self) -> None:
        """Forget the bank exemplars' encodings kept between voting calls (see the module doc)."""
        self._bank_cache = None

    # -- setting up from the training set -------------------------------------------------------
    def fit_bins(self, train_scores: Tensor, groups: Tensor | None = None) -> Tensor:
        """Fit the I difference intervals on normalised training scores ``[N]`` (and group keys ``[N]``)."""
        edges = fit_bin_edges(train_scores, self.config.num_bins, groups, seed=self.config.exemplar_seed)
        self.bin_edges.copy_(edges.to(self.bin_edges))
        return self.bin_edges

    # -- the face ---------------------------------------------------------------------------------
    def forward(self, features: Tensor, mask: Tensor | None = None, *, exemplars: Exemplars | None = None,
                groups: Tensor | None = None) -> dict[str, Tensor]:
        features, mask = self.prepare_inputs(features, mask)
        if exemplars is not None:
            return self._forward_pairs(features, mask, exemplars)
        if self.training:
            raise ValueError("fspn trains on (query, exemplar) pairs: pass exemplars=Exemplars(...) "
                             "(see models.fspn_training)")
        return self._forward_votes(features, mask, groups)

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``L_gc + L_bce + L_reg`` (Eq. 16) on pair outputs, MSE of the voted score on vote outputs;
        ``targets`` ``[B]`` are the queries' normalised scores."""
        targets = check_targets(targets, outputs["score"].shape[0])
        if "exemplar_score" not in outputs:
            score = F.mse_loss(outputs["score"], targets)
            return score, {"score": score.detach()}
        c = self.config
        difference = targets - outputs["exemplar_score"]
        parts: dict[str, Tensor] = {}
        if c.use_bce:
            interval, position = bin_targets(difference, self.bin_edges)
            one_hot = F.one_hot(interval, c.num_bins).to(difference.dtype)
            parts["bce"] = F.binary_cross_entropy_with_logits(outputs["bin_logits"], one_hot)
            predicted = outputs["bin_positions"].gather(1, interval.unsqueeze(1)).squeeze(1)
            parts["reg"] = F.mse_loss(predicted, position)
        else:
            parts["reg"] = F.mse_loss(outputs["difference"], difference)
        if c.use_iap and c.use_gc:
            scene_logits, actor_logits = outputs["parse_logits"]
            parts["gc"] = group_contrastive_loss(actor_logits, scene_logits, outputs["step_mask"], c.temperature)
        total = sum(parts.values())
        return total, {name: value.detach() for name, value in parts.items()}

    def training_recipe(self, train: PaddedVideos, config: TrainConfig) -> Recipe:
        """Exemplar pairs with Adam from this head's own settings (:func:`models.fspn_training.pair_recipe`);
        sets the exemplar bank up from ``train``."""
        return pair_recipe(self, train, resolve_window(config, self))

    def predict_details(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """``score``; in bank mode ``votes`` ``[B, M]`` and ``exemplar_index`` ``[B, M]`` (the bank rows
        voted with, -1 where a small group has fewer than M); with IAP the actor stream's
        ``sub_action_probs`` ``[B, S, 8P]`` (on the parser's steps) and ``boundaries`` ``[B, S - 1]``:
        the clip position (float) where each next sub-action starts (for a pooled video, the step's
        position scaled linearly by clips per step)."""
        details = {key: outputs[key].detach() for key in ("score", "votes", "difference") if key in outputs}
        if "exemplar_index" in outputs:
            details["exemplar_index"] = outputs["exemplar_index"].masked_fill(~outputs["exemplar_valid"], -1)
        if "boundaries" in outputs:
            details["boundaries"] = outputs["boundaries"][:, -1].float() * outputs["clips_per_step"].unsqueeze(1)
            details["sub_action_probs"] = outputs["sub_action_probs"][:, -1].detach()
        return details

    # -- internals --------------------------------------------------------------------------------
    def _split(self, features: Tensor) -> tuple[Tensor, Tensor | None]:
        """``[N, T, 2D]`` -> scene, actor ``[N, T, D]``; one stream ``[N, T, D]`` -> (it, None)."""
        if not self.config.use_actor:
            return features, None
        return features[..., : self.stream_dim], features[..., self.stream_dim:]

    def _parser_inputs(self, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """With IAP, videos ``[N, T, D']`` pooled to at most ``parse_max_steps`` inputs (both streams
        alike; :func:`~models.fspn_parsing.pool_clips`), their mask and clips per input ``[N]``;
        without IAP the clips themselves and None."""
        if not self.config.use_iap:
            return features, mask, None
        return pool_clips(features, mask, self.config.parse_max_steps)

    def _encode(self, features: Tensor, mask: Tensor, clips_per_input: Tensor | None) -> dict[str, Tensor]:
        """:meth:`_parser_inputs` ``[N, P, D']`` -> ``video`` ``[N, C_F]`` and, with IAP, the parse of both
        streams (``parse_logits`` ``[2, N, 8P, S]`` etc., see the class doc). One stream serves as both."""
        scene, actor = self._split(features)
        count = scene.shape[0]
        out: dict[str, Tensor] = {}
        if self.config.use_iap:
            both = scene if actor is None else torch.cat([scene, actor])  # one parser pass
            streams = len(both) // count  # 1 without the actor stream: parsed once, then used as both
            steps, logits, step_mask = self.parser(both, mask.repeat(streams, 1))
            steps, logits = (x.view(streams, count, *x.shape[1:]) for x in (steps, logits))
            step_mask = step_mask[:count]
            probs = torch.softmax(logits, dim=-1)  # [streams, N, 8P, S]: scene, actor
            starts = torch.stack([parse_boundaries(p, step_mask) for p in probs], dim=1)  # [N, streams, S]
            tokens = [segment_pool(steps[k], starts[:, k], step_mask) for k in range(streams)]
            scene_tokens, actor_tokens = tokens[0], tokens[-1]
            token_mask = mask.new_ones(scene_tokens.shape[:2])
            probs = (probs * step_mask[None, ..., None]).permute(1, 0, 3, 2)  # [N, streams, S, 8P]
            out.update(parse_logits=logits.expand(2, -1, -1, -1), step_mask=step_mask,
                       boundaries=starts[..., 1:].expand(-1, 2, -1), sub_action_probs=probs.expand(-1, 2, -1, -1),
                       clips_per_step=clips_per_input / self.parser.factor)
        else:
            scene_tokens, actor_tokens, token_mask = scene, (scene if actor is None else actor), mask
        stages = self.transformer(actor_tokens, scene_tokens, token_mask)
        out["video"] = self.fusion(stages, token_mask)
        return out

    def _regress(self, query: Tensor, exemplar: Tensor, exemplar_score: Tensor) -> dict[str, Tensor]:
        """Pair vectors ``[..., C_F]`` x 2 + exemplar scores ``[...]`` -> ``difference`` ``[...]`` (+ bins)."""
        pair = torch.cat([query, exemplar, exemplar_score.unsqueeze(-1)], dim=-1)
        if not self.config.use_bce:
            return {"difference": self.regressor(pair).squeeze(-1)}
        logits, positions = self.classifier(pair), torch.sigmoid(self.regressor(pair))
        return {"difference": bin_readout(logits, positions, self.bin_edges), "bin_logits": logits,
                "bin_positions": positions}

    def _forward_pairs(self, features: Tensor, mask: Tensor, exemplars: Exemplars) -> dict[str, Tensor]:
        batch = features.shape[0]
        ex_features, ex_mask = self.prepare_inputs(exemplars.features, exemplars.mask)
        if ex_features.shape[0] != batch or exemplars.score.shape != (batch,):
            raise ValueError(f"expected one exemplar per query ({batch}), got {ex_features.shape[0]} videos and "
                             f"{tuple(exemplars.score.shape)} scores")
        # Pooled before they are joined (the parser would pool the joined batch alike), so no copy of
        # the long clip axis is made; one encoding pass over queries and exemplars.
        query, example = self._parser_inputs(features, mask), self._parser_inputs(ex_features, ex_mask)
        length = max(query[0].shape[1], example[0].shape[1])
        encoded = self._encode(_join(query[0], example[0], length), _join(query[1], example[1], length),
                               None if query[2] is None else torch.cat([query[2], example[2]]))
        exemplar_score = exemplars.score.to(features.dtype)
        out = self._regress(encoded["video"][:batch], encoded["video"][batch:], exemplar_score)
        out.update(score=exemplar_score + out["difference"], exemplar_score=exemplar_score)
        if self.config.use_iap:
            steps = self.parser.factor * query[0].shape[1]  # the query's own (padded, pooled) length
            out.update(parse_logits=encoded["parse_logits"], step_mask=encoded["step_mask"],
                       boundaries=encoded["boundaries"][:batch], clips_per_step=encoded["clips_per_step"][:batch],
                       sub_action_probs=encoded["sub_action_probs"][:batch, ..., :steps])
        return out

    def _forward_votes(self, features: Tensor, mask: Tensor, groups: Tensor | None) -> dict[str, Tensor]:
        bank = self.exemplars
        index, valid = bank.select(groups, features.shape[0])  # [B, M]
        used, inverse = index.unique(return_inverse=True)
        query = self._encode(*self._parser_inputs(features, mask))
        vectors = self._bank_vectors(used)[inverse]  # [B, M, C_F]
        scores = bank.score[index]
        differences = self._regress(query["video"].unsqueeze(1).expand_as(vectors), vectors, scores)["difference"]
        out = {"score": vote(scores, differences, valid), "votes": (scores + differences).masked_fill(~valid, math.nan),
               "exemplar_index": index, "exemplar_valid": valid}
        out.update({key: query[key] for key in ("boundaries", "sub_action_probs", "clips_per_step") if key in query})
        return out

    def _bank_vectors(self, rows: Tensor) -> Tensor:
        """The fused vectors ``[U, C_F]`` of the bank rows ``rows`` ``[U]`` (unique), prepared as queries are
        (:meth:`prepare_inputs`). With gradients on they are encoded afresh; without, each row is encoded
        once and kept while the head's state, inference mode and autocast stay as they were."""
        bank = self.exemplars

        def encode(index: Tensor) -> Tensor:
            features, mask = self.prepare_inputs(bank.features[index], bank.mask[index])
            return self._encode(*self._parser_inputs(features, mask))["video"]

        state = None if torch.is_grad_enabled() else _state_versions(self)
        if state is None:
            return encode(rows)
        cache = self._bank_cache
        if cache is None or not cache.matches(state):
            cache = self._bank_cache = _BankCache(state, len(bank), bank.score.device)
        missing = rows[~cache.done[rows]]
        if len(missing):
            encoded = encode(missing)
            if cache.vectors is None:
                cache.vectors = encoded.new_zeros(len(bank), encoded.shape[-1])
            cache.vectors[missing] = encoded
            cache.done[missing] = True
        return cache.vectors[rows]


_State = tuple[tuple[tuple[weakref.ref, int, torch.dtype, torch.device], ...], tuple[bool, bool, torch.dtype]]


class _BankCache:
    """The bank's encodings ``vectors`` ``[E, C_F]`` (rows where ``done`` ``[E]``), valid for one ``state``."""

    def __init__(self, state: _State, rows: int, device: torch.device) -> None:
        self.state = state
        self.vectors: Tensor | None = None
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)

    def matches(self, state: _State) -> bool:
        """Whether ``state`` (from :func:`_state_versions`) names the same tensors at the same versions."""
        (mine, modes), (theirs, their_modes) = self.state, state
        return modes == their_modes and len(mine) == len(theirs) and all(
            a[0]() is b[0]() and a[1:] == b[1:] for a, b in zip(mine, theirs))


def _state_versions(module: nn.Module) -> _State | None:
    """What the module computes with: (weak reference, in-place version, dtype, device) of every
    parameter and buffer, then inference mode and autocast; equal again only if no tensor was
    replaced or changed in place. None when a tensor was made in inference mode (it has no version)."""
    tensors = tuple(chain(module.parameters(), module.buffers()))
    if any(t.is_inference() for t in tensors):
        return None
    device = module.exemplars.score.device.type
    modes = (torch.is_inference_mode_enabled(), torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
    return tuple((weakref.ref(t), t._version, t.dtype, t.device) for t in tensors), modes


def _two_layer_mlp(in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear, ReLU, (Dropout,) Linear; without dropout no Dropout module, so the keys stay the paper's."""
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), *drop, nn.Linear(hidden, out_dim))


def _join(first: Tensor, second: Tensor, length: int) -> Tensor:
    """Pad the clip axis (dim 1) of both ``[N, T, ...]`` with zeros (False for a mask) to ``length``; stack them."""
    return torch.cat([F.pad(x, (0, 0) * (x.ndim - 2) + (0, length - x.shape[1])) for x in (first, second)])
