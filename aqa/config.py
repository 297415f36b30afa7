"""Frozen dataclass configs: YAML and command-line overrides, serialization, hashing.

Every stage describes its settings as a frozen dataclass whose defaults come from the papers.
This module is the one place that turns those dataclasses into plain dictionaries (to store
inside HDF5 attributes and checkpoints), builds them back from dictionaries, YAML files,
``key=value`` overrides (text, read as YAML) and typed values at dotted keys (the Python API's,
never parsed), and hashes the resolved result so an artifact can say exactly which
settings produced it.

Only plain types are supported in config fields: bool, int, float, str, None, tuples/lists of
those, ``Literal`` choices, ``Optional`` and nested dataclasses. That keeps every config
round-trippable through JSON and YAML without pickles.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from aqa.errors import AqaError

ConfigT = TypeVar("ConfigT")


class ConfigError(AqaError, ValueError):
    """A config value or key the user supplied is invalid; the message says which and why."""


# Marks a field made by :func:`added_setting` (dataclass field metadata).
_ADDED_SETTING = "aqa.added_setting"


def added_setting(default: Any) -> Any:
    """A config field added after artifacts were hashed without it, with a default that keeps their
    meaning: at that default it is left out of what :func:`config_hash` hashes, so every config made
    before it keeps its hash (a run folder made before still resumes, a card's hash still names its
    settings); set to anything else it is hashed like any field. Artifacts store it as any field
    (:func:`config_to_dict`). ``default`` must be immutable (a tuple, not a list)."""
    return dataclasses.field(default=default, metadata={_ADDED_SETTING: True})


def config_to_dict(config: Any, *, hashed: bool = False) -> dict[str, Any]:
    """Turn a (nested) dataclass config into JSON-ready plain data; tuples become lists. ``hashed``:
    without the :func:`added_setting` fields that hold their default (what :func:`config_hash` hashes)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return {field.name: _to_plain(getattr(config, field.name), hashed) for field in dataclasses.fields(config)
            if not (hashed and field.metadata.get(_ADDED_SETTING) and getattr(config, field.name) == field.default)}


