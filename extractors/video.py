"""Read any real video as RGB uint8 frames, through decord (fast) or PyAV (reads everything).

One face over two backends: :func:`open_video` probes the file with PyAV, then returns a
:class:`VideoSource` whose ``get_batch(indices)`` gives ``[N, H, W, 3]`` uint8 RGB frames.

Why the probe: decord trusts the container's frame count, and on files that over-report it
(truncated uploads with the index up front) it can hang or crash reading frames that are not
there. Demuxing the packets with PyAV costs about a millisecond per 100 frames and tells how
many frames the file really holds, so no reader is ever asked past the end.

Outcomes, as documented in ``docs/video-inputs.md``:

* missing, empty, not a video, no video stream, no decodable frame: :class:`VideoError`;
* fewer frames present than the header claims: if at least ``min_present_fraction`` (90 %) are
  there the video opens *partial* (``info.partial``, ``info.claimed_frames``) with the frames
  that exist, else :class:`VideoError`;
* a frame that fails to decode anywhere, the first packet included (PyAV), is replaced by the
  previous frame and counted in ``source.damaged_frames``; once more than 10 % of the video's frames
  are damaged it is a
  :class:`VideoError` (a limit per video, not per read: a read of two frames at a cut tail must
  not refuse a video whose other 98 % decode).

Both backends return bit-identical frames for the same indices at native size (checked on the
real clips in ``../shared/data/videos``); with decode-time resize the two scalers differ by
under one grey level on average. Rotation metadata is applied once, so frames come out upright
as a player shows them: decord 0.6.0 turns its frames itself (and resizes the turned frame), PyAV
gives the stored frame, which :class:`PyAVSource` turns (``_rotate``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import av
import numpy as np

from aqa.errors import AqaError, VideoError

log = logging.getLogger(__name__)

Backend = Literal["auto", "decord", "pyav"]
MAX_DAMAGED_FRACTION = 0.1


@dataclass(frozen=True)
class VideoLimits:
    """The most work one video may cause, checked by the probe before any frame is decoded.

    ``max_seconds`` bounds the duration (and with it what ``--target-fps`` resampling makes: at most
    ``max_seconds * target_fps`` frames, however low the file's own rate); ``max_frames`` bounds the
    frames a file holds (a small upload can hold tens of thousands of tiny frames), and the probe
    stops counting past it. Generous by default, 3 hours and 3 hours at 30 fps; set them with
    ``AQA_MAX_VIDEO_SECONDS`` and ``AQA_MAX_VIDEO_FRAMES`` (every tool, the decoding children too).
    """

    max_seconds: float = 3 * 3600.0
    max_frames: int = 3 * 3600 * 30

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_seconds) and self.max_seconds > 0) or self.max_frames < 1:
            raise VideoLimitError(f"video limits must be positive, got {self.max_seconds} s and {self.max_frames} "
                                  "frames")

    @classmethod
    def from_environment(cls) -> VideoLimits:
        """The limits ``AQA_MAX_VIDEO_SECONDS`` / ``AQA_MAX_VIDEO_FRAMES`` set (defaults where unset)."""
        values = {}
        for field_name, variable, kind in (("max_seconds", SECONDS_VARIABLE, float),
                                           ("max_frames", FRAMES_VARIABLE, int)):
            text = os.environ.get(variable, "").strip()
            if text:
                try:
                    values[field_name] = kind(text)
                except ValueError:
                    raise VideoLimitError(f"{variable}={text!r} is not a{'n integer' if kind is int else ' number'}"
                                          ) from None
        try:
            return cls(**values)
        except VideoLimitError as error:
            raise VideoLimitError(f"{SECONDS_VARIABLE} and {FRAMES_VARIABLE}: {error}") from None


SECONDS_VARIABLE = "AQA_MAX_VIDEO_SECONDS"
FRAMES_VARIABLE = "AQA_MAX_VIDEO_FRAMES"


class VideoLimitError(AqaError):
    """The video limits themselves are unusable (a setting the user fixes, exit 2)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds. ``width``/``height`` are upright (after rotation), before any resize."""

    path: str
    backend: str
    codec: str
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int = 0
    claimed_frames: int = 0
    partial: bool = False

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0


class VideoSource:
    """Frames of one video; use as a context manager. Subclasses implement ``_read_sorted``."""

    def __init__(self, info: VideoInfo, resize: tuple[int, int] | None):
        self.info = info
        self.resize = resize  # (width, height) of returned frames, upright; None = native
        self.damaged_frames = 0

    def check_damage(self) -> None:
        """Refuse the video once more than ``MAX_DAMAGED_FRACTION`` of its frames are damaged."""
        if self.damaged_frames > MAX_DAMAGED_FRACTION * self.info.num_frames:
            raise VideoError(f"{self.info.path}: {self.damaged_frames} of its {self.info.num_frames} frames fail"
                             f" to decode")

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as ``[N, H, W, 3]`` uint8 RGB."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size == 0:
            height, width = self.output_size[::-1]
            return np.zeros((0, height, width, 3), np.uint8)
        if wanted.min() < 0 or wanted.max() >= self.info.num_frames:
            raise IndexError(f"frame indices must lie in [0, {self.info.num_frames}), got "
                             f"{int(wanted.min())}..{int(wanted.max())}")
        unique, inverse = np.unique(wanted, return_inverse=True)
        return self._read_sorted(unique.tolist())[inverse]

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames ``get_batch`` returns."""
        return self.resize or (self.info.width, self.info.height)

    def _decode_size(self) -> tuple[int, int] | None:
        """The resize target before rotation (PyAV sees the stored, unrotated frame)."""
        if self.resize is None:
            return None
        return self.resize[::-1] if self.info.rotation in (90, 270) else self.resize

    def _read_sorted(self, indices: list[int]) -> np.ndarray:
        """Frames at sorted unique ``indices``, upright, at ``output_size``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release decoder resources; the source is unusable afterwards."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class DecordSource(VideoSource):
    """decord's VideoReader: one ``get_batch`` call per request, seeking to keyframes itself.

    With ``fallback=True`` (what ``backend="auto"`` asks for) a read that decord fails is
    retried with PyAV, which then serves the rest of the video.
    """

    def __init__(self, info: VideoInfo, resize: tuple[int, int] | None = None, num_threads: int = 0,
                 fallback: bool = False):
        super().__init__(replace(info, backend="decord"), resize)
        self._fallback: PyAVSource | None = None
        self._may_fall_back = fallback
        import decord  # imported here: PyAV-only users never pay for it

        width, height = self.resize or (-1, -1)  # decord turns first, so it resizes the upright frame
        try:
            self._reader = decord.VideoReader(info.path, ctx=decord.cpu(0), width=width, height=height,
                                              num_threads=num_threads)
        except (decord.DECORDError, RuntimeError) as error:  # DECORDError is not a RuntimeError
            raise VideoError(f"{info.path}: decord cannot open it: {_first_line(error)}") from None

    def _read_sorted(self, indices: list[int]) -> np.ndarray:
        import decord

        if self._fallback is not None:
            return self._read_with_fallback(indices)
        # decord sometimes gives another frame for a video's last one (measured on makeup.avi:
        # frame 82 for frame 163 in 10-40 % of reads that follow a read of 82, 7-40 % of all reads
        # asking for it, single-threaded too; a flush race at the end of the stream). The last
        # frame comes from PyAV instead, decoded from the last keyframe.
        last = self.info.num_frames - 1
        head = indices[:-1] if indices[-1] == last else indices
        try:
            frames = [self._reader.get_batch(head).asnumpy()] if head else []
        except (decord.DECORDError, RuntimeError) as error:
            message = f"{self.info.path}: decord failed reading frames {indices[0]}..{indices[-1]}: " \
                      f"{_first_line(error)}"
            if not self._may_fall_back:
                raise VideoError(message) from None
            log.info("%s; falling back to PyAV", message)
            self._fallback = PyAVSource(self.info, self.resize)
            return self._read_with_fallback(indices)
        if len(head) < len(indices):
            frames.append(_rotate(decode_last_frame(self.info.path, self._decode_size())[None], self.info.rotation))
        return np.concatenate(frames)

    def _read_with_fallback(self, indices: list[int]) -> np.ndarray:
        frames = self._fallback._read_sorted(indices)
        self.damaged_frames = self._fallback.damaged_frames
        self.info = replace(self.info, backend="pyav")
        return frames

    def close(self) -> None:
        self.__dict__.pop("_reader", None)
        if self._fallback is not None:
            self._fallback.close()


class PyAVSource(VideoSource):
    """PyAV, decoding forward from the start; sorted requests continue where the last one stopped.

    Reading in increasing order (what clip plans do) therefore decodes each frame once. A packet the
    demuxer flags corrupt (a cut file's last one) is never sent, and one the decoder rejects is
    skipped: decoding goes on, and the decoder still gives the frames it held before it (a cut
    file's tail would otherwise take the last few good frames with it); the frames left missing are
    filled at the end with the last good frame and counted in ``damaged_frames``, each position once
    however often the video is re-read.
    """

    def __init__(self, info: VideoInfo, resize: tuple[int, int] | None = None):
        super().__init__(replace(info, backend="pyav"), resize)
        self._container = None
        self._position = 0  # index of the frame the decoder yields next
        self._last_frame: np.ndarray | None = None
        self._damaged_positions: set[int] = set()

    def _restart(self) -> None:
        self.close()
        self._container = _open_container(self.info.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._packets = self._container.demux(stream)
        self._pending: list[av.VideoFrame] = []
        self._position = 0
        self._last_frame = None

    def _read_sorted(self, indices: list[int]) -> np.ndarray:
        if self._container is None or indices[0] < self._position:
            self._restart()
        frames = []
        for index in indices:
            while self._position <= index:
                frame, ok = self._next_frame()
                if not ok:
                    self._damaged_positions.add(self._position)
                self._position += 1
            frames.append(frame)
        self.damaged_frames = len(self._damaged_positions)
        self.check_damage()
        return _rotate(np.stack(frames), self.info.rotation)

    def _next_frame(self) -> tuple[np.ndarray, bool]:
        """The next frame in presentation order; past the last decodable one, the last repeats."""
        while not self._pending:
            packet = next(self._packets, None)
            if packet is None:
                return self._repeat_last_frame(), False
            if packet.is_corrupt:  # a cut file's last packet: sending it makes frame threads drop frames
                continue
            try:
                self._pending = list(packet.decode())
            except (av.FFmpegError, ValueError) as error:
                log.debug("%s: decode error near frame %d: %s", self.info.path, self._position, error)
        self._last_frame = _to_rgb(self._pending.pop(0), self._decode_size())
        return self._last_frame, True

    def _repeat_last_frame(self) -> np.ndarray:
        if self._last_frame is None:
            raise VideoError(f"{self.info.path}: frame {self._position} and all before it fail to decode")
        return self._last_frame

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def probe_video(path: str | Path, *, min_present_fraction: float = 0.9, limits: VideoLimits | None = None) -> VideoInfo:
    """Check the file and read its metadata with PyAV, counting the frames really present; a video
    beyond ``limits`` (default: :meth:`VideoLimits.from_environment`) is a :class:`VideoError`."""
    limits = limits or VideoLimits.from_environment()
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    with _open_container(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise VideoError(f"{path}: no video stream (the file holds {kinds})")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        claimed = int(stream.frames or 0)
        present, rotation, width, height = _scan_stream(container, stream, path, limits.max_frames + 1)
    fps = _frame_rate(stream, present)
    if present == 0:
        raise VideoError(f"{path}: no decodable video frames")
    if present > limits.max_frames:
        raise VideoError(f"{path}: holds more than {limits.max_frames} frames, the limit per video "
                         f"({FRAMES_VARIABLE} sets it)")
    if present / fps > limits.max_seconds:
        raise VideoError(f"{path}: lasts {_hours(present / fps)} ({present} frames at {fps:.4g} fps), longer than "
                         f"the limit per video of {_hours(limits.max_seconds)} ({SECONDS_VARIABLE} sets it in "
                         "seconds)")
    claimed = max(claimed, present)
    partial = present < claimed
    if partial and present < min_present_fraction * claimed:
        raise VideoError(f"{path}: truncated: only {present} of the {claimed} frames its header "
                         f"claims are present")
    if partial:
        log.warning("%s: partial video: %d of %d claimed frames present", path, present, claimed)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(str(path), "probe", codec, fps, present, width, height, rotation, claimed, partial)


def open_video(path: str | Path, *, backend: Backend = "auto", resize: tuple[int, int] | None = None,
               num_threads: int = 0) -> VideoSource:
    """Probe ``path`` and open it. ``auto`` uses decord and falls back to PyAV (GIF, decord errors)."""
    info = probe_video(path)
    if backend == "pyav" or (backend == "auto" and info.codec == "gif"):
        return PyAVSource(info, resize)
    try:
        return DecordSource(info, resize, num_threads, fallback=backend == "auto")
    except VideoError as error:
        if backend == "decord":
            raise
        log.info("%s; falling back to PyAV", error)
        return PyAVSource(info, resize)


def quiet_decoder_logs(verbose: bool = False) -> None:
    """FFmpeg prints every concealed decode error to stderr; keep that for ``--verbose`` only."""
    av.logging.set_level(av.logging.VERBOSE if verbose else av.logging.PANIC)


def _open_container(path: str | Path):
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: not a readable video: {_unreadable_reason(Path(path), error)}") from None


# The box types an ISO base media file (MP4, MOV, M4V, 3GP) starts with: what its first 8 bytes show.
_MP4_FIRST_BOXES = (b"ftyp", b"mdat", b"moov", b"free", b"skip", b"wide", b"pnot")


def _unreadable_reason(path: Path, error: BaseException) -> str:
    """Why FFmpeg cannot open ``path``, in words a user acts on. FFmpeg's own text ("[Errno
    1094995529] Invalid data found when processing input: '/tmp/...'; last error log: [mov,mp4...]
    moov atom not found") names the server's path and a log line that may be another file's; the
    error's kind and the file's first bytes say what happened."""
    if isinstance(error, av.error.InvalidDataError):
        try:
            with open(path, "rb") as head:
                start = head.read(8)
        except OSError:
            start = b""
        if start[4:8] in _MP4_FIRST_BOXES:
            return ("an MP4 without its index (the 'moov' box), which a recording or a copy that was cut "
                    "short leaves; record or copy it again")
        return "its contents are not in a video format FFmpeg reads (a file of another kind renamed, or damaged)"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, UnicodeDecodeError):
        return "its metadata is not valid text"
    reason = getattr(error, "strerror", None)
    return reason if isinstance(reason, str) and reason else type(error).__name__


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds:.4g} s"


def _scan_stream(container, stream, path: Path, stop_at: int) -> tuple[int, int, int, int]:
    """Count packets with data (one per frame for video codecs), up to ``stop_at``, and decode the first frame.

    Returns (frames present, rotation in degrees, stored width, stored height). A packet that fails
    to decode is still present (the readers count it as damaged, against the video's damage limit);
    the first frame is then taken from the next packet that decodes. Only the demuxer stopping
    ends the count (a cut file).
    """
    present, rotation, size = 0, 0, (stream.width, stream.height)
    first = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_corrupt:  # a cut file's last packet is flagged corrupt
                continue
            present += 1
            if present >= stop_at:  # past the limit: counting on is work the video will not get
                break
            if first is None:
                first = _decoded_frame(packet, path)
                if first is not None:
                    rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
                    size = (first.width, first.height)
    except (av.FFmpegError, ValueError) as error:
        log.debug("%s: demux stopped after %d packets: %s", path, present, error)
    if rotation not in (0, 90, 180, 270):
        log.warning("%s: rotation %d degrees is not a multiple of 90; ignored", path, rotation)
        rotation = 0
    return present, rotation, size[0], size[1]


def _decoded_frame(packet: av.Packet, path: Path) -> av.VideoFrame | None:
    """The first frame ``packet`` gives, or None when it gives none or fails to decode."""
    try:
        frames = packet.decode()
    except (av.FFmpegError, ValueError) as error:
        log.debug("%s: packet at byte %s fails to decode: %s", path, packet.pos, error)
        return None
    return frames[0] if frames else None


def _frame_rate(stream, num_frames: int) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        return float(rate)
    if stream.duration and stream.time_base and num_frames:
        return num_frames / float(stream.duration * stream.time_base)
    return 25.0  # no timing at all (rare raw streams): assume the common broadcast rate


def decode_last_frame(path: str | Path, size: tuple[int, int] | None) -> np.ndarray:
    """The video's last frame as ``[H, W, 3]`` RGB (stored orientation, resized to ``size``), decoded
    with PyAV from the last keyframe (one group of pictures; the whole stream where seeking by time
    is not possible). What a forward read of the whole video gives as its last frame."""
    with _open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if stream.duration:
            try:
                container.seek((stream.start_time or 0) + stream.duration, stream=stream, backward=True)
            except (av.FFmpegError, ValueError):
                container.seek(0)
        last = None
        for packet in container.demux(stream):
            if packet.is_corrupt:
                continue
            try:
                for frame in packet.decode():
                    last = frame
            except (av.FFmpegError, ValueError):
                continue
    if last is None:
        raise VideoError(f"{path}: its last frame cannot be decoded")
    return _to_rgb(last, size)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """A decoded frame as ``[H, W, 3]`` uint8 RGB, resized (bilinear) to ``size`` = (width, height)."""
    kwargs = {"width": size[0], "height": size[1], "interpolation": "BILINEAR"} if size else {}
    return frame.to_ndarray(format="rgb24", **kwargs)


def _rotate(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored ``[N, H, W, 3]`` frames as the display matrix says: ``rotation`` is counter-clockwise
    (FFmpeg's ``av_display_rotation_get``, PyAV's ``frame.rotation``), what players and decord apply."""
    if rotation == 0:
        return frames
    return np.ascontiguousarray(np.rot90(frames, k=rotation // 90, axes=(1, 2)))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1].strip() if text else type(error).__name__
