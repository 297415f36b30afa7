"""The training run behind ``aqa-train`` and ``aqa.train``: train a scoring head on stored clip
features, report rho, R-L2 and MSE, save a checkpoint. :class:`TrainRequest` says what to train,
:func:`run` does it; the config is :mod:`pipeline.train.config`, the command line
:mod:`pipeline.train.cli`.

For every score and every seed the head trains on random windows of C clips (the preset's
``train_window``) and is tested on every clip of each test video. ``--folds K`` (or
``--folds-file``) cross-validates instead, on the training split only
(:mod:`pipeline.train.cross_validation`); ``--test-split none`` trains on the training split alone (a
final model on every labelled video). Model selection never sees the test split: by default the
last of a fixed number of epochs is kept (``selection: "fixed-epochs"``); with
``--val-fraction`` a seeded share of the training videos is held out and the epoch with the best
validation rho is kept (``"val"``). The last epoch is reported either way.

A pairwise head (``--head fspn``) trains by its own recipe (``ScoringHead.training_recipe``): exemplar
bank and difference bins from the training videos, (query, exemplar) windows, Adam with the
head's ``train_lr`` / ``train_weight_decay`` / ``train_batch_size`` (the SGD settings
``train.lr`` etc. are refused for it); its ``train_epochs`` is the default of ``--epochs``. It
needs both streams unless ``head.use_actor=false``. ``--set head.train_divide_by_difficulty=true``
trains on score / difficulty ("w/ DD") when every video has a difficulty.

Outputs in ``--out`` (one sub-folder per score when several are trained, named after it, a score
that cannot name a folder of its own refused before training; plus a top-level
``metrics.json`` that averages rho over scores with Fisher's z): ``model.pt`` (see
:mod:`models.checkpoint`; of the seed with the best validation rho, or with fixed epochs the
best rho on the whole training videos; never chosen by test), ``metrics.json``,
``predictions.csv`` (test videos: name, true, predicted), ``predictions.png``, ``curves.png``,
``cumulative_score.png`` and the model card beside ``model.pt`` (``model_card.md`` and
``model_card.json``, :mod:`pipeline.train.model_card`; ``--description`` gives its one line).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from aqa.config import config_hash
from aqa.data.feature_store import open_feature_store
from aqa.data.labels import MissingScoreError, parse_column_names, read_label_files
from aqa.data.provenance import Provenance
from aqa.models import registry
from aqa.models.checkpoint import load_checkpoint
from aqa.models.normalization import ScoreNormalizer
from aqa.models.streams import difficulty_use
from aqa.models.training import (
    PaddedVideos,
    evaluate,
    fit,
    nan_to_minus_inf,
    seed_everything,
)
from aqa.pipeline.devices import resolve_device
from aqa.pipeline.train.config import (
    RunConfig,
    TrainingSetupError,
    check_head_streams,
    head_streams,
    resolve_run_config,
)
from aqa.pipeline.train.cross_validation import (
    check_folds,
    cross_validate,
    make_folds,
    read_folds,
    write_combined_cv_report,
    write_cv_outputs,
)
from aqa.pipeline.train.data import TrainingData, VideoSplit, carve_validation, load_training_data
from aqa.pipeline.train.model_card import check_description
from aqa.pipeline.train.report import (
    ScoreRun,
    SeedMetrics,
    SeedRun,
    split_metrics,
    write_combined_report,
    write_score_outputs,
)

log = logging.getLogger(__name__)


def train_score(data: TrainingData, score: str, config: RunConfig, device: str, *,
                progress: bool = True) -> tuple[ScoreRun, torch.nn.Module]:
    """Train one head per seed for ``score``; returns the run and the saved seed's head (kept weights).
    An ensemble trains each member so (:mod:`pipeline.train.ensemble`) and returns all of them in one head."""
    if config.head_name == "ensemble":
        from aqa.pipeline.train.ensemble import train_ensemble

        return train_ensemble(data, score, config, device, train_score, progress=progress)
    train_split, val_split = carve_validation(data.train, config.val_fraction, config.val_seed)
    divide, grouped = difficulty_use(config.head)
    normalizer = ScoreNormalizer.fit(train_split.targets(score, divide))
    options = {"divide_by_difficulty": divide, "group_by_difficulty": grouped}
    train = with_auxiliary_scores(train_split.padded(score, normalizer, device, **options), train_split,
                                  tuple(getattr(config.head, "aux_scores", ())))
    val, test = (split.padded(score, normalizer, device, **options) if split is not None else None
                 for split in (val_split, data.test))
    splits = {"train": (train, train_split), "val": (val, val_split), "test": (test, data.test)}
    runs = []
    for seed in config.seeds:
        seed_everything(seed)
        head = registry.build_head(config.head_name, config.head, input_dim=data.train.input_dim).to(device)
        recipe = head.training_recipe(train, config.train)  # None: the loop's default
        with tqdm(total=config.train.epochs, desc=f"{score} seed {seed}", unit="epoch", disable=not progress,
                  leave=False) as bar:
            result = fit(head, train, config.train, seed=seed, val=val, recipe=recipe,
                         on_epoch=lambda record: _advance(bar, record))
        measure = functools.partial(_measure, head, splits, normalizer, config.train.eval_batch_size, score, divide)
        last = selected = measure()
        if result.best_state is not result.last_state:
            head.load_state_dict(result.best_state)
            selected = measure()
        bank = recipe.bank_index if recipe is not None else None
        names = [train_split.names[i] for i in bank.tolist()] if bank is not None else []
        runs.append(SeedRun(seed, result, selected, last, names, head))
        shown = "test" if data.test is not None else "train"
        log.info("%s seed %d: %s rho %.4f, R-L2 %.4f (epoch %d of %d, %s)", score, seed, shown,
                 selected.values[f"{shown}_srcc"], selected.values[f"{shown}_rl2"], result.best_epoch,
                 config.train.epochs, result.selection)
    saved_by = "val_srcc" if val is not None else "train_srcc"
    saved = max(range(len(runs)), key=lambda i: (nan_to_minus_inf(runs[i].selected.values[saved_by]), -i))
    sizes = {name: len(split) if split is not None else 0
             for name, split in (("train", train_split), ("val", val_split), ("test", data.test))}
    return ScoreRun(score, normalizer, runs, saved, saved_by, sizes), runs[saved].head


def auxiliary_scores(config: RunConfig) -> tuple[str, ...]:
    """The score columns the run's head learns beside the scores it is trained for (an MLP's or
    CoFInAl's ``aux_scores``; each ensemble member's), which the training data must hold too."""
    heads = [config.head]
    if config.head_name == "ensemble":
        from aqa.pipeline.train.ensemble import member_config

        heads = [member_config(config, spec).head for spec in config.head.members]
    names = tuple(dict.fromkeys(name for head in heads for name in getattr(head, "aux_scores", ())))
    trained = [name for name in names if name in config.scores]
    if trained:  # refused before anything trains: a run of several scores would stop half-way
        raise TrainingSetupError(f"head.aux_scores names {trained[0]!r}, a score being trained; name other scores")
    return names


def with_auxiliary_scores(train: PaddedVideos, split: VideoSplit, names: tuple[str, ...]) -> PaddedVideos:
    """``train`` with the scores ``names`` of its videos beside its targets (``PaddedVideos.aux``), each
    normalised on this split as a score of its own is; unchanged when there are none."""
    if not names:
        return train
    columns = [ScoreNormalizer.fit(split.column(name)).to_unit(split.column(name)) for name in names]
    return replace(train, aux=torch.stack(columns, dim=1).to(device=train.device, dtype=torch.float32))


def _advance(bar: tqdm, record: dict) -> None:
    """Show the epoch's loss and validation rho (training-window rho when there is no validation split)."""
    shown = ("val_rho", record["val_srcc"]) if record["val_srcc"] is not None else ("train_rho", record["train_srcc"])
    bar.set_postfix({"loss": f"{record['train_loss']:.4f}", shown[0]: f"{shown[1]:.3f}"})
    bar.update(1)


