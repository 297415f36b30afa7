"""The embedded demo dataset: short synthetic "routines" whose judge score is known by construction.

Each video shows one athlete, a person cut out of a real photo that ultralytics ships
(``zidane.jpg``, ``bus.jpg``; see :mod:`aqa.synthetic.scene`), performing a routine of ``moves``
moves (jump, leap, spin) in front of a procedurally textured, panning backdrop. Only the
*quality* of the motion sets the score, so a model that learns it must have learned something
about motion. It is what ``make demo`` runs on, offline, from a fresh clone::

    python -m aqa.pipeline.synthetic OUT_DIR --videos 40 --seed 0     # ~12 s on 2 CPU cores

Score formula (0-10, like a judge's execution mark)
---------------------------------------------------
An athlete's skill ``z ~ U(0, 1)`` is drawn per video, and four quality factors in [0, 1] scatter
around it, ``q = clip(z + N(0, 0.15), 0, 1)`` (good athletes tend to be good at everything):

* ``smoothness`` s: the trajectory's jitter (band-limited noise on position and lean, i.e. jerk)
  shrinks as ``1 - s``;
* ``amplitude`` a: jumps reach ``(0.4 + 0.6 a)`` of the full height, leaps travel as far;
* ``rotation`` r: spins (360 deg) and leaps (180 deg) complete ``(0.5 + 0.5 r)`` of their turn in
  the air; the rest is a visible snap after touch-down;
* ``landing`` l: each landing wobbles (lean, lateral stagger, knee dip) with amplitude ``1 - l``.

    execution = 10 * (0.30 s + 0.25 a + 0.25 r + 0.20 l)
    score     = clip(execution + N(0, label_noise), 0, 10)      # judges disagree a little

``difficulty`` is the routine's degree of difficulty, the sum of its moves' values (jump 1.0,
leap 1.3, spin 1.6). It is recorded but not folded into ``score``, so the score is pure execution.

What does not depend on the score
---------------------------------
Photo, scale (+-8 %), start position, facing, travel direction, background texture and colours,
camera pan, the moves and their timing are drawn from a separate random stream that never sees
``z``; every video has the same length and size. Pixel statistics (brightness, colour
histogram) therefore carry no score information; the motion does. Each random stream is seeded
by ``(seed, video index, stream)``, so video ``i`` is the same whatever ``num_videos`` is.

The athlete stays findable: the embedded BlazePose detector boxes them in ~94 % of the frames
(seed 0, 40 videos: 84-100 % per video, unrelated to the score); the misses are mostly
mid-turn, when the cut-out is seen nearly edge-on (it never gets thinner than ``MIN_WIDTH``).

Output (:func:`generate_dataset`)::

    out_dir/videos/syn_0000.mp4 ...   H.264, ``num_frames`` frames of ``width x height``
    out_dir/train.txt, test.txt       "name score difficulty" (read by data.labels.read_label_files)
    out_dir/manifest.json             the config, the formula and every video's parameters, with the
                                      athlete's ground-truth box per frame
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aqa.errors import AqaError
from aqa.synthetic.scene import PHOTO_CUTS, PhotoCut, backdrop, cutout
from aqa.video_writer import write_video

log = logging.getLogger(__name__)

SCORE_WEIGHTS = {"smoothness": 0.30, "amplitude": 0.25, "rotation": 0.25, "landing": 0.20}
MOVE_DIFFICULTY = {"jump": 1.0, "leap": 1.3, "spin": 1.6}
MOVE_TURN_DEG = {"jump": 0.0, "leap": 180.0, "spin": 360.0}
SKILL_SPREAD = 0.15  # std of each quality factor around the athlete's skill
SCALE_RANGE = (0.92, 1.08)  # nuisance: the athlete's size
JUMP_HEIGHT = 0.24  # full-quality jump height, fraction of the frame height
LEAP_TRAVEL = 0.22  # full-quality leap travel, fraction of the frame width
MIN_WIDTH = 0.3  # edge-on the cut-out is a sliver no detector finds; turns never get thinner than this
PHASES = (0.2, 0.62)  # within a move: take-off crouch until 0.2, flight until 0.62, then landing
MANIFEST = "manifest.json"
GENERATOR_VERSION = 1  # bump when the same config would draw different videos: old folders are then refused


class SyntheticDatasetError(AqaError):
    """The output folder holds a synthetic dataset made with different settings."""


@dataclass(frozen=True)
class SyntheticDatasetConfig:
    """How many videos, how they look, and how they are split.

    num_videos: videos to generate (``syn_0000`` ...).
    num_frames, fps, width, height: every video's length and size (even sizes, for H.264).
    seed: the dataset's seed; the same seed gives the same frames and labels (libx264 may encode
        the same frames to slightly different bytes from run to run).
    test_fraction: share of videos in ``test.txt``, taken evenly over the score ranking so both
        splits span the range (at least one video in each when there are two or more).
    moves: moves per routine; each gets ``num_frames / moves`` frames.
    label_noise: std of the judges' noise added to the execution mark (0-10 scale).
    crf: H.264 quality (lower is better and bigger).
    """

    num_videos: int = 40
    num_frames: int = 64
    fps: float = 25.0
    width: int = 256
    height: int = 256
    seed: int = 0
    test_fraction: float = 0.25
    moves: int = 3
    label_noise: float = 0.3
    crf: int = 20

    def __post_init__(self) -> None:
        if self.num_videos < 1 or self.moves < 1 or self.num_frames < 8 * self.moves:
            raise ValueError(f"need num_videos >= 1, moves >= 1 and num_frames >= 8 per move: {self}")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and >= 64, got {self.width}x{self.height}")
        if not 0.0 <= self.test_fraction < 1.0 or self.label_noise < 0 or self.fps <= 0:
            raise ValueError(f"test_fraction must lie in [0, 1), label_noise >= 0, fps > 0: {self}")


@dataclass(frozen=True)
class Routine:
    """One video's parameters: the score-bearing quality factors and the score-blind nuisances."""

    name: str
    moves: tuple[str, ...]
    quality: Mapping[str, float]  # smoothness, amplitude, rotation, landing in [0, 1]
    execution: float  # the formula without judge noise
    score: float
    difficulty: float
    photo: int  # index into PHOTO_CUTS
    scale: float
    start_x: float  # fraction of the width
    facing: int  # +1 as photographed, -1 mirrored
    pan: float  # camera pan, background pixels per frame
    background_seed: int
    noise_seed: int  # the jitter's pattern; its size is set by smoothness
    split: str = ""

    def to_dict(self) -> dict[str, object]:
        values = dataclasses.asdict(self)
        values["quality"] = dict(self.quality)
        return values


