"""Write RGB frames to a real H.264 video with PyAV.

The tests, the synthetic demo dataset and the prediction overlays all need to write videos;
they share this one writer so that what they write is what any player (and our readers) can
decode: H.264 in MP4, yuv420p, constant frame rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    codec: str = "libx264",
    crf: int = 18,
    pixel_format: str = "yuv420p",
    rotation: int = 0,
) -> int:
    """Encode ``frames`` (each ``[H, W, 3]`` uint8 RGB, all one size) and return how many.

    H and W must be even for yuv420p. ``fps`` may be fractional (29.97 is stored as 30000/1001).
    Every frame gets its own timestamp, so the file holds exactly the frames given. ``rotation``
    (degrees, counter-clockwise, a multiple of 90) is written as the stream's display matrix, as a
    phone does: players show the stored frames turned by it (``np.rot90(frame, rotation // 90)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
            if stream is None:
                stream = _open_stream(container, codec, rate, frame.shape, pixel_format, crf)
                if rotation % 360:
                    stream.set_display_rotation(rotation % 360)
            elif (frame.shape[0], frame.shape[1]) != (stream.height, stream.width):
                raise ValueError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"expected {stream.width}x{stream.height}")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = count
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is None:
            raise ValueError("no frames to write")
        container.mux(stream.encode(None))
    return count


def _open_stream(container, codec: str, rate: Fraction, shape: tuple[int, ...], pixel_format: str,
                 crf: int):
    height, width = shape[:2]
    if pixel_format == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"yuv420p needs even width and height, got {width}x{height}")
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
    stream.time_base = 1 / rate
    if codec == "libx264":
        # Keyframes every second so seeking readers stay fast on the tests' short clips.
        stream.options = {"crf": str(crf), "g": str(max(1, round(rate)))}
    return stream
