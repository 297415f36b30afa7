"""Model cards: what a trained head is, written beside its ``model.pt`` for a person
(``model_card.md``) and for a script (``model_card.json``).

In the spirit of Hugging Face model cards: a checkpoint alone says nothing a coach can check. The
card gives a one-line description, what the head was trained on (the feature store, how many
videos, the score and the range of it seen in training), the head and preset, how well it did as
the run measured it (the test split's rho; with ``--test-split none`` only the rho on its own
training videos, said to be no measure of accuracy), the features it needs (backbone, weights,
clip plan, detector), the date and the aqa version.

:func:`build_card` is a pure function of aqa-train's metrics report (``pipeline.train.report``);
:func:`write_model_card` writes both files atomically. The description and the scale also travel in
the checkpoint (``models.checkpoint``), so a ``model.pt`` moved without its card still says what
it is.

``model_card.json`` (``card_version`` 1)::

    card_version, description, date (UTC, ISO 8601), package_version, checkpoint ("model.pt")
    score        {name, low, high, videos}: the training split's lowest and highest true score
    trained_on   {features (store path), videos {train, val, test}, train_split, test_split, video_prefix}
    model        {head, preset, members (an ensemble's), seeds, epochs, selection, saved_seed, config_hash}
    evaluation   {split ("test" | "train"), videos, spearman_rho (mean over seeds), spearman_rho_std,
                 relative_l2, mse, checkpoint_spearman_rho (the saved model's own), val_spearman_rho, note}
    features     {backbone, weights_sha256, input_size, clip_plan (in words), clip_plan_settings,
                 detector, detector_weights, streams}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aqa.atomic import written_then_renamed
from aqa.errors import AqaError

CARD_VERSION = 1
MAX_DESCRIPTION = 300  # characters: one line a page can show under the score
STREAM_WORDS = {"both": "the whole scene and a crop around the athlete", "scene": "the whole scene",
                "actor": "a crop around the athlete"}


class ModelCardError(AqaError):
    """A description that cannot be a model card's one line (empty, several lines, too long)."""


