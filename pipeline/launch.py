"""The console scripts' entry points (setup.cfg): import the tool, then run it.

``aqa-extract`` spends its first second or two importing torch, PyAV and the rest before its own
Ctrl-C handling (:func:`pipeline.cli.run_cli`) exists; a Ctrl-C then was a KeyboardInterrupt
traceback and death by the signal. Here the import runs inside the same answer: one line, exit
130. This module imports nothing heavy itself, so it is in place from the first instant.
"""

from __future__ import annotations

import importlib
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _launch(module: str, prog: str) -> int:
    try:
        return importlib.import_module(f"aqa.pipeline.{module}").cli()
    except KeyboardInterrupt:  # while importing (later ones the tool answers itself, the same way)
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def app() -> int:
    return _launch("app.cli", "aqa-app")


def extract() -> int:
    return _launch("extract.cli", "aqa-extract")


def index() -> int:
    return _launch("extract.index", "aqa-index")


def import_features() -> int:
    return _launch("import_features", "aqa-import")


def predict() -> int:
    return _launch("predict.cli", "aqa-predict")


def train() -> int:
    return _launch("train.cli", "aqa-train")
