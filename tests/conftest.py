"""Shared fixtures: offline-safe environment, tiny real videos, the shared real data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.environment import configure_library_environment

configure_library_environment(offline=True)
sys.path.insert(0, str(Path(__file__).parent))

from synthetic_video import MovingShapes, write_moving_shapes  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def make_video(tmp_path):
    """Factory: ``make_video(name, **moving_shapes_kwargs) -> (path, MovingShapes)``."""

    def _make(name: str = "clip.mp4", **kwargs) -> tuple[Path, MovingShapes]:
        path = tmp_path / name
        return path, write_moving_shapes(path, **kwargs)

    return _make


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    """``../shared/data/videos``; tests that need it skip with the reason when it is absent."""
    folder = SHARED_DATA / "videos"
    if not folder.is_dir():
        pytest.skip(f"real videos not found at {folder} (the shared data lives beside the repo)")
    return folder


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with the reason, where no CUDA device is visible (CI, laptops)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
