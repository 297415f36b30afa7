"""The pixels of the synthetic dataset: people cut out of shipped photos, and stadium-like backdrops.

:mod:`aqa.synthetic.dataset` decides where the athlete is and what the routine is worth; this module only
supplies what is drawn. The people come from the photos ultralytics ships (``bus.jpg``,
``zidane.jpg``), so the dataset needs no download and no extra dependency; the boxes below were
chosen by eye. Of the five people in them, three are used: the two men at the bus (whole body) and
Ancelotti (to the waist). Zidane himself, bent forward and cut at the waist, was found by the
embedded BlazePose detector in only ~60 % of frames; the man at the right edge of ``bus.jpg`` is
mostly outside the photo.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aqa.errors import MissingFileError


@dataclass(frozen=True)
class PhotoCut:
    """A person in a shipped photo.

    box: (x1, y1, x2, y2) in photo pixels, the person as seen by eye; the cut-out is a little larger.
    height: the box's height on screen, as a fraction of the frame height (at scale 1).
    ground: where the box's bottom edge stands, as a fraction of the frame height; beyond 1 (below
        the frame) for the cuts that end at the waist, so the frame edge hides where the photo ends.
    """

    photo: str
    box: tuple[int, int, int, int]
    height: float
    ground: float


PHOTO_CUTS = (
    PhotoCut("bus.jpg", (40, 385, 255, 915), 0.64, 0.95),  # man in a beige coat, whole body
    PhotoCut("bus.jpg", (215, 390, 360, 875), 0.64, 0.95),  # man in a black jacket, whole body
    PhotoCut("zidane.jpg", (740, 30, 1150, 720), 0.56, 1.04),  # Ancelotti, to the waist
)


@functools.lru_cache(maxsize=16)
def cutout(cut: PhotoCut, pixel_height: int) -> tuple[np.ndarray, tuple[int, int], float]:
    """``cut`` at the resolution that shows its box ``pixel_height`` pixels tall (its largest size).

    Returns premultiplied RGBA ``[h, w, 4]`` float32 (RGB 0-255, alpha 0-1), the crop's top-left
    corner in the photo and the photo-to-cut-out scale. The alpha is a feathered superellipse a
    little larger than the box: the person and a rim of their photo, with soft edges. A person
    segmentation would look nicer but adds a model and nothing the score needs.
    """
    photo = _photo(cut.photo)
    x1, y1, x2, y2 = cut.box
    pad_x, pad_y = round(0.08 * (x2 - x1)), round(0.08 * (y2 - y1))
    left, top = max(0, x1 - pad_x), max(0, y1 - pad_y)
    right, bottom = min(photo.shape[1], x2 + pad_x), min(photo.shape[0], y2 + pad_y)
    scale = min(1.0, pixel_height / (y2 - y1))
    crop = photo[top:bottom, left:right]
    crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA).astype(np.float32)
    rows, cols = np.mgrid[0:crop.shape[0], 0:crop.shape[1]].astype(np.float32) / scale  # photo pixels
    centre_x, centre_y = (x1 + x2) / 2 - left, (y1 + y2) / 2 - top
    half_w, half_h = 0.55 * (x2 - x1), 0.53 * (y2 - y1)
    inside = np.abs((cols - centre_x) / half_w) ** 3 + np.abs((rows - centre_y) / half_h) ** 3 <= 1.0
    alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(1.0, 0.025 * (y2 - y1) * scale))
    return np.dstack([crop * alpha[..., None], alpha]), (left, top), scale


@functools.lru_cache(maxsize=4)
def _photo(name: str) -> np.ndarray:
    """An RGB photo from ultralytics' ``assets`` folder (``ultralytics.utils.ASSETS``).

    Found without importing ultralytics, which would cost ~2 s of torch imports for two JPEGs.
    """
    spec = importlib.util.find_spec("ultralytics")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0] if folders else "ultralytics") / "assets" / name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MissingFileError(f"photo {path} not found: the synthetic dataset cuts its athletes out of the "
                               "images ultralytics ships; reinstall ultralytics (bash setup.sh)")
    return np.ascontiguousarray(image[..., ::-1])


def backdrop(seed: int, height: int, width: int) -> np.ndarray:
    """A stadium-like backdrop ``[height, width, 3]`` float32 (0-255): stands, a row of boards, a floor.

    Smooth noise at two scales keeps it textured, so that a camera pan is visible, but not so fine
    that H.264 at small sizes smears it; mostly brightness, a little colour: a blurred crowd.
    """
    rng = np.random.default_rng(seed)
    horizon = int(rng.uniform(0.55, 0.72) * height)
    rows = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    top, low, floor = rng.uniform(30, 220, size=(3, 3)).astype(np.float32)
    stands = np.broadcast_to(top + (low - top) * rows, (horizon, width, 3))
    image = np.concatenate([stands, np.broadcast_to(floor, (height - horizon, width, 3))], axis=0).copy()
    for cell, amplitude in ((24, rng.uniform(12, 30)), (6, rng.uniform(5, 14))):
        shape = (height // cell + 2, width // cell + 2)
        noise = (rng.normal(size=(*shape, 1)) + 0.3 * rng.normal(size=(*shape, 3))).astype(np.float32)
        image += amplitude * cv2.resize(noise, (width + 2 * cell, height + 2 * cell),
                                        interpolation=cv2.INTER_CUBIC)[cell:cell + height, cell:cell + width]
    board_top = horizon - max(4, height // 14)
    x = 0
    while x < width:  # advertising boards along the horizon, each its own colour
        board = int(rng.integers(height // 8, height // 3))
        image[board_top:horizon, x:x + board] = rng.uniform(20, 235, size=3)
        x += board
    for line in rng.uniform(horizon + 0.1 * height, height - 2, size=2).astype(int):  # floor markings
        image[line:line + 2] = 0.5 * image[line:line + 2] + 0.5 * rng.uniform(180, 250, size=3)
    return np.clip(image, 0, 255)