def execution_score(quality: Mapping[str, float]) -> float:
    """The noiseless execution mark, 0-10 (see the module docstring)."""
    return 10.0 * sum(weight * float(quality[key]) for key, weight in SCORE_WEIGHTS.items())


def sample_routine(config: SyntheticDatasetConfig, index: int) -> Routine:
    """Draw video ``index``'s routine. Quality and nuisance come from separate random streams."""
    skill_rng, nuisance_rng = (np.random.default_rng([config.seed, index, stream]) for stream in (0, 1))
    skill = skill_rng.uniform()
    quality = {key: float(np.clip(skill + skill_rng.normal(0, SKILL_SPREAD), 0, 1)) for key in SCORE_WEIGHTS}
    execution = execution_score(quality)
    score = float(np.clip(execution + skill_rng.normal(0, config.label_noise), 0, 10))

    moves = list(nuisance_rng.choice(list(MOVE_DIFFICULTY), size=config.moves))
    if all(MOVE_TURN_DEG[move] == 0 for move in moves):  # every routine turns, so rotation is visible
        moves[nuisance_rng.integers(config.moves)] = str(nuisance_rng.choice(["leap", "spin"]))
    return Routine(
        name=f"syn_{index:04d}", moves=tuple(str(move) for move in moves), quality=quality,
        execution=round(execution, 4), score=round(score, 2),
        difficulty=round(sum(MOVE_DIFFICULTY[move] for move in moves), 2),
        photo=int(nuisance_rng.integers(len(PHOTO_CUTS))), scale=float(nuisance_rng.uniform(*SCALE_RANGE)),
        start_x=float(nuisance_rng.uniform(0.38, 0.62)), facing=int(nuisance_rng.choice([-1, 1])),
        pan=float(nuisance_rng.uniform(-2.0, 2.0)), background_seed=int(nuisance_rng.integers(2**31)),
        noise_seed=int(nuisance_rng.integers(2**31)))