def _measure(head: torch.nn.Module, splits: dict[str, tuple[PaddedVideos | None, VideoSplit | None]],
             normalizer: ScoreNormalizer, batch_size: int, score: str, divide_by_difficulty: bool) -> SeedMetrics:
    """Metrics of ``head``'s current weights on every split present, on the original score scale
    (w/ DD: the predicted ratio times each video's difficulty)."""
    predictions = {}
    for name, (videos, split) in splits.items():
        if videos is not None:
            unit, _ = evaluate(head, videos, batch_size)
            predicted = split.to_scores(normalizer.from_unit(unit.double().numpy()), divide_by_difficulty)
            predictions[name] = predicted.tolist()
    true = {name: split.column(score).double().numpy().tolist() for name, (_, split) in splits.items()
            if split is not None}
    return split_metrics(predictions, true)


def expected_provenance(path: Path | None) -> Provenance | None:
    """``--expect-provenance``: the provenance of a checkpoint (``.pt``) or of a feature store."""
    if path is None:
        return None
    if path.suffix == ".pt":
        return load_checkpoint(path)[2].provenance
    with open_feature_store(path) as store:
        return store.provenance


def check_output_folder(folder: Path, overwrite: bool, *, digest: str = "", own: Collection[Path] = ()) -> None:
    """Fail before any training if ``folder`` cannot take the run's outputs: it is a file, cannot be
    created or written, or already holds a finished run (``metrics.json`` or ``model.pt``, at any
    depth) and ``overwrite`` is off. Found only after training, each of these lost the run.

    A run stopped before its end (Ctrl-C; its top-level ``metrics.json`` is written last) left its
    finished scores' folders: those of this run's folders (``own``) whose outputs were made with
    the same settings (``digest``; a folder with no ``metrics.json`` yet was stopped while being
    written) are not a finished run, so the same command runs again."""
    if folder.exists() and not folder.is_dir():
        raise TrainingSetupError(f"--out {folder} is a file, not a folder")
    finished = [path for pattern in ("metrics.json", "model.pt") for path in folder.rglob(pattern)] \
        if folder.is_dir() else []
    if not (folder / "metrics.json").exists():
        finished = [path for path in finished if not (path.parent in own and _same_settings(path.parent, digest))]
    if finished and not overwrite:
        raise TrainingSetupError(f"--out {folder} already holds a finished run ({finished[0]}); choose another "
                                 "folder or pass --overwrite")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise TrainingSetupError(f"--out {folder} cannot be written: {error.strerror or error}") from None


