"""How every benchmark reports: one JSON object per measurement, on stdout and appended to a file."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any


def json_lines(out: str | Path | None, **common: Any) -> Callable[[dict[str, Any]], None]:
    """An ``emit(record)`` that prints ``record`` plus ``common`` (and the machine) as one JSON line,
    appending it to ``out`` too when given, so a device run can bring the file back."""
    context = {"machine": platform.node(), "cpus": os.cpu_count(), **common}

    def emit(record: dict[str, Any]) -> None:
        line = json.dumps({**record, **context})
        print(line, flush=True)
        if out:
            with open(out, "a") as handle:
                handle.write(line + "\n")

    return emit
