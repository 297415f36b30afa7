"""models.cofinal: the paper's CoFInAl head (coarse="classify"), its parts, losses and ablations."""

from __future__ import annotations

import math

import pytest
import torch

from aqa.config import config_hash, config_to_dict, config_to_json
from aqa.models import HeadConfigError, build_head
from aqa.models.cofinal import CoFInAlConfig, CoFInAlHead, GradeParsing, TemporalFusion, graph_regularization
from aqa.models.grading import reassemble_score
from aqa.models.windows import evenly_spaced_windows
from torch_threads import single_thread

TINY = {"procedure_dim": 16, "score_dim": 12, "num_subgrades": 10, "dropout": 0.0}
ABLATIONS = {
    "full": {},
    "no_graph_reg": {"use_graph_reg": False},
    "no_tfm": {"use_tfm": False},
    "no_gpm": {"use_gpm": False},
    "no_fgs": {"use_fgs": False},
}


def _head(seed: int = 0, input_dim: int = 6, **overrides) -> CoFInAlHead:
    torch.manual_seed(seed)
    return build_head("cofinal", {**TINY, **overrides}, input_dim=input_dim).eval()


def _batch(batch: int = 3, clips: int = 7, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.randn(batch, clips, dim, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(batch, clips, dtype=torch.bool)
    mask[0, clips // 2:] = False
    return features, mask


def test_defaults_are_the_papers():
    c = CoFInAlConfig()
    assert (c.coarse, c.procedure_dim, c.score_dim, c.num_procedures, c.num_grades, c.num_subgrades) == (
        "classify", 512, 256, 5, 4, 100)
    assert (c.dropout, c.lambda_coarse, c.lambda_fine, c.lambda_graph, c.train_window) == (0.3, 1, 1, 1, 68)


def test_outputs_and_shapes():
    head = _head()
    features, mask = _batch()
    out = head(features, mask)
    assert out["score"].shape == out["score_argmax"].shape == out["score_expectation"].shape == (3,)
    assert out["coarse_logits"].shape == (3, 4) and out["fine_logits"].shape == (3, 10)
    assert out["grade_mask"].shape == (3, 4) and out["fine_features"].shape == (3, 12)
    assert out["procedure_attention"].shape == (3, 5, 7)
    assert torch.equal(out["score"], out["score_expectation"])  # the default read-out
    assert ((out["score"] >= 0) & (out["score"] < 1)).all()


def test_argmax_readout_is_eq6_on_the_argmax_classes():
    head = _head(score_readout="argmax")
    out = head(*_batch())
    expected = reassemble_score(out["coarse_logits"].argmax(-1), out["fine_logits"].argmax(-1), 4, 10)
    assert torch.allclose(out["score"], expected) and torch.equal(out["score"], out["score_argmax"])


@pytest.mark.parametrize("clips", [1, 2, 4])
def test_fewer_clips_than_procedures_still_pool(clips):
    out = _head()(torch.randn(2, clips, 6))
    assert out["procedure_attention"].shape == (2, 5, clips)
    assert torch.isfinite(out["score"]).all()


def test_procedure_attention_is_a_distribution_over_real_clips():
    features, mask = _batch()
    attention = _head()(features, mask)["procedure_attention"]
    assert torch.allclose(attention.sum(-1), torch.ones(3, 5))
    assert attention[0, :, 3:].abs().sum() == 0


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_every_ablation_is_padding_invariant(ablation):
    head = _head(**ABLATIONS[ablation])
    features, _ = _batch(clips=5)
    padded = torch.cat([features, torch.randn(3, 4, 6) * 50], dim=1)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[:, :5] = True
    with torch.no_grad():
        short, long = head(features), head(padded, mask)
    for key in ("score", "score_argmax", "score_expectation", "coarse_logits"):
        assert torch.allclose(short[key], long[key], atol=1e-5), key
    assert torch.allclose(short["procedure_attention"], long["procedure_attention"][..., :5], atol=1e-6)


@pytest.mark.parametrize(("ablation", "parts"), [
    ("full", {"score", "coarse", "fine", "graph"}),
    ("no_graph_reg", {"score", "coarse", "fine"}),
    ("no_tfm", {"score", "coarse", "fine", "graph"}),
    ("no_gpm", {"score", "coarse", "fine"}),
    ("no_fgs", {"score", "coarse", "graph"}),
])
def test_loss_parts_follow_the_ablation_and_sum_to_the_total(ablation, parts):
    head = _head(**ABLATIONS[ablation])
    out = head(*_batch())
    total, named = head.loss(out, torch.tensor([0.1, 0.5, 0.93]))
    assert set(named) == parts
    weights = {"score": 1.0, "coarse": 1.0, "fine": 1.0, "graph": 1.0}
    assert total.item() == pytest.approx(sum(weights[k] * v.item() for k, v in named.items()), rel=1e-5)
    assert all(not value.requires_grad for value in named.values())


def test_ablations_drop_their_modules():
    assert _head(use_tfm=False).fusion.query is None
    assert not hasattr(_head(use_gpm=False), "parsing")
    without_fgs = _head(use_fgs=False)
    assert "etf" not in without_fgs.state_dict() and "fine_logits" not in without_fgs(*_batch())


def test_without_fgs_the_subgrade_is_the_middle_of_the_grade():
    head = _head(use_fgs=False, score_readout="argmax")
    out = head(*_batch())
    assert torch.allclose(out["score"], (out["coarse_logits"].argmax(-1) + 0.5) / 4)


def test_coarse_loss_is_cross_entropy_on_the_grade_and_fine_loss_is_eq15():
    head = _head()
    out = head(*_batch())
    targets = torch.tensor([0.1, 0.5, 0.93])  # grades 0, 2, 3; sub-grades 4, 0, 7 (G'=10)
    _, parts = head.loss(out, targets)
    expected_ce = torch.nn.functional.cross_entropy(out["coarse_logits"], torch.tensor([0, 2, 3]))
    assert parts["coarse"].item() == pytest.approx(expected_ce.item(), rel=1e-6)
    unit = torch.nn.functional.normalize(out["fine_features"], dim=-1)
    cosine = torch.stack([unit[i] @ head.etf[:, j] for i, j in enumerate([4, 0, 7])])
    assert parts["fine"].item() == pytest.approx(((cosine - 1) ** 2).mean().item(), rel=1e-5)
    assert parts["score"].item() == pytest.approx(((out["score_expectation"] - targets) ** 2).mean().item())


def test_etf_is_a_seeded_buffer_in_the_state_dict_not_a_parameter():
    head = _head(etf_seed=5)
    assert "etf" in head.state_dict()
    assert all(param is not head.etf for param in head.parameters())
    assert torch.equal(_head(seed=1, etf_seed=5).etf, head.etf)
    restored = _head(seed=2, etf_seed=6)
    restored.load_state_dict(head.state_dict())
    assert torch.equal(restored.etf, head.etf)


def test_graph_regularization_vanishes_for_prototypes_spaced_on_a_half_circle():
    angles = torch.linspace(0, math.pi, 4)
    ideal = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(4)], dim=1) * 3.0
    assert graph_regularization(ideal).item() == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.9, 0.0, 0.1], [1.0, 0.0, 0.05]])
    assert graph_regularization(collapsed).item() > 0.1