# --------------------------------------------------------------------------- motion

TRAJECTORY_COLUMNS = ("x", "y", "scale_x", "scale_y", "tilt")


def athlete_trajectory(routine: Routine, config: SyntheticDatasetConfig) -> np.ndarray:
    """The athlete's pose per frame, ``[T, 5]`` float64 with :data:`TRAJECTORY_COLUMNS`:

    x, y: the cut's bottom-centre in frame pixels; scale_x: horizontal scale, negative when
    mirrored (a turn about the vertical axis shows as ``cos(yaw)``); scale_y: vertical scale
    (crouch and landing dip); tilt: lean in degrees (positive = clockwise on screen).

    Each move has the same timing: a take-off crouch, a flight (a parabola, with the leap's travel
    and the turn eased in), and a landing that finishes an incomplete turn with a snap and settles
    with a damped wobble. Quality scales the height, the turn done in the air and the wobble;
    smoothness scales band-limited jitter laid over everything.
    """
    width, height, frames = config.width, config.height, config.num_frames
    q = routine.quality
    time = np.arange(frames) / (frames / len(routine.moves))
    move_index = np.minimum(time.astype(int), len(routine.moves) - 1)
    phase = time - move_index
    prep, flight, land = (phase < PHASES[0]), (phase >= PHASES[0]) & (phase < PHASES[1]), phase >= PHASES[1]
    u_prep = np.clip(phase / PHASES[0], 0, 1)
    u_flight = np.clip((phase - PHASES[0]) / (PHASES[1] - PHASES[0]), 0, 1)
    u_land = np.clip((phase - PHASES[1]) / (1 - PHASES[1]), 0, 1)
    start_x, travel, start_yaw, turn, jump = _plan_moves(routine, width, height)[:, move_index]

    eased = u_flight * u_flight * (3 - 2 * u_flight)
    settle = np.where(land, np.exp(-3.5 * u_land) * np.sin(2 * np.pi * 1.5 * u_land), 0.0)  # damped wobble
    snap = np.where(land, np.clip(u_land / 0.25, 0, 1), 0.0)
    turn_done = 0.5 + 0.5 * q["rotation"]
    yaw = start_yaw + turn * np.where(land, turn_done + (1 - turn_done) * snap, turn_done * eased)
    wobble = 1.0 - q["landing"]
    jitter = _band_limited_noise(routine.noise_seed, frames, 3) * (1.0 - q["smoothness"])

    out = np.empty((frames, 5))
    out[:, 0] = start_x + travel * np.where(land, 1.0, eased) + wobble * 0.05 * width * settle \
        + 0.025 * height * jitter[:, 0]
    cut = PHOTO_CUTS[routine.photo]
    out[:, 1] = cut.ground * height - jump * 4 * u_flight * (1 - u_flight) + 0.025 * height * jitter[:, 1]
    cos_yaw = np.cos(np.radians(yaw))
    out[:, 2] = routine.facing * routine.scale * np.sign(cos_yaw + 1e-9) * np.maximum(np.abs(cos_yaw), MIN_WIDTH)
    dip = np.where(prep, 0.07 * np.sin(np.pi * u_prep), 0.0) \
        + np.where(land, (0.05 + 0.10 * wobble) * np.sin(np.pi * np.clip(u_land / 0.6, 0, 1)), 0.0)
    out[:, 3] = routine.scale * (1.0 - dip)
    lean = np.where(flight, 6.0 * np.sign(travel) * np.sin(np.pi * u_flight), 0.0)
    out[:, 4] = lean + wobble * 18.0 * settle + 8.0 * jitter[:, 2]
    return out


def _plan_moves(routine: Routine, width: int, height: int) -> np.ndarray:
    """``[5, moves]``: each move's start x and travel (pixels), start yaw and turn (degrees), jump height (pixels)."""
    reach = 0.4 + 0.6 * routine.quality["amplitude"]
    plan = np.zeros((5, len(routine.moves)))
    x, yaw = routine.start_x * width, 0.0
    for k, move in enumerate(routine.moves):
        direction = -1.0 if x > width / 2 else 1.0  # leaps head for the side with more room
        travel = direction * LEAP_TRAVEL * width * reach if move == "leap" else 0.0
        jump = JUMP_HEIGHT * height * reach * (0.8 if move == "leap" else 1.0)
        plan[:, k] = x, travel, yaw, MOVE_TURN_DEG[move], jump
        x, yaw = x + travel, yaw + MOVE_TURN_DEG[move]
    return plan


