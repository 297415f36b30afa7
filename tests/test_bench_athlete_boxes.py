"""bench/athlete_boxes.py: the shared dives' reference boxes and the frames a person found off the diver."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.athlete_boxes import AUDIT, load_shared_boxes  # noqa: E402


@pytest.mark.real_data
def test_the_audited_frames_are_jumps_of_the_reference_box_before_the_entry(shared_footage):
    """Each listed excursion starts where TSA-Net's box jumps more than 0.4 of its size (the rule the
    audit file states), lies before the water entry, and is what the loaded reference carries."""
    audit = json.loads(AUDIT.read_text())["off_the_diver"]
    assert audit, "the audit lists no frames"
    for video, frames in audit.items():
        path = shared_footage.parent / "boxes" / f"{Path(video).stem}.json"
        spec = json.loads(path.read_text())
        boxes = np.array(spec["boxes_xyxy"], float)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        size = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        jump = np.r_[0.0, np.linalg.norm(np.diff(centre, axis=0), axis=1) / size[:-1]]
        starts = [frame for frame in frames if frame - 1 not in frames]
        assert all(jump[frame] > 0.4 for frame in starts), (video, jump[starts])
        assert max(frames) < spec["events"]["labels"][-1], video
        reference = load_shared_boxes(path)
        assert reference.off_athlete == tuple(frames) and reference.visible[list(frames)].all()


def test_the_audited_share_leaves_out_only_the_listed_frames():
    from bench.athlete_boxes import Reference

    boxes = np.tile(np.array([10.0, 10.0, 30.0, 50.0]), (10, 1))[None]
    reference = Reference("v.avi", (64, 64), boxes, "test", off_athlete=(3, 4))
    ours = boxes[0].copy()
    ours[[3, 4]] += 40  # elsewhere: where the reference is wrong
    assert reference.centres_inside(ours).mean() == 0.8
    assert reference.centres_inside_audited(ours) == 1.0
    ours[0] += 40  # a frame of ours off the athlete still counts
    assert reference.centres_inside_audited(ours) == 7 / 8
