"""aqa.config: dataclass configs round-trip through dicts, YAML, CLI overrides and hashes."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from aqa.config import (
    ConfigError,
    added_setting,
    apply_values,
    config_from_dict,
    config_hash,
    config_to_dict,
    config_to_json,
    config_to_yaml,
    load_config,
    settings_values,
)
from aqa.pipeline.cli import add_config_arguments, resolve_config


@dataclass(frozen=True)
class ClipSettings:
    length: int = 32
    size: tuple[int, int] = (224, 224)
    fps: float | None = None


@dataclass(frozen=True)
class StageSettings:
    name: str = "i3d"
    lr: float = 0.01
    use_amp: bool = False
    mode: Literal["scene", "actor", "both"] = "both"
    clip: ClipSettings = field(default_factory=ClipSettings)
    seeds: tuple[int, ...] = (0, 1, 2)


def test_dict_round_trip_preserves_nested_values_and_tuples():
    config = StageSettings(lr=0.5, clip=ClipSettings(length=16, size=(112, 160), fps=25.0))
    plain = config_to_dict(config)
    assert plain["clip"] == {"length": 16, "size": [112, 160], "fps": 25.0}
    assert json.loads(json.dumps(plain)) == plain
    assert config_from_dict(StageSettings, plain) == config


def test_yaml_file_then_overrides_take_precedence(tmp_path):
    path = tmp_path / "stage.yaml"
    path.write_text("lr: 0.1\nclip:\n  length: 64\n")
    config = load_config(StageSettings, path, ["clip.length=8", "mode=actor", "clip.size=[64, 96]"])
    assert config == StageSettings(lr=0.1, mode="actor", clip=ClipSettings(length=8, size=(64, 96)))


def test_resolved_yaml_loads_back_identically(tmp_path):
    config = StageSettings(name="swin3d_b", seeds=(3,), clip=ClipSettings(fps=29.97))
    path = tmp_path / "resolved.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(StageSettings, path) == config
    assert config_hash(load_config(StageSettings, path)) == config_hash(config)


def test_cli_flags_resolve_through_yaml_and_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("use_amp: true\n")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, example="lr=0.2")
    args = parser.parse_args(["--config", str(path), "--set", "lr=0.2", "--set", "clip.fps=null"])
    assert resolve_config(StageSettings, args) == StageSettings(use_amp=True, lr=0.2)


def test_hash_is_stable_and_sensitive():
    assert config_hash(StageSettings()) == config_hash(StageSettings())
    assert config_hash(StageSettings()) != config_hash(StageSettings(lr=0.010001))
    assert config_to_json(StageSettings()).startswith('{"clip":')  # canonical: sorted keys


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lrr=0.1"], "unknown key 'lrr'"),
        (["lr=fast"], "lr: expected a number"),
        (["mode=sideways"], "is not one of"),
        (["clip.size=[1,2,3]"], "expected 2 items"),
        (["use_amp=1"], "expected true or false"),
        (["clip=3"], "expected a mapping"),
        (["name.x=1"], "is not a config section"),
        (["no-equals-sign"], "key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(StageSettings, None, overrides)


def test_bad_yaml_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(StageSettings, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(StageSettings, tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("clip:\n  lenght: 3\n")
    with pytest.raises(ConfigError, match="clip.lenght: unknown key"):
        load_config(StageSettings, tmp_path / "typo.yaml")


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        StageSettings().lr = 1.0  # type: ignore[misc]


@dataclass(frozen=True)
class CheckedSettings:
    every_k: int = 1

    def __post_init__(self) -> None:
        if self.every_k < 1:
            raise ValueError(f"every_k must be >= 1, got {self.every_k}")


def test_a_config_s_own_validation_becomes_a_config_error():
    with pytest.raises(ConfigError, match="every_k must be >= 1, got 0"):
        load_config(CheckedSettings, None, ["every_k=0"])


TOOL_MODULES = {"extract": "extract.cli", "train": "train.cli", "predict": "predict.cli"}
"""Where a tool's argument parser is: a command package's cli module, else the tool's own module."""


@pytest.mark.parametrize("tool", ["extract", "train", "synthetic"])
def test_every_tools_help_example_for_set_is_accepted_by_that_tool(tool):
    """The ``--set`` example in each ``--help`` parses through that tool's own config (it once
    showed ``clip.length=16``, which no tool accepts)."""
    import importlib
    import re

    from aqa.synthetic.dataset import SyntheticDatasetConfig

    module = importlib.import_module(f"aqa.pipeline.{TOOL_MODULES.get(tool, tool)}")
    parser = module.get_args_parser()
    example = re.search(r"e\.g\. --set (\S+);", " ".join(parser.format_help().split())).group(1)
    required = {"extract": ["videos", "-o", "f.h5"], "train": ["f.h5", "--out", "o"], "synthetic": ["out"]}[tool]
    args = parser.parse_args([*required, "--set", example])
    if tool == "synthetic":
        config = load_config(SyntheticDatasetConfig, None, args.overrides)
    else:
        config = module.config_from_args(args)
    key, value = example.split("=")
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    assert str(node) == value


def test_an_unknown_section_lists_the_valid_sections_and_keys():
    with pytest.raises(ConfigError, match=r"sections here: clip; keys: clip, lr, mode, name, seeds, use_amp"):
        load_config(StageSettings, None, ["name.x=1"])


def test_an_internal_error_has_its_own_exit_code_apart_from_some_videos_failed():
    from aqa.pipeline.cli import EXIT_INTERNAL_ERROR, EXIT_SOME_FAILED, EXIT_USER_ERROR, run_cli

    def broken(args):
        raise RuntimeError("a bug")

    assert run_cli("aqa-x", argparse.ArgumentParser, broken, []) == EXIT_INTERNAL_ERROR
    assert len({EXIT_INTERNAL_ERROR, EXIT_SOME_FAILED, EXIT_USER_ERROR, 0}) == 4


