"""Provenance: what produced a set of features, stored with them and checked before use. This module
owns it whole: the record, comparing and explaining differences, making it from an extraction
config (:func:`feature_provenance`) and checking that a checkpoint's can be reproduced here
(:func:`extraction_config`, :func:`check_reproducible`).

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
from typing import TYPE_CHECKING, Any

from aqa.config import config_from_dict, config_hash, config_to_dict
from aqa.errors import AqaError
from aqa.version import __version__

if TYPE_CHECKING:  # the record and its checks stay free of torch: the feature store imports them
    from aqa.extractors.backbones import VideoBackbone
    from aqa.extractors.detect import PersonDetector
    from aqa.extractors.stages import SiameseConfig

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


# --------------------------------------------------------------------------- making and reproducing


class ProvenanceNotReproducible(AqaError):
    """This machine cannot extract features the way the checkpoint's training features were made."""


def feature_provenance(config: SiameseConfig, backbone: VideoBackbone, detector: PersonDetector) -> Provenance:
    """What a stored feature means, for training and prediction to check against."""
    input_size = config.resolved_input_size
    neutral = runtime_neutral(config)
    return Provenance(
        backbone=config.backbone, weights_sha256=backbone.weights_sha256 or "random-init",
        clip_plan=config_to_dict(config.clips), input_size=(input_size, input_size),
        detector=detector.name, detector_weights=detector.weights_id, package_version=__version__,
        config_hash=config_hash(neutral),  # feature_config_hash(config), from the config made once
        # The whole resolved config, so aqa-predict can run exactly this extraction again.
        extra={"features_config": config_to_dict(neutral)},
    )


def runtime_neutral(config: SiameseConfig) -> SiameseConfig:
    """``config`` without what changes speed or location but not the features.

    The detector's device, batch size and half precision are reset; weights paths are dropped
    (the backbone's) or cut to the file name (the detector's): the provenance's sha256 fields say
    which weights were used, wherever the file lies on this machine.
    """
    detector_weights = Path(config.detector.weights).name if config.detector.weights else None
    detector = dataclasses.replace(config.detector, device="cpu", batch_size=1, half=False, weights=detector_weights)
    return dataclasses.replace(config, weights=None, detector=detector)


def feature_config_hash(config: SiameseConfig) -> str:
    """Hash of what decides the features; the detector's device, batch size and precision do not."""
    return config_hash(runtime_neutral(config))


def extraction_config(provenance: Provenance, *, weights: str | None, detector_weights: str | None) -> SiameseConfig:
    """The extraction config recorded in ``provenance``, with this machine's weights paths."""
    if provenance.backbone == IMPORTED_BACKBONE:
        raise ProvenanceNotReproducible(
            f"the checkpoint was trained on imported features ({provenance.extra.get('source', 'unknown source')}); "
            "aqa-predict cannot extract such features from a video: train on features made by aqa-extract")
    recorded = provenance.extra.get("features_config")
    if not isinstance(recorded, dict):
        raise ProvenanceNotReproducible("the checkpoint's features carry no extraction config (made by an older "
                                        "aqa); re-extract them with this version")
    from aqa.extractors.stages import SiameseConfig  # here, not at the top: see the imports

    config = config_from_dict(SiameseConfig, recorded)
    if feature_config_hash(config) != provenance.config_hash:
        newer = sorted(set(_flatten(config_to_dict(runtime_neutral(config)))) - set(_flatten(recorded)))
        if newer:  # the settings were filled with today's defaults, which need not be what made the features
            raise ProvenanceNotReproducible(
                f"the checkpoint's features were made by an older aqa, before the settings {', '.join(newer)} "
                "existed: re-extract the features and retrain with this version")
        raise ProvenanceNotReproducible("the checkpoint's extraction config does not match its own hash: "
                                        "the file was edited or is damaged")
    detector = (config.detector if detector_weights is None
                else dataclasses.replace(config.detector, weights=detector_weights))
    return dataclasses.replace(config, weights=weights, detector=detector)


def check_reproducible(provenance: Provenance, backbone: VideoBackbone, detector: PersonDetector,
                       input_size: int) -> None:
    """Refuse, naming each difference, unless this backbone and detector match the training features'."""
    found = {"backbone weights sha256": backbone.weights_sha256 or "random-init", "detector": detector.name,
             "detector weights": detector.weights_id, "input size": (input_size, input_size)}
    expected = {"backbone weights sha256": provenance.weights_sha256, "detector": provenance.detector,
                "detector weights": provenance.detector_weights, "input size": tuple(provenance.input_size)}
    differing = [f"{key}: checkpoint {expected[key]!r}, here {found[key]!r}" for key in found
                 if found[key] != expected[key]]
    if differing:
        raise ProvenanceNotReproducible("cannot reproduce the training features here -- " + "; ".join(differing))
