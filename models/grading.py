"""Coarse-to-fine score arithmetic and the fixed simplex ETF: pure functions, no modules.

CoFInAl (IJCAI 2024, Sec. 3.1) writes a score ``s`` as a grade ``s_C`` (G grades of width S_C)
plus a sub-grade ``s_F`` (G' sub-grades of width S_F = S_C / G'). We always work on scores
normalised to [0, 1) (see :mod:`models.normalization`), so S_C = 1 / G and S_F = 1 / (G * G')
and G, G' mean the same thing on every dataset.

The paper's Eq. 6 drops the factor S_C inside the sub-grade formula; the correct decomposition is
``s_F = floor((s - S_C * floor(s / S_C)) / S_F)`` and its inverse ``s = s_C * S_C + s_F * S_F``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# A normalised score this close below a bin edge counts as on the edge, so that decimal scores
# which float32 stores a hair low (0.7 -> 0.69999999) land in the bin a human expects. It is about
# 16 float32 ulps near 1, and 1% of a sub-grade step even on the authors' 100 x 100 grid.
_EDGE_TOLERANCE = 1e-6


def decompose_score(scores: Tensor, num_grades: int, num_subgrades: int) -> tuple[Tensor, Tensor]:
    """Normalised scores ``[B]`` in [0, 1) -> (grade ``[B]``, sub-grade ``[B]``), both int64.

    Computed as one index ``k = floor(s * G * G')`` on the finest grid (in float64, with a tiny
    edge tolerance), then ``grade = k // G'`` and ``subgrade = k % G'``: equivalent to the
    corrected Eq. 6 but immune to the two floors disagreeing at a boundary (0.75 with G = 4 is
    grade 3, sub-grade 0). Scores outside [0, 1) (a test score beyond the training range) are
    clamped to the first or last sub-grade rather than producing an out-of-range class.
    """
    _check_levels(num_grades, num_subgrades)
    fine_bins = num_grades * num_subgrades
    k = torch.floor((scores.detach().to(torch.float64) + _EDGE_TOLERANCE) * fine_bins)
    k = k.clamp(0, fine_bins - 1).to(torch.int64)
    return torch.div(k, num_subgrades, rounding_mode="floor"), k % num_subgrades


def reassemble_score(grades: Tensor, subgrades: Tensor, num_grades: int, num_subgrades: int) -> Tensor:
    """Eq. 6: ``s = grade * S_C + subgrade * S_F`` on the [0, 1) scale -> float ``[B]``.

    Accepts integer classes (the argmax read-out) or expected values (floats, the differentiable
    read-out); the result is the lower edge of the predicted sub-grade for integer inputs.
    """
    _check_levels(num_grades, num_subgrades)
    grades = grades if grades.is_floating_point() else grades.to(torch.float32)
    subgrades = subgrades if subgrades.is_floating_point() else subgrades.to(torch.float32)
    return grades / num_grades + subgrades / (num_grades * num_subgrades)


def simplex_etf(dim: int, num_classes: int, seed: int = 0) -> Tensor:
    """A simplex equiangular tight frame ``E`` ``[dim, K]`` (Eq. 12), reproducible from ``seed``.

    ``E = sqrt(K / (K - 1)) U (I - 11^T / K)`` with ``U`` ``[dim, K]`` orthonormal columns drawn
    from a seeded Gaussian by QR (signs fixed so the result does not depend on the LAPACK build).
    Every column has unit norm and every pair has inner product ``-1 / (K - 1)`` (Eq. 13): the
    geometry neural collapse converges to, used as a fixed, non-learnable classifier.
    Needs ``dim >= K`` so that ``U`` exists.
    """
    if num_classes < 2:
        raise ValueError(f"a simplex ETF needs at least 2 classes, got {num_classes}")
    if dim < num_classes:
        raise ValueError(f"a simplex ETF with {num_classes} classes needs dim >= {num_classes}, got dim={dim}")
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(dim, num_classes, generator=generator, dtype=torch.float64)
    u, r = torch.linalg.qr(gaussian)  # [dim, K], [K, K]
    u = u * torch.sign(torch.diagonal(r)).unsqueeze(0)
    centering = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
    etf = math.sqrt(num_classes / (num_classes - 1)) * (u @ centering)
    return etf.to(torch.float32)


def expected_class(logits: Tensor) -> Tensor:
    """Mean class index under ``softmax(logits)``: ``[B, K]`` -> ``[B]``, differentiable."""
    classes = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    return torch.softmax(logits, dim=-1) @ classes


def _check_levels(num_grades: int, num_subgrades: int) -> None:
    if num_grades < 1 or num_subgrades < 1:
        raise ValueError(f"need at least one grade and sub-grade, got G={num_grades}, G'={num_subgrades}")
