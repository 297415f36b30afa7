"""models.registry: walk every registered head (and both CoFInAl variants) through the uniform face.

A pairwise head (FSPN) gets its exemplar bank at build time and, in train mode, one exemplar per
query, as a training loop gives them: see :func:`_build` and :func:`_forward`.
"""

from __future__ import annotations

import pytest
import torch

from aqa.config import config_from_dict, config_to_dict
from aqa.models import (
    HeadConfigError,
    ScoringHead,
    UnknownHeadError,
    build_head,
    config_type,
    head_config,
    list_heads,
    list_presets,
)
from aqa.models.fspn_exemplars import Exemplars
from aqa.models.presets import PRESETS

DIM = 6
TINY = {
    "cofinal": {"procedure_dim": 16, "score_dim": 12, "num_subgrades": 10, "dropout": 0.0},
    "mlp": {"hidden_dims": (8,), "dropout": 0.0},
    "fspn": {"parser_channels": (16, 16, 16), "smt_widths": (8,), "smt_blocks": 1, "smt_heads": 2, "fusion_dim": 8,
             "regressor_dim": 8, "num_bins": 4, "num_exemplars": 2},
}
VARIANTS = {  # every head that trains itself; the ensemble of trained heads has its own tests (test_ensemble.py)
    **{name: (name, TINY.get(name, {})) for name in list_heads() if name != "ensemble"},
    "cofinal-likert": ("cofinal", {**TINY["cofinal"], "coarse": "likert", "likert_heads": 2}),
}
UNIT_RANGE = {"cofinal", "mlp"}  # read-outs bounded to [0, 1) by construction (Likert levels are not)


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    return request.param


def _build(variant: str, seed: int = 0) -> ScoringHead:
    name, overrides = VARIANTS[variant]
    torch.manual_seed(seed)
    head = build_head(name, overrides, input_dim=DIM)
    if head.pairwise:  # bins and exemplar bank from a fixed "training set"
        features = torch.randn(6, 4, DIM, generator=torch.Generator().manual_seed(9))
        scores, groups = torch.linspace(0.1, 0.9, 6), torch.tensor([0.0, 1.0] * 3)
        head.fit_bins(scores, groups)
        head.exemplars.fill(features, torch.ones(6, 4, dtype=torch.bool), scores, groups)
    if head.closed_form:  # solved on a fixed "training set", as the training loop does
        features = torch.randn(8, 4, DIM, generator=torch.Generator().manual_seed(9 + seed))
        head.solve(features, torch.ones(8, 4, dtype=torch.bool), torch.linspace(0.1, 0.9, 8))
    return head


