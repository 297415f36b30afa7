"""Training plots as PNG files: predicted against true scores, the per-epoch curves, and the
cumulative-score curve.

Drawn on a bare :class:`matplotlib.figure.Figure` (the Agg canvas, no pyplot): no global backend
switch, no display needed, nothing left open between calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_predictions(path: str | Path, true: Sequence[float], predicted: Sequence[float], *, title: str,
                     score_name: str) -> Path:
    """Scatter of predicted ``[N]`` against true ``[N]`` scores with the identity line."""
    true, predicted = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    axes.scatter(true, predicted, s=14, alpha=0.7)
    low, high = min(true.min(), predicted.min()), max(true.max(), predicted.max())
    axes.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--", label="predicted = true")
    axes.set_xlabel(f"true {score_name}")
    axes.set_ylabel(f"predicted {score_name}")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def plot_curves(path: str | Path, histories: Mapping[int, Sequence[Mapping[str, float | None]]], *,
                title: str) -> Path:
    """Loss (left) and Spearman rho (right) per epoch, one line style per series, one colour per seed.

    ``histories`` maps a seed to :attr:`models.training.FitResult.history`. Training rho is over the
    random training windows (dropout on); validation rho over whole videos, when there is a split.
    """
    figure = Figure(figsize=(10, 4), dpi=100)
    loss_axes, srcc_axes = figure.subplots(1, 2)
    for index, (seed, history) in enumerate(histories.items()):
        colour = f"C{index % 10}"
        epochs = [record["epoch"] for record in history]
        for axes, key, style in ((loss_axes, "train_loss", "-"), (loss_axes, "val_loss", "--"),
                                 (srcc_axes, "train_srcc", "-"), (srcc_axes, "val_srcc", "--")):
            values = [np.nan if record.get(key) is None else record[key] for record in history]
            if not np.all(np.isnan(values)):
                axes.plot(epochs, values, style, color=colour, linewidth=1,
                          label=f"{key.split('_')[0]} (seed {seed})")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    srcc_axes.set(xlabel="epoch", ylabel="Spearman rho", title="Spearman rho (train: windows)")
    for axes in (loss_axes, srcc_axes):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:  # an ensemble has no epochs of its own: no series, no legend
            axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def plot_cumulative_score(path: str | Path, curves: Mapping[str, Sequence[Sequence[float]]], *, title: str,
                          score_name: str) -> Path:
    """Fraction of videos within each absolute-error threshold (FSPN Fig. 11), one line per series.

    ``curves`` maps a label (a seed) to :func:`models.metrics.cumulative_score`'s ``[(threshold, fraction)]``.
    """
    figure = Figure(figsize=(5, 4), dpi=100)
    axes = figure.add_subplot()
    for index, (label, curve) in enumerate(curves.items()):
        points = np.asarray(curve, dtype=float).reshape(-1, 2)
        axes.plot(points[:, 0], points[:, 1], color=f"C{index % 10}", linewidth=1.2, marker=".", label=label)
    axes.set(xlabel=f"absolute error threshold ({score_name})", ylabel="fraction of videos within", ylim=(0, 1.02))
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)
