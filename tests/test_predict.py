"""pipeline.predict (aqa-predict): a raw video in, a score out; refusals and errors in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aqa.data.provenance import ProvenanceNotReproducible, check_reproducible, extraction_config, imported_provenance
from aqa.extractors.tracking import DETECTED, HELD, ActorTrack
from aqa.extractors.video import open_video
from aqa.models import ScoreNormalizer, build_head
from aqa.models.checkpoint import CheckpointInfo, predict_features
from aqa.models.fspn_training import prepare
from aqa.pipeline.predict.cli import cli
from aqa.pipeline.predict.report import build_prediction, format_report, sub_action_spans
from aqa.pipeline.predict.result import ParsedDetail
from aqa.synthetic.features import SyntheticTask, synthetic_provenance

pytestmark = pytest.mark.slow


def test_scores_real_and_synthetic_videos_as_valid_json(trained, shared_videos, capsys):
    _, dataset, checkpoint = trained
    videos = [str(shared_videos / "makeup.avi"), str(sorted((dataset / "videos").glob("*.mp4"))[0])]
    assert cli([*videos, "--checkpoint", str(checkpoint), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["video"] for p in result["predictions"]] == videos and result["failures"] == []
    for prediction in result["predictions"]:
        assert np.isfinite(prediction["score"]) and prediction["score_name"] == "score"
        assert 1 <= prediction["grade"] <= prediction["grades"]
        assert len(prediction["procedures"]) == 5
        assert len(prediction["procedures"][0]["attention"]) == prediction["clips"]
    assert result["predictions"][0]["frames"] == 164


def test_text_report_and_overlay_on_the_person(trained, shared_videos, tmp_path, capsys):
    _, _, checkpoint = trained
    overlay = tmp_path / "makeup_overlay.mp4"
    assert cli([str(shared_videos / "makeup.avi"), "--checkpoint", str(checkpoint), "--save-overlay", str(overlay),
                "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("makeup.avi: score ") and "grade" in text and "scores seen in training: " in text
    assert "  model: Predicts score (" in text and "sub-grade" not in text and "(clip " not in text
    assert ("attention spread about evenly" in text) != ("where the model looked hardest (" in text)
    with open_video(overlay) as video:
        assert video.info.num_frames == 164
        frame = video.get_batch([80])[0]
    # The box is drawn green (detected) around the person, who sits in the right half of makeup.avi.
    green = (frame[..., 1] > 180) & (frame[..., 0] < 120) & (frame[..., 2] < 120)
    columns = np.nonzero(green.any(axis=0))[0]
    assert len(columns) > 0 and columns.mean() > 120


def test_an_undecodable_video_fails_alone(trained, tmp_path, capsys):
    _, dataset, checkpoint = trained
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    good = sorted((dataset / "videos").glob("*.mp4"))[0]
    assert cli([str(broken), str(good), "--checkpoint", str(checkpoint), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert good.name in captured.out
    errors = captured.err.strip().splitlines()
    assert errors == [f"aqa-predict: error: {broken}: not a readable video: its contents are not in a video format "
                      "FFmpeg reads (a file of another kind renamed, or damaged)"]


@pytest.mark.parametrize("case", ["missing", "corrupt", "not-a-checkpoint"])
def test_bad_checkpoints_are_one_line_errors(trained, tmp_path, capsys, case):
    _, dataset, _ = trained
    path = tmp_path / "model.pt"
    if case == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "not-a-checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    video = str(sorted((dataset / "videos").glob("*.mp4"))[0])
    assert cli([video, "--checkpoint", str(path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("aqa-predict: error: ") and str(path) in error[0]


def test_absent_backbone_weights_name_the_path(trained, tmp_path, capsys):
    _, dataset, checkpoint = trained
    video = str(sorted((dataset / "videos").glob("*.mp4"))[0])
    missing = tmp_path / "nowhere" / "i3d.ckpt"
    assert cli([video, "--checkpoint", str(checkpoint), "--weights", str(missing)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(missing) in error[0]


def test_refuses_what_it_cannot_reproduce(trained):
    from aqa.models.checkpoint import load_checkpoint

    _, _, checkpoint = trained
    _, _, info = load_checkpoint(checkpoint)
    provenance = info.provenance
    config = extraction_config(provenance, weights=None, detector_weights=None)
    assert config.input_size == 64 and config.clips.clip_length == 8

    class Stub:  # only the identity fields check_reproducible reads
        weights_sha256, name, weights_id = provenance.weights_sha256, provenance.detector, provenance.detector_weights

    check_reproducible(provenance, Stub(), Stub(), 64)  # the same: no error
    other = Stub()
    other.name, other.weights_id = "yolo", "yolo11n.pt sha256:abc"
    with pytest.raises(ProvenanceNotReproducible, match="detector: checkpoint 'blazepose', here 'yolo'"):
        check_reproducible(provenance, Stub(), other, 64)
    with pytest.raises(ProvenanceNotReproducible, match="input size"):
        check_reproducible(provenance, Stub(), Stub(), 224)
    with pytest.raises(ProvenanceNotReproducible, match="imported features"):
        extraction_config(imported_provenance(Path("/x"), "ab" * 32, package_version="0"), weights=None,
                          detector_weights=None)
    edited = replace(provenance, config_hash="0" * 16)
    with pytest.raises(ProvenanceNotReproducible, match="does not match its own hash"):
        extraction_config(edited, weights=None, detector_weights=None)
    recorded = dict(provenance.extra["features_config"])  # as an aqa before keep_source_size wrote it
    recorded.pop("keep_source_size")
    tracker = dict(recorded["tracker"])
    tracker.pop("scale_by")
    older = replace(provenance, extra={**provenance.extra, "features_config": {**recorded, "tracker": tracker}},
                    config_hash="f" * 16)
    with pytest.raises(ProvenanceNotReproducible, match=r"made by an older aqa, before the settings "
                                                        r"keep_source_size, tracker.scale_by existed: re-extract"):
        extraction_config(older, weights=None, detector_weights=None)


# --- the report of an FSPN prediction (no extraction: features and plan made by hand) ------------------

RANGES = np.array([[0, 16], [16, 32], [32, 48], [48, 64]])  # 4 clips of 16 frames at 8 fps: 2 s each


def fake_features(status: np.ndarray, frames: int = 64) -> SimpleNamespace:
    """What build_prediction reads of extracted features: 4 clips of 16 frames at 8 fps, a track of
    ``status``; a video of more ``frames`` than 64 has its extra frames trimmed as segments trim them."""
    start = (frames - 64) // 2
    clips = SimpleNamespace(frame_ranges=RANGES + start, num_clips=4, padded_frames=0,
                            indices=start + np.arange(64).reshape(4, 16))
    layout = SimpleNamespace(clips=clips, info=SimpleNamespace(fps=8.0, num_frames=frames, partial=False))
    status = np.concatenate([np.full(start, DETECTED), status, np.full(frames - 64 - start, DETECTED)])
    scores = np.where(status == DETECTED, 0.9, 0.0).astype(np.float32)
    return SimpleNamespace(plan=SimpleNamespace(layout=layout, track=ActorTrack(np.zeros((64, 4), np.float32), scores,
                                                                                 status.astype(np.uint8))))


def test_sub_actions_are_placed_in_seconds_inside_their_clips():
    spans = sub_action_spans(np.array([0.5, 1.25, 3.0]), RANGES, fps=8.0)
    assert [(span.start_s, span.end_s) for span in spans] == [(0.0, 1.0), (1.0, 2.5), (2.5, 6.0), (6.0, 8.0)]
    overlapping = np.array([[0, 16], [8, 24], [16, 32]])  # snippets: a boundary lies in its own clip's range
    assert sub_action_spans(np.array([1.5]), overlapping, fps=8.0)[0].end_s == 2.0  # frame 8 + 0.5 * 16


def test_an_fspn_report_names_sub_actions_and_exemplars(capsys):
    torch.manual_seed(0)
    head = build_head("fspn", {"parser_channels": (16, 16, 8), "smt_widths": (8,), "smt_blocks": 1, "smt_heads": 2,
                               "fusion_dim": 8, "regressor_dim": 8, "num_bins": 4, "num_exemplars": 3},
                      input_dim=8).eval()
    bank = prepare(head, torch.randn(6, 5, 8), torch.ones(6, 5, dtype=torch.bool), torch.linspace(0.1, 0.9, 6))
    names = [f"train_{i}" for i in bank.tolist()]
    normalizer = ScoreNormalizer(0.0, 10.0)
    score, details = predict_features(head, normalizer, torch.randn(4, 4), torch.randn(4, 4), streams="both")
    info = CheckpointInfo("fspn", "total", "both", 8, synthetic_provenance(SyntheticTask()), {}, "h", "0",
                          extra={"exemplar_names": names})
    features = fake_features(np.full(64, DETECTED))
    prediction = build_prediction(Path("dive.mp4"), score, details, features, info)
    assert isinstance(prediction.detail, ParsedDetail) and prediction.grade is None and prediction.members is None
    report = json.loads(json.dumps(prediction.to_json()))
    spans = report["sub_actions"]
    assert [span["sub_action"] for span in spans] == [1, 2, 3, 4] and spans[0]["start_s"] == 0.0
    assert spans[-1]["end_s"] == 8.0 and all(a["end_s"] == b["start_s"] for a, b in zip(spans, spans[1:]))
    expected = sub_action_spans(np.asarray(details["boundaries"], np.float64), RANGES, 8.0)
    assert prediction.sub_actions == expected
    assert [entry["name"] for entry in report["exemplars"]] == names[:3]  # the shared set, in bank order
    assert np.mean([entry["vote"] for entry in report["exemplars"]]) == pytest.approx(score, abs=1e-3)
    text = format_report(prediction)
    assert "sub-actions: 1: 0.00-" in text and f"voted over 3 exemplars: {names[0]} (" in text
    info.extra.clear()  # a checkpoint without names: bank rows instead
    prediction = build_prediction(Path("dive.mp4"), score, details, features, info)
    report = prediction.to_json()
    assert [entry["bank_index"] for entry in report["exemplars"]] == [0, 1, 2] and "#0 (" in format_report(prediction)
    assert "name" not in report["exemplars"][0]
    assert "athlete_not_located" not in report and not report["warnings"]  # located on every frame


def test_a_score_warns_when_the_athlete_was_not_located_on_more_than_a_fifth_of_its_frames():
    """Issue 27: a coach must not get a score computed on crops of the audience without a word."""
    info = CheckpointInfo("mlp", "total", "both", 8, synthetic_provenance(SyntheticTask()), {}, "h", "0")
    status = np.full(64, DETECTED)
    status[20:36] = HELD  # 2.5-4.5 s: 16 of 64 frames, a quarter
    prediction = build_prediction(Path("dive.mp4"), 5.0, {}, fake_features(status), info)
    assert prediction.detail is None  # an MLP gives nothing beside its score
    report = json.loads(json.dumps(prediction.to_json()))
    assert report["athlete_not_located"] == [[2.5, 4.5]] and report["athlete_not_located_share"] == 0.25
    (warning,) = report["warnings"]
    assert "not located on 25% of the scored frames" in warning and "2.5-4.5 s" in warning
    assert "warning: the athlete was not located" in format_report(prediction)
    status[28:36] = DETECTED  # 8 of 64, an eighth: no warning, no ranges
    quiet = build_prediction(Path("dive.mp4"), 5.0, {}, fake_features(status), info).to_json()
    assert not quiet["warnings"] and "athlete_not_located" not in quiet and quiet["athlete_not_located_share"] == 0.125


def test_an_unusable_overlay_option_is_refused_before_decoding(trained, tmp_path, capsys):
    _, dataset, checkpoint = trained
    video = str(sorted((dataset / "videos").glob("*.mp4"))[0])
    assert cli([video, "--checkpoint", str(checkpoint), "--save-overlay", str(tmp_path / "o.gif"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown extension '.gif'" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize("difficulty", ["nan", "inf", "-1", "0"])
def test_a_difficulty_that_is_not_a_positive_number_is_refused(trained, capsys, difficulty):
    """``--difficulty nan --json`` printed ``"difficulty": NaN``, which is not JSON, for a head that
    does not use it (and a w/ DD head would have scored NaN)."""
    _, dataset, checkpoint = trained
    video = str(sorted((dataset / "videos").glob("*.mp4"))[0])
    assert cli([video, "--checkpoint", str(checkpoint), "--difficulty", difficulty, "--json", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert f"difficulty {float(difficulty)}: a difficulty degree is a positive number" in captured.err


def test_an_overlay_that_cannot_be_written_keeps_the_score(trained, tmp_path, capsys):
    _, dataset, checkpoint = trained
    video = sorted((dataset / "videos").glob("*.mp4"))[0]
    target = tmp_path / "strip.png"
    target.symlink_to(tmp_path / "missing-folder" / "strip.png")  # the write itself fails, after scoring
    assert cli([str(video), "--checkpoint", str(checkpoint), "--save-overlay", str(target), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{video.name}: score ")
    assert "scored, but the overlay" in captured.err and "Traceback" not in captured.err


def test_a_video_shorter_than_a_clip_without_an_athlete_says_so(trained, tmp_path, capsys):
    """Moving shapes, no person, 5 frames (clips of 8): the score comes with both warnings."""
    from synthetic_video import write_moving_shapes

    _, _, checkpoint = trained
    video = tmp_path / "shapes.mp4"
    write_moving_shapes(video, num_frames=5)
    assert cli([str(video), "--checkpoint", str(checkpoint), "--json", "--quiet"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)["predictions"]
    assert any("never found" in warning for warning in prediction["warnings"])
    assert any("shorter than one clip" in warning for warning in prediction["warnings"])
    assert cli([str(video), "--checkpoint", str(checkpoint), "--quiet"]) == 0
    assert "  warning: the athlete was never found" in capsys.readouterr().out


def cofinal_details(attention: list[list[float]]) -> dict:
    """A CoFInAl head's details for a 4-clip video: grade 3 of 4, sub-grade 25, this attention."""
    return {"score": 61.0, "score_expectation": 61.0, "grade": torch.tensor(2),
            "grade_probs": torch.tensor([0.05, 0.15, 0.6, 0.2]), "subgrade": torch.tensor(25),
            "procedure_attention": torch.tensor(attention)}