def check_description(text: str | None) -> str | None:
    """``text`` stripped, or a one-line :class:`ModelCardError` for what cannot be one line of a card."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        raise ModelCardError("--description is empty; give one line that says what the model scores")
    if "\n" in text or "\r" in text or not text.isprintable():
        raise ModelCardError("--description must be one line of printable text")
    if len(text) > MAX_DESCRIPTION:
        raise ModelCardError(f"--description is {len(text)} characters; a card's line holds at most {MAX_DESCRIPTION}")
    return text


def score_scale(scores: Sequence[float]) -> dict[str, Any]:
    """The scores seen in training: ``{"low", "high", "videos"}`` (what a prediction is read against)."""
    values = [float(value) for value in scores]
    return {"low": min(values), "high": max(values), "videos": len(values)}


def head_label(report: Mapping[str, Any]) -> str:
    """The head in words: "cofinal", or "ensemble of cofinal + mlp"."""
    members = (report.get("config") or {}).get("head", {}).get("members")
    return f"ensemble of {' + '.join(members)}" if report["head"] == "ensemble" and members else report["head"]


def default_description(report: Mapping[str, Any], scale: Mapping[str, Any]) -> str:
    """What a run without ``--description`` is, from facts alone: head, score and its range, features, videos."""
    head = head_label(report)
    head = f"an {head} heads" if head.startswith("ensemble") else f"a {head} head"
    return (f"Predicts {report['score']} ({scale['low']:.4g}-{scale['high']:.4g} in training) with "
            f"{head} on {report['provenance']['backbone']} features; trained on {scale['videos']} "
            f"training videos in {Path(report['source']).name}")


def clip_plan_words(plan: Mapping[str, Any]) -> str:
    """A clip plan (``extractors.clips.ClipPlanConfig`` as data) in words."""
    if not plan:
        return "clip plan not recorded (imported features: aqa-predict cannot rebuild them from a video)"
    if plan.get("kind") == "snippets":
        return (f"snippets of {plan['clip_length']} frames every {plan['stride']} frames over {plan['window']} "
                "frames sampled evenly from the video")
    rate = f" after resampling to {plan['target_fps']:g} fps" if plan.get("target_fps") else ""
    return f"consecutive clips of {plan['clip_length']} frames{rate}"


def evaluation(report: Mapping[str, Any]) -> dict[str, Any]:
    """How well the run measured the head: on the test split, or (none) on its own training videos."""
    split = report.get("predictions_split", "test")
    saved = next((row for row in report["seeds"] if row["seed"] == report["saved_seed"]), report["seeds"][0])
    own = (report.get("combined") or saved).get(f"{split}_srcc")
    note = (f"on {report['videos'].get('test', 0)} test videos the head never saw, mean over "
            f"{len(report['seeds'])} seed(s)" if split == "test" else
            "no test split (--test-split none): rho on the videos it was trained on, not a measure of accuracy on "
            "new videos; cross-validate (aqa-train --folds) to measure that")
    return {"split": split, "videos": report["videos"].get(split, 0), "spearman_rho": report.get(f"{split}_srcc"),
            "spearman_rho_std": report.get(f"{split}_srcc_std"), "relative_l2": report.get(f"{split}_rl2"),
            "mse": report.get(f"{split}_mse"), "checkpoint_spearman_rho": own,
            "val_spearman_rho": report.get("val_srcc"), "note": note}


def build_card(report: Mapping[str, Any], *, description: str, scale: Mapping[str, Any],
               date: datetime | None = None) -> dict[str, Any]:
    """The card of one score's run, from its metrics report (``write_score_outputs``)."""
    provenance, config = report["provenance"], report.get("config") or {}
    return {
        "card_version": CARD_VERSION, "description": description,
        "date": (date or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "package_version": report["package_version"], "checkpoint": report.get("checkpoint", "model.pt"),
        "score": {"name": report["score"], **scale},
        "trained_on": {"features": report["source"], "videos": dict(report["videos"]),
                       "train_split": config.get("train_split"), "test_split": config.get("test_split"),
                       "video_prefix": config.get("video_prefix") or None},
        "model": {"head": report["head"], "preset": report.get("preset"),
                  "members": config.get("head", {}).get("members") if report["head"] == "ensemble" else None,
                  "seeds": [row["seed"] for row in report["seeds"]], "epochs": report["epochs"],
                  "selection": report["selection"], "saved_seed": report["saved_seed"],
                  "config_hash": report["config_hash"]},
        "evaluation": evaluation(report),
        "features": {"backbone": provenance["backbone"], "weights_sha256": provenance["weights_sha256"],
                     "input_size": list(provenance["input_size"]),
                     "clip_plan": clip_plan_words(provenance["clip_plan"]),
                     "clip_plan_settings": dict(provenance["clip_plan"]), "detector": provenance["detector"] or None,
                     "detector_weights": provenance["detector_weights"] or None, "streams": report["streams"]},
    }


def _number(value: Any, digits: int = 3) -> str:
    return "undefined" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card for a person: the description first, then one short section per question."""
    score, data, model, result, features = (card[key] for key in ("score", "trained_on", "model", "evaluation",
                                                                   "features"))
    videos = data["videos"]
    held = f", {videos['val']} held out to pick the epoch" if videos.get("val") else ""
    members = f" ({' + '.join(model['members'])})" if model.get("members") else ""
    size = f"input {'x'.join(map(str, features['input_size']))}, " if features["input_size"] else ""
    spread = f" ± {_number(result['spearman_rho_std'])}" if len(model["seeds"]) > 1 else ""
    lines = [
        f"# Model card: {score['name']} ({model['head']})", "", card["description"], "",
        "## What it was trained on", "",
        f"- features: `{data['features']}`: {videos.get('train', 0)} training videos{held}, "
        f"{videos.get('test', 0)} test videos" + (f" (names starting {data['video_prefix']!r})"
                                                   if data.get("video_prefix") else ""),
        f"- score: `{score['name']}`, from {score['low']:.4g} to {score['high']:.4g} on the {score['videos']} training "
        "videos; a prediction outside that range is an extrapolation", "",
        "## How well it scores", "",
        f"- Spearman rho {_number(result['spearman_rho'])}{spread}, {result['note']}; this checkpoint alone: "
        f"{_number(result['checkpoint_spearman_rho'])}",
        f"- relative L2 {_number(result['relative_l2'], 2)}, mean squared error {_number(result['mse'])}", "",
        "## Model", "",
        f"- head `{model['head']}`{members}, preset `{model['preset'] or 'none'}`; seeds "
        f"{', '.join(map(str, model['seeds']))}, {model['epochs']} epochs ({model['selection']}); "
        f"config hash `{model['config_hash']}`", "",
        "## Features it needs (aqa-predict rebuilds them from the raw video)", "",
        f"- backbone `{features['backbone']}` (weights sha256 `{features['weights_sha256'][:16] or 'none'}`), "
        f"{size}{features['clip_plan']}",
        f"- sees {STREAM_WORDS.get(features['streams'], features['streams'])}"
        + (f"; athlete detector `{features['detector']}`" if features.get("detector") else ""), "",
        f"Written {card['date']} by aqa {card['package_version']} beside `{card['checkpoint']}`.",
    ]
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, card: Mapping[str, Any]) -> tuple[Path, Path]:
    """``folder/model_card.md`` and ``folder/model_card.json``, each whole or not at all."""
    paths = folder / "model_card.md", folder / "model_card.json"
    for path, text in zip(paths, (card_markdown(card), json.dumps(card, indent=2) + "\n")):
        with written_then_renamed(path) as temporary:
            temporary.write_text(text)
    return paths
