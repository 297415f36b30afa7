"""aqa: action quality assessment from raw sports video to judge-like scores.

One name to import. The stages live in ``aqa.extractors`` (video -> clip features),
``aqa.data`` (feature stores, labels, datasets), ``aqa.models`` (scoring heads) and
``aqa.pipeline`` (the stages wired together, the command-line tools); the functions below are
the small public API over them (:mod:`aqa.api`):

    import aqa

    aqa.extract(["videos/"], "features.h5")                   # -> ExtractionResult
    metrics = aqa.train("features.h5", head="cofinal", out="runs/model")
    with aqa.Predictor("runs/model/model.pt") as predictor:
        prediction = predictor.score("dive.mp4")               # -> Prediction
    with aqa.open_store("features.h5") as store:
        video = store.read(store.names[0])

``import aqa`` itself is light (no torch); the API's names load on first use.
"""

from __future__ import annotations

from aqa.version import __version__

__all__ = ["ExtractionResult", "Prediction", "Predictor", "__version__", "extract", "open_store", "train"]


def __getattr__(name: str):
    if name in __all__:
        from aqa import api

        return getattr(api, name)
    raise AttributeError(f"module 'aqa' has no attribute {name!r}")