def test_the_report_says_the_scale_the_model_and_the_frames_left_out_in_words():
    """Issue 24: the score with the scale seen in training and the model's line; no sub-grade, no clip
    index, a procedure's moment only where its attention clearly stands out; frames no clip covers."""
    info = CheckpointInfo("cofinal", "total", "both", 8, synthetic_provenance(SyntheticTask()), {}, "h", "0",
                          description="scores synthetic routines; not a judge",
                          scale={"low": 31.0, "high": 95.0, "videos": 40})
    even = [[0.24, 0.26, 0.25, 0.25], [0.2, 0.3, 0.25, 0.25]]  # at most 1.2 times an even 0.25
    features = fake_features(np.full(64, DETECTED), frames=71)  # 3 frames before the clips, 4 after
    prediction = build_prediction(Path("dive.mp4"), 61.0, cofinal_details(even), features, info,
                                  normalizer=ScoreNormalizer(0.0, 100.0))
    assert prediction.grade.grade == 3 and prediction.grade.score_range == (50.0, 75.0)
    report = json.loads(json.dumps(prediction.to_json()))
    assert report["model_description"] == "scores synthetic routines; not a judge"
    assert report["scale"] == {"low": 31.0, "high": 95.0, "videos": 40}
    assert report["grade"] == 3 and report["grade_range"] == [50.0, 75.0] and report["subgrade"] == 25
    assert report["frames_not_scored"] == {"start_frames": 3, "start_s": 0.38, "end_frames": 4, "end_s": 0.5,
                                           "skipped_between_frames": 0, "clip_frames": 16}
    assert [(p["peak_vs_even"], p["clear_peak"]) for p in report["procedures"]] == [(1.04, False), (1.2, False)]
    text = format_report(prediction)
    first, model = text.splitlines()[:2]
    assert first == ("dive.mp4: total 61.00  (scores seen in training: 31.00-95.00, 40 videos; grade 3 of 4 "
                     "(scores 50.00-75.00), 60% likely)")
    assert model == "  model: scores synthetic routines; not a judge"
    assert ("  not scored: the first 0.38 s (3 frames) and the last 0.50 s (4 frames), left over from whole clips of "
            "16 frames") in text
    assert "attention spread about evenly over the clips: no moment stood out (its strongest weighs a clip 1.2 times" \
        in text
    assert "sub-grade" not in text and "(clip " not in text and "procedure" not in text
    peaked = [[0.1, 0.7, 0.1, 0.1], [0.24, 0.26, 0.25, 0.25]]  # procedure 1: 2.8 times an even share on clip 2
    prediction = build_prediction(Path("dive.mp4"), 61.0, cofinal_details(peaked), fake_features(np.full(64, DETECTED)),
                                  replace(info, description=None, scale=None))
    report, text = prediction.to_json(), format_report(prediction)
    assert "  where the model looked hardest (its 2 procedures are parts of the routine" in text
    assert "\n    procedure 1: 2.00-4.00 s (2.8 times an even share)" in text
    assert "procedure 2" not in text and "evenly" not in text
    assert "  model: no description recorded" in text and "range was not recorded" in text
    assert "not scored" not in text and report["frames_not_scored"]["start_frames"] == 0
    assert "grade_range" not in report and "grade 3 of 4, 60% likely" in text  # no score range known: no band
