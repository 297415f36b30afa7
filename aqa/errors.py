"""Errors a user can cause, shared by every stage.

Library code raises these with a message a user understands; the command-line edge
(``pipeline.cli``) catches :class:`AqaError` once and turns it into one line and an exit code.
They live in the lowest layer so that ``data`` and ``models`` can raise them too.
"""

import re


class AqaError(Exception):
    """Base of every error caused by the user's input, files or environment, not by a bug."""


class VideoError(AqaError):
    """A video cannot be read: missing, empty, not a video, corrupt, or without frames."""


class DecodeTimeout(VideoError):
    """Decoding stopped making progress (a known decord failure on some files)."""


class WeightsNotFoundError(AqaError, FileNotFoundError):
    """A pretrained weights file is absent; the message names where it was looked for."""


class MissingFileError(AqaError, FileNotFoundError):
    """An input file (annotations, a checkpoint) that the user pointed at does not exist."""


class CorruptFileError(AqaError):
    """A file exists but cannot be read as what it claims to be (truncated, wrong format)."""


class UnsafePickleError(AqaError):
    """A third-party pickle names a global outside the allow-list; it was refused, not run."""


class UnknownBackboneError(AqaError):
    """The configured backbone name is not registered."""


class WeightsMismatchError(AqaError):
    """A weights file loads but does not fit the model: missing, extra or mis-shaped tensors."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (multi-line library messages folded), as every tool prints it,
    with any control character a file name brought in escaped (:func:`printable`)."""
    text = printable(" ".join(str(error).split()))
    return text or type(error).__name__


# C0 and C1 controls but tab and newline, bidirectional overrides, and the lone surrogates that an
# undecodable file name arrives with: what a terminal would act on, or cannot print.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with terminal control characters written as escapes (``ESC`` as ``\\x1b``): a file
    named to clear the screen, recolour the output or reverse it is printed as its name."""
    return _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape", "backslashreplace").decode("ascii"),
                            text)
