"""aqa.api: the README's example runs as written (videos -> store -> model -> score), from a folder
with foreign models/ and data/ packages; settings are checked as the tools check them."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_package import foreign_research_folder

import aqa
from aqa.config import ConfigError
from aqa.synthetic.features import SyntheticTask, make_videos, write_synthetic_store

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_api_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its API example (marked <!-- api-example -->)"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_api_example_runs_from_a_foreign_research_folder(tmp_path):
    folder = foreign_research_folder(tmp_path)
    script = folder / "example.py"
    script.write_text(readme_api_example())
    result = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    written, test_rho, prediction, store = lines[0], float(lines[1]), lines[2].split(), lines[3].split()
    assert written.startswith("['syn_0000'") and written.endswith("{}") and written.count("syn_") == 12
    assert -1.0 <= test_rho <= 1.0
    assert 0.0 < float(prediction[0]) < 100.0 and prediction[1:] == ["[]", "4"]  # no warnings; 32 frames / 8
    assert store == ["12", "i3d"]
    assert (folder / "runs" / "model" / "model.pt").is_file() and (folder / "runs" / "model" / "metrics.json").is_file()


def test_unknown_or_wrong_settings_raise_config_error_not_exit(tmp_path):
    with pytest.raises(ConfigError, match="unknown settings: every_frame"):
        aqa.extract(tmp_path, tmp_path / "f.h5", every_frame=3)
    with pytest.raises(ConfigError, match="unknown setting|valid keys|not a setting|unknown key"):
        aqa.train(tmp_path / "missing.h5", out=tmp_path / "run", overrides={"train.no_such_key": 1})


def test_extract_reports_a_folder_without_videos_as_the_tool_does(tmp_path):
    from aqa.pipeline.extract import ExtractionError

    with pytest.raises(ExtractionError, match="no videos found"):
        aqa.extract(tmp_path, tmp_path / "features.h5", device="cpu")


@pytest.mark.slow
def test_paths_that_look_like_options_stay_paths(tmp_path, monkeypatch):
    """``aqa.extract([video, "--overwrite"], store)`` read "--overwrite" as the option and wiped the
    store; a video named ``-dash.mp4`` (given relative, as a script in its folder does) could not be
    extracted ("unknown settings: -dash.mp4"). Both are paths: one missing, one extracted."""
    from synthetic_video import write_moving_shapes

    monkeypatch.chdir(tmp_path)
    write_moving_shapes(tmp_path / "-dash.mp4", num_frames=12, height=64, width=96)
    settings = {"device": "cpu", "detector": "blazepose", "clip_length": 8, "overrides": {"features.input_size": 64}}
    assert aqa.extract(["-dash.mp4"], "features.h5", **settings).written == ["-dash"]
    again = aqa.extract(["-dash.mp4", "--overwrite"], "features.h5", **settings)
    assert (again.written, again.already_done, list(again.failures)) == ([], 1, ["--overwrite"])
    assert "no such file" in again.failures["--overwrite"]
    with aqa.open_store("features.h5") as store:
        assert store.names == ["-dash"]


@pytest.fixture
def reached_engine(monkeypatch) -> list:
    """The engine stood in for: each run's resolved config is recorded, nothing is extracted."""
    configs = []

    def record(videos, output, config, **options):
        configs.append(config)
        return [], {}

    monkeypatch.setattr("aqa.pipeline.extract.extraction.run_extraction", record)
    return configs


def test_settings_and_overrides_keep_their_python_types(tmp_path, reached_engine):
    """The API made a command line of its keywords, read back as YAML: ``weights="123"`` was refused
    ("features.weights: expected text, got 123") and ``ray_address="1:30"`` became the sexagesimal 90.
    No text is parsed now: both stay text, as do the same values as overrides; a Path where text
    goes is its text, an int where a float goes a float."""
    video, store = tmp_path / "a.mp4", tmp_path / "f.h5"
    aqa.extract(video, store, weights="123", ray_address="1:30", detector_weights=Path("y.pt"), target_fps=25)
    aqa.extract(video, store, overrides={"features.weights": "123", "ray.address": "1:30"})
    from_settings, from_overrides = reached_engine
    for config in reached_engine:
        assert (config.features.weights, config.ray.address) == ("123", "1:30")
    assert from_settings.features.detector.weights == "y.pt"
    assert isinstance(from_settings.features.clips.target_fps, float) and from_settings.features.clips.target_fps == 25