def _band_limited_noise(seed: int, frames: int, channels: int) -> np.ndarray:
    """``[frames, channels]`` noise with unit std, smoothed over ~2 frames: shaky, not flickering."""
    white = np.random.default_rng(seed).normal(size=(frames + 8, channels))
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 1.2) ** 2)
    smooth = np.stack([np.convolve(white[:, c], kernel / kernel.sum(), mode="same") for c in range(channels)], 1)
    smooth = smooth[4:-4]
    return smooth / smooth.std(axis=0, keepdims=True)


def pose_matrices(trajectory: np.ndarray, cut: PhotoCut, height: int) -> np.ndarray:
    """``[T, 2, 3]`` affine maps from the photo's pixels to each frame's pixels.

    The cut's bottom-centre goes to (x, y); the box is scaled to ``cut.height`` of the frame
    (times the trajectory's scales), then leaned by ``tilt`` about that point.
    """
    x1, y1, x2, y2 = cut.box
    base = cut.height * height / (y2 - y1)
    anchor = np.array([(x1 + x2) / 2, y2], dtype=np.float64)
    theta = np.radians(trajectory[:, 4])
    cos, sin = np.cos(theta), np.sin(theta)
    sx, sy = trajectory[:, 2] * base, trajectory[:, 3] * base
    linear = np.stack([np.stack([cos * sx, -sin * sy], -1), np.stack([sin * sx, cos * sy], -1)], 1)  # [T, 2, 2]
    shift = trajectory[:, :2] - linear @ anchor
    return np.concatenate([linear, shift[:, :, None]], axis=2)


def athlete_boxes(routine: Routine, config: SyntheticDatasetConfig) -> np.ndarray:
    """The athlete's ground-truth box per frame, ``[T, 4]`` (x1, y1, x2, y2), clamped to the frame."""
    cut = PHOTO_CUTS[routine.photo]
    x1, y1, x2, y2 = cut.box
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], dtype=np.float64).T  # [3, 4]
    points = pose_matrices(athlete_trajectory(routine, config), cut, config.height) @ corners  # [T, 2, 4]
    boxes = np.concatenate([points.min(axis=2), points.max(axis=2)], axis=1)
    return np.clip(boxes, 0, [config.width, config.height, config.width, config.height])


# --------------------------------------------------------------------------- pixels