def test_graph_regularization_pulls_prototypes_towards_the_grade_order():
    torch.manual_seed(0)
    prototypes = torch.nn.Parameter(torch.randn(4, 8))
    optimizer = torch.optim.Adam([prototypes], lr=0.1)
    start = graph_regularization(prototypes).item()
    with single_thread():
        for _ in range(50):
            optimizer.zero_grad()
            graph_regularization(prototypes).backward()
            optimizer.step()
    assert graph_regularization(prototypes).item() < start / 10


def test_tfm_and_gpm_shapes():
    fusion = TemporalFusion(6, 8, 5)
    fused, attention = fusion(torch.randn(2, 9, 6), torch.ones(2, 9, dtype=torch.bool))
    assert fused.shape == (2, 5, 8) and attention.shape == (2, 5, 9)
    coarse, fine, grade_mask = GradeParsing(8, 4, 3)(fused)
    assert coarse.shape == fine.shape == (2, 3, 4)
    assert torch.allclose(grade_mask.sum(-1), torch.ones(2))


def test_predict_details():
    head = _head()
    features, mask = _batch()
    details = head.predict_details(head(features, mask))
    assert details["grade"].dtype == torch.int64 and ((details["grade"] >= 0) & (details["grade"] < 4)).all()
    assert ((details["subgrade"] >= 0) & (details["subgrade"] < 10)).all()
    assert details["grade_probs"].shape == (3, 4) and details["procedure_attention"].shape == (3, 5, 7)
    assert {"score", "score_argmax", "score_expectation", "grade_mask"} <= set(details)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"score_dim": 64}, "score_dim >= 100"),
    ({"dropout": 1.0}, "dropout"),
    ({"num_grades": 0}, "num_grades"),
    ({"fine_temperature": 0.0}, "fine_temperature"),
])
def test_invalid_configs_are_rejected_with_a_reason(overrides, message):
    with pytest.raises(HeadConfigError, match=message):
        CoFInAlConfig(**overrides)


