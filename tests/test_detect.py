"""extractors.detect: both detectors give person boxes per frame; missing weights fail fast and clearly."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from aqa.errors import WeightsNotFoundError
from aqa.extractors.detect import (
    BlazePoseDetector,
    DetectorConfig,
    YoloPersonDetector,
    build_detector,
    landmarks_to_box,
    mask_to_box,
)


def decode_frames(path: Path, count: int | None = None, step: int = 1) -> np.ndarray:
    """Every ``step``-th frame of a real video (``count`` of them at most) as ``[N, H, W, 3]`` RGB, via PyAV."""
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % step == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
            if count is not None and len(frames) == count:
                break
    return np.stack(frames)


def asset_rgb(name: str) -> np.ndarray:
    """An image shipped with ultralytics (real photos of people), as RGB."""
    from ultralytics.utils import ASSETS

    return cv2.imread(str(Path(ASSETS) / name))[..., ::-1].copy()


def covers(box: np.ndarray, region: tuple[float, float, float, float]) -> bool:
    """Loose "this box is that person": mostly inside the person's region and at least half its height."""
    x1, y1, x2, y2 = np.maximum(box[:2], region[:2]).tolist() + np.minimum(box[2:4], region[2:]).tolist()
    inside = max(0.0, x2 - x1) * max(0.0, y2 - y1) / ((box[2] - box[0]) * (box[3] - box[1]))
    return inside >= 0.8 and (box[3] - box[1]) >= 0.5 * (region[3] - region[1])


def assert_boxes(found: list[np.ndarray], num_frames: int, width: int, height: int) -> None:
    assert len(found) == num_frames
    for boxes in found:
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width + 1e-3).all() and (boxes[:, 3] <= height + 1e-3).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


@pytest.fixture(scope="module")
def blazepose():
    with BlazePoseDetector(DetectorConfig(kind="blazepose")) as detector:
        yield detector


# --------------------------------------------------------------------------- YOLO


@pytest.fixture(scope="module")
def random_yolo():
    """YOLO11n with random weights (no download): plumbing only, it finds no real people."""
    return YoloPersonDetector(DetectorConfig(kind="yolo", weights="yolo11n.yaml", confidence=0.0,
                                             image_size=64, batch_size=2))


def test_yolo_gives_float32_person_boxes_per_frame_in_batches(random_yolo):
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    found = random_yolo.detect(frames)
    assert_boxes(found, 3, 64, 48)
    assert sum(len(boxes) for boxes in found) > 0  # confidence 0 keeps the random model's boxes
    assert random_yolo.weights_id == "config:yolo11n.yaml (random weights)"
    assert not random_yolo.half  # CPU: never half precision


def test_yolo_network_sees_rgb_frames_in_rgb_order():
    # ultralytics reads numpy as BGR and flips it to RGB for the network; we give RGB, so the
    # detector must flip first. A pure red RGB frame must reach the network as (1, 0, 0).
    # (A fresh model: ultralytics' predictor wraps the network on first use, hiding later calls.)
    detector = YoloPersonDetector(DetectorConfig(kind="yolo", weights="yolo11n.yaml", image_size=64))
    seen = []
    detector.model.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    frames[..., 0] = 255
    detector.detect(frames)
    assert seen, "the hook never saw the network's input"
    channel_means = seen[-1].float().mean(dim=(0, 2, 3)).tolist()
    assert channel_means == pytest.approx([1.0, 0.0, 0.0], abs=1e-3)


def test_missing_weights_file_fails_fast_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    missing = tmp_path / "weights" / "yolo11n.pt"
    started = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="yolo11n.pt") as caught:
        YoloPersonDetector(DetectorConfig(kind="yolo", weights=str(missing)))
    assert time.perf_counter() - started < 5
    assert str(missing) in str(caught.value) and "github.com/ultralytics/assets" in str(caught.value)


def test_bare_weights_name_offline_is_not_downloaded(tmp_path, monkeypatch):
    from ultralytics.utils import SETTINGS

    if (Path(SETTINGS["weights_dir"]) / "yolo11n.pt").is_file():
        pytest.skip("yolo11n.pt is present in ultralytics' weights folder")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=str(tmp_path / "yolo11n.pt")):
        build_detector(DetectorConfig(kind="yolo", weights="yolo11n.pt"))
    assert not (tmp_path / "yolo11n.pt").exists()


