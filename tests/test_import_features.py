"""pipeline.import_features (aqa-import): GDLT/CoFInAl .npy folders + label files -> a trainable store."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

from aqa.data.dataset import FeatureDataset
from aqa.data.feature_store import open_feature_store
from aqa.data.provenance import IMPORTED_BACKBONE
from aqa.pipeline.import_features import cli

D = 16


@pytest.fixture
def release(tmp_path):
    """A Fis-V-like release: 5 arrays of varying length, header-less train/test label files."""
    folder = tmp_path / "features"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for index in range(1, 6):
        arrays[str(index)] = rng.standard_normal((3 + index, D)).astype(np.float32)
        np.save(folder / f"{index}.npy", arrays[str(index)])
    (tmp_path / "train_dataset.txt").write_text("1 28.71 29.36 1\n2 30.5 27.0 0\n3 31.0 30.25 2\n")
    (tmp_path / "test_dataset.txt").write_text("4 25.5 26.0 1\n5 40.0 35.5 0\n")
    return folder, arrays


def run(capsys, *argv):
    code = cli([str(arg) for arg in argv])
    return code, capsys.readouterr().err


def test_round_trip_gives_back_the_same_arrays_and_scores(tmp_path, release, capsys):
    folder, arrays = release
    out = tmp_path / "fisv.h5"
    code, _ = run(capsys, folder, "-o", out, "--labels", tmp_path / "train_dataset.txt",
                  "--labels", tmp_path / "test_dataset.txt", "--columns", "id,TES,PCS,ded", "-q")
    assert code == 0
    train = FeatureDataset(out, split="train", scores=("TES", "PCS"))
    test = FeatureDataset(out, split="test", scores="ded")
    assert train.names == ["1", "2", "3"] and test.names == ["4", "5"]
    for dataset in (train, test):
        for item in dataset:
            assert torch.equal(item["scene"], torch.from_numpy(arrays[item["name"]]))
            assert "actor" not in item
    assert torch.equal(train.targets, torch.tensor([[28.71, 29.36], [30.5, 27.0], [31.0, 30.25]]))
    assert test.targets[:, 0].tolist() == [1.0, 0.0]
    assert train.provenance.backbone == IMPORTED_BACKBONE
    assert train.provenance.extra["source"] == str(folder.resolve())
    assert len(train.provenance.extra["arrays_sha256"]) == 64


def test_header_is_detected_and_names_the_scores(tmp_path, release, capsys):
    folder, arrays = release
    labels = tmp_path / "train.txt"
    labels.write_text("Video_Name\tTotal_Score    Difficulty\n1\t57.07\t3.2\n2\t50.0\t2.8\n")
    code, _ = run(capsys, folder, "-o", tmp_path / "out.h5", "--labels", labels)
    assert code == 0
    dataset = FeatureDataset(tmp_path / "out.h5", split="train")
    assert dataset.score_names == ("Total_Score",) and dataset.difficulty.tolist() == pytest.approx([3.2, 2.8])
    with open_feature_store(tmp_path / "out.h5") as store:
        assert len(store) == 5 and store.label("5") is None  # unlabelled arrays are kept, without labels


def test_a_second_import_resumes_and_other_arrays_are_refused(tmp_path, release, capsys):
    folder, _ = release
    out = tmp_path / "out.h5"
    assert run(capsys, folder, "-o", out)[0] == 0
    code, err = run(capsys, folder, "-o", out)
    assert code == 0 and "0 videos imported, 5 already there" in err
    np.save(folder / "6.npy", np.zeros((2, D), np.float32))  # the arrays changed: a different provenance
    code, err = run(capsys, folder, "-o", out)
    assert code == 2 and "differing keys: extra.arrays_sha256" in err
    assert run(capsys, folder, "-o", out, "--overwrite", "-q")[0] == 0
    with open_feature_store(out) as store:
        assert len(store) == 6


def prepare(case: str, folder, tmp) -> list:
    """Break the release in one way; return the extra command-line arguments."""
    if case == "no header, no --columns":
        return ["--labels", tmp / "train_dataset.txt"]
    if case == "label without npy":
        (tmp / "test.txt").write_text("name score\n1 1.0\n9 2.0\n")
        return ["--labels", tmp / "test.txt"]
    if case == "one column":
        return ["--columns", "id"]
    if case == "inf score":
        (tmp / "train.txt").write_text("1 inf 29.36 1\n2 30.5 27.0 0\n")
        return ["--labels", tmp / "train.txt", "--columns", "id,TES,PCS,ded"]
    if case == "first line N/A with --columns":
        (tmp / "train.txt").write_text("1 N/A\n2 30.5\n")
        return ["--labels", tmp / "train.txt", "--columns", "id,TES"]
    if case == "FIFO":
        os.mkfifo(folder / "broken.npy")
    elif case == "link to /dev/zero":
        (folder / "broken.npy").symlink_to("/dev/zero")
    elif case == "folder":
        (folder / "broken.npy").mkdir()
    elif case == "pickle":
        np.save(folder / "broken.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "name too long":
        np.save(folder / f"{'x' * 250}.npy", np.zeros((2, D), np.float32))
    if case in ("FIFO", "link to /dev/zero", "folder", "pickle", "name too long"):
        return []
    broken = {"beyond float32": np.full((2, D), 1e300), "ragged D": np.zeros((4, D + 1)), "1-D": np.zeros(D),
              "NaN": np.full((2, D), np.nan)}
    if case in broken:
        np.save(folder / "broken.npy", broken[case])
    else:
        (folder / "broken.npy").write_bytes(b"not numpy")
    return []


@pytest.mark.parametrize(("case", "message"), [
    ("no header, no --columns", "no header line; name its columns"),
    ("label without npy", r"1 labelled video\(s\) have no .npy in .*features: '9' \(test\)"),
    ("one column", "--columns 'id': give the name column and at least one score"),
    ("ragged D", rf"broken.npy: feature size D={D + 1}, but 1.npy has D={D}"),
    ("1-D", "broken.npy: expected a non-empty number array"),
    ("NaN", "broken.npy: holds NaN"),
    ("not npy", "broken.npy: not a readable .npy"),
    # Issue 24, defect 8; before: stored as inf (exit 0) | hung in open | read until memory ran out |
    # exit 3 (IsADirectoryError) | numpy's "allow_pickle=True" advice quoted | exit 2 after the other
    # videos were written | inf accepted as a score | the first line taken as a header (label lost, exit 0)
    ("beyond float32", "broken.npy: holds values beyond float32's range"),
    ("FIFO", "broken.npy: is a FIFO, not a .npy file"),
    ("link to /dev/zero", "broken.npy: is not a regular file"),
    ("folder", "broken.npy: is a folder"),
    ("pickle", "broken.npy: holds Python objects \\(a pickle\\), which aqa-import never loads"),
    ("name too long", "xxx.npy: 'xxx.*cannot be a video name"),
    ("inf score", r"train.txt:1: column 'TES' is 'inf', not a finite number"),
    ("first line N/A with --columns", r"train.txt:1: column 'TES' holds 'N/A', not a number"),
])
@pytest.mark.timeout(60)
def test_bad_inputs_are_one_line_errors_with_exit_code_2(tmp_path, release, capsys, case, message):
    folder, _ = release
    code, err = run(capsys, folder, "-o", tmp_path / "out.h5", *prepare(case, folder, tmp_path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aqa-import: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "allow_pickle" not in lines[0]  # advice that would run a stranger's pickle
    assert not (tmp_path / "out.h5").exists()  # checked before anything is written
    assert not (tmp_path / "out.h5.parts").exists()


def test_missing_or_empty_folder(tmp_path, capsys):
    code, err = run(capsys, tmp_path / "nope", "-o", tmp_path / "out.h5")
    assert code == 2 and "feature folder not found" in err
    (tmp_path / "empty").mkdir()
    code, err = run(capsys, tmp_path / "empty", "-o", tmp_path / "out.h5")
    assert code == 2 and "no .npy files in" in err
