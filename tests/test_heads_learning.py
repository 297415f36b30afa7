"""Heads learn: a synthetic task whose score is a known nonlinear function of the clip features.

Each video has 4-16 clips of noise; one of four prototype patterns (each with its own quality)
is added to a random subset of the clips. The score is ``quality(pattern) * sqrt(share of clips
showing it)``: which pattern appears and how often. Heads train on 256 videos for a few hundred
steps on one CPU thread and are ranked on 128 held-out videos.
"""

from __future__ import annotations

import pytest
import torch

from aqa.models import build_head
from aqa.models.metrics import spearman
from torch_threads import single_thread

DIM, MAX_CLIPS = 16, 16
QUALITY = torch.tensor([0.15, 0.45, 0.7, 0.95])


def synthetic_videos(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features ``[N, 16, 16]``, mask ``[N, 16]``, normalised scores ``[N]``)."""
    patterns = 2.0 * torch.linalg.qr(torch.randn(DIM, DIM, generator=torch.Generator().manual_seed(123)))[0][:4]
    generator = torch.Generator().manual_seed(seed)
    features = 0.5 * torch.randn(count, MAX_CLIPS, DIM, generator=generator)
    mask = torch.zeros(count, MAX_CLIPS, dtype=torch.bool)
    scores = torch.zeros(count)
    for i in range(count):
        clips = int(torch.randint(4, MAX_CLIPS + 1, (1,), generator=generator))
        kind = int(torch.randint(0, 4, (1,), generator=generator))
        shown = int(torch.randint(1, clips + 1, (1,), generator=generator))
        features[i, torch.randperm(clips, generator=generator)[:shown]] += patterns[kind]
        mask[i, :clips] = True
        scores[i] = QUALITY[kind] * (shown / clips) ** 0.5
    features[~mask] = 0.0
    return features, mask, 0.02 + 0.9 * scores


def train_and_rank(name: str, overrides: dict, steps: int = 300, seed: int = 0) -> float:
    """Train head ``name`` with AdamW and return its held-out Spearman rho."""
    train_x, train_mask, train_y = synthetic_videos(256, seed=1)
    test_x, test_mask, test_y = synthetic_videos(128, seed=2)
    torch.manual_seed(seed)
    head = build_head(name, overrides, input_dim=DIM).train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    batches = torch.Generator().manual_seed(seed)
    with single_thread():
        for _ in range(steps):
            index = torch.randint(0, len(train_y), (32,), generator=batches)
            loss, _ = head.loss(head(train_x[index], train_mask[index]), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    with torch.no_grad():
        return spearman(head(test_x, test_mask)["score"], test_y)


TINY_COFINAL = {"procedure_dim": 32, "score_dim": 32, "num_subgrades": 16, "dropout": 0.1}


@pytest.mark.slow
def test_cofinal_and_the_mlp_baseline_learn_the_synthetic_score():
    cofinal = train_and_rank("cofinal", TINY_COFINAL)
    mlp = train_and_rank("mlp", {"hidden_dims": (32,), "dropout": 0.1})
    assert cofinal > 0.6, f"cofinal rho {cofinal:.3f} (mlp {mlp:.3f})"
    assert mlp > 0.3, f"mlp rho {mlp:.3f}"


@pytest.mark.slow
def test_cofinal_likert_variant_learns_the_synthetic_score():
    rho = train_and_rank("cofinal", {**TINY_COFINAL, "coarse": "likert"}, steps=200)
    assert rho > 0.6, f"cofinal (likert) rho {rho:.3f}"
