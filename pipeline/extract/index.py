"""``aqa-index STORE_DIR``: after the jobs of a split extraction (``aqa-extract --num-shards N
--shard-index I``), check their shards belong together and write the index ``aqa-train`` reads
(:func:`~pipeline.extract.job_split.index_store`). A command of its own, kept in the extract
package because only a split extraction makes its input.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from aqa.pipeline.cli import add_common_arguments, exit_status_epilog, run_cli
from aqa.pipeline.extract.job_split import index_store


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write the JSON index over the shards that split jobs (aqa-extract --num-shards N "
                    "--shard-index I -o STORE_DIR) wrote, after checking they belong together.",
        epilog="aqa-train reads STORE_DIR/index.json like one feature file. " + exit_status_epilog("index written"))
    parser.add_argument("store_dir", type=Path, help="the folder the jobs wrote their shards to")
    parser.add_argument("--allow-missing", action="store_true",
                        help="index the finished shards even when some of the N are not (yet) there")
    add_common_arguments(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    index, shards = index_store(args.store_dir, allow_missing=args.allow_missing)
    missing = f", {len(shards.missing)} missing" if shards.missing else ""
    print(f"aqa-index: {len(shards.finished)} of {shards.num_shards} shards{missing} -> {index}")
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``aqa-index``."""
    return run_cli("aqa-index", get_args_parser, main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