def _to_plain(value: Any, hashed: bool = False) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value, hashed=hashed)
    if isinstance(value, (tuple, list)):
        return [_to_plain(item, hashed) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_from_dict(config_type: type[ConfigT], values: dict[str, Any], *, where: str = "") -> ConfigT:
    """Build ``config_type`` from plain data, checking keys and coercing values to field types.

    Missing keys take the dataclass defaults; unknown keys are an error (a typo must never be
    silently ignored, or an artifact would claim settings it was not made with).
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where or config_type.__name__}: expected a mapping, got {values!r}")
    hints = get_type_hints(config_type)
    fields = {field.name: field for field in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where or config_type.__name__}: unknown key(s) {unknown}; known keys: {known}")
    kwargs = {
        name: _coerce(hints[name], value, f"{where}{name}") for name, value in values.items()
    }
    try:
        return config_type(**kwargs)
    except ConfigError:
        raise
    except ValueError as error:  # a config's own __post_init__ check: still the user's input
        raise ConfigError(f"{where.rstrip('.') or config_type.__name__}: {error}") from None


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    """Convert ``value`` to ``annotation`` or raise ConfigError naming ``key``."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if dataclasses.is_dataclass(value):
            return value
        return config_from_dict(annotation, value, where=f"{key}.")
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {options}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_types = get_args(annotation)
        if origin is tuple and len(item_types) == 2 and item_types[1] is Ellipsis:
            item_types = (item_types[0],) * len(value)
        elif origin is list:
            item_types = (item_types[0] if item_types else Any,) * len(value)
        elif len(item_types) != len(value):
            raise ConfigError(f"{key}: expected {len(item_types)} items, got {len(value)}")
        items = [_coerce(t, v, f"{key}[{i}]") for i, (t, v) in enumerate(zip(item_types, value))]
        return tuple(items) if origin is tuple else items
    return _coerce_scalar(annotation, value, key)


def _coerce_scalar(annotation: Any, value: Any, key: str) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):  # a pathlib.Path from Python code: a file name is text
            return os.fspath(value)
        raise ConfigError(f"{key}: expected text, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    raise TypeError(f"{key}: unsupported config field type {annotation!r}")


def apply_overrides(config: ConfigT, overrides: typing.Iterable[str]) -> ConfigT:
    """Return a copy of ``config`` with ``dotted.key=value`` overrides applied.

    Values are parsed as YAML scalars or flow collections (``lr=0.01``, ``size=[224,224]``,
    ``weights=null``), then checked against the field's type like any other value.
    """
    return apply_values(config, [parse_override(override) for override in overrides])


def parse_override(override: str) -> tuple[str, Any]:
    """``"dotted.key=value"`` -> ``("dotted.key", value)``, the value read as YAML (text is what a
    command line has; the Python API passes typed values to :func:`apply_values` instead)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form key=value")
    return key.strip(), yaml.safe_load(text) if text.strip() else ""


def apply_values(config: ConfigT, values: typing.Mapping[str, Any] | typing.Iterable[tuple[str, Any]]) -> ConfigT:
    """Return a copy of ``config`` with already-typed values set at dotted keys (``{"train.lr": 0.01}``).

    Nothing is parsed: a value keeps its Python type and is checked against the field's as a YAML
    value is (an int where a float goes is fine; ``"3"`` where an int goes, or ``123`` where text goes,
    is refused), so ``"123"`` stays text and ``"1:30"`` is not read as the sexagesimal 90. An unknown
    key or a wrong type raises :class:`ConfigError` in one line naming the key. All values are set
    before the config is checked, so settings that only make sense together can be given together.
    """
    pairs = values.items() if isinstance(values, typing.Mapping) else values
    plain = config_to_dict(config)
    for key, value in pairs:
        _set_dotted(plain, key, value)
    return config_from_dict(type(config), plain)


def settings_values(settings: typing.Mapping[str, Any], keys: typing.Mapping[str, str]) -> dict[str, Any]:
    """A tool's shortcut settings (``every_k=4``, its ``--every-k``) as the dotted config keys they
    set (``keys``: setting name -> dotted key); None means "not given". An unknown setting raises
    :class:`ConfigError` naming it: a typo must not be dropped silently."""
    unknown = sorted(set(settings) - set(keys))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}; settings: {', '.join(sorted(keys))} "
                          "(any other config key through overrides)")
    return {keys[name]: value for name, value in settings.items() if value is not None}


def layered_values(set_text: typing.Iterable[str], overrides: typing.Mapping[str, Any] | None,
                   settings: typing.Mapping[str, Any] | None, keys: typing.Mapping[str, str]) -> list[tuple[str, Any]]:
    """What a tool's run sets over its defaults and YAML, in the order the values win: ``--set`` text
    (read as YAML), typed ``overrides`` at dotted keys, then the dedicated ``settings`` (``keys``: see
    :func:`settings_values`). One list, so :func:`apply_values` checks them all together."""
    return [*map(parse_override, set_text), *(overrides or {}).items(),
            *settings_values(settings or {}, keys).items()]


def _set_dotted(values: dict[str, Any], dotted_key: str, value: Any) -> None:
    *parents, leaf = dotted_key.split(".")
    node = values
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            sections = sorted(key for key, value in node.items() if isinstance(value, dict))
            raise ConfigError(f"override {dotted_key!r}: {part!r} is not a config section; sections here: "
                              f"{', '.join(sections) or 'none'}; keys: {', '.join(sorted(node))}")
        node = child
    if leaf not in node:
        raise ConfigError(f"override {dotted_key!r}: unknown key {leaf!r}; known keys: {', '.join(sorted(node))}")
    node[leaf] = value


def merge_dict(config: ConfigT, values: dict[str, Any]) -> ConfigT:
    """Return ``config`` updated by a (possibly partial, nested) mapping such as a YAML file."""
    merged = config_to_dict(config)
    _deep_update(merged, values, "")
    return config_from_dict(type(config), merged)


def _deep_update(target: dict[str, Any], update: dict[str, Any], where: str) -> None:
    for key, value in update.items():
        if key not in target:
            raise ConfigError(f"{where}{key}: unknown key; known keys: {', '.join(sorted(target))}")
        if isinstance(target[key], dict) and isinstance(value, dict):
            _deep_update(target[key], value, f"{where}{key}.")
        else:
            target[key] = value


def load_config(
    config_type: type[ConfigT],
    yaml_path: str | Path | None = None,
    overrides: typing.Iterable[str] = (),
    base: ConfigT | None = None,
) -> ConfigT:
    """Resolve a config: defaults (or ``base``), then a YAML file, then ``key=value`` overrides."""
    config = base if base is not None else config_type()
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        config = merge_dict(config, loaded)
    return apply_overrides(config, overrides)


def config_to_yaml(config: Any) -> str:
    """The resolved config as YAML text, loadable again with :func:`load_config`."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def config_to_json(config: Any) -> str:
    """Canonical JSON of the config (sorted keys, no spaces; :func:`added_setting` fields at their
    default left out): what gets hashed."""
    return json.dumps(config_to_dict(config, hashed=True), sort_keys=True, separators=(",", ":"))


def config_hash(config: Any, length: int = 16) -> str:
    """A short sha256 of the canonical JSON: equal configs hash equal, any change differs."""
    return hashlib.sha256(config_to_json(config).encode()).hexdigest()[:length]