def render_video(routine: Routine, config: SyntheticDatasetConfig) -> np.ndarray:
    """The routine's frames, ``[T, H, W, 3]`` uint8 RGB: the cut-out athlete over the panning background."""
    width, height, frames = config.width, config.height, config.num_frames
    cut = PHOTO_CUTS[routine.photo]
    sprite, origin, sprite_scale = cutout(cut, round(cut.height * height * SCALE_RANGE[1]))  # premultiplied RGBA
    to_photo = np.array([[1 / sprite_scale, 0, origin[0]], [0, 1 / sprite_scale, origin[1]], [0, 0, 1]])
    poses = pose_matrices(athlete_trajectory(routine, config), cut, height) @ to_photo
    background = backdrop(routine.background_seed, height, width + int(np.ceil(abs(routine.pan) * frames)) + 4)
    span = background.shape[1] - width
    offsets = span / 2 - routine.pan * (np.arange(frames) - (frames - 1) / 2)
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        scene = cv2.warpAffine(background, np.array([[1, 0, -offsets[t]], [0, 1, 0]]), (width, height),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        athlete = cv2.warpAffine(sprite, poses[t], (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        composite = scene * (1.0 - athlete[..., 3:]) + athlete[..., :3]
        video[t] = np.clip(composite + 0.5, 0, 255).astype(np.uint8)
    return video


# --------------------------------------------------------------------------- dataset


def assign_splits(routines: list[Routine], config: SyntheticDatasetConfig) -> list[Routine]:
    """Put ``test_fraction`` of the videos in "test", evenly spaced over the score ranking, the rest in "train"."""
    count = len(routines)
    num_test = round(count * config.test_fraction)
    if count >= 2 and config.test_fraction > 0:
        num_test = min(max(num_test, 1), count - 1)
    offset = np.random.default_rng([config.seed, 2**30]).uniform()
    ranking = np.argsort([routine.score for routine in routines], kind="stable")
    test = {int(ranking[int((i + offset) * count / num_test)]) for i in range(num_test)}
    return [dataclasses.replace(routine, split="test" if i in test else "train") for i, routine in enumerate(routines)]


def generate_dataset(out_dir: str | Path, config: SyntheticDatasetConfig = SyntheticDatasetConfig(), *,
                     progress: Callable[[str], None] | None = None) -> Path:
    """Write the dataset to ``out_dir`` (see the module docstring) and return ``out_dir``.

    Resumable: videos already there are kept (each is written under a temporary name and renamed
    when complete), so a re-run only makes what is missing. The manifest is written first, so a
    folder made with other settings is recognised and refused; the label files come last, so their
    presence means every video is there. ``progress`` is called with each video's name when done.
    """
    out_dir = Path(out_dir)
    folder = out_dir / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    _check_same_settings(out_dir / MANIFEST, config)
    routines = assign_splits([sample_routine(config, index) for index in range(config.num_videos)], config)
    _write_text(out_dir / MANIFEST, json.dumps(_manifest(routines, config), indent=1) + "\n")
    made = 0
    for routine in routines:
        path = folder / f"{routine.name}.mp4"
        if not path.is_file():
            partial = folder / f".{routine.name}.partial.mp4"
            write_video(partial, render_video(routine, config), config.fps, crf=config.crf)
            os.replace(partial, path)
            made += 1
        if progress is not None:
            progress(routine.name)
    extra = sorted(path.name for path in folder.glob("*.mp4") if path.stem not in {r.name for r in routines})
    if extra:
        log.warning("%s holds %d video(s) from a larger run that are not in the labels now (e.g. %s); delete them "
                    "before extracting the folder", folder, len(extra), extra[0])
    for split in ("train", "test"):
        rows = [f"{r.name} {r.score:.2f} {r.difficulty:.2f}" for r in routines if r.split == split]
        _write_text(out_dir / f"{split}.txt", "\n".join(["name score difficulty", *rows]) + "\n")
    log.info("%s: %d synthetic videos (%d made, %d already there), %d train / %d test", out_dir, len(routines),
             made, len(routines) - made, sum(r.split == "train" for r in routines),
             sum(r.split == "test" for r in routines))
    return out_dir


def _manifest(routines: list[Routine], config: SyntheticDatasetConfig) -> dict[str, object]:
    return {
        "generator_version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "score": f"execution = 10 * ({' + '.join(f'{w:.2f} {key}' for key, w in SCORE_WEIGHTS.items())}); "
                 "score = clip(execution + N(0, label_noise), 0, 10); difficulty = sum of move values "
                 f"{MOVE_DIFFICULTY}, not in the score",
        "photos": [dataclasses.asdict(cut) for cut in PHOTO_CUTS],
        "trajectory_columns": list(TRAJECTORY_COLUMNS),
        "videos": [{**routine.to_dict(), "boxes": np.round(athlete_boxes(routine, config), 1).tolist()}
                   for routine in routines],
    }


# Settings that may change between runs into one folder: how many videos and how they are split.
# Every other setting changes the videos themselves.
_LAYOUT_FREE = ("num_videos", "test_fraction")


def _check_same_settings(path: Path, config: SyntheticDatasetConfig) -> None:
    if not path.is_file():
        return
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        before = {**manifest["config"], "generator_version": manifest.get("generator_version")}
    except (ValueError, KeyError, TypeError):
        raise SyntheticDatasetError(f"{path} is not a synthetic dataset manifest; use an empty folder") from None
    now = {**dataclasses.asdict(config), "generator_version": GENERATOR_VERSION}
    changed = [f"{key}: {before.get(key)} -> {value}" for key, value in now.items()
               if key not in _LAYOUT_FREE and before.get(key) != value]
    if changed:
        raise SyntheticDatasetError(f"{path.parent} holds synthetic videos made with other settings "
                                    f"({'; '.join(changed)}); use another folder or delete it")


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
