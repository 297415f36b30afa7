"""``aqa-train --head ensemble``: train every member as its own ``--head`` would be, keep them all.

Each member of ``head.members`` (``models.ensemble``) gets the run's preset, seeds, scores and
validation carve, and the preset's own entries for that head (and variant: ``cofinal(coarse=likert)``
takes the ``cofinal:likert`` recipe), exactly the config ``aqa-train --head <member> --preset P
--set head.<key>=<value>`` resolves; training settings given to the ensemble (``--epochs``,
``--set train.*``) apply to every member. Each member trains through :func:`pipeline.train.training.train_score`,
so a member's predictions are the ones its own run gives with the same seed.

Seed ``s`` of the ensemble's report is the combination of every member's seed ``s``; the saved
checkpoint holds every (member, seed) head, and its predictions (``predictions.csv``, the
report's ``combined``) are the combination of the members' means over seeds: in
cross-validation, the ``ensemble`` (seeds' mean) column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from aqa.config import ConfigError
from aqa.models.ensemble import EnsembleConfig, assemble, parse_member
from aqa.models.registry import head_config, preset_key
from aqa.models.training import FitResult
from aqa.pipeline.train.data import TrainingData, carve_validation
from aqa.pipeline.train.report import ScoreRun, SeedMetrics, SeedRun, split_metrics


def member_config(config, spec: str):  # RunConfig -> RunConfig (typed loosely: training.py imports this module)
    """The run config of member ``spec`` of the ensemble run ``config`` (see the module doc)."""
    from aqa.pipeline.train.config import base_config

    name, overrides = parse_member(spec)
    variant = preset_key(name, head_config(name, config.preset, overrides)).partition(":")[2] or None
    base = base_config(name, config.preset, variant)
    own_train = base_config("ensemble", config.preset).train
    changed = {field.name: getattr(config.train, field.name) for field in dataclasses.fields(config.train)
               if getattr(config.train, field.name) != getattr(own_train, field.name)}
    if "window" in changed:
        raise ConfigError("ensemble: train.window differs per member; set it in a member's overrides "
                          "(e.g. mlp(train_window=64))")
    return dataclasses.replace(
        base, head=head_config(name, config.preset, overrides, variant=variant),
        train=dataclasses.replace(base.train, **changed), scores=config.scores, streams=config.streams,
        video_prefix=config.video_prefix, train_split=config.train_split, test_split=config.test_split,
        val_fraction=config.val_fraction, val_seed=config.val_seed, seeds=config.seeds)


def combine(parts: Sequence[SeedMetrics], weights: np.ndarray, true: dict[str, list[float]]) -> SeedMetrics:
    """The weighted mean of several members' predictions on every split, and its metrics."""
    predictions = {split: (weights @ np.array([part.predictions[split] for part in parts])).tolist()
                   for split in parts[0].predictions}
    return split_metrics(predictions, {split: true[split] for split in predictions})


def train_ensemble(data: TrainingData, score: str, config, device: str, train_member: Callable, *,
                   progress: bool = True):
    """Train every member of ``config.head`` (an :class:`EnsembleConfig`) on ``score`` with
    ``train_member`` (:func:`pipeline.train.training.train_score`, passed in: it calls this function
    for an ensemble, so importing it here would close a circle); returns the ensemble's
    :class:`~pipeline.train.report.ScoreRun` and the assembled head of every (member, seed)."""
    ensemble: EnsembleConfig = config.head
    runs = [train_member(data, score, member_config(config, spec), device, progress=progress)[0]
            for spec in ensemble.members]
    normalizer = runs[0].normalizer
    if any(run.normalizer.to_dict() != normalizer.to_dict() for run in runs):
        raise ConfigError("ensemble: the members were fitted to different score ranges")
    weights = np.array(ensemble.weights or [1.0] * len(runs))
    weights = weights / weights.sum()
    train_split, val_split = carve_validation(data.train, config.val_fraction, config.val_seed)
    true = {name: split.column(score).double().numpy().tolist()
            for name, split in (("train", train_split), ("val", val_split), ("test", data.test)) if split is not None}
    seeds = []
    for position, seed in enumerate(config.seeds):
        members = [run.seeds[position] for run in runs]
        fitted = FitResult("ensemble", members[0].fit.best_epoch, {}, {}, [])
        seeds.append(SeedRun(seed, fitted, combine([member.selected for member in members], weights, true),
                             combine([member.last for member in members], weights, true)))
    seed_means = [SeedMetrics({}, {split: np.mean([seed.selected.predictions[split] for seed in run.seeds], axis=0)
                                   .tolist() for split in true}) for run in runs]
    combined = combine(seed_means, weights, true)
    members = {spec: split_metrics(part.predictions, true) for spec, part in zip(ensemble.members, seed_means)}
    heads = [(spec, seed.seed, seed.head) for spec, run in zip(ensemble.members, runs) for seed in run.seeds]
    head = assemble(ensemble, heads, data.train.input_dim)
    return ScoreRun(score, normalizer, seeds, 0, "all seeds kept", runs[0].sizes, combined=combined,
                    members=members), head
