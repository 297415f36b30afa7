"""The timeline of one scored video, for a page to show: where a CoFInAl head's procedures looked,
FSPN's sub-actions, the clips along time. Reads the typed result (:mod:`.result`).

Drawn on a bare :class:`matplotlib.figure.Figure` (the Agg canvas, no pyplot), as
:mod:`pipeline.plots`' training plots are.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from aqa.pipeline.predict.result import Prediction


def timeline_figure(prediction: Prediction, size: tuple[float, float, int] = (8.0, 3.0, 100)) -> Figure:
    """One scored video along time, for a page to show: CoFInAl's attention of each procedure on
    each clip (one line per procedure), FSPN's parsed sub-actions as coloured bands, and the clips
    themselves (``prediction.clip_spans``) as ticks along the bottom.
    ``size`` is (width, height in inches, dots per inch): the inches set how large the text is
    against the plot, the dots how sharp it is.

    Returned undrawn (the caller saves it or hands it to a page), never registered with pyplot.
    """
    clip_spans = np.array([(span.start_s, span.end_s) for span in prediction.clip_spans], float).reshape(-1, 2)
    centres = clip_spans.mean(axis=1)
    figure = Figure(figsize=size[:2], dpi=size[2])
    axes = figure.add_subplot()
    procedures, sub_actions = prediction.procedures, prediction.sub_actions
    for index, procedure in enumerate(procedures):
        axes.plot(centres, procedure.attention, marker="o", markersize=3, linewidth=1.4, color=f"C{index % 10}",
                  label=f"procedure {procedure.procedure}")
    for index, span in enumerate(sub_actions):
        axes.axvspan(span.start_s, span.end_s, color=f"C{index % 10}", alpha=0.25,
                     label=f"sub-action {span.sub_action}")
    if procedures:
        axes.set_ylabel("attention")
        # From 0, with the even share drawn: autoscaled, 0.14-0.28 filled the plot and even
        # attention looked like sharp peaks.
        even = 1.0 / max(len(centres), 1)
        axes.axhline(even, color="grey", linestyle="--", linewidth=1.0, label="even share")
        highest = max((max(procedure.attention, default=0.0) for procedure in procedures), default=even)
        axes.set_ylim(0, max(highest, 2 * even) * 1.25)
        title = "where each procedure looks (CoFInAl attention per clip)"
        if not any(procedure.clear_peak for procedure in procedures):  # the text report's rule
            title = "attention per clip: even, no moment stands out"
    elif sub_actions:
        axes.set_yticks([])
        title = "parsed sub-actions (FSPN)"
    else:
        axes.set_yticks([])
        title = f"clips scored ({prediction.head} gives no per-clip detail)"
    axes.vlines(clip_spans[:, 0], 0, 0.04, transform=axes.get_xaxis_transform(), color="grey", linewidth=0.8)
    axes.set_xlim(0, max(float(clip_spans[:, 1].max(initial=0.0)), 1e-3))
    axes.set_xlabel("time (s)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    if procedures or sub_actions:
        axes.legend(fontsize=8, loc="upper right", ncol=2)
    figure.tight_layout()
    return figure
