"""What decides an aqa-train run besides the features: :class:`RunConfig` (head, preset, scores,
seeds, epochs and the head's own section), resolved from defaults < the preset < ``--config``
YAML < ``--set`` < typed overrides < the dedicated flags (:func:`resolve_run_config`), and the
checks that refuse a config the head cannot train by before any data is read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqa.config import ConfigError, apply_values, layered_values, load_config
from aqa.errors import AqaError
from aqa.models import registry
from aqa.models.ensemble import parse_member
from aqa.models.streams import Streams
from aqa.models.training import (
    TrainConfig,
)


class TrainingSetupError(AqaError):
    """The command line asks for something aqa-train cannot do (no CUDA, a changed head...)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a training run besides the features; the head's own settings are the
    ``head`` section that :func:`run_config_type` adds (its type depends on the head)."""

    head_name: str = "cofinal"
    preset: str | None = None
    scores: tuple[str, ...] = ()  # several: one model each, rho averaged with Fisher's z
    streams: Streams = "auto"
    video_prefix: str = ""  # train and test on videos whose name starts with this (RG apparatus)
    train_split: str = "train"
    test_split: str = "test"
    val_fraction: float = 0.0  # 0: fixed epochs; else this share of training videos selects the epoch
    val_seed: int = 0  # the validation carve's seed (the same for every training seed)
    seeds: tuple[int, ...] = (0,)
    train: TrainConfig = field(default_factory=TrainConfig)


def run_config_type(head_name: str) -> type:
    """:class:`RunConfig` with a ``head`` section of head ``head_name``'s config dataclass, so that
    ``--set head.dropout=0.5`` and a YAML ``head:`` mapping are checked like every other key."""
    head_type = registry.config_type(head_name)
    return dataclasses.make_dataclass(f"RunConfig_{head_name}", [("head", head_type, field(default_factory=head_type))],
                                      bases=(RunConfig,), frozen=True)


def base_config(head_name: str, preset: str | None, variant: str | None = None) -> RunConfig:
    """Defaults, then ``preset``'s head settings (window, dropout...) and its training choices; for a
    head ``variant`` (CoFInAl's ``likert``), the preset's ``head:variant`` entries on top."""
    head = registry.head_config(head_name, preset, variant=variant)
    chosen = registry.dataset_preset(preset) if preset else None
    values: dict[str, object] = {"scores": chosen.scores, "video_prefix": chosen.video_prefix} if chosen else {}
    train = TrainConfig(**chosen.head_entries(head_name, variant).train) if chosen else TrainConfig()
    needs = head.needs()
    if chosen and needs.window is None:  # a head without its own window takes the preset's
        train = dataclasses.replace(train, window=int(chosen.head["train_window"]))
    if needs.own_optimizer is not None:  # a head with its own optimiser (FSPN) brings its epoch count
        train = dataclasses.replace(train, epochs=needs.own_optimizer.epochs)
    return run_config_type(head_name)(head_name=head_name, preset=preset, head=head, train=train, **values)


SETTINGS: dict[str, str] = {
    "score": "scores", "seeds": "seeds", "val_fraction": "val_fraction", "epochs": "train.epochs",
    "train_split": "train_split", "test_split": "test_split", "streams": "streams", "video_prefix": "video_prefix",
}
"""The dedicated flags' keys in :class:`RunConfig` (``--epochs`` sets ``train.epochs``); ``aqa.train``
takes the same names as keywords."""


def resolve_run_config(head: str | None = None, preset: str | None = None, *, config_file: str | Path | None = None,
                       set_text: Sequence[str] = (), overrides: Mapping[str, Any] | None = None,
                       settings: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults < preset < ``config_file`` YAML < ``--set`` text < typed ``overrides`` (dotted keys)
    < the dedicated ``settings`` (:data:`SETTINGS`; None: not given). Only ``set_text`` is parsed;
    every other value keeps its Python type. ``head`` None: the preset's default head (the best in
    its cross-validation), its own settings under the ``--set`` text, else CoFInAl."""
    values = layered_values(set_text, overrides, settings, SETTINGS)
    if head is None:  # a default such as "cofinal(coarse=likert)": the head, its settings before --set's
        head, chosen = parse_member(registry.dataset_preset(preset).default_head if preset else "cofinal")
        values = [(f"head.{key}", value) for key, value in chosen.items()] + values
    base = base_config(head, preset)
    config = apply_values(load_config(type(base), config_file, base=base), values)
    variant = registry.preset_key(config.head_name, config.head).partition(":")[2]
    if config.preset and variant:  # the variant --set/--config chose (head.coarse=likert) has its own preset entries
        base = base_config(head, preset, variant=variant)
        config = apply_values(load_config(type(base), config_file, base=base), values)
    if (config.head_name, config.preset) != (base.head_name, base.preset):
        raise ConfigError("choose the head with --head and the preset with --preset, not in the config")
    if not config.seeds:
        raise ConfigError("seeds: give at least one seed")
    check_own_optimizer(config, base)
    return config


def check_own_optimizer(config: RunConfig, base: RunConfig) -> None:
    """A head that declares its own optimiser (FSPN) trains with its own settings: refuse the SGD
    loop's ``train.*`` settings for it, and a changed epoch count in the head's config (the epochs
    are ``--epochs``), rather than ignoring them."""
    own, base_own = config.head.needs().own_optimizer, base.head.needs().own_optimizer
    if own is None or base_own is None:
        return
    sgd = ("lr", "lr_min", "momentum", "weight_decay", "batch_size")
    now, before = dataclasses.asdict(config.train), dataclasses.asdict(base.train)
    changed = [f"train.{key}" for key in sgd if now[key] != before[key]]
    if own.epochs != base_own.epochs:
        changed.append("head.train_epochs (use --epochs)")
    if changed:
        raise ConfigError(f"head {config.head_name!r} trains with Adam from its own settings (head.train_lr, "
                          f"head.train_weight_decay, head.train_batch_size); these do not apply: {', '.join(changed)}")


def head_streams(config: RunConfig) -> str:
    """The streams to load: on ``auto``, a head that declares it takes exactly one stream gets the scene."""
    if config.streams == "auto" and config.head.needs().actor_stream is False:
        return "scene"
    return config.streams


def check_head_streams(config: RunConfig, streams: str) -> None:
    """A head that declares it needs the actor stream (FSPN splits its input into scene and actor
    halves) needs ``streams == "both"``; one that declares it takes one stream (FSPN with ``use_actor``
    off) needs exactly one. Other heads take any streams."""
    use_actor = config.head.needs().actor_stream
    if use_actor is True and streams != "both":
        raise TrainingSetupError(
            f"{config.head_name} needs both streams (scene and actor) but gets streams={streams!r} (asked for, or "
            "the features have no actor stream, as imported ones); train on features from aqa-extract with "
            "--streams both, or --set head.use_actor=false for its one-stream ablation")
    if use_actor is False and streams == "both":
        raise TrainingSetupError(f"{config.head_name} with head.use_actor=false takes one stream; add --streams "
                                 "scene (or actor)")