def _same_settings(folder: Path, digest: str) -> bool:
    """Whether ``folder``'s outputs were made with settings of hash ``digest`` (True while its
    ``metrics.json``, written last, is not there yet)."""
    try:
        return json.loads((folder / "metrics.json").read_text()).get("config_hash") == digest
    except FileNotFoundError:
        return True
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class TrainRequest:
    """One training run, typed: what :func:`run` needs, whoever asks (``aqa-train`` parses its command
    line into one, ``aqa.train`` builds one from keywords).

    features: feature shards (.h5), folders of shards or JSON indexes, read as one store.
    out: the output folder (checked before training); overwrite: replace a finished run there.
    config: the resolved settings (:func:`resolve_run_config`): head, preset, scores, seeds, epochs...
    device: cpu, cuda, cuda:N or auto.
    labels / columns: label files overriding the stored labels, and column names for files without a header.
    folds / folds_file / fold_seed: cross-validate instead, on K seeded folds or on the folds in a file.
    description: the saved model's one line (its model card); expect_provenance: refuse features made
        differently from this checkpoint or store.
    progress: show progress bars.
    """

    features: Sequence[Path]
    out: Path
    config: RunConfig = field(default_factory=resolve_run_config)
    device: str = "auto"
    overwrite: bool = False
    labels: Sequence[Path] = ()
    columns: str | None = None
    folds: int | None = None
    folds_file: Path | None = None
    fold_seed: int = 0
    description: str | None = None
    expect_provenance: Path | None = None
    progress: bool = True


