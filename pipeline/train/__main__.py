"""``python -m aqa.pipeline.train``: the same as ``aqa-train``."""

from aqa.pipeline.train.cli import cli

raise SystemExit(cli())