# --------------------------------------------------------------------------- BlazePose


@pytest.mark.parametrize(("image", "people"), [
    # Person regions (x1, y1, x2, y2) checked by eye on the photos.
    ("zidane.jpg", [(750, 40, 1145, 720), (120, 200, 1150, 720)]),
    ("bus.jpg", [(45, 395, 245, 910), (220, 400, 345, 860), (665, 400, 810, 880)]),
])
def test_blazepose_finds_a_person_in_real_photos(blazepose, image, people):
    frame = asset_rgb(image)
    found = blazepose.detect(frame[None])
    assert_boxes(found, 1, frame.shape[1], frame.shape[0])
    assert len(found[0]) == 1
    assert any(covers(found[0][0], region) for region in people), found[0]
    assert 0 < found[0][0, 4] <= 1


def test_blazepose_finds_nobody_in_an_empty_frame_and_keeps_frame_order(blazepose):
    person = cv2.resize(asset_rgb("bus.jpg"), (270, 360))
    frames = np.stack([np.full_like(person, 90), person])
    found = blazepose.detect(frames)
    assert found[0].shape == (0, 5) and found[1].shape == (1, 5)


def test_blazepose_downscaled_large_frames_give_boxes_in_original_pixels():
    frame = asset_rgb("bus.jpg")
    with BlazePoseDetector(DetectorConfig(max_side=480)) as small, BlazePoseDetector(DetectorConfig()) as full:
        low, high = small.detect(frame[None])[0], full.detect(frame[None])[0]
    assert len(low) == len(high) == 1
    np.testing.assert_allclose(low[0, :4], high[0, :4], atol=0.03 * frame.shape[0])


def test_blazepose_identity_and_close():
    detector = BlazePoseDetector(DetectorConfig())
    assert detector.weights_id.startswith("embedded:mediapipe-0.10") and detector.name == "blazepose"
    detector.close()
    detector.close()  # idempotent
    with pytest.raises(RuntimeError, match="close"):
        detector.detect(np.zeros((1, 32, 32, 3), np.uint8))


def test_frames_must_be_uint8_rgb(blazepose):
    with pytest.raises(ValueError, match="uint8"):
        blazepose.detect(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="N, H, W, 3"):
        blazepose.detect(np.zeros((32, 32, 3), np.uint8))


def test_landmarks_to_box_uses_visible_landmarks_pads_and_clamps():
    points = np.array([[0.1, 0.2, 0.9], [0.5, 0.6, 0.8], [0.9, 0.95, 0.1]], np.float32)
    box = landmarks_to_box(points, (200, 100), visibility=0.5, padding=0.1)
    np.testing.assert_allclose(box, [12, 16, 108, 64, 0.6], atol=1e-4)  # the third point is hidden
    edge = landmarks_to_box(np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], np.float32), (200, 100), 0.5, 0.1)
    np.testing.assert_allclose(edge[:4], [0, 0, 200, 100])
    hidden = landmarks_to_box(np.array([[0.2, 0.2, 0.1], [0.4, 0.6, 0.2]], np.float32), (100, 100), 0.5, 0.0)
    np.testing.assert_allclose(hidden[:4], [20, 20, 40, 60], atol=1e-4)  # none visible: all of them


def box_iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


@pytest.mark.parametrize(("image", "person"), [
    # The whole person, head to feet, as a person would draw the box (checked by eye).
    ("zidane.jpg", (750, 40, 1145, 720)),
    ("bus.jpg", (45, 395, 245, 910)),
])
def test_blazepose_box_from_the_mask_spans_the_body_not_just_its_joints(image, person):
    frame = asset_rgb(image)
    with BlazePoseDetector(DetectorConfig(box_from="mask")) as outline, \
            BlazePoseDetector(DetectorConfig(box_from="landmarks")) as joints:
        by_mask, by_joints = outline.detect(frame[None])[0], joints.detect(frame[None])[0]
    assert len(by_mask) == len(by_joints) == 1
    assert by_mask[0, 4] == by_joints[0, 4]  # the same pose: the score is its landmarks' visibility
    assert box_iou(by_mask[0], person) >= 0.8
    assert box_iou(by_mask[0], person) > box_iou(by_joints[0], person) + 0.1  # joints miss the head's top, hands


