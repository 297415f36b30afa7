"""The benchmarks' own test videos: H.264 scenes that cost what real footage costs to decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aqa.video_writer import write_video


def make_bench_video(path: Path, width: int, height: int, num_frames: int, fps: float = 25.0) -> Path:
    """A panning textured scene with two moving figures (cached: an existing file is reused).

    Texture and motion keep the encoder from collapsing frames to nothing, so decode cost is
    close to broadcast footage of the same size (crf 23, keyframe every second).
    """
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(30, 200, size=(height // 8 + 1, (width * 2) // 8 + 1, 3)),
                      np.ones((8, 8, 1))).astype(np.uint8)

    def frames():
        for t in range(num_frames):
            frame = texture[:height, t % width: t % width + width].copy()
            x = int((t * 3) % (width - 60))
            frame[height // 4: height // 4 + height // 2, x: x + 40] = (220, 80, 60)
            frame[height // 3: height // 3 + height // 3, width - x - 40: width - x - 10] = (60, 200, 220)
            yield frame

    partial = path.with_suffix(".part.mp4")
    write_video(partial, frames(), fps, crf=23)
    partial.rename(path)
    return path
