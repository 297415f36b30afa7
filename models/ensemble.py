"""An ensemble of trained heads in one head: the mean of its members' scores.

Members are named by head, with config overrides in brackets: ``("cofinal",
"cofinal(coarse=likert)", "mlp")``. Each member is trained as ``aqa-train --head <name>`` would
train it with the same preset, once per seed (``pipeline.train.ensemble``), and the ensemble keeps
every (member, seed) head: its score is the weighted mean over members of each member's mean
over its seeds (equal weights unless ``weights`` says otherwise), on the normalised [0, 1) scale
(all members share one score range, so this is the same mean on the judges' scale).
``predict_details`` gives ``member_scores`` ``[B, M]`` beside ``score``, so a report can show
each member's score next to the combined one.

The trained members travel in the config (``trained``: each one's head name, member label,
seed and config as plain data) and their weights in the state dict (``members.<i>.*``), so an
ensemble checkpoint loads with ``torch.load(weights_only=True)`` like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from aqa.config import config_from_dict, config_to_dict
from aqa.models.registry import (
    HeadConfig,
    HeadConfigError,
    HeadNeeds,
    ScoringHead,
    build_head,
    config_type,
    head_config,
    register_head,
)

_SPEC = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*(?:\((.*)\))?\s*$")


def parse_member(spec: str) -> tuple[str, dict[str, Any]]:
    """``"cofinal(coarse=likert, dropout=0.5)"`` -> ``("cofinal", {"coarse": "likert", "dropout": 0.5})``;
    values are read as YAML scalars (or flow lists without commas: ``hidden_dims=[]``)."""
    found = _SPEC.match(spec)
    if not found:
        raise HeadConfigError(f"ensemble member {spec!r}: expected a head name with optional "
                              "(key=value, ...) overrides, e.g. cofinal(coarse=likert)")
    overrides: dict[str, Any] = {}
    for part in filter(str.strip, (found.group(2) or "").split(",")):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise HeadConfigError(f"ensemble member {spec!r}: {part.strip()!r} is not key=value")
        overrides[key.strip()] = yaml.safe_load(value.strip())
    return found.group(1), overrides


@dataclass(frozen=True)
class EnsembleConfig(HeadConfig):
    """``members``: the heads to combine (see the module doc); ``weights``: one per member (empty:
    equal); ``trained``: filled when the members are trained (plain data, never set by hand)."""

    members: tuple[str, ...] = ("cofinal", "cofinal(coarse=likert)", "mlp")
    weights: tuple[float, ...] = ()
    trained: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.members:
            raise HeadConfigError("ensemble: members must name at least one head")
        if len(set(self.members)) != len(self.members):
            raise HeadConfigError(f"ensemble: a member is named twice in {list(self.members)}")
        if self.weights and (len(self.weights) != len(self.members) or any(w < 0 for w in self.weights)
                             or sum(self.weights) <= 0):
            raise HeadConfigError(f"ensemble: weights must be {len(self.members)} non-negative numbers with a "
                                  f"positive sum (one per member), got {list(self.weights)}")
        for name, _ in map(parse_member, self.members):
            if name == "ensemble":
                raise HeadConfigError("ensemble: an ensemble cannot be a member of an ensemble")
        self.member_configs()  # unknown heads or settings fail here, not after the first member trained

    def member_configs(self, preset: str | None = None) -> list[tuple[str, Any]]:
        """Each member's (head name, config): the paper defaults, ``preset``'s keys, the overrides."""
        return [(name, head_config(name, preset, overrides)) for name, overrides in map(parse_member, self.members)]

    def needs(self) -> HeadNeeds:
        """The streams the members agree on; members trained on score / difficulty (w/ DD) are refused
        (a pairwise member votes over its shared exemplars: the ensemble passes no difficulty)."""
        needs = [config.needs() for _, config in self.member_configs()]
        if any(need.divide_by_difficulty for need in needs):
            raise HeadConfigError("ensemble: members trained on score / difficulty (w/ DD) are not supported")
        streams = {need.actor_stream for need in needs} - {None}
        if len(streams) > 1:
            raise HeadConfigError(f"ensemble: members {list(self.members)} need different streams (one needs the "
                                  "actor stream, another exactly one stream)")
        return HeadNeeds(actor_stream=streams.pop() if streams else None)


@register_head("ensemble", EnsembleConfig)
class EnsembleHead(ScoringHead):
    """``[B, T, D]`` -> every trained member's ``score`` ``[B]`` -> per-member mean over seeds
    ``member_scores`` ``[B, M]`` -> their weighted mean ``score`` ``[B]``. Built empty of members
    from a config without ``trained``; :func:`assemble` makes one from trained heads."""

    def __init__(self, config: EnsembleConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        labels = list(config.members)
        heads = []
        for entry in config.trained:
            if entry["member"] not in labels:
                raise HeadConfigError(f"ensemble: trained member {entry['member']!r} is not one of {labels}")
            kind = config_type(entry["head"])
            heads.append(build_head(entry["head"], config_from_dict(kind, entry["config"]), input_dim))
        self.members = nn.ModuleList(heads)
        self.member_index = [labels.index(entry["member"]) for entry in config.trained]
        weights = torch.tensor(config.weights or [1.0] * len(labels), dtype=torch.float32)
        self.register_buffer("weights", weights / weights.sum(), persistent=False)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        if not len(self.members):
            raise HeadConfigError("ensemble: no trained members (train it with aqa-train --head ensemble)")
        scores = torch.stack([member(features, mask)["score"] for member in self.members], dim=1)  # [B, heads]
        index = torch.tensor(self.member_index, device=scores.device)
        count = torch.zeros(len(self.weights), device=scores.device).index_add_(0, index, torch.ones_like(index,
                                                                                  dtype=scores.dtype))
        sums = torch.zeros(len(scores), len(self.weights), device=scores.device).index_add_(1, index, scores)
        member_scores = sums / count.clamp_min(1)  # [B, M]
        return {"score": member_scores @ self.weights, "member_scores": member_scores}

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise HeadConfigError("an ensemble is not trained by gradient steps: its members are (pipeline.train.ensemble)")

    def predict_details(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"score": outputs["score"].detach(), "member_scores": outputs["member_scores"].detach()}


def assemble(config: EnsembleConfig, trained: list[tuple[str, int, ScoringHead]], input_dim: int) -> EnsembleHead:
    """The ensemble of trained heads ``(member label, seed, head)`` (weights kept, not copied)."""
    entries = tuple({"member": label, "seed": seed, "head": head.head_name, "config": config_to_dict(head.config)}
                    for label, seed, head in trained)
    missing = sorted(set(config.members) - {entry["member"] for entry in entries})
    if missing:
        raise HeadConfigError(f"ensemble: no trained head for member(s) {missing}")
    with torch.random.fork_rng(devices=[]):  # the empty shells' initialisation must not move the caller's RNG
        ensemble = EnsembleHead(EnsembleConfig(config.members, config.weights, ()), input_dim)
    ensemble.config = EnsembleConfig(config.members, config.weights, entries)
    ensemble.members = nn.ModuleList([head for _, _, head in trained])
    ensemble.member_index = [list(config.members).index(entry["member"]) for entry in entries]
    ensemble.head_name = "ensemble"
    return ensemble