def test_mask_to_box_spans_the_mask_near_the_joints_in_frame_pixels():
    mask = np.zeros((100, 200), np.float32)  # a frame of 400 x 200 pixels, the mask at half its size
    mask[20:60, 50:80] = 0.9   # the person
    mask[90:95, 190:195] = 0.9  # stray mask far from the joints
    mask[10:12, 40:45] = 0.3   # under the threshold
    joints = np.array([0.27, 0.25, 0.38, 0.55])  # normalised to the frame
    np.testing.assert_allclose(mask_to_box(mask, joints, (400, 200)), [100, 40, 160, 120])
    np.testing.assert_allclose(mask_to_box(mask, np.array([0, 0, 1, 1.0]), (400, 200)), [100, 40, 390, 190])
    assert mask_to_box(np.zeros((100, 200), np.float32), joints, (400, 200)) is None


@pytest.mark.real_data
@pytest.mark.parametrize(("video", "people"), [
    ("ntu_drink_1080p.avi", [(980, 270, 1130, 770)]),
    ("makeup.avi", [(80, 0, 320, 240)]),  # face, hair and the shirt's shoulder at the left
    ("basketball.mp4", [(55, 80, 140, 240), (220, 100, 280, 235)]),
])
def test_blazepose_on_real_video_frames(blazepose, shared_videos, video, people):
    frames = decode_frames(shared_videos / video, count=3)
    found = blazepose.detect(frames)
    assert_boxes(found, 3, frames.shape[2], frames.shape[1])
    assert all(len(boxes) == 1 and any(covers(boxes[0], region) for region in people) for boxes in found), found


# --------------------------------------------------------------------------- choice


def test_auto_without_weights_falls_back_to_blazepose_and_says_why_once(caplog, monkeypatch):
    """Said once per process, not once per worker's detector (seen twice per aqa-app start and per
    aqa-predict run with two workers before)."""
    from aqa.extractors import detect

    monkeypatch.setattr(detect, "_said", set())  # as in a new process: earlier tests may have said it
    with caplog.at_level(logging.INFO, logger="aqa.extractors.detect"):
        detectors = [build_detector(DetectorConfig(kind="auto")) for _ in range(2)]
    for detector in detectors:
        with detector:
            assert isinstance(detector, BlazePoseDetector)
    assert caplog.text.count("no YOLO weights configured; using the embedded BlazePose detector") == 1, caplog.text


def test_auto_with_missing_weights_falls_back_and_names_the_path(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    missing = tmp_path / "yolo11s.pt"
    with caplog.at_level(logging.INFO, logger="aqa.extractors.detect"):
        detector = build_detector(DetectorConfig(kind="auto", weights=str(missing)))
    with detector:
        assert isinstance(detector, BlazePoseDetector)
    assert str(missing) in caplog.text


def test_auto_and_yolo_with_weights_build_yolo():
    for kind in ("auto", "yolo"):
        assert isinstance(build_detector(DetectorConfig(kind=kind, weights="yolo11n.yaml")), YoloPersonDetector)
    with build_detector(DetectorConfig(kind="blazepose", weights="yolo11n.yaml")) as detector:
        assert isinstance(detector, BlazePoseDetector)


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="every_k"):
        DetectorConfig(every_k=0)
    with pytest.raises(ValueError, match="box_from"):
        DetectorConfig(box_from="outline")


def test_blazepose_start_up_is_quiet_and_stderr_comes_back(capfd):
    """MediaPipe's native start-up warnings are kept off stderr, and stderr works afterwards."""
    from aqa.extractors.detect import BlazePoseDetector, DetectorConfig

    with BlazePoseDetector(DetectorConfig(kind="blazepose")):
        os.write(2, b"still visible\n")
    err = capfd.readouterr().err
    assert "still visible" in err
    assert "W0000" not in err and "XNNPACK" not in err


def test_detectors_started_together_keep_stderr(capfd):
    """Worker threads build their detectors at once: stderr stays quiet while they start and
    points at the real stderr again afterwards, whatever order they finish in."""
    import threading

    from aqa.extractors.detect import BlazePoseDetector, DetectorConfig

    built = []
    threads = [threading.Thread(target=lambda: built.append(BlazePoseDetector(DetectorConfig(kind="blazepose"))))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.write(2, b"still visible\n")
    for detector in built:
        detector.close()
    err = capfd.readouterr().err
    assert len(built) == 3 and "still visible" in err
    assert "W0000" not in err and "XNNPACK" not in err
