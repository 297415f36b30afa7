"""Provenance: what produced a set of features, stored with them and checked before use.

Features made by a different backbone, weights file, clip plan, input size or detector are not
comparable: a head trained on one set gives meaningless scores on another, silently. So every
feature shard carries a :class:`Provenance` (as a JSON attribute), and training and prediction call
:func:`check_provenance`, which raises :class:`ProvenanceMismatchError` naming every key that
differs (nested keys dotted, e.g. ``clip_plan.stride``).

Imported features (``aqa-import``) use :func:`imported_provenance`: backbone ``"imported"``, the
source folder and a sha256 over the arrays, so they can never be mistaken for extracted ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqa.errors import AqaError

IMPORTED_BACKBONE = "imported"


class ProvenanceMismatchError(AqaError):
    """Features were made differently from what the caller expects (or from each other)."""


@dataclass(frozen=True)
class Provenance:
    """Everything that decides what a feature vector means; equal provenance, comparable features.

    ``clip_plan`` is the clip plan config as plain data (kind, clip length, stride, target fps...),
    ``input_size`` the ``(H, W)`` the backbone sees (``()`` when unknown, as for imported features),
    ``detector``/``detector_weights`` name the person detector and its weights (sha256 or release
    id; ``""`` when no actor stream was made), ``config_hash`` the hash of the resolved extraction
    config. ``extra`` holds anything else worth keeping (for imports: source folder, arrays sha256).
    """

    backbone: str
    weights_sha256: str
    clip_plan: Mapping[str, Any]
    input_size: tuple[int, ...]
    detector: str
    detector_weights: str
    package_version: str
    config_hash: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (tuples become lists)."""
        return _plain({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): what is stored in HDF5 attributes and checkpoints."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`; missing or unknown keys are an error (a file we cannot trust)."""
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise ProvenanceMismatchError(f"provenance is malformed: missing keys {missing}, unknown keys {unknown}")
        kwargs = dict(values)
        kwargs["input_size"] = tuple(int(v) for v in values["input_size"])
        kwargs["clip_plan"] = dict(values["clip_plan"])
        kwargs["extra"] = dict(values.get("extra", {}))
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> Provenance:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ProvenanceMismatchError(f"provenance is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise ProvenanceMismatchError(f"provenance must be a JSON object, got {type(values).__name__}")
        return cls.from_dict(values)


def imported_provenance(source: str | Path, arrays_sha256: str, *, package_version: str, config_hash: str = "",
                        extra: Mapping[str, Any] | None = None) -> Provenance:
    """Provenance of features brought in by ``aqa-import``: nothing known but where they came from."""
    return Provenance(
        backbone=IMPORTED_BACKBONE, weights_sha256="", clip_plan={}, input_size=(), detector="",
        detector_weights="", package_version=package_version, config_hash=config_hash,
        extra={"source": str(source), "arrays_sha256": arrays_sha256, **(extra or {})},
    )


def provenance_differences(expected: Provenance, actual: Provenance, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ, sorted; a key in ``ignore`` (or under an ignored prefix) is skipped."""
    ignored = tuple(ignore)
    left, right = _flatten(expected.to_dict()), _flatten(actual.to_dict())
    keys = sorted(set(left) | set(right))
    return [key for key in keys
            if left.get(key, _ABSENT) != right.get(key, _ABSENT)
            and not any(key == prefix or key.startswith(prefix + ".") for prefix in ignored)]


def check_provenance(expected: Provenance, actual: Provenance, *, ignore: Iterable[str] = (),
                     what: str = "features") -> None:
    """Raise :class:`ProvenanceMismatchError` naming each differing key with both values.

    ``what`` names the checked thing in the message (a path, "checkpoint"...).
    """
    differing = provenance_differences(expected, actual, ignore)
    if not differing:
        return
    left, right = _flatten(expected.to_dict()), _flatten(actual.to_dict())
    details = "; ".join(
        f"{key}: expected {_show(left.get(key, _ABSENT))}, found {_show(right.get(key, _ABSENT))}" for key in differing
    )
    raise ProvenanceMismatchError(
        f"{what} were made differently from what is expected (differing keys: {', '.join(differing)}) -- {details}"
    )


_ABSENT = object()


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


def _plain(value: Any) -> Any:
    """JSON-normalize: tuples to lists, numpy scalars to Python, mappings to dicts with str keys."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; an empty mapping stays a leaf so it still compares."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
