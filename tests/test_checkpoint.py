"""models.checkpoint: weights_only checkpoints, their loader's refusals, and predict_features."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from aqa.data.provenance import Provenance
from aqa.errors import CorruptFileError, MissingFileError
from aqa.models import ScoreNormalizer, build_head
from aqa.models.checkpoint import load_checkpoint, predict_features, save_checkpoint
from aqa.models.streams import StreamsError

D = 6
PROVENANCE = Provenance(backbone="i3d", weights_sha256="ab", clip_plan={"clip_length": 32}, input_size=(224, 224),
                        detector="blazepose", detector_weights="cd", package_version="0.1.0", config_hash="ef")
NORMALIZER = ScoreNormalizer(low=10.0, high=50.0)
TINY_COFINAL = {"procedure_dim": 8, "score_dim": 16, "num_subgrades": 8, "dropout": 0.0}


def saved(tmp_path, name: str = "cofinal", config: dict | None = None, streams: str = "both", input_dim: int = 2 * D):
    torch.manual_seed(0)
    head = build_head(name, TINY_COFINAL if config is None else config, input_dim=input_dim).eval()
    path = save_checkpoint(tmp_path / "model.pt", head, NORMALIZER, score_name="TES", streams=streams,
                           provenance=PROVENANCE, config={"train": {"epochs": 3}}, config_hash="1234",
                           extra={"seed": 7, "metrics": {"test_srcc": 0.5, "history": [{"epoch": 1}]}})
    return head, path


def test_round_trip_restores_head_range_and_metadata(tmp_path):
    head, path = saved(tmp_path)
    before = torch.random.get_rng_state()
    loaded, normalizer, info = load_checkpoint(path)
    assert torch.equal(torch.random.get_rng_state(), before)  # loading does not move the caller's RNG
    assert not loaded.training and loaded.head_name == "cofinal" and loaded.config == head.config
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in head.state_dict().items())
    assert normalizer == NORMALIZER and info.provenance == PROVENANCE and info.streams == "both"
    assert (info.score_name, info.input_dim, info.config_hash, info.extra["seed"]) == ("TES", 2 * D, "1234", 7)
    features, mask = torch.randn(3, 9, 2 * D), torch.ones(3, 9, dtype=torch.bool)
    assert torch.equal(head(features, mask)["score"], loaded(features, mask)["score"])


def test_a_write_that_fails_keeps_the_old_checkpoint_and_leaves_no_temporary_file(tmp_path):
    """A full disk (or Ctrl-C) while saving: model.pt keeps the previous run's head, and nothing is left
    beside it (a fixed model.pt.tmp was left behind, half written, and stayed there)."""
    from faults import writes_fail_past

    _, path = saved(tmp_path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # a new file's mode, not a temporary file's 0600
    before = path.read_bytes()
    with writes_fail_past(4096), pytest.raises((OSError, RuntimeError)):
        saved(tmp_path, config={**TINY_COFINAL, "score_dim": 32})
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["model.pt"]


def test_the_file_holds_only_tensors_and_plain_containers(tmp_path):
    _, path = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert torch.equal(payload["state_dict"]["etf"], build_head("cofinal", TINY_COFINAL, input_dim=2 * D).etf)
    assert payload["format"] == "aqa-checkpoint" and payload["head_config"]["num_subgrades"] == 8

    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool, torch.Tensor))

    assert plain(payload)


def test_predict_features_combines_streams_and_returns_the_original_scale(tmp_path):
    head, path = saved(tmp_path)
    loaded, normalizer, info = load_checkpoint(path)
    scene, actor = torch.randn(11, D), torch.randn(11, D)
    score, details = predict_features(loaded, normalizer, scene.numpy(), actor, streams=info.streams)
    with torch.no_grad():
        unit = head(torch.cat([scene, actor], dim=-1).unsqueeze(0))["score"][0]
    assert details["score_unit"] == pytest.approx(float(unit), abs=1e-7)
    assert score == pytest.approx(10.0 + 40.0 * float(unit), rel=1e-6) and details["score"] == score
    assert 10.0 <= details["score_argmax"] <= 50.0 and details["procedure_attention"].shape == (5, 11)
    assert details["grade_probs"].shape == (4,)
    with pytest.raises(StreamsError, match="needs the actor stream"):
        predict_features(loaded, normalizer, scene, None, streams="both")


def test_a_scene_only_mlp_checkpoint(tmp_path):
    head, path = saved(tmp_path, "mlp", {"hidden_dims": (4,)}, streams="scene", input_dim=D)
    loaded, normalizer, info = load_checkpoint(path)
    scene = torch.randn(5, D)
    score, details = predict_features(loaded, normalizer, scene, torch.randn(5, D), streams=info.streams)
    with torch.no_grad():
        unit = head(scene.unsqueeze(0))["score"][0]
    assert score == pytest.approx(float(normalizer.from_unit(unit)), rel=1e-6)
    assert set(details) == {"score", "score_unit"}


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(MissingFileError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.pt")
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CorruptFileError, match="is not a readable aqa checkpoint") as refused:
        load_checkpoint(text)
    assert "weights_only" not in str(refused.value)
    _, path = saved(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="is not a readable aqa checkpoint"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CorruptFileError, match="is not an aqa checkpoint"):
        load_checkpoint(other)


def test_a_pickled_object_is_refused_not_run(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "aqa-checkpoint", "payload": ScoreNormalizer(0.0, 1.0)}, path)  # a pickled class
    with pytest.raises(CorruptFileError, match="refused: it holds a Python object .*ScoreNormalizer") as refused:
        load_checkpoint(path)
    assert "weights_only" not in str(refused.value)  # torch's advice to load it unsafely is not passed on


def test_missing_keys_and_misfit_weights_are_named(tmp_path):
    _, path = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["normalizer"]
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(CorruptFileError, match="lacks normalizer"):
        load_checkpoint(tmp_path / "partial.pt")
    payload = torch.load(path, weights_only=True)
    payload["input_dim"] = 3
    torch.save(payload, tmp_path / "misfit.pt")
    with pytest.raises(CorruptFileError, match="does not fit its head 'cofinal'"):
        load_checkpoint(tmp_path / "misfit.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CorruptFileError, match="newer than this aqa reads"):
        load_checkpoint(tmp_path / "future.pt")


def test_a_closed_form_head_and_its_input_statistics_round_trip(tmp_path):
    torch.manual_seed(0)
    head = build_head("ridge", {"alphas": [1.0]}, input_dim=D)
    features = torch.randn(10, 5, D) * 3 + 2
    head.fit_input_standardization(features, torch.ones(10, 5, dtype=torch.bool))
    head.solve(features, torch.ones(10, 5, dtype=torch.bool), torch.linspace(0.1, 0.9, 10))
    path = save_checkpoint(tmp_path / "ridge.pt", head, NORMALIZER, score_name="TES", streams="scene",
                           provenance=PROVENANCE, config={}, config_hash="1")
    loaded, normalizer, info = load_checkpoint(path)
    assert torch.equal(loaded.input_shift, head.input_shift) and torch.equal(loaded.weight, head.weight)
    score, _ = predict_features(loaded, normalizer, features[3], streams="scene")
    assert score == pytest.approx(NORMALIZER.from_unit(float(head(features[3:4])["score"])), abs=1e-4)


def test_checkpoints_written_before_input_standardisation_still_load(tmp_path):
    head, path = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    for key in ("input_shift", "input_scale"):
        del payload["state_dict"][key]
    payload["state_dict"]["fusion.key.bias"] = torch.zeros(8)  # the old no-op key bias
    torch.save(payload, path)
    loaded, _, _ = load_checkpoint(path)
    assert torch.equal(loaded.input_shift, torch.zeros(2 * D)) and torch.equal(loaded.input_scale, torch.ones(2 * D))
    features = torch.randn(2, 7, 2 * D)
    assert torch.equal(head(features)["score"], loaded(features)["score"])


def test_an_fspn_checkpoint_from_before_the_parse_cap_keeps_its_uncapped_parser(tmp_path):
    config = {"parser_channels": (8, 8, 8), "smt_widths": (8,), "smt_blocks": 1, "smt_heads": 2, "fusion_dim": 8,
              "regressor_dim": 8, "num_bins": 4, "num_exemplars": 2}
    _, path = saved(tmp_path, "fspn", config)
    payload = torch.load(path, weights_only=True)
    assert payload["head_config"]["parse_max_steps"] == 32  # written by this version
    del payload["head_config"]["parse_max_steps"]
    torch.save(payload, path)
    assert load_checkpoint(path)[0].config.parse_max_steps == 0


def test_the_description_and_scale_travel_in_the_checkpoint_and_older_ones_load_without(tmp_path):
    """Issue 24: a model.pt moved without its model card still says what it is; one written before
    descriptions existed loads with none (aqa-predict then says "no description recorded")."""
    head = build_head("mlp", {"hidden_dims": []}, input_dim=D)
    scale = {"low": 12.5, "high": 48.0, "videos": 40}
    path = save_checkpoint(tmp_path / "model.pt", head, NORMALIZER, score_name="TES", streams="scene",
                           provenance=PROVENANCE, config={}, config_hash="1234", description="a test model",
                           scale=scale)
    info = load_checkpoint(path)[2]
    assert (info.description, info.scale) == ("a test model", scale)
    payload = torch.load(path, weights_only=True)
    for key in ("description", "scale"):  # as every checkpoint before model cards
        del payload[key]
    torch.save(payload, path)
    info = load_checkpoint(path)[2]
    assert info.description is None and info.scale is None
    for key, value in (("description", 7), ("scale", {"low": "x", "high": 1.0, "videos": 3}), ("scale", [1, 2])):
        torch.save({**payload, key: value}, path)
        with pytest.raises(CorruptFileError, match=f"checkpoint {key} is not"):
            load_checkpoint(path)
