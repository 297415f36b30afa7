"""The restricted unpickler: data loads, code is refused before it runs."""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from aqa.errors import AqaError, CorruptFileError, MissingFileError, UnsafePickleError
from aqa.safe_pickle import load_pickle, loads_pickle

ANNOTATIONS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "annotations"


def _numpy_laden() -> dict:
    return {
        "floats": np.arange(12, dtype=np.float32).reshape(3, 4),
        "transposed": np.arange(6.0).reshape(2, 3).T,  # not C-contiguous
        "objects": np.array([1, "two", None], dtype=object),
        "record": np.zeros(2, dtype=[("start", "<i4"), ("score", "<f8")]),
        "scalar": np.float64(81.6),
        "int_scalar": np.int64(-3),
        "ordered": collections.OrderedDict(a=1, b=[2, 3]),
        "set": {1, 2},
        "complex": 1 + 2j,
        "bytes": b"\x00\xff",
        "nested": [("judge", (7.5, 8.0)), None, True],
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_loads_numpy_and_plain_containers_at_every_protocol(protocol):
    original = _numpy_laden()
    loaded = loads_pickle(pickle.dumps(original, protocol=protocol))
    assert loaded.keys() == original.keys()
    for key in ("floats", "transposed", "record"):
        np.testing.assert_array_equal(loaded[key], original[key])
        assert loaded[key].dtype == original[key].dtype
    assert loaded["objects"].tolist() == [1, "two", None]
    assert loaded["scalar"] == 81.6 and isinstance(loaded["scalar"], np.float64)
    assert loaded["int_scalar"] == -3
    assert loaded["ordered"] == original["ordered"] and isinstance(loaded["ordered"], collections.OrderedDict)
    assert loaded["set"] == {1, 2} and loaded["complex"] == 1 + 2j and loaded["bytes"] == b"\x00\xff"
    assert loaded["nested"] == [("judge", (7.5, 8.0)), None, True]


class _RunsCode:
    """Unpickling an instance calls ``os.system`` with a command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Harmless:
    """An arbitrary class: data-only, but not on the allow-list."""

    def __init__(self) -> None:
        self.value = 1


def test_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "was_run"
    payload = pickle.dumps({"weights": _RunsCode(marker)})
    with pytest.raises(UnsafePickleError, match=r"\.system\b") as caught:
        loads_pickle(payload)
    assert isinstance(caught.value, AqaError)
    assert not marker.exists()
    pickle.loads(payload)  # the plain unpickler would have run it: the payload is real
    assert marker.exists()


@pytest.mark.parametrize(
    ("protocol", "named"), [(0, r"copy_reg\._reconstructor"), (2, r"test_safe_pickle\.Harmless"), (4, "Harmless")]
)
def test_refuses_an_arbitrary_class_naming_it(protocol, named):
    with pytest.raises(UnsafePickleError, match=rf"global \S*{named}, which is not allowed"):
        loads_pickle(pickle.dumps([Harmless()], protocol=protocol))


def test_refuses_codecs_other_than_latin1():
    """``_codecs.encode`` is allowed for protocol-2 bytes, but not as a decompression bomb."""
    bomb = pickle.dumps(b"x" * 100, protocol=2).replace(b"latin1", b"base64")  # same length keeps it parseable
    with pytest.raises(UnsafePickleError, match="latin-1"):
        loads_pickle(bomb)


def test_refuses_persistent_ids():
    class WithPersistentIds(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if obj == "tensor" else None

    buffer = io.BytesIO()
    WithPersistentIds(buffer).dump(["tensor"])
    with pytest.raises(UnsafePickleError, match="persistent id"):
        loads_pickle(buffer.getvalue())


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    missing = tmp_path / "absent.pkl"
    with pytest.raises(MissingFileError, match="absent.pkl") as caught:
        load_pickle(missing)
    assert isinstance(caught.value, FileNotFoundError)

    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps(_numpy_laden())[:-40])
    with pytest.raises(CorruptFileError, match="truncated.pkl"):
        load_pickle(truncated)

    text = tmp_path / "notes.pkl"
    text.write_text("this is not a pickle\n")
    with pytest.raises(CorruptFileError, match="not a readable pickle"):
        load_pickle(text)


REAL_PICKLES = {
    "mtl_aqa/final_annotations_dict_with_dive_number.pkl": (dict, 1412),
    "mtl_aqa/train_split_0.pkl": (list, 1059),
    "mtl_aqa/test_split_0.pkl": (list, 353),
    "finediving/FineDiving_fine-grained_annotation.pkl": (dict, 3000),
    "finediving/fine-grained_annotation_aqa.pkl": (dict, 3000),
    "finediving/Sub_action_Types_Table.pkl": (dict, 42),
    "finediving/train_split.pkl": (list, 2251),
    "finediving/test_split.pkl": (list, 749),
}


@pytest.mark.real_data
@pytest.mark.parametrize("relative", sorted(REAL_PICKLES))
def test_loads_the_real_annotation_pickles(relative):
    path = ANNOTATIONS / relative
    if not path.is_file():
        pytest.skip(f"real annotations not found at {path} (the shared data lives beside the repo)")
    kind, length = REAL_PICKLES[relative]
    loaded = load_pickle(path)
    assert isinstance(loaded, kind) and len(loaded) == length
    # The restricted load sees the same data as an unrestricted one.
    reference = pickle.loads(path.read_bytes())
    first = next(iter(reference)) if isinstance(reference, dict) else 0
    assert repr(loaded[first]) == repr(reference[first])
