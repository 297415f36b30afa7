"""The command-line edge: logging set up once, user errors turned into one line and an exit code.

Each tool is written torchvision-references style, a ``get_args_parser()`` and a
``main(args) -> int``; :func:`run_cli` wraps the pair so that every tool behaves alike:
``--verbose``/``--quiet`` logging, library caches kept out of ``~``, a one-line
``tool: error: message`` and exit code 2 for errors the user can fix, 130 on Ctrl-C, and a
one-line internal error (full traceback with ``--debug``) for bugs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from aqa.config import ConfigT, load_config
from aqa.errors import AqaError, one_line, printable
from aqa.extractors.video import quiet_decoder_logs
from aqa.pipeline.environment import configure_library_environment
from aqa.pipeline.launch import EXIT_INTERRUPTED

EXIT_USER_ERROR = 2
EXIT_SOME_FAILED = 1
EXIT_INTERNAL_ERROR = 3


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every aqa tool shares: verbosity and tracebacks."""
    group = parser.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    group.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    group.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def exit_status_epilog(done: str, some_failed: str | None = None) -> str:
    """The exit codes every tool shares, for its ``--help`` epilog (``done``: what 0 means;
    ``some_failed``: what 1 means, for tools that go on past a bad input)."""
    partial = f", {EXIT_SOME_FAILED} {some_failed}" if some_failed else ""
    return (f"Exit status: 0 {done}{partial}, {EXIT_USER_ERROR} unusable input or settings (one line says what to "
            f"fix), {EXIT_INTERNAL_ERROR} internal error (a bug: --debug shows the traceback), "
            f"{EXIT_INTERRUPTED} interrupted (finished work is kept).")


def add_workers_argument(parser: argparse.ArgumentParser, default: int | None = 0) -> None:
    """``--workers N`` of the tools that decode videos (``default`` None: leave it to the config)."""
    parser.add_argument("--workers", type=int, default=default,
                        help="decoding/detection workers, each a thread with its own decoding process and detector; "
                             "a long video is split among them (default 0: one per CPU core, at most 8)")


def add_config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """``--config FILE.yaml`` and repeatable ``--set key=value`` over a stage's dataclass config.

    ``example`` is a ``key=value`` the stage's own config accepts (tests parse every tool's), shown
    in ``--help``: an example from another stage's config would be refused by this one."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="YAML", help="YAML file overriding the default settings")
    group.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                       help="override one setting, dotted for nested keys (repeatable), "
                            f"e.g. --set {example}; an unknown key lists the valid ones")


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """``--labels FILE`` (repeatable) and ``--columns NAMES``, as aqa-import and aqa-extract read them."""
    group = parser.add_argument_group("labels")
    group.add_argument("--labels", type=Path, action="append", default=[], metavar="FILE",
                       help="whitespace or CSV label file, first column the video name (repeatable); the split "
                            "is the file name up to its first _ - or . (train.txt, test_dataset.txt)")
    group.add_argument("--columns", metavar="NAMES",
                       help="comma-separated column names for label files without a header line, "
                            "the video name first, e.g. id,TES,PCS,ded")


def resolve_config(config_type: type[ConfigT], args: argparse.Namespace, base: ConfigT | None = None) -> ConfigT:
    """Defaults (or ``base``) < ``--config`` YAML < ``--set`` overrides."""
    return load_config(config_type, getattr(args, "config", None), getattr(args, "overrides", ()), base)


def setup_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """One root handler on stderr; library modules only ever call ``logging.getLogger``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("matplotlib", "PIL", "h5py", "fsspec", "httpx"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    warnings.showwarning = _log_warning


class _PrintableFormatter(logging.Formatter):
    """Log lines with the control characters a file name may hold escaped (``aqa.errors.printable``);
    a traceback (``--debug``) is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (Spearman's rho undefined...) as one log line: Python's own format adds the
    source line that raised it, a second line that means nothing to a user."""
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, message)


def run_cli(
    prog: str,
    get_args_parser: Callable[[], argparse.ArgumentParser],
    main: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run ``main`` and map its outcome to an exit code (never a traceback)."""
    try:
        configure_library_environment()
    except AqaError as error:  # before the arguments are parsed: nothing else can be said yet
        return _user_error(prog, error)
    parser = get_args_parser()
    parser.prog = prog
    args = parser.parse_args(argv)
    setup_logging(verbose=getattr(args, "verbose", False), quiet=getattr(args, "quiet", False))
    quiet_decoder_logs(verbose=getattr(args, "verbose", False))
    try:
        return int(main(args) or 0)
    except AqaError as error:
        return _user_error(prog, error)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug: say so in one line unless asked for the traceback
        if getattr(args, "debug", False):
            raise
        print(f"{prog}: internal error: {type(error).__name__}: {one_line(error)} "
              f"(re-run with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _user_error(prog: str, error: AqaError) -> int:
    """An error the user can fix: one line on stderr, exit 2."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return EXIT_USER_ERROR
