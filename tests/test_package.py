"""The package's shape: the user's layout installed under one name, importable stages, a test command CI really runs."""

from __future__ import annotations

import configparser
import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("entry", ["pipeline", "extractors", "models", "data", "tests", "setup.cfg"])
def test_requested_layout_exists(entry):
    assert (ROOT / entry).exists()


@pytest.mark.parametrize("package", ["pipeline", "extractors", "models", "data"])
def test_stage_folders_import_as_aqa_packages_from_the_checkout(package):
    module = importlib.import_module(f"aqa.{package}")
    assert Path(module.__file__).resolve().parent == ROOT / package


def test_lower_stages_never_import_pipeline():
    """Data flows extractors -> data -> models; only pipeline/ may know all of them."""
    for stage, forbidden in [("extractors", ("pipeline", "data", "models")), ("data", ("pipeline", "models")),
                             ("models", ("pipeline",))]:
        for source in (ROOT / stage).rglob("*.py"):
            for line in source.read_text().splitlines():
                words = line.split()
                if words[:1] in (["import"], ["from"]) and len(words) > 1:
                    parts = words[1].split(".")
                    assert parts[0] == "aqa" or parts[0] not in ("pipeline", "extractors", "models", "data"), \
                        f"{source}: {line.strip()} (the stages are imported as aqa.*)"
                    assert parts[:2] not in [["aqa", name] for name in forbidden], f"{source}: {line.strip()}"


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(tmp_path):
    """What ``pip install .`` puts in site-packages: aqa and nothing else (generic names such as models and
    data would shadow, or be shadowed by, the research code our users keep beside us)."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "runs", "build", "*.h5",
                                                                 "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("aqa-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"aqa"}
    assert {"aqa/__init__.py", "aqa/pipeline/train/training.py", "aqa/extractors/backbones/i3d.py",
            "aqa/models/fspn.py", "aqa/data/feature_store.py", "aqa/data/folds/fisv_train_5fold.json"} <= set(names)
    top_level = next(name for name in names if name.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["aqa"]


def foreign_research_folder(folder: Path) -> Path:
    """A working directory like a CoFInAl or GDLT checkout: its own models/ and data/ packages, which
    fail loudly when imported."""
    for name in ("models", "data", "pipeline", "extractors"):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise ImportError('the foreign {name} package was imported')\n")
    return folder


def test_tools_and_api_work_beside_foreign_models_and_data_packages(tmp_path):
    folder = foreign_research_folder(tmp_path)
    bin_dir = Path(sys.executable).parent
    for tool in ("aqa-extract", "aqa-train", "aqa-predict", "aqa-import", "aqa-app", "aqa-index"):
        result = subprocess.run([str(bin_dir / tool), "--help"], cwd=folder, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0 and "usage:" in result.stdout, (tool, result.stderr[-2000:])
    code = ("import aqa; print(aqa.__version__); from aqa.pipeline.predict import LoadedPredictor; "
            "print(aqa.train.__module__, aqa.Predictor.__module__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [importlib.import_module("aqa").__version__, "aqa.api", "aqa.api"]


def test_importing_aqa_is_light():
    """``import aqa`` (for its version, say) loads neither torch nor any stage."""
    code = "import sys, aqa; print(sorted(name for name in sys.modules if name in ('torch', 'aqa.pipeline')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_setup_cfg_pins_the_torch_pair_and_ci_runs_the_readme_command():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = config["options"]["install_requires"]
    assert "torch==2.14.1" in requires and "torchvision==0.29.1" in requires
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
