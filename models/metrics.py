"""Evaluation metrics of the AQA papers: Spearman's rho, its Fisher-z average, relative L2, MSE,
and the cumulative-score curve (FSPN Fig. 11).

Pure functions over 1-D array-likes (lists, numpy arrays, CPU or GPU tensors); they return
Python floats so results go straight into logs and JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr


def _as_vector(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, wherever it lives
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and 1 in array.shape:  # a column or row vector, e.g. a head's [B, 1]
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of scores, got shape {array.shape}")
    return array


def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    p, g = _as_vector(pred, "pred"), _as_vector(true, "true")
    if p.shape != g.shape:
        raise ValueError(f"pred and true differ in length: {p.shape[0]} vs {g.shape[0]}")
    if p.size < 2:
        raise ValueError(f"need at least 2 scores to compare, got {p.size}")
    return p, g


def spearman(pred: Any, true: Any) -> float:
    """Spearman's rank correlation (scipy, ties get average ranks).

    Undefined, so NaN: when either side is constant (a collapsed model, or a split whose scores are
    all equal), with a :class:`RuntimeWarning` saying which side, and when any value is NaN or
    infinite (a diverged model). Reporting 0.0 there made a collapsed model look merely poor;
    NaN is written as ``null`` in JSON, and model selection never picks it
    (``models.training.nan_to_minus_inf``).
    """
    p, g = _pair(pred, true)
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        return math.nan
    if np.ptp(p) == 0 or np.ptp(g) == 0:
        side = "the predictions are" if np.ptp(p) == 0 else "the true scores are"
        warnings.warn(f"Spearman's rho is undefined: {side} all equal; reported as NaN", RuntimeWarning,
                      stacklevel=2)
        return math.nan
    return float(spearmanr(p, g).statistic)


def fisher_z_mean(values: Iterable[float], eps: float = 1e-6) -> float:
    """Average correlations through Fisher's z: ``tanh(mean(atanh(clip(r, -1 + eps, 1 - eps))))``.

    How the papers average rho across actions (RG) or score types (Fis-V). Clipping keeps a
    perfect correlation finite. NaN in, NaN out.
    """
    rhos = np.asarray(list(values), dtype=np.float64)
    if rhos.size == 0:
        raise ValueError("fisher_z_mean needs at least one correlation")
    return float(np.tanh(np.arctanh(np.clip(rhos, -1 + eps, 1 - eps)).mean()))


def relative_l2(pred: Any, true: Any) -> float:
    """``100 * mean(((p - g) / (max g - min g))^2)``, on the original score scale (GDLT's R-L2)."""
    p, g = _pair(pred, true)
    span = g.max() - g.min()
    if span == 0:
        raise ValueError("relative_l2 is undefined when every true score is the same")
    return float(100.0 * np.mean(((p - g) / span) ** 2))


def mse(pred: Any, true: Any) -> float:
    """Mean squared error, on whatever scale the inputs are (report it on the original one)."""
    p, g = _pair(pred, true)
    return float(np.mean((p - g) ** 2))


def cumulative_score(pred: Any, true: Any, thresholds: Any = None, count: int = 26) -> list[tuple[float, float]]:
    """The cumulative-score curve (FSPN Fig. 11, after age estimation's CS): for each threshold of
    absolute error, the fraction of videos with ``|pred - true| <= threshold`` (NaN counts as a miss).

    ``thresholds`` default to ``count`` even steps from 0 to half the span of the true scores (1 if
    they are all equal): they depend on the truth alone, so every head and seed tested on one split
    is drawn on the same axis. Returns ``[(threshold, fraction), ...]`` on the original scale.
    """
    p, g = _pair(pred, true)
    if thresholds is None:
        span = float(g.max() - g.min())
        thresholds = np.linspace(0.0, 0.5 * span if span > 0 else 1.0, count)
    limits = _as_vector(thresholds, "thresholds")
    errors = np.abs(p - g)  # NaN compares False: a miss at every threshold
    return [(float(limit), float(np.mean(errors <= limit))) for limit in limits]


def score_metrics(pred: Any, true: Any) -> dict[str, float]:
    """All per-set metrics at once: ``{"spearman", "relative_l2", "mse"}`` (original scale)."""
    return {"spearman": spearman(pred, true), "relative_l2": relative_l2(pred, true), "mse": mse(pred, true)}


def summarize_seeds(results: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float | int]]:
    """Per-key ``{"mean", "std", "n"}`` over runs with different seeds.

    ``std`` is the sample standard deviation (ddof = 1; 0.0 for a single run). Every run must
    report the same keys. Means are arithmetic, also for rho: across seeds of one setting the
    correlations are close, and this is the spread the papers report.
    """
    if not results:
        raise ValueError("summarize_seeds needs at least one run")
    keys = set(results[0])
    for index, run in enumerate(results):
        if set(run) != keys:
            raise ValueError(f"run {index} reports keys {sorted(run)}, run 0 reports {sorted(keys)}")
    summary = {}
    for key in sorted(keys):
        values = np.asarray([run[key] for run in results], dtype=np.float64)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        summary[key] = {"mean": float(values.mean()), "std": std, "n": int(values.size)}
    return summary
