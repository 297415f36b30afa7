"""``python -m aqa.pipeline.predict``: the same as ``aqa-predict``."""

from aqa.pipeline.predict.cli import cli

raise SystemExit(cli())
