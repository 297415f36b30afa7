"""aqa.video_writer and the shared test videos: what is written decodes back as written."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from aqa.video_writer import write_video
from synthetic_video import read_frame_index


@pytest.mark.parametrize(("num_frames", "fps"), [(1, 25.0), (37, 25.0), (30, 29.97)])
def test_written_video_has_the_frames_fps_and_size_asked_for(make_video, num_frames, fps):
    path, clip = make_video(num_frames=num_frames, fps=fps, height=64, width=96)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == Fraction(fps).limit_denominator(1001)
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == num_frames
    assert decoded[0].shape == (64, 96, 3)
    assert [read_frame_index(frame) for frame in decoded] == [t % 25 for t in range(num_frames)]
    # Lossy, but close: H.264 at crf 18 keeps the mean absolute error within a few levels.
    error = np.abs(np.stack(decoded).astype(int) - clip.frames.astype(int)).mean()
    assert error < 4.0


def test_figure_box_marks_the_drawn_figure(make_video):
    _, clip = make_video(num_frames=10)
    for frame, (x1, y1, x2, y2) in zip(clip.frames, clip.figure_boxes.astype(int)):
        assert (frame[y1:y2, x1:x2] == (230, 60, 40)).all()


def test_odd_sizes_and_empty_input_are_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", [np.zeros((31, 32, 3), np.uint8)], 25)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], 25)
    with pytest.raises(ValueError, match="expected 32x32"):
        write_video(tmp_path / "mixed.mp4", [np.zeros((32, 32, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)], 25)
