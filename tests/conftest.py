"""Shared fixtures: offline-safe environment, tiny real videos, the shared real data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aqa.pipeline.environment import configure_library_environment

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


def _shared_folder(name: str, what: str) -> Path:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{what} not found at {folder} (the shared data lives beside the repo)")
    return folder


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    """``../shared/data/videos``; tests that need it skip with the reason when it is absent."""
    return _shared_folder("videos", "real videos")


@pytest.fixture(scope="session")
def shared_footage() -> Path:
    """``../shared/data/footage`` (broadcast clips for the athlete and speed issues); skips when absent."""
    return _shared_folder("footage", "real footage")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with the reason, where no CUDA device is visible (CI, laptops)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny synthetic dataset extracted with real I3D weights (small input) and a CoFInAl head
    trained on it: (root, dataset folder, checkpoint). Shared by the predict tests and the corpus."""
    from aqa.pipeline.extract.cli import cli as extract_cli
    from aqa.pipeline.train.cli import cli as train_cli
    from aqa.synthetic.dataset import SyntheticDatasetConfig, generate_dataset

    root = tmp_path_factory.mktemp("predict")
    dataset = generate_dataset(root / "dataset", SyntheticDatasetConfig(num_videos=6, num_frames=24, width=128,
                                                                        height=128, test_fraction=0.34))
    assert extract_cli([str(dataset / "videos"), "-o", str(root / "f.h5"), "--labels", str(dataset / "train.txt"),
                        "--labels", str(dataset / "test.txt"), "--set", "features.input_size=64",
                        "--clip-length", "8", "--quiet"]) == 0
    assert train_cli([str(root / "f.h5"), "--head", "cofinal", "--score", "score", "--out", str(root / "run"),
                      "--epochs", "3", "--quiet"]) == 0
    return root, dataset, root / "run" / "model.pt"
