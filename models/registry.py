"""The head registry and the uniform face every scoring head shows the training loop.

``build_head(name, config, input_dim)`` builds a registered head; ``list_heads()`` names them;
``head_config(name, preset, overrides)`` resolves a frozen config from the papers' defaults, a
per-dataset preset and explicit overrides. Every head is a :class:`ScoringHead`:

- ``forward(features [B, T, D], mask [B, T] bool) -> dict``: ``mask`` is True for real clips;
  ``outputs["score"]`` ``[B]`` is the prediction on the normalised [0, 1) scale.
- ``loss(outputs, targets [B]) -> (total, parts)``: ``targets`` normalised to [0, 1); ``total``
  is the scalar to back-propagate, ``parts`` the named terms (detached) for logging.
- ``predict_details(outputs) -> dict``: human-facing detail (grade, sub-grade, procedure
  attention ``[B, P, T]``) where the head has it; always ``score``.

Heads are padding-invariant: appending masked clips never changes a video's outputs (in eval
mode; in train mode only dropout's randomness differs).

A head with ``pairwise = True`` (FSPN) scores relative to exemplars: it trains on (query,
exemplar) pairs and predicts against an exemplar bank it carries; :mod:`models.fspn_training`
says what a training loop does for it. A head with ``closed_form = True`` (ridge) takes no
gradient steps: :func:`models.training.fit` calls its ``solve(features, mask, targets)`` once.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from aqa.errors import AqaError
from aqa.models.presets import PRESETS, DatasetPreset

if TYPE_CHECKING:
    from aqa.models.training import PaddedVideos, Recipe, TrainConfig


class UnknownHeadError(AqaError, ValueError):
    """The requested head or preset name is not registered."""


class HeadConfigError(AqaError, ValueError):
    """A head config value is invalid or inconsistent; the message says which and why."""


@dataclass(frozen=True)
class OwnOptimizer:
    """The optimiser settings of a head that trains with its own (FSPN's Adam), not the loop's SGD."""

    lr: float
    weight_decay: float
    batch_size: int
    epochs: int


@dataclass(frozen=True)
class HeadNeeds:
    """What a head asks of the training pipeline, declared by its config (:meth:`HeadConfig.needs`)
    so that the trainer reads one typed answer instead of probing configs for attributes.

    window: clips per training window the head's config sets (None: the preset's, or ``train.window``).
    own_optimizer: the head trains with these settings instead of the loop's SGD ones (None: the loop's).
    actor_stream: True: the head needs the scene and the actor stream (as the two halves of its
        input); False: exactly one stream; None: any streams, combined as the trainer is told.
    divide_by_difficulty: the head learns score / difficulty and multiplies back at prediction.
    group_by_difficulty: a pairwise head pairs, and votes, within groups of equal difficulty.
    preset_variant: a variant of the head whose own preset entries (``head:variant``) apply on top.
    """

    window: int | None = None
    own_optimizer: OwnOptimizer | None = None
    actor_stream: bool | None = None
    divide_by_difficulty: bool = False
    group_by_difficulty: bool = False
    preset_variant: str | None = None


class HeadConfig:
    """Base of every head's frozen config dataclass: its defaults are the paper's, and :meth:`needs`
    declares what the head asks of the training pipeline (nothing special by default)."""

    def needs(self) -> HeadNeeds:
        return HeadNeeds()


class ScoringHead(nn.Module):
    """Base of every head: the uniform face plus input checking shared by all of them.

    A checkpoint needs ``head_name`` (set by :func:`build_head`), ``config`` (a frozen dataclass;
    ``aqa.config.config_to_dict`` serialises it), ``input_dim`` and the state dict, which
    includes fixed buffers such as CoFInAl's ETF.

    Every head standardises its input clips per dimension, ``(x - input_shift) / input_scale``,
    with statistics the training loop fits on the training clips
    (:meth:`fit_input_standardization`; identity until then). Backbone features carry a large
    offset shared by every clip (on Fis-V's Swin features the mean clip has norm ~25 while the
    videos' means differ by ~5), which otherwise dominates attention logits and first layers.
    The statistics are buffers, so a checkpoint applies them at prediction too.
    """

    head_name: str = ""
    pairwise: bool = False  # True: trains on (query, exemplar) pairs, predicts against an exemplar bank
    closed_form: bool = False  # True: no gradient steps; ``solve(features, mask, targets)`` fits it at once

    def __init__(self, config: Any, input_dim: int) -> None:
        super().__init__()
        if input_dim < 1:
            raise HeadConfigError(f"input_dim must be positive, got {input_dim}")
        self.config = config
        self.input_dim = input_dim
        self.register_buffer("input_shift", torch.zeros(input_dim))
        self.register_buffer("input_scale", torch.ones(input_dim))

    @torch.no_grad()
    def fit_input_standardization(self, features: Tensor, mask: Tensor) -> None:
        """Per-dimension mean and std of the real clips of ``features`` ``[N, T, D]`` (``mask`` ``[N, T]``).

        A std is floored at a tenth of the median std: a nearly constant dimension (common in
        ReLU-pooled features such as I3D's) would otherwise be blown up into noise; on Fis-V's
        Swin features the floor touches 1 dimension of 1024. With fewer training clips than
        dimensions the statistics are themselves noise and the inputs stay as they are (identity):
        on the quick demo's 36 clips of 2048 dimensions standardising turned its held-out rho
        negative."""
        real = features[mask].double()  # [clips, D]
        if len(real) < real.shape[1]:
            self.input_shift.zero_()
            self.input_scale.fill_(1.0)
            return
        spread = real.std(dim=0)
        self.input_shift.copy_(real.mean(dim=0))
        self.input_scale.copy_(spread.clamp_min(max(0.1 * float(spread.median()), 1e-6)))

    def forward(self, features: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Clip features ``[B, T, D]`` and mask ``[B, T]`` (True = real clip) -> outputs dict."""
        raise NotImplementedError

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Outputs of :meth:`forward` and normalised targets ``[B]`` -> (total, named parts)."""
        raise NotImplementedError

    def predict_details(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Human-facing detail of a prediction; the base gives only ``score`` ``[B]``."""
        return {"score": outputs["score"].detach()}

    def training_recipe(self, train: PaddedVideos, config: TrainConfig) -> Recipe | None:
        """How this head is optimised on ``train`` (a :class:`~models.training.Recipe`, set up on it);
        None: the training loop's default (:func:`models.training.video_recipe`). A pairwise head
        brings its own (FSPN: exemplar pairs, Adam)."""
        return None

    def prepare_inputs(self, features: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Validate ``features`` ``[B, T, D]`` and ``mask`` ``[B, T]`` (None = all real).

        Returns the standardised features with padded clips zeroed (so garbage or NaN in padding
        cannot leak through a zero weight) and a bool mask.
        """
        if features.ndim != 3 or features.shape[-1] != self.input_dim:
            raise ValueError(f"expected features [B, T, {self.input_dim}], got {tuple(features.shape)}")
        features = (features - self.input_shift) / self.input_scale
        if mask is None:
            return features, torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        if mask.shape != features.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(f"expected a bool mask {tuple(features.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every video needs at least one real clip (a mask row is all False)")
        return features.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def check_choices(config: Any) -> None:
    """Raise :class:`HeadConfigError` if a ``Literal`` field of a config holds another value.

    A bare dataclass does not enforce ``Literal`` annotations; configs call this in
    ``__post_init__`` so a typo fails when the config is made, not deep inside a build.
    """
    for name, annotation in typing.get_type_hints(type(config)).items():
        if typing.get_origin(annotation) is typing.Literal:
            choices = typing.get_args(annotation)
            if getattr(config, name) not in choices:
                raise HeadConfigError(f"{name}: {getattr(config, name)!r} is not one of {list(choices)}")


def check_targets(targets: Tensor, batch: int) -> Tensor:
    """Validate normalised targets ``[B]`` and return them as float."""
    if targets.shape != (batch,):
        raise ValueError(f"expected targets [{batch}], got {tuple(targets.shape)}")
    return targets.float()


HeadFactory = Callable[[Any, int], ScoringHead]
_REGISTRY: dict[str, tuple[type, HeadFactory]] = {}


def register_head(name: str, config_type: type) -> Callable[[HeadFactory], HeadFactory]:
    """Decorator: register ``factory(config, input_dim) -> ScoringHead`` (a class works) as ``name``.

    ``config_type`` is the head's frozen dataclass; its defaults are the paper's.
    """
    if not (dataclasses.is_dataclass(config_type) and config_type.__dataclass_params__.frozen
            and issubclass(config_type, HeadConfig)):
        raise TypeError(f"head {name!r}: config_type must be a frozen dataclass deriving from HeadConfig, "
                        f"got {config_type!r}")

    def decorate(factory: HeadFactory) -> HeadFactory:
        if name in _REGISTRY:
            raise ValueError(f"head {name!r} is registered twice")
        _REGISTRY[name] = (config_type, factory)
        return factory

    return decorate


def list_heads() -> list[str]:
    """Registered head names, sorted."""
    return sorted(_REGISTRY)


def list_presets() -> list[str]:
    """Per-dataset preset names, sorted."""
    return sorted(PRESETS)


def dataset_preset(name: str) -> DatasetPreset:
    """The preset ``name`` (:mod:`models.presets`); an unknown name lists the known ones."""
    if name not in PRESETS:
        raise UnknownHeadError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    return PRESETS[name]


def config_type(name: str) -> type:
    """The frozen config dataclass of head ``name`` (for the CLI's YAML / ``--set`` machinery)."""
    return _lookup(name)[0]


def preset_key(name: str, config: Any) -> str:
    """The key a preset's per-head mapping goes by for head ``name`` with ``config``: the head's name,
    or ``name:variant`` for a head whose config declares a variant (``HeadNeeds.preset_variant``:
    CoFInAl's ``coarse``), so that ``cofinal:likert`` can hold the authors' variant's own recipe."""
    variant = config.needs().preset_variant
    return f"{name}:{variant}" if variant else name


def head_config(name: str, preset: str | None = None, overrides: Mapping[str, Any] | None = None,
                variant: str | None = None) -> Any:
    """Resolve head ``name``'s config: paper defaults, then ``preset``'s keys, then ``overrides``.

    A preset sets only the keys this head's config has, then its mapping under this head's name,
    then the one under ``name:variant`` (``variant``: the value of the config's variant field, e.g.
    ``likert``; see :func:`preset_key`); an override naming an unknown key is an error (a typo must
    never be silently ignored).
    """
    cls = _lookup(name)[0]
    fields = {field.name for field in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if preset is not None:
        chosen = dataset_preset(preset)
        values.update({key: value for key, value in chosen.head.items() if key in fields})
        values.update(chosen.head_entries(name, variant).head)
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise HeadConfigError(f"head {name!r} has no setting {key!r}; known: {', '.join(sorted(fields))}")
        values[key] = tuple(value) if isinstance(value, list) else value  # YAML lists -> tuple fields
    return cls(**values)


def build_head(name: str, config: Any = None, input_dim: int = 1024) -> ScoringHead:
    """Build head ``name`` for clip features of dimension ``input_dim``.

    ``config``: None (paper defaults), a preset name (``"rg-ball"``), a mapping of overrides, or
    an instance of the head's config dataclass. Parameters are initialised from torch's global
    RNG, so seed it first for a reproducible init; fixed buffers (the ETF) have their own seed.
    """
    cls, factory = _lookup(name)
    if config is None or isinstance(config, str):
        config = head_config(name, preset=config)
    elif isinstance(config, Mapping):
        config = head_config(name, overrides=config)
    elif not isinstance(config, cls):
        raise TypeError(f"head {name!r} takes a {cls.__name__}, got {type(config).__name__}")
    head = factory(config, input_dim)
    head.head_name = name
    return head


def _lookup(name: str) -> tuple[type, HeadFactory]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownHeadError(f"unknown head {name!r}; choose one of: {', '.join(list_heads())}") from None
