"""The package's shape: the user's layout, importable stages, a test command CI really runs."""

from __future__ import annotations

import configparser
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("entry", ["pipeline", "extractors", "models", "data", "tests", "setup.cfg"])
def test_requested_layout_exists(entry):
    assert (ROOT / entry).exists()


@pytest.mark.parametrize("package", ["pipeline", "extractors", "models", "data"])
def test_stage_packages_import_from_the_checkout(package):
    module = importlib.import_module(package)
    assert Path(module.__file__).resolve().parent == ROOT / package


def test_lower_stages_never_import_pipeline():
    """Data flows extractors -> data -> models; only pipeline/ may know all of them."""
    for stage, forbidden in [("extractors", ("pipeline", "data", "models")), ("data", ("pipeline", "models")),
                             ("models", ("pipeline",))]:
        for source in (ROOT / stage).rglob("*.py"):
            for line in source.read_text().splitlines():
                words = line.split()
                if words[:1] in (["import"], ["from"]) and len(words) > 1:
                    assert words[1].split(".")[0] not in forbidden, f"{source}: {line.strip()}"


def test_setup_cfg_pins_the_torch_pair_and_ci_runs_the_readme_command():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = config["options"]["install_requires"]
    assert "torch==2.14.1" in requires and "torchvision==0.29.1" in requires
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
