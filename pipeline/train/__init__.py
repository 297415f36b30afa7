"""``aqa-train``: train a scoring head on stored clip features; report rho, R-L2 and MSE; save a checkpoint.

    aqa-train features.h5 --head cofinal --preset fisv-tes --out runs/tes
    aqa-train features.h5 --head cofinal --preset fisv-tes --score TES --score PCS --seeds 0,1,2 --out runs/fisv
    aqa-train feats/ --head mlp --score total --val-fraction 0.2 --epochs 100 --set train.lr=0.005 --out runs/x

The path of the data: a feature store (.h5, a folder of shards or an index) -> its splits as model
inputs (:mod:`.data`) -> a head trained per score and seed (:mod:`.training`; an ensemble's members
by :mod:`.ensemble`; ``--folds`` cross-validates instead, :mod:`.cross_validation`) -> in ``--out``:
``model.pt`` (:mod:`models.checkpoint`), ``metrics.json``, predictions and plots (:mod:`.report`)
and the model card (:mod:`.model_card`).

    from aqa.pipeline.train import TrainRequest, resolve_run_config, run
    reports = run(TrainRequest(features=[Path("features.h5")], out=Path("runs/x"),
                               config=resolve_run_config("mlp", settings={"score": ("total",)})))

Modules: :mod:`.config` (:class:`RunConfig` and its resolution), :mod:`.training` (the request and
:func:`run`), :mod:`.cli` (the command line only), and the helpers above.
"""

from aqa.pipeline.train.config import SETTINGS, RunConfig, TrainingSetupError, resolve_run_config
from aqa.pipeline.train.training import TrainRequest, run

__all__ = ["SETTINGS", "RunConfig", "TrainRequest", "TrainingSetupError", "resolve_run_config", "run"]
