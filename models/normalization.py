"""Map a dataset's scores to [0, 1) and back, fitted on the training split only.

Heads predict on a normalised scale so that grades (G) and sub-grades (G') mean the same on
every dataset (an RG total near 20 and a Fis-V PCS near 40 both become fractions). The range is
the training min/max widened by a margin on each side, so that the training maximum maps strictly
below 1 (grade G - 1 exists) and test scores a little outside the training range still land in
[0, 1). The fitted range travels in the checkpoint (``to_dict`` / ``from_dict``); without it a
model's outputs cannot be turned back into judge scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from aqa.errors import AqaError

ArrayT = TypeVar("ArrayT")


class NormalizerError(AqaError, ValueError):
    """Scores cannot be normalised: empty, non-finite or all equal, or a stored range is bad."""


@dataclass(frozen=True)
class ScoreNormalizer:
    """``to_unit(s) = (s - low) / (high - low)``; ``from_unit`` inverts it. Works on floats,
    numpy arrays and tensors alike (plain arithmetic, no clamping: clamping belongs to whoever
    needs classes, see :func:`models.grading.decompose_score`)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise NormalizerError(f"score range must be finite with high > low, got low={self.low}, high={self.high}")

    @classmethod
    def fit(cls, scores: Any, margin: float = 0.05) -> ScoreNormalizer:
        """Fit on training scores: ``[min - margin * span, max + margin * span]``.

        With the default 5 % the training range maps to about [0.045, 0.955].
        """
        if hasattr(scores, "detach"):
            scores = scores.detach().cpu().numpy()
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.size == 0:
            raise NormalizerError("cannot fit a score range on no scores")
        if not np.isfinite(values).all():
            raise NormalizerError("cannot fit a score range: the training scores contain NaN or infinity")
        if margin < 0:
            raise NormalizerError(f"margin must be >= 0, got {margin}")
        span = float(values.max() - values.min())
        if span == 0:
            raise NormalizerError(f"every training score is {values.min()}; a score range needs two distinct values")
        return cls(low=float(values.min()) - margin * span, high=float(values.max()) + margin * span)

    def to_unit(self, scores: ArrayT) -> ArrayT:
        """Original scale -> normalised scale (training range inside (0, 1))."""
        return (scores - self.low) / (self.high - self.low)

    def from_unit(self, unit_scores: ArrayT) -> ArrayT:
        """Normalised scale -> original scale."""
        return unit_scores * (self.high - self.low) + self.low

    def to_dict(self) -> dict[str, float]:
        """Plain data for a checkpoint or JSON."""
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ScoreNormalizer:
        """Rebuild from :meth:`to_dict`'s output; a missing or extra key is an error."""
        if set(values) != {"low", "high"}:
            raise NormalizerError(f"a stored score range needs exactly 'low' and 'high', got {sorted(values)}")
        try:
            low, high = float(values["low"]), float(values["high"])
        except (TypeError, ValueError):
            raise NormalizerError(f"stored score range is not numeric: {dict(values)}") from None
        return cls(low=low, high=high)
