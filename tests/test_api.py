"""aqa.api: the README's example runs as written (videos -> store -> model -> score), from a folder
with foreign models/ and data/ packages; settings are checked as the tools check them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_package import foreign_research_folder

import aqa
from aqa.config import ConfigError

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
    with pytest.raises(ConfigError, match="unknown settings: --every-frame"):
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