def _forward(head: ScoringHead, features: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """``head(features, mask)``; a pairwise head in train mode also gets one exemplar per query (the
    batch rolled by one), as a training loop gives it."""
    if not (head.pairwise and head.training):
        return head(features, mask)
    rolled = torch.ones(features.shape[:2], dtype=torch.bool) if mask is None else mask.roll(1, 0)
    scores = torch.linspace(0.2, 0.8, features.shape[0])
    return head(features, mask, exemplars=Exemplars(features.roll(1, 0), rolled, scores))


def _padded_batch(batch: int = 4, clips: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.randn(batch, clips, DIM, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(batch, clips, dtype=torch.bool)
    mask[0, 2:] = False
    mask[1, 4:] = False
    return features, mask


def test_the_paper_heads_are_registered():
    assert {"cofinal", "fspn", "mlp"} <= set(list_heads())


@pytest.mark.parametrize("clips", [1, 5, 68])
def test_forward_shapes(variant, clips):
    head = _build(variant).eval()
    out = _forward(head, torch.randn(2, clips, DIM))
    assert out["score"].shape == (2,) and torch.isfinite(out["score"]).all()
    if variant in UNIT_RANGE:
        assert ((out["score"] >= 0) & (out["score"] < 1)).all()
    details = head.predict_details(out)
    assert torch.equal(details["score"], out["score"])


def test_padding_does_not_change_a_videos_outputs(variant):
    head = _build(variant).eval()
    features = torch.randn(3, 5, DIM, generator=torch.Generator().manual_seed(2))
    padded = torch.cat([features, torch.full((3, 7, DIM), float("nan"))], dim=1)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[:, :5] = True
    with torch.no_grad():
        short, long = _forward(head, features), _forward(head, padded, mask)
    for key, value in short.items():
        other = long[key]
        if value.shape != other.shape:  # a clip (or step) axis last: compare the real part, padding gets nothing
            other, rest = other[..., : value.shape[-1]], other[..., value.shape[-1]:]
            assert rest.abs().sum() == 0, key
        assert torch.allclose(value, other, atol=1e-5) if value.is_floating_point() else torch.equal(value, other), key


def test_gradients_reach_every_trainable_parameter(variant):
    head = _build(variant).train()
    if head.closed_form:  # solved, never stepped: nothing may pretend to be trainable
        assert not list(head.parameters())
        return
    total, parts = head.loss(_forward(head, *_padded_batch()), torch.tensor([0.05, 0.3, 0.62, 0.97]))
    assert torch.isfinite(total) and all(torch.isfinite(value) for value in parts.values())
    total.backward()
    missing = [name for name, param in head.named_parameters() if param.requires_grad
               and (param.grad is None or not torch.isfinite(param.grad).all() or param.grad.abs().sum() == 0)]
    assert not missing


def test_fixed_buffers_survive_an_optimizer_step(variant):
    head = _build(variant).train()
    if head.closed_form:
        return  # no parameters, no optimiser (see the test above)
    before = {name: buffer.clone() for name, buffer in head.named_buffers() if name.endswith("etf")}
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        head.loss(_forward(head, *_padded_batch()), torch.tensor([0.05, 0.3, 0.62, 0.97]))[0].backward()
        optimizer.step()
    assert all(torch.equal(buffer, dict(head.named_buffers())[name]) for name, buffer in before.items())
    if variant.startswith("cofinal"):
        assert before, "CoFInAl keeps its ETF as a buffer"


def test_same_seed_same_head_and_outputs(variant):
    first, second = _build(variant, seed=3).eval(), _build(variant, seed=3).eval()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    features, mask = _padded_batch()
    assert torch.equal(_forward(first, features, mask)["score"], _forward(second, features, mask)["score"])
    other = _build(variant, seed=4)
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))


def test_bad_inputs_are_rejected_with_a_reason(variant):
    head = _build(variant)
    with pytest.raises(ValueError, match=f"expected features \\[B, T, {DIM}\\]"):
        _forward(head, torch.randn(2, 3, DIM + 1))
    with pytest.raises(ValueError, match="at least one real clip"):
        _forward(head, torch.randn(2, 3, DIM), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="bool mask"):
        _forward(head, torch.randn(2, 3, DIM), torch.ones(2, 3))
    with pytest.raises(ValueError, match="expected targets"):
        head.loss(_forward(head, torch.randn(2, 3, DIM)), torch.rand(3))


def test_configs_round_trip_through_the_config_machinery(variant):
    name, overrides = VARIANTS[variant]
    config = head_config(name, "fisv-pcs", overrides)
    assert config_from_dict(config_type(name), config_to_dict(config)) == config


@pytest.mark.parametrize("preset", list_presets())
def test_presets_carry_the_papers_per_dataset_settings(preset):
    window, dropout, alpha = (68, 0.3, 1.0) if preset.startswith("rg-") else (124, 0.7, 0.5)
    cofinal = head_config("cofinal", preset)
    cofinal_window = 32 if preset.startswith("fisv-") else window  # chosen by CV (docs/accuracy.md)
    assert (cofinal.train_window, cofinal.dropout, cofinal.triplet_weight) == (cofinal_window, dropout, alpha)
    mlp = head_config("mlp", preset)  # takes the keys it has, ignores the CoFInAl-only ones
    assert (mlp.train_window, mlp.dropout) == (window, dropout)
    assert build_head("mlp", preset, input_dim=DIM).config == mlp


def test_presets_cover_the_papers_datasets():
    assert set(PRESETS) == {"rg-ball", "rg-clubs", "rg-hoop", "rg-ribbon", "fisv-tes", "fisv-pcs"}


def test_build_head_accepts_none_a_preset_a_mapping_or_a_config():
    assert build_head("mlp", None, DIM).config == config_type("mlp")()
    assert build_head("mlp", {"hidden_dims": (4,)}, DIM).config.hidden_dims == (4,)
    config = config_type("mlp")(dropout=0.5)
    head = build_head("mlp", config, DIM)
    assert head.config is config and head.head_name == "mlp" and head.input_dim == DIM
    with pytest.raises(TypeError, match="takes a MLPConfig"):
        build_head("mlp", config_type("cofinal")(), DIM)


def test_unknown_names_and_keys_say_what_exists():
    with pytest.raises(UnknownHeadError, match="unknown head 'fspn2'; choose one of: .*cofinal"):
        build_head("fspn2")
    with pytest.raises(UnknownHeadError, match="unknown preset 'rg-rope'"):
        head_config("cofinal", "rg-rope")
    with pytest.raises(HeadConfigError, match="has no setting 'num_grade'"):
        build_head("cofinal", {"num_grade": 5})


def test_literal_choices_are_enforced_and_yaml_lists_become_tuples():
    with pytest.raises(HeadConfigError, match="likert_activation: 'tanh' is not one of"):
        head_config("cofinal", overrides={"likert_activation": "tanh"})
    assert head_config("mlp", overrides={"hidden_dims": [4, 2]}).hidden_dims == (4, 2)


def test_a_preset_can_carry_settings_for_one_head_only():
    fspn, cofinal = head_config("fspn", "fisv-tes"), head_config("cofinal", "fisv-tes")
    assert (fspn.train_window, fspn.train_lr, fspn.train_epochs, fspn.use_bce) == (300, 3e-4, 20, False)
    assert head_config("fspn", "rg-ball").use_bce  # the paper's interval read-out elsewhere
    assert (cofinal.train_window, cofinal.test_windows, cofinal.lambda_score) == (32, 25, 25.0)
    assert head_config("mlp", "fisv-tes").train_window == 124 and head_config("fspn", "rg-ball").train_window == 68
