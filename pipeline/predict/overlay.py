"""Overlays for people who would rather look than read: the tracked athlete and a timeline.

:func:`write_overlay` draws, on every frame of the original video, the athlete box (green where
detected, yellow where interpolated, red with "athlete not located" where held, grey where the whole
frame was used), a caption with
the score, and a timeline strip under the picture: one cell per clip, shaded by a per-clip curve
(e.g. a head's attention over time), with a cursor at the current frame. An output ending in
``.png`` gets a strip of evenly spaced frames instead of a video. Either is written to a temporary
file beside the output and renamed into place, so a failed write keeps what was there before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np

from aqa.atomic import written_then_renamed
from aqa.extractors.tracking import DETECTED, FALLBACK, HELD, STATUS_NAMES
from aqa.extractors.video import open_video
from aqa.video_writer import write_video

TIMELINE_HEIGHT = 24
COLOURS = {"detected": (40, 220, 60), "estimated": (240, 200, 40), "not located": (230, 50, 50),
           "fallback": (160, 160, 160)}
KINDS = {DETECTED: "detected", HELD: "not located", FALLBACK: "fallback"}  # any other status: "estimated"
# What each box colour tells a viewer, in the words a legend under the video uses.
MEANINGS = {"detected": "green detected", "estimated": "yellow estimated between detections",
            "not located": "red not located (the last box kept)", "fallback": "grey never found (the whole frame used)"}


def box_legend(status_counts: Mapping[str, int]) -> str:
    """One line saying what the box colours of this video mean, for the kinds it has, from its frames
    per tracking status name (:meth:`~aqa.extractors.tracking.ActorTrack.summary`)."""
    codes = {name: code for code, name in STATUS_NAMES.items()}
    kinds = {KINDS.get(codes.get(name, 0), "estimated") for name, count in status_counts.items() if count}
    return "Athlete boxes: " + ", ".join(MEANINGS[kind] for kind in MEANINGS if kind in kinds) + "."


def strip_legend(num_clips: int, weighted: bool) -> str:
    """One line saying what the strip under the video shows; ``weighted`` when its cells are shaded by
    a per-clip curve (:func:`timeline_row`), else they are all alike and only mark the clips."""
    cells = f"one cell per scored clip ({num_clips})"
    shade = ", blue turning orange where the model's attention is highest" if weighted else ", all alike"
    return f"Strip under the video: {cells}{shade}; the white line is the frame shown."


def timeline_row(width: int, clip_ranges: np.ndarray, curve: np.ndarray, num_frames: int, frame: int) -> np.ndarray:
    """``[TIMELINE_HEIGHT, width, 3]`` uint8: per-clip cells shaded by ``curve`` (0..1), a cursor at ``frame``.

    A cell is blue turning orange with the curve; an even curve (nothing to show) leaves every cell
    grey rather than all orange, which would read as "high everywhere". Cells wider than 3 pixels
    are parted by a dark line, so that alike cells still count the clips."""
    row = np.full((TIMELINE_HEIGHT, width, 3), 30, np.uint8)
    peak = float(np.max(curve)) if len(curve) and np.max(curve) > 0 else 1.0
    even = len(curve) == 0 or float(np.ptp(curve)) == 0.0
    for (start, end), value in zip(clip_ranges, curve):
        x1 = int(start * width / num_frames)
        x2 = max(x1 + 1, int(end * width / num_frames))
        level = float(value) / peak
        colour = (120, 120, 120) if even else (int(60 + 180 * level), int(80 + 60 * level), int(200 - 120 * level))
        row[4:-4, x1:x2] = colour
        if x2 - x1 > 3:
            row[4:-4, x1] = 30
    cursor = min(width - 1, int(frame * width / max(1, num_frames)))
    row[:, max(0, cursor - 1):cursor + 1] = 255
    return row


def draw_frame(frame: np.ndarray, box: np.ndarray, status: int, caption: str) -> np.ndarray:
    """The frame with the athlete box and the caption drawn on a copy."""
    out = frame.copy()
    kind = KINDS.get(status, "estimated")
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    thickness = max(2, out.shape[0] // 180)
    cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), COLOURS[kind], thickness)
    scale = max(0.4, out.shape[0] / 600)
    caption_base = int(24 * scale) + 4
    if kind == "not located":  # said in words too: a red box alone reads as "detected, badly"
        label_scale, label_thickness = scale * 0.6, max(1, thickness // 2)
        (_, label_height), _ = cv2.getTextSize("athlete not located", cv2.FONT_HERSHEY_SIMPLEX, label_scale,
                                               label_thickness)
        base = y1 - 4
        if base - label_height <= caption_base + thickness + 2:  # it would run into the caption: under the box
            base = min(out.shape[0] - 4, y2 + label_height + 4)
        cv2.putText(out, "athlete not located", (x1 + 2, base), cv2.FONT_HERSHEY_SIMPLEX, label_scale,
                    COLOURS[kind], label_thickness, cv2.LINE_AA)
    cv2.putText(out, caption, (8, caption_base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2,
                cv2.LINE_AA)
    cv2.putText(out, caption, (8, caption_base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    return out


def overlay_frames(video_path: str | Path, boxes: np.ndarray, status: np.ndarray, clip_ranges: np.ndarray,
                   curve: np.ndarray, caption: str, *, max_width: int = 960,
                   indices: np.ndarray | None = None, chunk: int = 64) -> Iterator[np.ndarray]:
    """Annotated frames (RGB, even size), read ``chunk`` at a time so long videos stay in bounded memory."""
    with open_video(video_path) as video:
        info = video.info
        scale = min(1.0, max_width / info.width)
        size = (int(info.width * scale) // 2 * 2, int(info.height * scale) // 2 * 2)
        # Resized here, not by the reader: decord fixes its output size when it opens the file, so
        # a size set afterwards reached only the frames PyAV decodes (a 1280-wide video's last
        # frame came out 960 wide and the overlay failed).
        shrink = size != (info.width, info.height)
        factor = np.array([size[0] / info.width, size[1] / info.height] * 2, np.float32)
        wanted = np.arange(info.num_frames) if indices is None else np.asarray(indices)
        for start in range(0, len(wanted), chunk):
            batch = wanted[start:start + chunk]
            for index, frame in zip(batch, video.get_batch(batch)):
                if shrink:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                drawn = draw_frame(frame, boxes[index] * factor, int(status[index]), caption)
                yield np.concatenate([drawn, timeline_row(size[0], clip_ranges, curve, info.num_frames, index)])


def write_overlay(output: str | Path, video_path: str | Path, boxes: np.ndarray, status: np.ndarray,
                  clip_ranges: np.ndarray, curve: np.ndarray, caption: str, *, fps: float,
                  strip_frames: int = 6, max_width: int = 960) -> Path:
    """Write the overlay video (any extension PyAV muxes, e.g. ``.mp4``; at most ``max_width`` wide)
    or, for ``.png``, a frame strip.
    ``output`` is never the video itself (``ValueError``: callers refuse that before any work)."""
    output = Path(output)
    if output.exists() and output.samefile(video_path):
        raise ValueError(f"{output} is the video the overlay is drawn from")
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".png":
        num_frames = len(status)
        picks = np.unique(np.linspace(0, num_frames - 1, min(strip_frames, num_frames)).round().astype(int))
        frames = list(overlay_frames(video_path, boxes, status, clip_ranges, curve, caption, max_width=480,
                                     indices=picks))
        with written_then_renamed(output) as temporary:
            if not cv2.imwrite(str(temporary), cv2.cvtColor(np.concatenate(frames, axis=1), cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {output}")  # OpenCV reports a failed write only by its result
        return output
    with written_then_renamed(output) as temporary:
        write_video(temporary, overlay_frames(video_path, boxes, status, clip_ranges, curve, caption,
                                              max_width=max_width), fps)
    return output
