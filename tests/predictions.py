"""Typed predictions made by hand, for tests of what reads them (the text report, the page, the
plots): every field a real one has, with plain defaults a test overrides where it matters."""

from __future__ import annotations

from typing import Any

from aqa.pipeline.predict.result import ClipSpan, FramesNotScored, Prediction, ScoreScale


def make_prediction(*, clips: int = 4, fps: float = 24.0, weights: list[float] | None = None,
                    **fields: Any) -> Prediction:
    """A :class:`Prediction` of ``clips`` one-second clips (each weighing ``weights``, 1.0 by
    default) with ``fields`` over the defaults."""
    weights = weights or [1.0] * clips
    defaults: dict[str, Any] = dict(
        video="dive.mp4", score=5.0, score_name="score", head="mlp", model_description="a test model",
        scale=ScoreScale(0.0, 10.0, 30), frames=int(clips * fps), fps=fps, clips=clips,
        frames_not_scored=FramesNotScored(0, 0.0, 0, 0.0, 0, int(fps)), partial_video=False,
        athlete_frames={"detected": int(clips * fps)}, athlete_not_located_share=0.0,
        clip_spans=tuple(ClipSpan(float(index), float(index + 1), weight) for index, weight in enumerate(weights)))
    return Prediction(**{**defaults, **fields})