def run(request: TrainRequest, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole of aqa-train (``aqa.train`` calls it too): the metrics report of each score, and with
    several scores their Fisher-z mean under ``"combined"``; ``say`` gets the one-line summaries."""
    started = time.perf_counter()
    config, out = request.config, request.out
    description = check_description(request.description)
    folders = score_folders(out, config.scores)
    digest = config_hash(config)
    check_output_folder(out, request.overwrite, digest=digest, own=folders.values())
    device = resolve_device(request.device)
    labels = read_label_files(list(request.labels), parse_column_names(request.columns)) if request.labels else None
    folds_asked = request.folds is not None or request.folds_file is not None
    test_split = None if folds_asked or config.test_split.lower() == "none" else config.test_split
    auxiliary = auxiliary_scores(config)
    try:
        data = load_training_data(list(request.features), scores=(*config.scores, *auxiliary),
                                  train_split=config.train_split, test_split=test_split, streams=head_streams(config),
                                  video_prefix=config.video_prefix, labels=labels,
                                  expect_provenance=expected_provenance(request.expect_provenance))
    except MissingScoreError as error:  # say why a score nobody asked for by --score is needed
        if not set(error.missing) & set(auxiliary):
            raise
        raise TrainingSetupError(f"{error}; the head learns {', '.join(auxiliary)} beside "
                                 f"{', '.join(config.scores)} (head.aux_scores): give those labels too, or "
                                 "choose another --head") from None
    check_head_streams(config, data.streams)
    if folds_asked:
        if description is not None:
            raise TrainingSetupError("--description describes a saved model; a cross-validation run saves none")
        return cross_validation_main(request, data, digest, device, folders, say)
    several = len(config.scores) > 1
    reports: dict[str, Any] = {}
    for score in config.scores:
        score_run, head = train_score(data, score, config, device, progress=request.progress)
        folder = folders[score]
        report = reports[score] = write_score_outputs(folder, score_run, head, data, config, digest, device,
                                                      description=description)
        shown = "test" if data.test is not None else "train"
        say(f"aqa-train: {score}: {shown} rho {report[f'{shown}_srcc']:.4f} ± {report[f'{shown}_srcc_std']:.4f}, "
            f"R-L2 {report[f'{shown}_rl2']:.4f}, MSE {report[f'{shown}_mse']:.4f} "
            f"({report['selection']}, {len(config.seeds)} seed(s)) -> {folder / 'model.pt'}")
    if several:
        combined = reports["combined"] = write_combined_report(out, reports, config, digest,
                                                               time.perf_counter() - started)
        shown = "test" if data.test is not None else "train"
        say(f"aqa-train: Fisher-z mean over {', '.join(config.scores)}: {shown} rho "
            f"{combined[f'{shown}_srcc']:.4f} ± {combined[f'{shown}_srcc_std']:.4f} -> {out / 'metrics.json'}")
    return reports


def cross_validation_main(request: TrainRequest, data: TrainingData, digest: str, device: str,
                          folders: dict[str, Path], say: Callable[[str], None] = print) -> dict[str, Any]:
    """``--folds K`` / ``--folds-file F``: every score cross-validated on the training split."""
    config = request.config
    if request.folds_file is not None:
        folds = read_folds(request.folds_file)
    else:
        folds = make_folds(data.train.names, request.folds, request.fold_seed)
    check_folds(folds, data.train.names, data.source)
    several = len(config.scores) > 1
    reports: dict[str, Any] = {}
    for score in config.scores:
        started = time.perf_counter()
        train_fold = functools.partial(_train_fold, score=score, config=config, device=device)
        runs = cross_validate(data, folds, train_fold, label=score, progress=request.progress)
        folder = folders[score]
        report = reports[score] = write_cv_outputs(folder, data.train, score, runs, folds, config, digest, device)
        say(f"aqa-train: {score}: {len(folds)}-fold CV rho {report['fold_srcc']:.4f} ± "
            f"{report['fold_srcc_std']:.4f} (Fisher-z over folds; pooled {report['pooled_srcc']:.4f}; "
            f"mean of {len(config.seeds)} seed(s) {report['ensemble']['pooled_srcc']:.4f}), "
            f"R-L2 {report['rl2']:.4f}, MSE {report['mse']:.4f} in {time.perf_counter() - started:.0f} s "
            f"-> {folder / 'metrics.json'}")
    if several:
        combined = reports["combined"] = write_combined_cv_report(request.out, reports, config)
        say(f"aqa-train: Fisher-z mean over {', '.join(config.scores)}: CV rho {combined['fold_srcc']:.4f} ± "
            f"{combined['fold_srcc_std']:.4f} -> {request.out / 'metrics.json'}")
    return reports


def _train_fold(data: TrainingData, *, score: str, config: RunConfig, device: str) -> ScoreRun:
    return train_score(data, score, config, device, progress=False)[0]


def score_folders(out: Path, scores: Sequence[str]) -> dict[str, Path]:
    """Where each score's outputs go: ``out`` itself for one score; for several, ``out/<name>`` with
    the characters outside ``A-Za-z0-9._-`` turned into ``_``. Refuses, before any training, a score
    whose folder would not be a folder of its own inside ``out`` (``..`` wrote model.pt beside
    ``out``; ``.``, an empty name, ``metrics.json``, the run's own file) and two scores that would
    share one (``a/b`` and ``a_b``; ``TES`` and ``tes`` on macOS and Windows): one's outputs would
    overwrite the other's."""
    if len(scores) <= 1:
        return {score: out for score in scores}
    folders: dict[str, Path] = {}
    for score in scores:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", score)
        if not name.strip(".") or name == "metrics.json":
            raise TrainingSetupError(f"score {score!r} cannot name a folder in --out {out}; rename it in the labels "
                                     "or train it alone (one score writes into --out itself)")
        for other, folder in folders.items():
            if folder.name.casefold() == name.casefold():
                raise TrainingSetupError(f"scores {other!r} and {score!r} would share the folder {out / name} in "
                                         "--out (names are made of letters, digits, '.', '-' and '_', any case); "
                                         "rename one in the labels or train them in separate runs")
        folders[score] = out / name
    return folders
