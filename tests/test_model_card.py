"""pipeline.train.model_card: the card's one line, its words for a clip plan, its Markdown (the CLI path
that writes it beside model.pt is in test_train and test_ensemble)."""

from __future__ import annotations

import json

import pytest

from aqa.pipeline.train.model_card import (
    ModelCardError,
    build_card,
    card_markdown,
    check_description,
    clip_plan_words,
    default_description,
    write_model_card,
)

PROVENANCE = {"backbone": "i3d", "weights_sha256": "ab" * 32, "clip_plan": {"kind": "segments", "clip_length": 16,
                                                                             "target_fps": None},
              "input_size": [112, 112], "detector": "blazepose", "detector_weights": "cd"}


def report(split: str = "test", seeds=(0, 1)) -> dict:
    """What write_score_outputs hands to build_card, cut to what the card reads."""
    rows = [{"seed": seed, f"{split}_srcc": 0.5 + seed / 10} for seed in seeds]
    return {"score": "TES", "head": "ensemble", "preset": "fisv-tes", "selection": "fixed-epochs", "epochs": 50,
            f"{split}_srcc": 0.55, f"{split}_srcc_std": 0.07, f"{split}_rl2": 4.2, f"{split}_mse": 20.0,
            "val_srcc": None, "seeds": rows, "saved_seed": 0, "combined": {f"{split}_srcc": 0.6},
            "videos": {"train": 400, "val": 0, "test": 100 if split == "test" else 0}, "predictions_split": split,
            "streams": "both", "provenance": PROVENANCE, "source": "/data/fisv.h5", "config_hash": "feed",
            "package_version": "0.1.0", "config": {"head": {"members": ["cofinal", "mlp"]}, "train_split": "train",
                                                   "test_split": "test", "video_prefix": ""}}


def test_a_description_is_one_printable_line():
    assert check_description("  a line  ") == "a line" and check_description(None) is None
    for bad, message in (("", "empty"), ("a\nb", "one line"), ("a\x1b[31m", "one line"), ("x" * 301, "at most 300")):
        with pytest.raises(ModelCardError, match=message):
            check_description(bad)


def test_the_default_description_names_the_head_in_plain_english():
    scale = {"low": 6.3, "high": 42.8, "videos": 400}
    assert default_description(report(), scale).startswith(
        "Predicts TES (6.3-42.8 in training) with an ensemble of cofinal + mlp heads on i3d features; trained on 400")
    alone = {**report(), "head": "cofinal", "config": {"head": {}}}
    assert "with a cofinal head on i3d features" in default_description(alone, scale)


def test_clip_plans_in_words():
    assert clip_plan_words({"kind": "segments", "clip_length": 32, "target_fps": 25}) == \
        "consecutive clips of 32 frames after resampling to 25 fps"
    assert "snippets of 16 frames every 10 frames over 103" in clip_plan_words(
        {"kind": "snippets", "clip_length": 16, "stride": 10, "window": 103})
    assert "not recorded" in clip_plan_words({})


def test_the_card_reports_the_rho_the_run_measured_and_says_when_it_is_no_measure(tmp_path):
    scale = {"low": 13.2, "high": 38.8, "videos": 400}
    card = build_card(report(), description="TES of Fis-V programs", scale=scale)
    assert card["evaluation"]["spearman_rho"] == 0.55 and card["evaluation"]["checkpoint_spearman_rho"] == 0.6
    assert card["model"]["members"] == ["cofinal", "mlp"] and card["score"] == {"name": "TES", **scale}
    text = card_markdown(card)
    assert "Spearman rho 0.550 ± 0.070, on 100 test videos the head never saw" in text
    assert "head `ensemble` (cofinal + mlp), preset `fisv-tes`" in text and "from 13.2 to 38.8 on the 400" in text
    assert "input 112x112, consecutive clips of 16 frames" in text
    alone = build_card(report("train", seeds=(0,)), description="final model", scale=scale)
    assert alone["evaluation"]["split"] == "train" and "not a measure of accuracy" in card_markdown(alone)
    assert "±" not in card_markdown(alone)  # one seed: no spread to give
    markdown, document = write_model_card(tmp_path, card)
    assert json.loads(document.read_text()) == card and markdown.read_text() == text
