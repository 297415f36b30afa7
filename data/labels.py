"""Labels: video name -> named scores, optional difficulty, optional split.

:class:`LabelTable` is the one label type every stage shares; the dataset-specific readers in
:mod:`data.annotations` and the generic text reader here both produce it.

The generic reader, :func:`read_label_table`, takes the whitespace files of the GDLT/CoFInAl
feature releases and ordinary CSV files:

- comma-separated when the file ends in ``.csv`` or its first line holds a comma, else split on
  any whitespace (tabs and runs of spaces mixed, as in the RG files); blank lines and ``#``
  comments are skipped;
- the first line is a header when none of its fields after the first is a number; a file without
  a header needs its column names (``columns=("id", "TES", "PCS", "ded")``);
- the first column is the video name; a column named ``difficulty`` (or ``dd``) is the
  difficulty, one named ``split`` the split, every other column a score (a number).
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqa.errors import AqaError, MissingFileError

log = logging.getLogger(__name__)

DIFFICULTY_COLUMNS = ("difficulty", "dd")
SPLIT_COLUMN = "split"
_MISSING = frozenset({"", "n/a", "na", "nan", "none", "null", "nil", "missing", "-", "--", "?"})  # lowercased


class LabelError(AqaError):
    """A label file or table is malformed or inconsistent; the message names the file and line."""


class MissingScoreError(LabelError):
    """A video lacks scores that were asked for; ``missing`` names them (callers that asked for a
    score on someone's behalf can say why it was needed)."""

    def __init__(self, message: str, missing: tuple[str, ...]):
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class LabelRecord:
    """One video's labels. ``scores`` maps score names (``total``, ``TES``...) to values.

    ``extra`` carries dataset-specific annotations that are not scores (judge marks, dive number,
    step frames) as plain Python / numpy values; the feature store does not keep them.
    """

    name: str
    scores: Mapping[str, float]
    difficulty: float | None = None
    split: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelTable:
    """Records keyed by video name, in file order; names are unique."""

    records: tuple[LabelRecord, ...] = ()
    source: str = "labels"
    _by_name: dict[str, LabelRecord] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, LabelRecord] = {}
        for record in self.records:
            if record.name in by_name:
                raise LabelError(f"{self.source}: video {record.name!r} is labelled more than once")
            by_name[record.name] = record
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "_by_name", by_name)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[LabelRecord]:
        return iter(self.records)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> LabelRecord:
        try:
            return self._by_name[name]
        except KeyError:
            raise LabelError(f"{self.source}: no labels for video {name!r}") from None

    def get(self, name: str) -> LabelRecord | None:
        return self._by_name.get(name)

    @property
    def names(self) -> list[str]:
        return [record.name for record in self.records]

    @property
    def score_names(self) -> tuple[str, ...]:
        """Every score name used by some record, in first-seen order."""
        return tuple(dict.fromkeys(key for record in self.records for key in record.scores))

    @property
    def splits(self) -> list[str]:
        return sorted({record.split for record in self.records if record.split is not None})

    def select(self, split: str) -> LabelTable:
        """The records of one split."""
        return LabelTable(tuple(r for r in self.records if r.split == split), f"{self.source}[{split}]")

    def merged(self, other: LabelTable) -> LabelTable:
        """Both tables' records; a video in both is an error (which label would be right?)."""
        source = f"{self.source} and {other.source}" if self.records else other.source
        return LabelTable(self.records + other.records, source)


