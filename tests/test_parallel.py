"""extractors.parallel: a video split among workers gives the features one worker gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from aqa.extractors.backbones import backbone_spec
from aqa.extractors.backbones.registry import VideoBackbone
from aqa.extractors.decode_worker import InlineDecoder
from aqa.extractors.detect import PersonDetector, WeightsNotFoundError
from aqa.extractors.parallel import PoolConfig, WorkerPool
from aqa.extractors.stages import SiameseConfig, extract_video
from aqa.extractors.tracking import DETECTED, box_iou
from aqa.extractors.video_steps import ExtractedVideo, FailedVideo, count_parts, split_evenly


class RedFigureDetector(PersonDetector):
    """Boxes the synthetic clips' red figure in decoded (lossy) frames; records the frames it saw."""

    name = "red-figure"
    weights_id = "test:red-figure"

    def __init__(self, seen: list[int] | None = None):
        self.seen = seen if seen is not None else []

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        found = []
        for frame in frames.astype(np.int16):
            red = (frame[..., 0] > 170) & (frame[..., 1] < 120) & (frame[..., 2] < 110)
            ys, xs = np.nonzero(red)
            found.append(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9]], np.float32)
                         if len(xs) else np.zeros((0, 5), np.float32))
        self.seen.append(len(frames))
        return found

    def close(self) -> None:
        pass


class PixelMeans(VideoBackbone):
    """Per-clip channel means of the normalised frames: exact, cheap, and the same whatever the batch."""

    def __init__(self):
        super().__init__(backbone_spec("i3d"))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(3, 4)).flatten(1)  # [B, 3 * T]

    def load_weights(self, path) -> None:
        raise NotImplementedError


CONFIG = SiameseConfig(input_size=32)


def pool_of(workers: int, min_part_frames: int = 16, detectors: list | None = None, **kwargs) -> WorkerPool:
    def factory(config):
        detector = RedFigureDetector()
        if detectors is not None:
            detectors.append(detector)
        return detector

    return WorkerPool(CONFIG, PixelMeans(), pool=PoolConfig(workers=workers, min_part_frames=min_part_frames,
                                                            **kwargs), detector_factory=factory)


def test_split_evenly_covers_everything_once():
    assert split_evenly(10, 3) == [range(0, 3), range(3, 7), range(7, 10)]
    assert split_evenly(2, 5) == [range(0, 1), range(1, 2)]
    assert split_evenly(7, 1) == [range(0, 7)]
    assert [i for part in split_evenly(1000, 7) for i in part] == list(range(1000))


def test_parts_are_one_per_worker_and_never_short():
    assert count_parts(4500, workers=16, min_part_frames=256) == 16
    assert count_parts(900, workers=16, min_part_frames=256) == 3
    assert count_parts(100, workers=16, min_part_frames=256) == 1
    assert count_parts(4500, workers=1, min_part_frames=256) == 1


@pytest.mark.parametrize("isolate", [True, False])
def test_a_video_split_among_workers_matches_one_worker(make_video, isolate):
    path, clip = make_video("long.mp4", num_frames=150)
    with InlineDecoder() as decoder:
        reference = extract_video(decoder, str(path), PixelMeans(), RedFigureDetector(), CONFIG)
    assert np.mean(box_iou(reference.plan.track.boxes, clip.figure_boxes) >= 0.7) >= 0.95
    detectors: list[RedFigureDetector] = []
    with pool_of(3, detectors=detectors, isolate_decoding=isolate) as pool:
        (result,) = pool.extract([("long", path)])
    assert isinstance(result, ExtractedVideo) and result.name == "long"
    assert sum(len(d.seen) > 0 for d in detectors) >= 2  # the parts really went to several workers
    np.testing.assert_array_equal(result.features.scene, reference.scene)
    np.testing.assert_array_equal(result.features.actor, reference.actor)
    np.testing.assert_array_equal(result.features.plan.track.boxes, reference.plan.track.boxes)
    np.testing.assert_array_equal(result.features.plan.track.status, reference.plan.track.status)
    np.testing.assert_array_equal(result.features.plan.layout.clips.indices, reference.plan.layout.clips.indices)
    assert (result.features.plan.track.status == DETECTED).all()


