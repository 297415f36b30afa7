"""extractors.video_steps: one video's steps, whatever order its parts come back in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aqa.extractors.clips import ClipPlan
from aqa.extractors.stages import KeyFrameFindings, SiameseFeatures, VideoLayout, VideoPlan
from aqa.extractors.tracking import DETECTED, ActorTrack
from aqa.extractors.video import VideoInfo
from aqa.extractors.video_steps import (
    Commit,
    Detect,
    Embed,
    ExtractedVideo,
    FailedVideo,
    Follow,
    LayOut,
    LookAgain,
    Plan,
    Spread,
    StepOrderError,
    VideoSteps,
)

CLIP = 8


def layout_of(num_frames: int, every: int = 2, codec: str = "h264") -> VideoLayout:
    info = VideoInfo("v.mp4", "decord", codec, 25.0, num_frames, 96, 64)
    clips = ClipPlan(np.arange(num_frames // CLIP * CLIP, dtype=np.int64).reshape(-1, CLIP))
    return VideoLayout("v.mp4", info, clips, (96, 64), np.arange(0, num_frames, every))


def plan_of(layout: VideoLayout) -> VideoPlan:
    frames = layout.info.num_frames
    track = ActorTrack(np.zeros((frames, 4), np.float32), np.ones(frames, np.float32),
                       np.full(frames, DETECTED, np.uint8))
    return VideoPlan(layout, track, np.zeros((frames, 4), np.float32))


def findings(keys: np.ndarray) -> list[KeyFrameFindings]:
    """A part's detections: one box per key frame whose x1 is the frame's index."""
    return [KeyFrameFindings(np.array([[frame, 0, frame + 1, 1, 0.9]], np.float32)) for frame in keys.tolist()]


def detect_all(video: VideoSteps, detects: list[Detect]) -> Plan:
    """Every part's detections in, then each part follows and looks again and finds nothing new:
    the plan that is then due."""
    for detect in detects:
        follows = video.detected(detect, findings(detect.keys))
    for follow in follows:
        looks = video.followed(follow, {})
    for look in looks:
        due = video.looked_again(look, {})
    (plan_work,) = due
    return plan_work


def streams(clips: range, dim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Features whose values name their clip: scene = clip index, actor = -clip index."""
    scene = np.repeat(np.arange(clips.start, clips.stop, dtype=np.float32)[:, None], dim, axis=1)
    return scene, -scene


def test_a_one_part_video_goes_through_every_step_once():
    video = VideoSteps(0, "v", "videos/v.mp4", Spread(detectors=4, embedders=4, min_part_frames=256))
    assert video.start() == [LayOut(Path("videos/v.mp4"))]
    layout = layout_of(100)
    (detect,) = video.laid_out(layout)
    assert isinstance(detect, Detect) and video.parts == 1
    np.testing.assert_array_equal(detect.keys, layout.key_frames)
    (follow,) = video.detected(detect, findings(detect.keys))
    assert isinstance(follow, Follow) and (follow.part, follow.parts) == (0, 1)
    (look,) = video.followed(follow, {})
    assert isinstance(look, LookAgain) and (look.part, look.parts) == (0, 1)
    (plan_work,) = video.looked_again(look, {})
    assert isinstance(plan_work, Plan) and len(plan_work.detections) == 100
    assert plan_work.detections[1] is None and plan_work.detections[98].boxes[0, 0] == 98
    plan = plan_of(layout)
    (embed,) = video.planned(plan)
    assert embed == Embed(plan, range(0, 12), whole=True)
    assert video.embedded(0, *streams(range(0, 4))) == []
    assert (video.clips_done, video.num_clips) == (4, 12)
    (commit,) = video.embedded(4, *streams(range(4, 12)))
    assert isinstance(commit, Commit) and not video.finished
    assert video.committed() == [] and video.finished and video.reason is None
    result = video.outcome
    assert isinstance(result, ExtractedVideo) and result is commit.video and result.features.plan is plan
    np.testing.assert_array_equal(result.features.scene[:, 0], np.arange(12))
    np.testing.assert_array_equal(result.features.actor[:, 0], -np.arange(12))


def test_a_whole_embed_may_be_committed_where_it_was_embedded():
    video = VideoSteps(0, "v", "v.mp4", Spread(detectors=1, embedders=1))
    video.start()
    detect_all(video, video.laid_out(layout_of(40)))
    (embed,) = video.planned(plan_of(layout_of(40)))
    assert embed.whole
    assert video.committed() == [] and video.finished and video.reason is None
    with pytest.raises(StepOrderError, match="no features here"):
        video.outcome  # noqa: B018  (the features stayed with the engine)


