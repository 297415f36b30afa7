"""``aqa-predict``: one video in, a judge-like score out, extraction included.

    aqa-predict dive.mp4 --checkpoint runs/x/model.pt
    aqa-predict a.mp4 b.mp4 --checkpoint runs/x/model.pt --json
    aqa-predict dive.mp4 --checkpoint runs/x/model.pt --save-overlay dive_overlay.mp4

The path of the data: a checkpoint (:mod:`models.checkpoint`) -> the extraction it records, rebuilt
and checked (:func:`load_predictor`) -> each video decoded, tracked and embedded, its features
scored (:func:`predict_video`) -> a typed :class:`Prediction` (:mod:`.result`, built by :mod:`.report`,
its words :mod:`.report_words`) printed as text or JSON, drawn as a timeline (:mod:`.timeline`) and
optionally as an overlay video (:mod:`.overlay`).

    from aqa.pipeline.predict import PredictRequest, run
    done = run(PredictRequest(videos=[Path("dive.mp4")], checkpoint=Path("runs/x/model.pt")))

Modules: :mod:`.predictor` (the request, :func:`run` and the one-video calls the API and the web
page use), :mod:`.cli` (the command line only), :mod:`.result`, :mod:`.report`, :mod:`.report_words`,
:mod:`.timeline`, :mod:`.overlay`.
"""

from aqa.pipeline.predict.predictor import (
    LoadedPredictor,
    PredictionRun,
    PredictRequest,
    PredictSetupError,
    load_predictor,
    predict_video,
    run,
)
from aqa.pipeline.predict.result import Prediction

__all__ = ["LoadedPredictor", "PredictRequest", "PredictSetupError", "Prediction", "PredictionRun",
           "load_predictor", "predict_video", "run"]
