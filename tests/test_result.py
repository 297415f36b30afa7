"""pipeline.predict.result: the typed prediction, one detail per kind of head, and its JSON document."""

from __future__ import annotations

import json

from predictions import make_prediction

from aqa.pipeline.predict.result import (
    EnsembleDetail,
    ExemplarVote,
    Grade,
    GradedDetail,
    MemberScore,
    ParsedDetail,
    ProcedureFocus,
    SubAction,
)

COMMON_KEYS = ["video", "score", "score_name", "head", "model_description", "scale", "frames", "fps", "clips",
               "frames_not_scored", "partial_video", "athlete_frames", "athlete_not_located_share", "camera_cuts_s"]


def test_a_grading_heads_detail_is_flat_in_the_json_in_the_order_it_always_had():
    focus = ProcedureFocus(1, 2, 2.0, 3.0, 2.4, True, (0.1, 0.2, 0.6, 0.1))
    detail = GradedDetail(score_expectation=6.1, score_argmax=6.5, grade=Grade(3, 4, (0.1, 0.2, 0.6, 0.1), (5.0, 7.5)),
                          subgrade=25, procedures=(focus,))
    prediction = make_prediction(score=6.1, head="cofinal", detail=detail, warnings=("a warning",))
    document = json.loads(json.dumps(prediction.to_json()))
    assert list(document) == [*COMMON_KEYS, "warnings", "score_expectation", "score_argmax", "grade", "grades",
                              "grade_probs", "grade_range", "subgrade", "procedures", "clip_spans"]
    assert document["grade"] == 3 and document["grade_range"] == [5.0, 7.5] and document["warnings"] == ["a warning"]
    assert document["procedures"] == [{"procedure": 1, "peak_clip": 2, "peak_start_s": 2.0, "peak_end_s": 3.0,
                                       "peak_vs_even": 2.4, "clear_peak": True, "attention": [0.1, 0.2, 0.6, 0.1]}]
    assert document["scale"] == {"low": 0.0, "high": 10.0, "videos": 30}
    assert document["clip_spans"][1] == {"start_s": 1.0, "end_s": 2.0, "weight": 1.0}
    assert prediction.grade.grade == 3 and prediction.procedures == (focus,)
    assert prediction.sub_actions == () and prediction.members is None


def test_what_a_head_does_not_give_is_absent_not_null():
    """A Likert CoFInAl has a sub-grade and procedures but no coarse grade; an MLP has nothing beside its
    score: scripts test for a key, as they always have."""
    likert = make_prediction(detail=GradedDetail(subgrade=2)).to_json()
    assert "subgrade" in likert
    assert not {"grade", "grades", "grade_probs", "score_expectation", "procedures"} & set(likert)
    plain = make_prediction(difficulty=2.8, overlay="out.mp4").to_json()
    assert list(plain) == [*COMMON_KEYS, "warnings", "clip_spans", "difficulty", "overlay"]
    assert make_prediction().grade is None and make_prediction().procedures == ()


def test_fspn_and_ensemble_details():
    parsed = make_prediction(head="fspn", detail=ParsedDetail(
        sub_actions=(SubAction(1, 0.0, 1.5), SubAction(2, 1.5, 4.0)),
        exemplars=(ExemplarVote(3, 80.5, "dive_017"), ExemplarVote(5, 82.0))))
    document = parsed.to_json()
    assert document["sub_actions"] == [{"sub_action": 1, "start_s": 0.0, "end_s": 1.5},
                                       {"sub_action": 2, "start_s": 1.5, "end_s": 4.0}]
    assert document["exemplars"] == [{"bank_index": 3, "name": "dive_017", "vote": 80.5},
                                     {"bank_index": 5, "vote": 82.0}]  # no name kept: no key
    assert parsed.sub_actions[1].end_s == 4.0 and parsed.grade is None
    members = make_prediction(head="ensemble", detail=EnsembleDetail((MemberScore("ridge", 4.0),
                                                                     MemberScore("mlp", 6.0))))
    assert members.members == {"ridge": 4.0, "mlp": 6.0}
    assert members.to_json()["members"] == [{"member": "ridge", "score": 4.0}, {"member": "mlp", "score": 6.0}]


def test_changes_make_a_copy():
    prediction = make_prediction(video="/srv/uploads/abc/dive.mp4")
    named = prediction.with_changes(video="dive.mp4", warnings=("drawn without an overlay",))
    assert prediction.video == "/srv/uploads/abc/dive.mp4" and prediction.warnings == ()
    assert named.video == "dive.mp4" and named.warnings == ("drawn without an overlay",)