def test_an_unusable_cache_folder_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """``AQA_CACHE_DIR`` under a file (unusable even by root): the tools' library caches cannot be
    made there. It raised NotADirectoryError from run_cli's first line, a traceback."""
    from aqa.pipeline.cli import EXIT_USER_ERROR, run_cli

    (tmp_path / "notes.txt").write_text("a file")
    monkeypatch.setenv("AQA_CACHE_DIR", str(tmp_path / "notes.txt" / "cache"))
    for name in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR"):
        monkeypatch.delenv(name, raising=False)
    assert run_cli("aqa-x", argparse.ArgumentParser, lambda args: 0, []) == EXIT_USER_ERROR
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("aqa-x: error: AQA_CACHE_DIR ") and "notes.txt" in line and "Not a directory" in line


@pytest.mark.parametrize("tool", ["extract", "train", "predict", "synthetic", "import_features", "demo"])
def test_every_tools_help_lists_its_exit_codes(tool):
    import importlib

    parser = importlib.import_module(f"aqa.pipeline.{TOOL_MODULES.get(tool, tool)}").get_args_parser()
    text = " ".join(parser.format_help().split())
    assert "Exit status: 0" in text and "3 internal error" in text and "130 interrupted" in text


@pytest.mark.parametrize(("flags", "message"), [
    (["--clip-length", "0"], "features.clips: clip_length must be a positive number of frames, got 0"),
    (["--target-fps", "-5"], "features.clips: target_fps must be positive"),
    (["--every-k", "0"], "features.detector: every_k must be at least 1, got 0"),
    (["--set", "features.input_size=4"], "features: input_size must be at least 16 pixels"),
    (["--set", "features.clips.stride=0"], "features.clips: stride must be a positive number of frames"),
])
def test_impossible_extraction_numbers_are_refused_before_any_video(tmp_path, flags, message):
    """Checked when the config is made: no video is opened, no store is created."""
    from aqa.pipeline.extract.cli import cli

    output = tmp_path / "f.h5"
    assert cli([str(tmp_path / "no-such-videos"), "-o", str(output), "--quiet", *flags]) == 2
    assert not output.exists()
    with pytest.raises(ConfigError, match=message):
        from aqa.pipeline.extract.cli import config_from_args, get_args_parser
        config_from_args(get_args_parser().parse_args(["v", "-o", str(output), *flags]))


def test_typed_values_keep_their_type_and_are_only_checked():
    """The Python API's values are never read as YAML: text stays text however it looks ("123" is
    not 123, "1:30" not the sexagesimal 90), a Path where text goes is its text, an int where a float
    goes a float, a list where a tuple goes a tuple; settings given together are checked together."""
    config = apply_values(StageSettings(), {"name": "123", "lr": 1, "clip.size": [112, 112], "seeds": [4],
                                            "clip.fps": 12.5})
    assert (config.name, config.lr, config.clip.size, config.seeds, config.clip.fps) == ("123", 1.0, (112, 112),
                                                                                         (4,), 12.5)
    assert isinstance(config.lr, float)
    assert apply_values(StageSettings(), {"name": "1:30"}).name == "1:30"
    assert apply_values(StageSettings(), [("name", Path("w.pt")), ("name", "later wins")]).name == "later wins"
    assert apply_values(StageSettings(), {"name": Path("w.pt")}).name == "w.pt"
    assert apply_values(StageSettings(), {}) == StageSettings()


@pytest.mark.parametrize(("values", "message"), [
    ({"clip.length": "3"}, "clip.length: expected an integer, got '3'"),
    ({"name": 123}, "name: expected text, got 123"),
    ({"use_amp": 1}, "use_amp: expected true or false, got 1"),
    ({"mode": "all"}, "mode: 'all' is not one of ['scene', 'actor', 'both']"),
    ({"seeds": 3}, "seeds: expected a list, got 3"),
    ({"clip.nope": 1}, "override 'clip.nope': unknown key 'nope'; known keys: fps, length, size"),
])
def test_a_typed_value_of_the_wrong_type_or_key_is_one_line_naming_the_key(values, message):
    with pytest.raises(ConfigError) as raised:
        apply_values(StageSettings(), values)
    assert str(raised.value) == message


def test_shortcut_settings_map_to_their_keys_and_an_unknown_one_is_named():
    keys = {"every_k": "detector.every_k", "clip_length": "clips.clip_length"}
    assert settings_values({"every_k": 2, "clip_length": None}, keys) == {"detector.every_k": 2}  # None: not given
    with pytest.raises(ConfigError, match=r"^unknown settings: every_frame, lenght; settings: clip_length, every_k "):
        settings_values({"every_frame": 3, "lenght": 1, "every_k": 2}, keys)


@dataclass(frozen=True)
class Before:
    lr: float = 0.01


@dataclass(frozen=True)
class After:
    """``Before`` with a setting added later (:func:`added_setting`)."""

    lr: float = 0.01
    extra: tuple[str, ...] = added_setting(())


def test_a_setting_added_later_keeps_the_hash_of_configs_made_before_at_its_default():
    """At its default an added setting is left out of the hash, so a run folder or a card made before
    it keeps its hash; set, it is hashed; artifacts store it either way, and it round-trips."""
    assert config_hash(After()) == config_hash(Before())
    assert config_hash(After(extra=("a",))) != config_hash(Before())
    assert config_hash(After(lr=0.02)) == config_hash(Before(lr=0.02))
    assert config_to_dict(After()) == {"lr": 0.01, "extra": []}
    assert config_from_dict(After, config_to_dict(After(extra=("a",)))) == After(extra=("a",))
