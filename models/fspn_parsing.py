"""FSPN's intra-sequence action parsing (IAP, Sec. III-B) and its group contrastive loss (Eq. 6-7).

IAP turns one stream's clip features ``[B, T, D]`` into S ordered sub-action tokens, without step
labels:

1. an up-sampling decoder: the paper's states (1024, 12) -> (512, 24) -> (256, 48) -> (128, 96)
   are the I3D input followed by three blocks, each doubling time (nearest) and narrowing the
   width with a kernel-3 convolution: ``T`` clips become ``8 T`` steps of width 128;
2. a 3-layer MLP: per-step logits over S sub-actions ``[B, 8T, S]``;
3. Eq. 5: the s-th of S equal windows of the real steps holds the step where sub-action s is
   most probable, ``t_s``, and sub-action s starts there, so the boundaries are strictly ordered
   by construction;
4. the decoder's step features are mean-pooled per segment: tokens ``[B, S, 128]``.

Before step 1, :func:`pool_clips` may shorten a long video (``FSPNConfig.parse_max_steps``): the
paper up-samples because a dive has ~10 clips; a figure-skating program of 124-234 clips needs no
up-sampling to be parsed into S = 4 sub-actions, and the decoder's first convolution on every clip
was most of FSPN's training time. Videos of at most that many clips are untouched.

The group contrastive loss trains the MLP (its only training signal, since argmax boundaries
pass no gradient) to parse the actor and scene streams of a video alike and to keep sub-actions
apart.

Decisions the paper leaves open:

- Up-sampling is nearest (repeat x2) followed by Conv1d(k=3) + LayerNorm + ReLU. The paper
  describes TSA's PSNet, where the 9 clips are *channels* and max-pooling shrinks the feature
  axis; that fixes T, so we up-sample the real time axis instead (the spec's reading). Nearest
  repeat keeps padding exact: a real video of L clips gives the same 8 L steps whatever padding
  follows (linear interpolation would blend the last real clip with padding). LayerNorm, not
  BatchNorm, so a video's steps never depend on its batch.
- The MLP's biases start at zero. With PyTorch's default (random) biases a constant offset decided
  the argmax: at D = 16, one sub-action took every step in 5 of 8 random inits, where L_gc is
  zero and, being the MLP's only signal, stays zero. With zero biases every init used 2-4.
- The decoder is shared by both streams (Siamese, like the backbone); each stream gets its own
  parse and its own tokens.
- Eq. 5's points are read as *starts*: with a confident parser ``A_s`` is flat over sub-action s,
  and the first maximum in window s is where s begins whenever that lies in the window (an end
  reading would land on the start too). The first sub-action starts at the first real step (the
  first window's argmax is not used), so the parse has S - 1 transitions and covers the video.
  Needs ``8 T >= S`` (S <= 8 for a single clip), which :class:`~models.fspn.FSPNConfig` checks.
- g() of Eq. 6 is the step logits (the paper: "the logits of action sequences"). A step's
  pseudo-label is the argmax of its two views' mean sub-action probabilities, shared by both
  streams ("the probability vectors of the two inputs are assigned pseudo-labels"). With a label
  per stream taken from that stream's own logits, ``G^p`` of either stream points at sub-action p
  whatever the other stream does, so the loss cannot see whether the streams agree (measured:
  permuting the scene's sub-action channels left it at 3e-4). Groups pool every real step of
  every video in the mini-batch (queries and exemplars).
- Eq. 7 is read as InfoNCE: anchor ``G_a^p``, positive ``G_i^p``, negatives ``G_a^q`` and
  ``G_i^q`` for ``q != p``, ``exp(cos / tau)`` (the paper's ``h(.)/tau`` puts tau outside the
  exponential, which we take for a typo).
- With one pseudo-label left there are no negatives and the loss is zero. Per-stream labels
  found that minimum within ~60 Adam steps on synthetic features; shared labels kept all four in
  use over 200 steps. Should it happen, Eq. 5's windows still give S ordered segments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aqa.models.masking import segment_weights

__all__ = [
    "ActionParser",
    "group_contrastive_loss",
    "parse_boundaries",
    "pool_clips",
    "segment_labels",
    "segment_pool",
    "upsample_mask",
]


def upsample_mask(mask: Tensor, factor: int) -> Tensor:
    """Clip mask ``[B, T]`` -> step mask ``[B, factor T]`` (each clip's steps follow its mask)."""
    return mask.repeat_interleave(factor, dim=1)


def pool_clips(clips: Tensor, mask: Tensor, max_steps: int) -> tuple[Tensor, Tensor, Tensor]:
    """At most ``max_steps`` parser inputs per video: clips ``[B, T, D]`` + mask ``[B, T]`` -> inputs
    ``[B, P, D]``, their mask ``[B, P]`` and the clips per input ``[B]`` (float), ``P = min(T, max_steps)``.

    A video of L > ``max_steps`` real clips is average-pooled into ``max_steps`` inputs by the rule
    of ``adaptive_avg_pool1d`` over its real clips (:func:`models.masking.segment_weights`); a
    shorter one keeps its clips, moved to the front in order, and gets clips per input 1. When
    ``T <= max_steps`` (or ``max_steps`` is 0: no cap) the inputs come back as they are, so short
    inputs compute exactly what they computed without a cap. Padding-invariant for masks that
    hold each video's real clips first (as the data layer pads): a video keeps its inputs whatever
    padding follows it.
    """
    if max_steps < 1 or clips.shape[1] <= max_steps:
        return clips, mask, mask.new_ones(mask.shape[0], dtype=clips.dtype)
    length = mask.long().sum(dim=1)  # [B]
    rank = mask.long().cumsum(dim=1) - 1  # [B, T]
    slot = torch.arange(max_steps, device=mask.device).view(1, -1, 1)  # [1, P, 1]
    keep = (rank.unsqueeze(1) == slot) & mask.unsqueeze(1)  # [B, P, T]: real clip p -> input p
    short = (length <= max_steps).view(-1, 1, 1)
    weights = torch.where(short, keep.float(), segment_weights(mask, max_steps)).to(clips.dtype)
    kept = length.clamp_max(max_steps)
    inputs_mask = slot.view(1, -1) < kept.unsqueeze(1)
    return weights @ clips, inputs_mask, (length / kept).to(clips.dtype)


class UpBlock(nn.Module):
    """``[B, L, C_in]`` -> ``[B, 2L, C_out]``: nearest x2, Conv1d(k=3), LayerNorm, ReLU; padded steps zero.

    The convolution over the repeated steps is computed on the L input steps (:func:`upsample_conv`),
    half the multiply-adds of convolving 2L steps and no repeated copy of the input.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x, mask = upsample_conv(x, self.conv.weight, self.conv.bias), upsample_mask(mask, 2)
        x = torch.relu(self.norm(x))
        return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def upsample_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv1d(repeat_interleave(x, 2), weight, bias, padding=1)`` channels-last, from the L steps of ``x``.

    ``x`` ``[B, L, C_in]``, ``weight`` ``[C_out, C_in, 3]`` (taps W_0, W_1, W_2) -> ``[B, 2L, C_out]``.
    Step ``2i`` of the repeated input sees ``x[i-1], x[i], x[i]`` and step ``2i + 1`` sees ``x[i],
    x[i], x[i+1]`` (zero outside), so with ``y_k = W_k x``: out[2i] = y_0[i-1] + y_1[i] + y_2[i] and
    out[2i+1] = y_0[i] + y_1[i] + y_2[i+1]: one matmul on L steps instead of a convolution on 2L.
    The same function up to float rounding.
    """
    taps = weight.shape[-1]
    if taps != 3:
        raise ValueError(f"upsample_conv takes a kernel of 3, got {taps}")
    y = F.linear(x, weight.permute(2, 0, 1).flatten(0, 1))  # [B, L, 3 C_out]: y_0, y_1, y_2
    y0, y1, y2 = y.chunk(3, dim=-1)
    middle = y1 if bias is None else y1 + bias
    even = middle + y2 + F.pad(y0[:, :-1], (0, 0, 1, 0))  # y_0[i-1], zero at i = 0
    odd = middle + y0 + F.pad(y2[:, 1:], (0, 0, 0, 1))  # y_2[i+1], zero at i = L-1
    return torch.stack([even, odd], dim=2).flatten(1, 2)


class ActionParser(nn.Module):
    """IAP for one stream: clips ``[B, T, D]`` + mask ``[B, T]`` -> steps, logits, step mask.

    Returns step features ``[B, 8T, C]`` (C = last decoder width), sub-action logits
    ``[B, 8T, S]`` and the step mask ``[B, 8T]`` (for three blocks; ``2^len(channels)`` in general).
    """

    def __init__(self, input_dim: int, channels: tuple[int, ...], num_subactions: int) -> None:
        super().__init__()
        widths = (input_dim, *channels)
        self.blocks = nn.ModuleList(UpBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        hidden = channels[-1]
        self.classifier = nn.Sequential(  # the 3-layer MLP projection head
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_subactions),
        )
        for layer in self.classifier:  # see the module doc: the first pseudo-labels must follow the features
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.bias)
        self.factor = 2 ** len(channels)

    def forward(self, clips: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        steps = clips
        for block in self.blocks:
            steps, mask = block(steps, mask)
        return steps, self.classifier(steps), mask


def parse_boundaries(probs: Tensor, step_mask: Tensor) -> Tensor:
    """Eq. 5: the first step of each sub-action, ``[N, S]`` (long, indices on the padded step axis).

    ``probs`` ``[N, L, S]``, ``step_mask`` ``[N, L]`` with at least S real steps per row. Window
    s holds the real steps of rank ``floor(s R / S)`` to ``floor((s + 1) R / S) - 1`` (R real
    steps); ``start_s`` is the step of highest ``probs[..., s]`` in window s (the first on ties),
    and the first sub-action starts at the first real step. Windows are disjoint and ordered, so
    starts strictly increase.
    """
    num = probs.shape[-1]
    rank = step_mask.long().cumsum(dim=1) - 1  # [N, L]
    real = step_mask.long().sum(dim=1, keepdim=True)  # [N, 1]
    index = torch.arange(num, device=probs.device)
    start, stop = (index * real) // num, ((index + 1) * real) // num  # [N, S]
    rank = rank.unsqueeze(1)  # [N, 1, L]
    inside = (rank >= start.unsqueeze(-1)) & (rank < stop.unsqueeze(-1)) & step_mask.unsqueeze(1)  # [N, S, L]
    starts = probs.transpose(1, 2).masked_fill(~inside, float("-inf")).argmax(dim=-1)  # [N, S]
    first = step_mask.long().argmax(dim=1)  # [N]
    return torch.cat([first.unsqueeze(1), starts[:, 1:]], dim=1)


def segment_pool(steps: Tensor, starts: Tensor, step_mask: Tensor) -> Tensor:
    """Mean of the real steps of each segment ``[start_s, start_{s+1})``: ``[N, L, C]`` -> ``[N, S, C]``."""
    labels = segment_labels(starts, steps.shape[1])  # [N, L]
    weights = (F.one_hot(labels, starts.shape[1]) * step_mask.unsqueeze(-1)).transpose(1, 2).to(steps.dtype)
    return (weights / weights.sum(dim=-1, keepdim=True).clamp_min(1.0)) @ steps


def segment_labels(starts: Tensor, length: int) -> Tensor:
    """The sub-action of every step from the starts of :func:`parse_boundaries`: ``[N, S]`` -> ``[N, L]`` long
    (steps before the first start count in sub-action 0)."""
    positions = torch.arange(length, device=starts.device).view(1, -1, 1)
    return (positions >= starts[:, None, 1:]).sum(dim=-1)


def group_contrastive_loss(actor_logits: Tensor, scene_logits: Tensor, step_mask: Tensor,
                           temperature: float = 0.1) -> Tensor:
    """L_gc (Eq. 7) over a mini-batch: logits ``[N, L, S]`` per stream, step mask ``[N, L]`` -> scalar.

    A step's pseudo-label p is the argmax of its two streams' mean sub-action probabilities;
    ``G_k^p`` is the mean logit vector of stream k over the real steps labelled p (Eq. 6). For
    each p present: ``-log(exp(c(G_a^p, G_i^p)/tau) / (that + sum_{q != p} exp(c(G_a^p, G_i^q)/tau)
    + exp(c(G_a^p, G_a^q)/tau)))`` with c the cosine similarity, averaged over p. Zero (with a
    graph) when every step has the same pseudo-label.
    """
    actor, scene = actor_logits[step_mask], scene_logits[step_mask]  # [M, S]: every real step of the batch
    with torch.no_grad():
        labels = (actor.softmax(dim=-1) + scene.softmax(dim=-1)).argmax(dim=-1)
    members = F.one_hot(labels, actor.shape[-1]).to(actor.dtype)  # [M, S]
    counts = members.sum(dim=0)
    present = counts > 0
    if int(present.sum()) < 2:
        return (actor_logits.sum() + scene_logits.sum()) * 0.0
    actor_groups, scene_groups = (F.normalize(members.T @ x / counts.clamp_min(1.0).unsqueeze(-1), dim=-1)[present]
                                  for x in (actor, scene))  # [P, S]: G_a^p, G_i^p for the present p
    cross = actor_groups @ scene_groups.T / temperature  # [p, q]: c(G_a^p, G_i^q) / tau
    within = actor_groups @ actor_groups.T / temperature
    within = within.masked_fill(torch.eye(len(within), dtype=torch.bool, device=within.device), float("-inf"))
    return (torch.logsumexp(torch.cat([cross, within], dim=1), dim=1) - cross.diagonal()).mean()
