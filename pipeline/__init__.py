"""Stage 4: the stages wired together into commands.

A command with helpers of its own is a package: ``extract/`` (``aqa-extract``, and ``aqa-index``
for split jobs), ``train/`` (``aqa-train``), ``predict/`` (``aqa-predict``), ``app/``
(``aqa-app``). Each holds its typed request and ``run`` function (what ``aqa.extract``,
``aqa.train`` and ``aqa.Predictor`` call), a ``cli.py`` that only parses the command line into
the request, and the helpers only that command uses, so ``from aqa.pipeline.train import run,
TrainRequest`` is the whole of training and nothing else is needed to read it.

Modules stay modules where a package would hold one file: the small commands ``demo.py`` (``make
demo``), ``synthetic.py`` (a synthetic dataset) and ``import_features.py`` (``aqa-import``), and
the command-line plumbing every command shares (``cli.py``: exit codes, logging, ``run_cli``;
``launch.py``: the console scripts' entry points; ``environment.py``; ``devices.py``;
``plots.py``, drawn by training's report and the web page alike).

What defines a trained model (checkpoint, streams, difficulty use) is in ``models/``, not here:
prediction and the page read a model without the training code.
"""