def test_an_etf_is_not_needed_without_fgs():
    head = _head(score_dim=8, num_subgrades=100, use_fgs=False)
    assert head(*_batch())["score"].shape == (3,)


def test_auxiliary_scores_read_the_pooled_procedures_and_add_their_own_loss():
    """``aux_scores``: one output in (0, 1) per auxiliary score, read from the mean procedure feature
    (the TFM output that the coarse and fine paths share); the loss adds ``aux_weight`` x their MSE
    on targets ``[B, 1 + A]`` and is the score's alone on ``[B]`` (validation)."""
    head = _head(aux_scores=("PCS", "ded"), aux_weight=0.5)
    features, mask = _batch()
    out = head(features, mask)
    assert out["aux"].shape == (3, 2) and ((out["aux"] > 0) & (out["aux"] < 1)).all()
    targets = torch.tensor([[0.1, 0.8, 0.3], [0.5, 0.2, 0.6], [0.93, 0.4, 0.9]])
    total, parts = head.loss(out, targets)
    alone, alone_parts = head.loss(out, targets[:, 0])
    aux_mse = ((out["aux"] - targets[:, 1:]) ** 2).mean()
    assert set(parts) == set(alone_parts) | {"aux"} and parts["aux"].item() == pytest.approx(aux_mse.item())
    assert total.item() == pytest.approx(alone.item() + 0.5 * aux_mse.item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"expected targets \[3, 3\]"):
        head.loss(out, targets[:, :2])
    head.train()
    head(features, mask)["aux"].sum().backward()  # the auxiliary scores train the shared TFM
    assert head.fusion.value.weight.grad.abs().sum() > 0 and head.classifier[1].weight.grad is None


def test_auxiliary_scores_are_never_read_when_scoring():
    """The read-out is built last, so the shared layers start as without it and the scores match a
    head without auxiliary scores; without them there is no ``aux`` output, module or target width."""
    plain, joint = _head(), _head(aux_scores=("PCS",))
    features, mask = _batch()
    shared = {key: value for key, value in joint.state_dict().items() if not key.startswith("aux_readout.")}
    assert set(shared) == set(plain.state_dict()) and all(torch.equal(plain.state_dict()[k], v)
                                                           for k, v in shared.items())
    for key in ("score", "score_argmax", "coarse_logits", "fine_logits"):
        assert torch.equal(plain(features, mask)[key], joint(features, mask)[key]), key
    assert "aux" not in plain(features, mask) and plain.aux_readout is None
    with pytest.raises(ValueError, match=r"expected targets \[3\]"):
        plain.loss(plain(features, mask), torch.zeros(3, 2))


def test_auxiliary_scores_are_averaged_over_test_windows_like_the_score():
    head = _head(aux_scores=("PCS",), train_window=4, test_windows=3)
    features, mask = _batch(clips=10)
    out = head(features, mask)
    windows = evenly_spaced_windows(*head.prepare_inputs(features, mask), 4, 3)
    expected = head._score_clips(*windows)
    assert torch.allclose(out["score"], expected["score"].view(3, 3).mean(1), atol=1e-6)
    assert torch.allclose(out["aux"], expected["aux"].view(3, 3, 1).mean(1), atol=1e-6)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"aux_scores": ("PCS", "PCS")}, "distinct"),
    ({"aux_scores": ("",)}, "distinct"),
    ({"aux_weight": -1.0}, "aux_weight"),
])
def test_invalid_auxiliary_settings_are_rejected(overrides, message):
    with pytest.raises(HeadConfigError, match=message):
        CoFInAlConfig(**overrides)


def test_the_auxiliary_settings_leave_the_hash_of_configs_made_before_them_unchanged():
    """Added after CoFInAl runs were hashed: at their defaults they are not hashed (their folders
    still resume); set, they are."""
    assert "aux_" not in config_to_json(CoFInAlConfig()) and "aux_scores" in config_to_dict(CoFInAlConfig())
    assert config_hash(CoFInAlConfig(aux_scores=("PCS",))) != config_hash(CoFInAlConfig())
