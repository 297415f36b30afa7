"""extractors.crops: square context crops inside the frame, cut out pixel-exactly and resized."""

from __future__ import annotations

import numpy as np
import pytest

from aqa.extractors.crops import crop_and_resize, square_crop_boxes


def assert_square_inside(crops: np.ndarray, frame_size: tuple[int, int]) -> None:
    width, height = frame_size
    np.testing.assert_allclose(crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1])
    assert (crops[:, :2] >= 0).all() and (crops[:, 2] <= width).all() and (crops[:, 3] <= height).all()
    np.testing.assert_array_equal(crops, np.round(crops))  # whole pixels: slicing is exact


def test_square_crop_centred_on_the_box_with_the_margin():
    boxes = np.array([[100, 50, 140, 150]], np.float32)  # 40 x 100, centre (120, 100)
    crops = square_crop_boxes(boxes, (320, 240), margin=0.25)
    np.testing.assert_array_equal(crops, [[45, 25, 195, 175]])  # side 100 * 1.5 = 150
    np.testing.assert_array_equal(square_crop_boxes(boxes, (320, 240), margin=0.0), [[70, 50, 170, 150]])
    assert crops.dtype == np.float32


def test_crops_near_the_border_shift_inside_and_still_contain_the_box():
    frame_size = (320, 240)
    boxes = np.array([[0, 0, 30, 60], [290, 180, 320, 240], [-20, 100, 25, 180], [150, 200, 200, 260]], np.float32)
    crops = square_crop_boxes(boxes, frame_size, margin=0.25)
    assert_square_inside(crops, frame_size)
    inside = np.clip(boxes, 0, [320, 240, 320, 240])
    assert (crops[:, :2] <= inside[:, :2]).all() and (crops[:, 2:] >= inside[:, 2:]).all()
    np.testing.assert_array_equal(crops[:, 2] - crops[:, 0], [90, 90, 120, 90])


def test_crop_larger_than_the_frame_shrinks_to_the_shorter_side():
    boxes = np.array([[100, 10, 200, 230]], np.float32)  # 220 tall: x1.5 = 330 > 240
    crops = square_crop_boxes(boxes, (320, 240))
    np.testing.assert_array_equal(crops, [[30, 0, 270, 240]])


def test_fallback_full_frame_box_gives_the_centre_square():
    crops = square_crop_boxes(np.array([[0, 0, 320, 240]], np.float32), (320, 240))
    np.testing.assert_array_equal(crops, [[40, 0, 280, 240]])
    portrait = square_crop_boxes(np.array([[0, 0, 90, 160]], np.float32), (90, 160))
    np.testing.assert_array_equal(portrait, [[0, 35, 90, 125]])


def test_tiny_boxes_grow_to_min_size():
    crops = square_crop_boxes(np.array([[50, 50, 52, 53]], np.float32), (320, 240), min_size=32)
    assert_square_inside(crops, (320, 240))
    assert crops[0, 2] - crops[0, 0] == 32


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.5])
def test_random_boxes_always_give_valid_crops(margin):
    rng = np.random.default_rng(0)
    corners = rng.uniform(-50, 400, size=(200, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 1], axis=1).astype(np.float32)
    assert_square_inside(square_crop_boxes(boxes, (320, 240), margin=margin), (320, 240))


def coordinate_frame(height: int = 120, width: int = 160) -> np.ndarray:
    """A frame whose pixel (y, x) holds (x, y, 7): any crop shows where it came from."""
    ys, xs = np.mgrid[:height, :width]
    return np.stack([xs, ys, np.full_like(xs, 7)], axis=-1).astype(np.uint8)


def test_crop_and_resize_is_pixel_exact_at_scale_one_and_aligned_per_frame():
    frames = np.stack([coordinate_frame(), coordinate_frame()[::-1].copy()])
    boxes = np.array([[10, 20, 42, 52], [100, 5, 132, 37]], np.float32)
    out = crop_and_resize(frames, boxes, 32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], frames[0, 20:52, 10:42])
    np.testing.assert_array_equal(out[1], frames[1, 5:37, 100:132])


def test_crop_and_resize_shrinks_by_averaging():
    frames = coordinate_frame()[None]
    out = crop_and_resize(frames, np.array([[10, 20, 74, 84]], np.float32), 32)
    expected = frames[0, 20:84, 10:74].astype(float).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(out[0] - expected).max() <= 1  # INTER_AREA: the mean of each 2 x 2 block


def test_crop_and_resize_enlarges_and_clamps_boxes_outside_the_frame():
    frames = coordinate_frame()[None]
    out = crop_and_resize(frames, np.array([[-10, -10, 6, 6]], np.float32), 24)
    assert out.shape == (1, 24, 24, 3)
    assert out[0, ..., 0].max() <= 6 and out[0, ..., 1].max() <= 6  # came from the 6 x 6 corner


def test_crop_and_resize_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="boxes"):
        crop_and_resize(np.zeros((2, 10, 10, 3), np.uint8), np.zeros((3, 4), np.float32), 8)
