"""``python -m aqa.pipeline.app``: the same as ``aqa-app``."""

from aqa.pipeline.app.cli import cli

raise SystemExit(cli())
