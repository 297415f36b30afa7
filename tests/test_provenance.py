"""data.provenance: round trip through JSON, differences by dotted key, one-line mismatch errors."""

from __future__ import annotations

import pytest

from aqa.data.provenance import (
    IMPORTED_BACKBONE,
    Provenance,
    ProvenanceMismatchError,
    check_provenance,
    imported_provenance,
    provenance_differences,
)
from aqa.errors import AqaError


def make(**changes) -> Provenance:
    values = dict(backbone="i3d", weights_sha256="ab" * 32, clip_plan={"kind": "segments", "clip_length": 32,
                                                                        "target_fps": 25.0},
                  input_size=(224, 224), detector="yolo11n", detector_weights="cd" * 32, package_version="0.1.0",
                  config_hash="0123456789abcdef")
    values.update(changes)
    return Provenance(**values)


def test_json_round_trip_is_exact_and_canonical():
    provenance = make(extra={"note": "x", "counts": [1, 2]})
    text = provenance.to_json()
    back = Provenance.from_json(text)
    assert back == provenance
    assert back.input_size == (224, 224) and isinstance(back.input_size, tuple)
    assert back.to_json() == text
    assert '"backbone":"i3d"' in text  # sorted keys, no spaces: equal provenance, equal bytes


def test_equal_provenances_have_no_differences():
    assert provenance_differences(make(), make()) == []
    check_provenance(make(), make(input_size=[224, 224]))  # list or tuple: the same JSON


def test_differences_name_nested_keys_dotted_and_sorted():
    other = make(backbone="swin3d_b", clip_plan={"kind": "segments", "clip_length": 16, "target_fps": 25.0})
    assert provenance_differences(make(), other) == ["backbone", "clip_plan.clip_length"]
    assert provenance_differences(make(), other, ignore=["clip_plan"]) == ["backbone"]


def test_a_key_present_on_one_side_only_is_a_difference():
    other = make(clip_plan={"kind": "segments", "clip_length": 32, "target_fps": 25.0, "stride": 8})
    assert provenance_differences(make(), other) == ["clip_plan.stride"]


def test_check_raises_one_line_error_naming_keys_and_values():
    with pytest.raises(ProvenanceMismatchError) as info:
        check_provenance(make(), make(weights_sha256="ff" * 32, detector="blazepose"), what="features in x.h5")
    message = str(info.value)
    assert isinstance(info.value, AqaError)
    assert "\n" not in message
    assert "features in x.h5" in message
    assert "differing keys: detector, weights_sha256" in message
    assert 'expected "yolo11n", found "blazepose"' in message


def test_ignored_keys_let_the_check_pass():
    check_provenance(make(), make(package_version="0.2.0"), ignore=["package_version"])


def test_malformed_provenance_is_refused():
    values = make().to_dict()
    del values["detector"]
    with pytest.raises(ProvenanceMismatchError, match=r"missing keys \['detector'\]"):
        Provenance.from_dict(values)
    with pytest.raises(ProvenanceMismatchError, match="unknown keys"):
        Provenance.from_dict({**make().to_dict(), "colour": "red"})
    with pytest.raises(ProvenanceMismatchError, match="not valid JSON"):
        Provenance.from_json("{oops")


def test_imported_provenance_never_matches_extracted_features(tmp_path):
    imported = imported_provenance(tmp_path, "12" * 32, package_version="0.1.0")
    assert imported.backbone == IMPORTED_BACKBONE
    assert imported.extra == {"source": str(tmp_path), "arrays_sha256": "12" * 32}
    assert "backbone" in provenance_differences(make(), imported)
    assert Provenance.from_json(imported.to_json()) == imported