class GappyFollowingDetector(RedFigureDetector):
    """Misses the figure in whole frames while its left edge lies in one of a few bands (a tucked,
    blurred athlete); follows it through the first bands, loses it in the last ones, and finds it
    in any smaller image (a crop of the second look): both steps then have work in several parts
    of a long video. Counts the frames it followed and looked at again."""

    follows = True
    bands = ((20, 34), (60, 70), (100, 112), (140, 150), (180, 196))

    def __init__(self, frame_size: tuple[int, int]):
        super().__init__()
        self.frame_size, self.followed, self.looked = frame_size, 0, 0

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        found = super().detect(frames)
        if frames.shape[1:3] != self.frame_size[::-1]:
            self.looked += len(frames)
            return found
        return [boxes if not len(boxes) or not any(lo <= boxes[0, 0] < hi for lo, hi in self.bands)
                else boxes[:0] for boxes in found]

    def follow(self, frames: np.ndarray) -> list[np.ndarray]:
        self.followed += len(frames) - 1
        found = RedFigureDetector.detect(self, frames[1:])
        return [boxes if not len(boxes) or boxes[0, 0] < self.bands[3][0] else boxes[:0] for boxes in found]


def test_following_and_the_second_look_shared_among_workers_match_one_worker(make_video):
    path, clip = make_video("gappy.mp4", num_frames=150, width=256)
    config = SiameseConfig(input_size=32, work_short_side=96)
    with InlineDecoder() as decoder:
        one = GappyFollowingDetector((256, 96))
        reference = extract_video(decoder, str(path), PixelMeans(), one, config)
    assert one.followed > 0 and one.looked > 0
    detectors: list[GappyFollowingDetector] = []

    def factory(_):
        detectors.append(GappyFollowingDetector((256, 96)))
        return detectors[-1]

    pool = WorkerPool(config, PixelMeans(), pool=PoolConfig(workers=3, min_part_frames=16), detector_factory=factory)
    with pool:
        (result,) = pool.extract([("gappy", path)])
    assert sum(d.followed > 0 for d in detectors) >= 2  # the runs to follow went to several workers,
    assert sum(d.looked > 0 for d in detectors) >= 2  # and so did the frames to look at again
    assert (sum(d.followed for d in detectors), sum(d.looked for d in detectors)) == (one.followed, one.looked)
    np.testing.assert_array_equal(result.features.plan.track.boxes, reference.plan.track.boxes)
    np.testing.assert_array_equal(result.features.plan.track.status, reference.plan.track.status)
    np.testing.assert_array_equal(result.features.actor, reference.actor)


def test_many_videos_one_failure_and_progress(make_video, tmp_path):
    videos = [(f"v{i}", make_video(f"v{i}.mp4", num_frames=40 + 8 * i, seed=i)[0]) for i in range(4)]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 2048)
    progress: dict[str, list[tuple[int, int]]] = {}
    with pool_of(2, min_part_frames=8) as pool:
        results = list(pool.extract([*videos[:2], ("broken", broken), *videos[2:]],
                                    on_clips=lambda name, done, total: progress.setdefault(name, []).append((done,
                                                                                                             total))))
    assert sorted(r.name for r in results) == ["broken", "v0", "v1", "v2", "v3"]
    (failure,) = [r for r in results if isinstance(r, FailedVideo)]
    assert failure.name == "broken" and "broken.mp4" in failure.reason and "\n" not in failure.reason
    for result in results:
        if isinstance(result, ExtractedVideo):
            clips = result.features.plan.layout.clips.num_clips
            assert result.features.scene.shape == (clips, 3 * 32)
            assert progress[result.name][0] == (0, clips) and progress[result.name][-1] == (clips, clips)


def test_a_pool_stays_usable_after_an_abandoned_run(make_video):
    videos = [(f"v{i}", make_video(f"v{i}.mp4", num_frames=64, seed=i)[0]) for i in range(3)]
    with pool_of(2, batch_queue=1) as pool:
        first = next(iter(pool.extract(videos)))  # the caller walks away with work still queued
        (again,) = pool.extract(videos[:1])
    assert isinstance(first, ExtractedVideo) and isinstance(again, ExtractedVideo)
    assert not [t for t in threading.enumerate() if t.name.startswith("aqa-worker")]


def test_close_does_not_wait_for_a_caller_that_stopped_listening(make_video):
    videos = [(f"v{i}", make_video(f"v{i}.mp4", num_frames=96, seed=i)[0]) for i in range(2)]
    pool = pool_of(1, batch_queue=1)
    iterator = pool.extract(videos)  # the worker blocks on the second video's batches
    thread = threading.Thread(target=lambda: next(iterator, None), daemon=True)
    thread.start()
    thread.join(timeout=60)
    closer = threading.Thread(target=pool.close, daemon=True)  # iterator left open, suspended
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive()


def test_a_detector_that_cannot_be_built_fails_the_pool_at_once():
    def factory(config):
        raise WeightsNotFoundError("YOLO weights not found: looked for /nowhere/yolo11n.pt")

    with pytest.raises(WeightsNotFoundError, match="/nowhere"):
        WorkerPool(CONFIG, PixelMeans(), pool=PoolConfig(workers=2), detector_factory=factory)
    assert not [t for t in threading.enumerate() if t.name.startswith("aqa-worker")]
