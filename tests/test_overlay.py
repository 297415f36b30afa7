"""pipeline.overlay: the athlete box and the timeline land where they should."""

from __future__ import annotations

import cv2
import numpy as np

from aqa.extractors.tracking import DETECTED, HELD
from aqa.extractors.video import open_video
from aqa.pipeline.overlay import TIMELINE_HEIGHT, timeline_row, write_overlay


def test_overlay_video_draws_the_box_on_every_frame(make_video, tmp_path):
    path, clip = make_video(num_frames=12, height=96, width=128)
    status = np.array([DETECTED] * 6 + [HELD] * 6, np.uint8)
    ranges = np.array([[0, 6], [6, 12]])
    out = write_overlay(tmp_path / "overlay.mp4", path, clip.figure_boxes, status, ranges, np.array([0.2, 1.0]),
                        "score 8.1", fps=clip.fps)
    with open_video(out) as video:
        assert video.info.num_frames == 12
        assert (video.info.width, video.info.height) == (128, 96 + TIMELINE_HEIGHT)
        frames = video.get_batch([0, 11])
    x1, y1, _, y2 = clip.figure_boxes[0].astype(int)
    edge = frames[0, (y1 + y2) // 2, x1]  # left edge of the box: drawn green (detected)
    assert edge[1] > 150 and edge[0] < 120
    x1, y1, _, y2 = clip.figure_boxes[11].astype(int)
    edge = frames[1, (y1 + y2) // 2, x1]  # held: drawn yellow
    assert edge[0] > 150 and edge[1] > 150 and edge[2] < 120


def test_png_strip_has_one_panel_per_picked_frame(make_video, tmp_path):
    path, clip = make_video(num_frames=20, height=64, width=96)
    status = np.full(20, DETECTED, np.uint8)
    out = write_overlay(tmp_path / "strip.png", path, clip.figure_boxes, status, np.array([[0, 20]]),
                        np.array([1.0]), "x", fps=clip.fps, strip_frames=4)
    image = cv2.imread(str(out))
    assert image.shape == (64 + TIMELINE_HEIGHT, 4 * 96, 3)


def test_timeline_shades_by_curve_and_marks_the_cursor():
    row = timeline_row(100, np.array([[0, 50], [50, 100]]), np.array([0.0, 1.0]), 100, frame=75)
    assert row.shape == (TIMELINE_HEIGHT, 100, 3)
    assert row[10, 10, 0] < row[10, 60, 0]  # the high-curve clip is warmer
    assert (row[:, 74:76] == 255).all()