def test_text_where_a_number_goes_is_refused_not_read(tmp_path, reached_engine):
    """The choice for typed values: ``clip_length="3"`` is refused, as ``overrides`` refuses it (the
    old path read the setting's text as 3 but refused the override's, one value two answers); the
    message is one line naming the key."""
    video, store = tmp_path / "a.mp4", tmp_path / "f.h5"
    wrong = [({"clip_length": "3"}, r"^features\.clips\.clip_length: expected an integer, got '3'$"),
             ({"overrides": {"features.clips.clip_length": "3"}}, r"^features\.clips\.clip_length: expected an int"),
             ({"overrides": {"features.weights": 123}}, r"^features\.weights: expected text, got 123$"),
             ({"every_k": True}, r"^features\.detector\.every_k: expected an integer, got True$"),
             ({"overrides": {"features.no_such_key": 1}}, r"^override 'features\.no_such_key': unknown key")]
    for keywords, message in wrong:
        with pytest.raises(ConfigError, match=message):
            aqa.extract(video, store, **keywords)
    assert reached_engine == []  # refused before any video


@pytest.fixture
def no_argparse(monkeypatch) -> None:
    """Building or running an argument parser fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("argparse was used")

    monkeypatch.setattr(argparse.ArgumentParser, "__init__", refuse)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", refuse)


TINY_TASK = SyntheticTask(dim=16, min_clips=8, max_clips=12)
TINY_EXTRACTION = {"device": "cpu", "detector": "blazepose", "clip_length": 8, "overrides": {"features.input_size": 64}}


def tiny_store(path: Path) -> Path:
    """A labelled synthetic feature store (scores ``total`` and ``execution``), 16 train and 8 test videos."""
    return write_synthetic_store(path, {"train": make_videos(16, TINY_TASK, seed=1, prefix="tr"),
                                        "test": make_videos(8, TINY_TASK, seed=2, prefix="te")}, TINY_TASK)


@pytest.mark.slow
def test_extract_and_train_run_without_argparse(tmp_path, no_argparse):
    """aqa.extract and aqa.train made a command line and parsed it with the tools' parsers; they build
    the typed requests the tools' ``run`` functions take."""
    from synthetic_video import write_moving_shapes

    write_moving_shapes(tmp_path / "clip.mp4", num_frames=12, height=64, width=96)
    result = aqa.extract(tmp_path / "clip.mp4", tmp_path / "features.h5", **TINY_EXTRACTION)
    assert (result.written, result.failures) == (["clip"], {})
    report = aqa.train(tiny_store(tmp_path / "synthetic.h5"), out=tmp_path / "run", head="mlp", score="total",
                       epochs=3, seeds=[0, 1], device="cpu")
    assert -1.0 <= report["test_srcc"] <= 1.0 and [row["seed"] for row in report["seeds"]] == [0, 1]
    assert (tmp_path / "run" / "model.pt").is_file()


@pytest.mark.slow
def test_the_run_functions_take_typed_requests(tmp_path, no_argparse):
    """pipeline.extract.run and pipeline.train.run, called with dataclasses built in Python."""
    from aqa.extractors.clips import ClipPlanConfig
    from aqa.extractors.detect import DetectorConfig
    from aqa.extractors.stages import SiameseConfig
    from aqa.pipeline import extract, train
    from synthetic_video import write_moving_shapes

    write_moving_shapes(tmp_path / "clip.mp4", num_frames=12, height=64, width=96)
    features = SiameseConfig(input_size=64, clips=ClipPlanConfig(clip_length=8),
                             detector=DetectorConfig(kind="blazepose"))
    request = extract.ExtractRequest(videos=[tmp_path / "clip.mp4"], output=tmp_path / "features.h5",
                                     config=extract.ExtractConfig(features=features, device="cpu"), progress=False)
    result = extract.run(request)
    assert (result.store, result.written, result.already_done) == (tmp_path / "features.h5", ["clip"], 0)
    assert extract.run(request).already_done == 1  # the same request again resumes

    config = train.resolve_run_config("mlp", settings={"score": ["execution"], "epochs": 3})
    lines = []
    reports = train.run(train.TrainRequest(features=[tiny_store(tmp_path / "synthetic.h5")], out=tmp_path / "run",
                                           config=config, device="cpu", progress=False), say=lines.append)
    assert list(reports) == ["execution"] and reports["execution"]["epochs"] == 3
    (line,) = lines
    assert line.startswith("aqa-train: execution: test rho ") and line.endswith(str(tmp_path / "run" / "model.pt"))
