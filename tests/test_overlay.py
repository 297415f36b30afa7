"""pipeline.predict.overlay: the athlete box and the timeline land where they should."""

from __future__ import annotations

import cv2
import numpy as np

from aqa.extractors.tracking import DETECTED, HELD
from aqa.extractors.video import open_video
from aqa.pipeline.predict.overlay import TIMELINE_HEIGHT, draw_frame, timeline_row, write_overlay
from aqa.video_writer import write_video
from synthetic_video import moving_shapes


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
    edge = frames[1, (y1 + y2) // 2, x1]  # held, the athlete not located: drawn red
    assert edge[0] > 150 and edge[1] < 120 and edge[2] < 120


def test_overlay_of_a_portrait_phone_video_is_upright(tmp_path):
    """Stored 64x36 with a display rotation of 90 degrees, shown 36x64: the overlay is the picture a
    player shows (it once crashed here: decord's turned frames met PyAV's unturned last frame)."""
    clip = moving_shapes(num_frames=12, height=36, width=64)
    path = tmp_path / "phone.mp4"
    write_video(path, clip.frames, clip.fps, rotation=90)
    shown = np.rot90(clip.frames, k=1, axes=(1, 2))  # [12, 64, 36, 3]
    boxes = np.tile(np.array([[2, 2, 8, 8]], np.float32), (12, 1))
    out = write_overlay(tmp_path / "overlay.mp4", path, boxes, np.full(12, DETECTED, np.uint8), np.array([[0, 12]]),
                        np.array([1.0]), "", fps=clip.fps)
    with open_video(out) as video:
        assert (video.info.width, video.info.height) == (36, 64 + TIMELINE_HEIGHT)
        frames = video.get_batch(range(12))
    picture = frames[:, 12:60, 12:34].astype(int)  # away from the box
    upright, upside_down = (np.abs(picture - turned[:, 12:60, 12:34]).mean()
                            for turned in (shown, shown[:, ::-1, ::-1]))
    assert upright < 10 < upside_down, (upright, upside_down)  # measured 6.3 (twice encoded at 36 px) and 28


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
    assert (row[10, 50] == 30).all() and (row[10, 51] != 30).all()  # a dark line parts the cells


def test_an_even_timeline_is_grey_not_orange():
    row = timeline_row(100, np.array([[0, 50], [50, 100]]), np.ones(2), 100, frame=99)
    assert (row[10, 10] == 120).all() and (row[10, 60] == 120).all()  # seen failing before: (240, 140, 80)


def test_a_video_wider_than_the_overlay_is_shrunk_on_every_frame_the_last_included(make_video, tmp_path):
    """decord fixes its output size when it opens a file: a size set afterwards reached only the last
    frame, which PyAV decodes, and a 1280-wide dive's overlay failed on it (exit 3)."""
    path, clip = make_video(num_frames=10, height=64, width=256)
    out = write_overlay(tmp_path / "small.mp4", path, clip.figure_boxes, np.full(10, DETECTED, np.uint8),
                        np.array([[0, 10]]), np.array([1.0]), "score", fps=clip.fps, max_width=128)
    with open_video(out) as video:
        assert (video.info.width, video.info.height, video.info.num_frames) == (128, 32 + TIMELINE_HEIGHT, 10)


def test_the_not_located_label_never_runs_into_the_caption():
    """A box near the top puts its 'athlete not located' under the box, not over the score caption
    (seen on the page: the two written over each other)."""
    from aqa.extractors.tracking import HELD

    frame = np.zeros((360, 640, 3), np.uint8)
    drawn = draw_frame(frame, np.array([300.0, 20.0, 360.0, 200.0]), HELD, "score 5.64")
    red = (drawn[..., 0] > 150) & (drawn[..., 1] < 100) & (drawn[..., 2] < 100)
    rows = np.nonzero(red[:, 370:].any(axis=1))[0]  # right of the box: the label's letters only
    caption_rows = np.nonzero((drawn[:, :200] > 200).all(axis=2).any(axis=1))[0]  # the white caption
    assert len(rows) and len(caption_rows) and rows.min() > caption_rows.max()
    assert rows.min() > 200  # under the box