def read_label_table(path: str | Path, *, columns: Sequence[str] | None = None, split: str | None = None) -> LabelTable:
    """Read a CSV or whitespace label file (see the module docstring for the rules).

    ``columns`` names the columns (the first is the video name); it is required when the file has
    no header line and replaces the header's names when it has one. ``split``, when given, is set
    on every record (overriding a ``split`` column).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"label file not found: {path}")
    rows = list(_rows(path))
    if not rows:
        raise LabelError(f"{path}: no label lines")
    first_line, first = rows[0]
    if len(first) < 2:
        raise LabelError(f"{path}:{first_line}: needs a name column and at least one score column")
    # A header has no numbers and no missing-value marker: "v0 N/A" is a row whose score is missing
    # (refused below, by its line), never a header that silently drops the label.
    has_header = not any(_is_number(value) or value.lower() in _MISSING for value in first[1:])
    if has_header:
        rows = rows[1:]
    names = list(columns) if columns else (first if has_header else None)
    if names is None:
        raise LabelError(f"{path}: no header line; name its columns, first the video name "
                         f"(e.g. --columns id,TES,PCS,ded)")
    _check_column_names(path, names)
    records = [_record(path, line, values, names, split) for line, values in rows]
    log.debug("read %d labels from %s (columns %s)", len(records), path, names)
    return LabelTable(tuple(records), str(path))


def parse_column_names(text: str | None) -> tuple[str, ...] | None:
    """``"id,TES,PCS,ded"`` -> column names for label files without a header (None stays None)."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(","))
    if len(names) < 2 or not all(names):
        raise LabelError(f"--columns {text!r}: give the name column and at least one score, "
                         "comma-separated, e.g. id,TES,PCS,ded")
    return names


def read_label_files(paths: Sequence[str | Path], columns: Sequence[str] | None = None) -> LabelTable:
    """All label files as one table, each file's split named after the file (train.txt -> train)."""
    tables = [read_label_table(path, columns=columns, split=split_from_filename(path)) for path in paths]
    return functools.reduce(LabelTable.merged, tables, LabelTable(source="no labels"))


def split_from_filename(path: str | Path) -> str:
    """The split a label file is named after: its stem up to the first ``_``, ``-`` or ``.``, lowercased.

    ``train.txt`` -> ``train``, ``test_dataset.txt`` -> ``test``, ``val-2.csv`` -> ``val``.
    """
    return re.split(r"[_\-.]", Path(path).stem, maxsplit=1)[0].lower()


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` for every non-blank, non-comment line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise LabelError(f"{path}: line {line} is not UTF-8 text (byte {error.object[error.start]:#04x}); "
                         "save the label file as UTF-8") from None
    except IsADirectoryError:
        raise LabelError(f"{path} is a folder, not a label file") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    comma = path.suffix.lower() == ".csv" or "," in first
    parsed: Iterable[list[str]] = csv.reader(lines) if comma else (line.split() for line in lines)
    for number, (line, fields) in enumerate(zip(lines, parsed), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, [value.strip() for value in fields]


def _check_column_names(path: Path, names: Sequence[str]) -> None:
    if len(names) < 2:
        raise LabelError(f"{path}: needs a name column and at least one score column, got columns {list(names)}")
    lowered = [name.lower() for name in names]
    duplicates = sorted({name for name in lowered if lowered.count(name) > 1})
    if duplicates:
        raise LabelError(f"{path}: repeated column names {duplicates}")


def _record(path: Path, line: int, values: list[str], names: Sequence[str], split: str | None) -> LabelRecord:
    if len(values) != len(names):
        raise LabelError(f"{path}:{line}: {len(values)} fields, expected {len(names)} ({', '.join(names)})")
    scores: dict[str, float] = {}
    difficulty = None
    row_split = None
    for column, value in zip(names[1:], values[1:]):
        key = column.lower()
        if key == SPLIT_COLUMN:
            row_split = value
            continue
        number = _parse_number(path, line, column, value)
        if key in DIFFICULTY_COLUMNS:
            difficulty = number
        else:
            scores[column] = number
    if not values[0]:
        raise LabelError(f"{path}:{line}: empty video name")
    return LabelRecord(values[0], scores, difficulty, split if split is not None else row_split)


def _parse_number(path: Path, line: int, column: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise LabelError(f"{path}:{line}: column {column!r} holds {value!r}, not a number") from None
    if not math.isfinite(number):
        raise LabelError(f"{path}:{line}: column {column!r} is {value!r}, not a finite number")
    return number


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