def test_parts_arriving_out_of_order_are_joined_by_frame():
    video = VideoSteps(3, "long", "long.mp4", Spread(detectors=3, embedders=2, min_part_frames=100))
    video.start()
    layout = layout_of(600, every=3)
    detects = video.laid_out(layout)
    assert [work.part for work in detects] == [0, 1, 2] and video.parts == 3
    assert np.array_equal(np.concatenate([work.keys for work in detects]), layout.key_frames)
    assert video.detected(detects[2], findings(detects[2].keys)) == []
    assert video.detected(detects[0], findings(detects[0].keys)) == []
    follows = video.detected(detects[1], findings(detects[1].keys))
    assert [(work.part, work.parts) for work in follows] == [(0, 3), (1, 3), (2, 3)]
    assert all(work.detections is follows[0].detections for work in follows)  # one list, only read
    found = [None if item is None else int(item.boxes[0, 0]) for item in follows[0].detections]
    assert found == [frame if frame % 3 == 0 else None for frame in range(600)]
    for follow in follows:
        looks = video.followed(follow, {})
    for look in looks:
        video.looked_again(look, {})
    embeds = video.planned(plan_of(layout))  # three parts of key frames, but two embedders
    assert [work.clips for work in embeds] == [range(0, 38), range(38, 75)] and not any(w.whole for w in embeds)
    assert video.embedded(38, *streams(range(38, 75))) == []
    for first in reversed(range(0, 38, 4)):  # the first part comes back batch by batch, last batch first
        due = video.embedded(first, *streams(range(first, min(first + 4, 38))))
    assert isinstance(due[0], Commit)
    np.testing.assert_array_equal(due[0].video.features.scene[:, 0], np.arange(75))


def test_a_failure_in_one_part_ends_the_video_and_later_news_is_ignored():
    video = VideoSteps(0, "v", "v.mp4", Spread(detectors=3, embedders=3, min_part_frames=100))
    video.start()
    detects = video.laid_out(layout_of(300))
    assert video.detected(detects[0], findings(detects[0].keys)) == []
    reason = "cannot decode frame 151: truncated file"
    assert video.failed(reason) == []
    assert video.finished and video.outcome == FailedVideo("v", Path("v.mp4"), reason)
    assert video.detected(detects[1], findings(detects[1].keys)) == []  # the other parts still ran
    assert video.detected(detects[2], findings(detects[2].keys)) == []
    assert video.planned(plan_of(layout_of(300))) == [] and video.committed() == []
    assert video.failed("a second reason") == [] and video.reason == reason


def test_events_out_of_order_are_bugs_said_in_a_line():
    video = VideoSteps(0, "v", "v.mp4", Spread(detectors=2, embedders=2, min_part_frames=100))
    video.start()
    detects = video.laid_out(layout_of(200))
    with pytest.raises(StepOrderError, match="expected the plan step, the video is at detect"):
        video.planned(plan_of(layout_of(200)))
    video.detected(detects[0], findings(detects[0].keys))
    with pytest.raises(StepOrderError, match="part 0's detections came twice"):
        video.detected(detects[0], findings(detects[0].keys))
    follows = video.detected(detects[1], findings(detects[1].keys))
    with pytest.raises(StepOrderError, match="expected the plan step, the video is at follow"):
        video.planned(plan_of(layout_of(200)))
    video.followed(follows[1], {})
    with pytest.raises(StepOrderError, match="part 1's followed frames came twice"):
        video.followed(follows[1], {})
    for look in video.followed(follows[0], {}):
        video.looked_again(look, {})
    video.planned(plan_of(layout_of(200)))
    video.embedded(0, *streams(range(0, 4)))
    with pytest.raises(StepOrderError, match="clips 2..5 came twice"):
        video.embedded(2, *streams(range(2, 6)))
    with pytest.raises(StepOrderError, match="do not fit"):
        video.embedded(24, *streams(range(24, 26)))
    with pytest.raises(StepOrderError, match="expected the commit step"):
        video.committed()


def test_parts_are_as_many_as_the_detectors_and_never_short_and_a_gif_stays_whole():
    assert Spread(detectors=16, embedders=1, min_part_frames=256).parts_of(layout_of(4500)) == 16
    assert Spread(detectors=16, embedders=1, min_part_frames=256).parts_of(layout_of(900)) == 3
    assert Spread(detectors=16, embedders=1, min_part_frames=256).parts_of(layout_of(100)) == 1
    assert Spread(detectors=16, embedders=1, min_part_frames=256).parts_of(layout_of(4500, codec="gif")) == 1
    with pytest.raises(ValueError, match="must be >= 1"):
        Spread(detectors=0, embedders=1)


def test_features_are_float32_whatever_the_pieces_carry():
    video = VideoSteps(0, "v", "v.mp4", Spread(detectors=1, embedders=1))
    video.start()
    detect_all(video, video.laid_out(layout_of(16)))
    video.planned(plan_of(layout_of(16)))
    scene, actor = streams(range(0, 2))
    (commit,) = video.embedded(0, scene.astype(np.float64), actor)
    features: SiameseFeatures = commit.video.features
    assert features.scene.dtype == features.actor.dtype == np.float32


def test_what_the_parts_follow_and_find_again_is_put_in_once_the_last_part_is_in():
    video = VideoSteps(0, "v", "v.mp4", Spread(detectors=2, embedders=2, min_part_frames=100))
    video.start()
    layout = layout_of(200)
    detects = video.laid_out(layout)
    follows = [due for detect in detects for due in video.detected(detect, findings(detect.keys))]
    followed = KeyFrameFindings(np.array([[4, 4, 8, 8, 0.7]], np.float32), change=0.1)
    assert video.followed(follows[1], {150: followed}) == []
    assert follows[0].detections[150].boxes[0, 0] == 150  # the other part still reads what it was given
    looks = video.followed(follows[0], {})
    assert all(look.detections[150] is followed for look in looks)  # then every part's is in
    found_again = KeyFrameFindings(np.array([[1, 1, 2, 2, 0.9]], np.float32))
    assert video.looked_again(looks[0], {10: found_again}) == []
    (plan_work,) = video.looked_again(looks[1], {})
    assert plan_work.detections[10] is found_again and plan_work.detections[150] is followed
    assert plan_work.detections[12].boxes[0, 0] == 12
