"""``python -m aqa.pipeline.extract``: the same as ``aqa-extract``."""

from aqa.pipeline.extract.cli import cli

raise SystemExit(cli())
