"""models.cofinal_likert: the authors' CoFInAl (coarse="likert"): Likert levels, triplet loss, masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aqa.models import HeadConfigError, build_head
from aqa.models.cofinal import CoFInAlConfig
from aqa.models.cofinal_likert import CoFInAlLikertHead, hard_triplet_loss

TINY = {"coarse": "likert", "score_dim": 12, "num_subgrades": 10, "likert_heads": 2, "dropout": 0.0}


def _head(seed: int = 0, **overrides) -> CoFInAlLikertHead:
    torch.manual_seed(seed)
    return build_head("cofinal", {**TINY, **overrides}, input_dim=8).eval()


def _padded(features: torch.Tensor, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, clips, dim = features.shape
    padded = torch.cat([features, torch.randn(batch, extra, dim) * 50], dim=1)
    mask = torch.zeros(batch, clips + extra, dtype=torch.bool)
    mask[:, :clips] = True
    return padded, mask


def test_builds_the_likert_head_with_its_outputs():
    head = _head()
    assert isinstance(head, CoFInAlLikertHead)
    out = head(torch.randn(3, 6, 8))
    assert out["query_embeddings"].shape == (3, 4, 12) and out["procedure_attention"].shape == (3, 4, 6)
    assert out["fine_embedding"].shape == (3, 12) and out["fine_logits"].shape == (3, 10)
    assert torch.allclose(out["fine_embedding"].norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out["coarse_score"], (out["coarse"] + 1 - out["coarse_mirror"]) / 2)
    step = 1 / (100 * 10)
    assert torch.allclose(out["score_argmax"], out["coarse_score"] + out["fine_logits"].argmax(-1) * step)


@pytest.mark.parametrize(("mode", "levels", "mirrored"), [
    ("relu", [0, 1 / 3, 2 / 3, 1], [1, 2 / 3, 1 / 3, 0]),
    ("relu-0.5", [0.25, 0.5, 0.75, 1], [1, 0.75, 0.5, 0.25]),
    ("sigmoid", [0.1, 0.2, 0.8, 1], [1, 1, -1, -1]),
    ("leaky-relu", [-1, -0.8, 0.8, 1], [1, 0.8, -0.8, -1]),
])
def test_activation_modes_are_the_appendix_likert_levels(mode, levels, mirrored):
    head = _head(likert_activation=mode)
    assert head.likert_levels.tolist() == [pytest.approx(levels), pytest.approx(mirrored)]


def test_coarse_is_a_convex_combination_of_the_levels():
    head = _head(likert_activation="leaky-relu")
    out = head(torch.randn(16, 5, 8))
    assert ((out["coarse"] >= -1) & (out["coarse"] <= 1)).all()


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_padding_invariant_in_eval_and_in_train_mode(mode):
    head = _head()
    head.train(mode == "train")  # dropout 0: train mode differs only in batch-norm statistics
    features = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(1))
    padded, mask = _padded(features, 3)
    short, long = head(features), head(padded, mask)
    for key in ("score", "coarse", "coarse_mirror", "fine_logits", "query_embeddings"):
        assert torch.allclose(short[key], long[key], atol=1e-4), key
    assert torch.allclose(short["procedure_attention"], long["procedure_attention"][..., :5], atol=1e-5)


def test_loss_targets_come_from_the_100_step_grid():
    head = _head(triplet_weight=0.0)
    out = head(torch.randn(2, 5, 8))
    targets = torch.tensor([0.123456, 0.5])  # coarse 0.12 and 0.50; sub-grades on G'=10: 3 and 0
    _, parts = head.loss(out, targets)
    coarse_target = torch.tensor([0.12, 0.50])
    expected = F.mse_loss(out["coarse"], coarse_target) + F.mse_loss(out["coarse_mirror"], 1 - coarse_target)
    assert parts["coarse"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["fine"].item() == pytest.approx(F.l1_loss(out["fine_embedding"], head.etf[:, [3, 0]].T).item())
    assert set(parts) == {"coarse", "fine"}


def test_triplet_loss_is_weighted_by_alpha():
    head = _head(triplet_weight=0.5)
    out = head(torch.randn(3, 5, 8))
    total, parts = head.loss(out, torch.tensor([0.2, 0.4, 0.6]))
    assert total.item() == pytest.approx((parts["coarse"] + parts["fine"] + 0.5 * parts["triplet"]).item(), rel=1e-5)


def test_lambda_score_weighs_the_likert_heads_mse():
    """Once silently ignored by this variant; the Fis-V presets set it to 25."""
    head = _head(triplet_weight=0.5, lambda_score=25.0)
    out = head(torch.randn(3, 5, 8))
    total, parts = head.loss(out, torch.tensor([0.2, 0.4, 0.6]))
    expected = 25.0 * parts["coarse"] + parts["fine"] + 0.5 * parts["triplet"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_without_fgs_the_coarse_heads_regress_the_score_itself():
    head = _head(use_fgs=False, triplet_weight=0.0)
    out = head(torch.randn(2, 5, 8))
    assert "fine_logits" not in out and torch.equal(out["score"], out["coarse_score"])
    _, parts = head.loss(out, torch.tensor([0.123456, 0.5]))
    targets = torch.tensor([0.123456, 0.5])
    expected = F.mse_loss(out["coarse"], targets) + F.mse_loss(out["coarse_mirror"], 1 - targets)
    assert set(parts) == {"coarse"} and parts["coarse"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_without_tfm_there_is_no_encoder():
    head = _head(use_tfm=False)
    assert head.encoder is None and head(torch.randn(2, 3, 8))["score"].shape == (2,)


def test_hard_triplet_loss_is_zero_when_classes_are_separated_by_the_margin():
    embeddings = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert hard_triplet_loss(embeddings, labels, margin=1.0).item() == pytest.approx(0.0)
    assert hard_triplet_loss(embeddings, labels, margin=1.5).item() == pytest.approx(0.5)


def test_hard_triplet_loss_is_the_margin_when_all_embeddings_coincide():
    embeddings = torch.ones(4, 3)
    assert hard_triplet_loss(embeddings, torch.tensor([0, 1, 0, 1]), 1.0).item() == pytest.approx(1.0)
    assert hard_triplet_loss(embeddings, torch.arange(4), 1.0).item() == pytest.approx(1.0)  # no positives
    assert hard_triplet_loss(embeddings, torch.zeros(4, dtype=torch.long), 1.0).item() == 0.0  # no negatives


@pytest.mark.parametrize(("overrides", "message"), [
    ({"use_gpm": False}, "no grade prototypes"),
    ({"use_graph_reg": False}, "no grade prototypes"),
    ({"likert_queries": 5}, "likert_queries must be 4"),
    ({"likert_heads": 5}, "not divisible"),
])
def test_invalid_likert_configs_are_rejected(overrides, message):
    with pytest.raises(HeadConfigError, match=message):
        CoFInAlConfig(**{**TINY, **overrides})


def test_linear_likert_modes_take_any_number_of_queries():
    head = _head(likert_activation="relu", likert_queries=6)
    assert head(torch.randn(2, 4, 8))["procedure_attention"].shape == (2, 6, 4)


def test_auxiliary_scores_read_the_mean_query_embedding_and_add_their_own_loss():
    """``aux_scores`` on the authors' variant: one output in (0, 1) per auxiliary score from the mean
    of the decoder's query embeddings (what the Likert heads and the fine path share), its MSE added
    with ``aux_weight`` on targets ``[B, 1 + A]``; on ``[B]`` the loss is the score's alone. Built last,
    it leaves the shared layers' initialisation and the scores as without it, and it is averaged over
    test windows like the score."""
    head, plain = _head(aux_scores=("TES",), aux_weight=2.0), _head()
    features = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(2))
    out = head(features)
    assert out["aux"].shape == (3, 1) and ((out["aux"] > 0) & (out["aux"] < 1)).all()
    expected_aux = torch.sigmoid(head.aux_readout.linear(out["query_embeddings"].mean(1)))
    assert torch.allclose(out["aux"], expected_aux, atol=1e-6)
    assert torch.equal(out["score"], plain(features)["score"]) and "aux" not in plain(features)
    targets = torch.tensor([[0.2, 0.9], [0.4, 0.1], [0.6, 0.5]])
    total, parts = head.loss(out, targets)
    alone, alone_parts = head.loss(out, targets[:, 0])
    aux_mse = ((out["aux"] - targets[:, 1:]) ** 2).mean()
    assert set(parts) == set(alone_parts) | {"aux"}
    assert total.item() == pytest.approx(alone.item() + 2.0 * aux_mse.item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"expected targets \[3, 2\]"):
        head.loss(out, torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"expected targets \[3\]"):
        plain.loss(out, targets)
    windowed = _head(aux_scores=("TES",), train_window=3, test_windows=2)
    assert "aux" in CoFInAlLikertHead.window_averaged and windowed(torch.randn(2, 7, 8))["aux"].shape == (2, 1)
