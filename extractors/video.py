"""Read any real video as RGB uint8 frames, through PyAV (the default, decoding only what is asked)
or decord (a choice).

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

Both backends return bit-identical frames for the same indices, at native size and resized,
turned or not: PyAV converts through the filters decord 0.6.0 uses (:class:`RgbConverter`), so
features do not depend on the reader (checked on the shared real clips and in the tests). Rotation
metadata is applied once, so frames come out upright as a player shows them.

Why PyAV by default (issue 28, measured in ``docs/benchmarks.md``): decord 0.6.0 decodes the rest of
the video in the background after every read and keeps the frames, so its memory grows with the
video and its seeks take cores from the detector. :class:`PyAVSource` seeks to the key frame before
a read and decodes nothing else: on the vault clip through ``aqa-predict`` the decoding processes
hold 0.25 GB instead of 1.1-1.25 GB, spend about 21 instead of 40 CPU-seconds, and the warm pass is
60.7-61.8 s instead of 69.1-73.2 s, with identical features.
"""

from __future__ import annotations

import bisect
import fractions
import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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


FrameSink = Callable[[int, np.ndarray], None]
"""``take(slot, frame)``: what a read does with each frame it decodes, ``slot`` being the frame's place
among the sorted indices asked for. A read may give a slot again (after a restart): the last counts."""


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
        """Frames at ``indices`` (any order, repeats allowed) as ``[N, H, W, 3]`` uint8 RGB.

        Each decoded frame is written once, into the array returned (in the usual sorted request
        with no repeats): gathering them in a list, stacking it and reordering the stack were two
        more copies of every frame, about 1.6 ms of a 640x360 frame's 3.7 in a decoding child."""
        wanted = np.asarray(indices, dtype=np.int64)
        width, height = self.output_size
        unique, inverse = np.unique(self._checked(wanted), return_inverse=True)
        frames = np.empty((len(unique), height, width, 3), np.uint8)
        if len(unique):
            self._read_sorted(unique.tolist(), frames.__setitem__)
        return frames if np.array_equal(unique, wanted) else frames[inverse]

    def read_each(self, indices: Sequence[int], take: FrameSink) -> None:
        """``take(slot, frame)`` for the frames at ``indices`` (sorted, no repeats), one decoded frame
        at a time: a caller that keeps only part of each (a crop) never holds the whole batch."""
        wanted = self._checked(np.asarray(indices, dtype=np.int64))
        if np.any(np.diff(wanted) <= 0):
            raise ValueError("read_each needs sorted indices without repeats; use get_batch for any order")
        if wanted.size:
            self._read_sorted(wanted.tolist(), take)

    def _checked(self, wanted: np.ndarray) -> np.ndarray:
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.info.num_frames):
            raise IndexError(f"frame indices must lie in [0, {self.info.num_frames}), got "
                             f"{int(wanted.min())}..{int(wanted.max())}")
        return wanted

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames ``get_batch`` returns."""
        return self.resize or (self.info.width, self.info.height)

    def _read_sorted(self, indices: list[int], take: FrameSink) -> None:
        """Give ``take`` the frames at sorted unique ``indices``, upright, at ``output_size``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release decoder resources; the source is unusable afterwards."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class DecordSource(VideoSource):
    """decord's VideoReader (``backend="decord"``): one ``get_batch`` call per request, seeking to
    keyframes itself; a read it fails is a :class:`VideoError`.

    Not the default: decord 0.6.0 goes on decoding the rest of the video in the background after
    every read and keeps the frames (the 51-second vault clip: about 4 CPU-seconds and 1.2 GB after
    one read of frame 10), so memory grows with the video's length and every seek takes cores from
    the detector; and after a read to the end of an edit-listed MP4 (the Tokyo dive) its scattered
    reads give wrong frames. Its pixels are :class:`PyAVSource`'s.
    """

    def __init__(self, info: VideoInfo, resize: tuple[int, int] | None = None, num_threads: int = 0):
        super().__init__(replace(info, backend="decord"), resize)
        import decord  # imported here: PyAV-only users never pay for it

        width, height = self.resize or (-1, -1)  # decord turns first, so it resizes the upright frame
        try:
            self._reader = decord.VideoReader(info.path, ctx=decord.cpu(0), width=width, height=height,
                                              num_threads=num_threads)
        except (decord.DECORDError, RuntimeError) as error:  # DECORDError is not a RuntimeError
            raise VideoError(f"{info.path}: decord cannot open it: {_first_line(error)}") from None

    def _read_sorted(self, indices: list[int], take: FrameSink) -> None:
        import decord

        # decord sometimes gives another frame for a video's last one (measured on makeup.avi:
        # frame 82 for frame 163 in 10-40 % of reads that follow a read of 82, 7-40 % of all reads
        # asking for it, single-threaded too; a flush race at the end of the stream). The last
        # frame comes from PyAV instead, decoded from the last keyframe.
        last = self.info.num_frames - 1
        head = indices[:-1] if indices[-1] == last else indices
        try:
            frames = self._reader.get_batch(head).asnumpy() if head else ()
        except (decord.DECORDError, RuntimeError) as error:
            raise VideoError(f"{self.info.path}: decord failed reading frames {indices[0]}..{indices[-1]}: "
                             f"{_first_line(error)}") from None
        for slot, frame in enumerate(frames):
            take(slot, frame)
        if len(head) < len(indices):
            take(len(head), decode_last_frame(self.info.path, self.resize, self.info.rotation))

    def close(self) -> None:
        self.__dict__.pop("_reader", None)


class PyAVSource(VideoSource):
    """PyAV, decoding only what is asked: sorted requests continue where the last one stopped, and a
    request that starts behind that point or past the next key frame seeks to the key frame before it.

    Reading in increasing order (what clip plans do) therefore decodes each frame once, and a part of
    a video costs its own frames and at most one group of pictures before it. Frames are numbered by
    their presentation times (:class:`_StreamIndex`, from the probe's demux pass), so a read
    gives the same frame for an index whichever way the decoder got there. A video without usable
    times (some AVIs, a GIF, a decoder whose frames carry times the index does not hold) is decoded
    from the start and its frames counted as they come.

    A packet the demuxer flags corrupt (a cut file's last one) is never sent, and one the decoder
    rejects is skipped: decoding goes on, and the decoder still gives the frames it held before it
    (a cut file's tail would otherwise take the last few good frames with it). A frame left missing
    is the last good frame before it (the next good one when none came before), counted in
    ``damaged_frames``, each position once however often the video is re-read.
    """

    def __init__(self, info: VideoInfo, index: _StreamIndex, resize: tuple[int, int] | None = None):
        super().__init__(replace(info, backend="pyav"), resize)
        self._container = None
        self._position = 0  # index of the frame the decoder yields next
        self._last_good: av.VideoFrame | None = None  # the last frame that decoded, kept unconverted
        self._converted: tuple[av.VideoFrame | None, np.ndarray | None] = (None, None)
        self._damaged_positions: set[int] = set()
        self._index = index
        self._to_rgb = RgbConverter(self.resize, info.rotation)

    def _restart(self) -> None:
        self.close()
        self._container = _open_container(self.info.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._packets = self._container.demux(stream)
        self._pending: list[av.VideoFrame] = []
        self._position = 0
        self._last_good = None
        self._last_time = None  # the time of the last frame the decoder gave
        self._seeked_to: int | None = None  # the key frame a seek asked for, until a frame at or before it comes

    def _seek(self, key_frame: int) -> None:
        """Continue decoding at frame ``key_frame``, which is a key frame of the index."""
        if self._container is None:
            self._restart()
        stream = self._container.streams.video[0]
        self._container.seek(self._index.times[key_frame], stream=stream, backward=True, any_frame=False)
        self._packets = self._container.demux(stream)
        self._pending = []
        self._position = key_frame
        self._last_good = None
        self._last_time = None
        self._seeked_to = key_frame

    def _seek_further_back(self) -> None:
        """The first frame after a seek came after the key frame asked for (that key frame failed
        to decode, or the container's seek landed late): start from the key frame before it, or
        from the start, so the frames between are numbered as a read in order numbers them."""
        earlier = self._index.key_frame_before(self._seeked_to - 1) if self._seeked_to > 0 else None
        if earlier is None:
            self._restart()
        else:
            self._seek(earlier)

    def _go_to(self, first: int) -> None:
        """Place the decoder at or before frame ``first``, seeking where that saves decoding."""
        key_frame = self._index.key_frame_before(first)
        if self._container is not None and key_frame is not None and self._position <= first \
                and key_frame <= self._position:
            return  # decoding on from here costs no more than a seek would
        if key_frame is not None:
            self._seek(key_frame)
        elif self._container is None or first < self._position:
            self._restart()

    def _read_sorted(self, indices: list[int], take: FrameSink) -> None:
        try:
            self._decode_up_to(indices, take)
        except _TimesDisagree:
            log.debug("%s: decoded frames carry times its index does not hold; decoding from the start",
                      self.info.path)
            self._index = _StreamIndex.UNTIMED
            self._damaged_positions.clear()
            self._restart()
            self._decode_up_to(indices, take)  # the slots given before are given again
        self.damaged_frames = len(self._damaged_positions)
        self.check_damage()

    def _decode_up_to(self, indices: list[int], take: FrameSink) -> None:
        for slot, index in enumerate(indices):
            self._go_to(index)
            frame = None
            while self._position <= index:
                frame = self._next_frame()
                if frame is None:
                    self._damaged_positions.add(self._position)
                else:
                    self._last_good = frame
                self._position += 1
            take(slot, self._converted_frame(frame if frame is not None else self._stand_in()))

    def _stand_in(self) -> av.VideoFrame:
        """What a missing frame shows: the last good one, or before any the next one that decoded."""
        if self._last_good is not None:
            return self._last_good
        if self._pending:
            return self._pending[0]
        raise VideoError(f"{self.info.path}: frame {self._position - 1} and all before it fail to decode")

    def _converted_frame(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame`` as RGB: only frames asked for are converted (a seek into a group of pictures
        decodes ~100 frames on the vault clip to give one), a repeated one once."""
        if self._converted[0] is not frame:
            self._converted = (frame, self._to_rgb(frame))
        return self._converted[1]

    def _next_frame(self) -> av.VideoFrame | None:
        """The frame at ``self._position``, or None when it is missing. With times, the frame is
        the one carrying its position's time (one that failed to decode leaves the others' numbers
        as they are); without, the next that comes."""
        timed = bool(self._index.times)
        while True:
            if not self._pending and not self._decode_next_packet():
                return None  # the decoder has nothing more: the rest are missing
            frame = self._pending[0]
            if not timed:
                return self._pending.pop(0)
            position = self._index.positions.get(frame.pts)
            if position is None or (self._last_time is not None and frame.pts <= self._last_time):
                raise _TimesDisagree  # a time it does not hold, or out of order (packed B-frames in an AVI)
            if position > self._position:
                if self._seeked_to is not None:
                    self._seek_further_back()
                    continue
                return None  # this position's frame is missing; that one waits for its own
            self._seeked_to = None
            self._last_time = self._pending.pop(0).pts
            if position == self._position:
                return frame
            # before the frame asked for: an open group's leading frames after a seek

    def _decode_next_packet(self) -> bool:
        """Decode packets until one gives frames (into ``_pending``); False at the stream's end."""
        while True:
            packet = next(self._packets, None)
            if packet is None:
                return False
            if packet.is_corrupt:  # a cut file's last packet: sending it makes frame threads drop frames
                continue
            try:
                self._pending = list(packet.decode())
            except (av.FFmpegError, ValueError) as error:
                log.debug("%s: decode error near frame %d: %s", self.info.path, self._position, error)
                continue
            if self._pending:
                return True

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class _TimesDisagree(Exception):
    """A decoded frame carries a time the index does not hold (or none), or the decoder's times go
    back (MPEG-4 with packed B-frames in an AVI, ``makeup.avi``: 1, 2, 4, 3, 5, 7, 6, ...)."""


@dataclass(frozen=True)
class _StreamIndex:
    """Each frame's presentation time (frame ``i`` is the packet with the ``i``-th smallest one) and
    the frames a decoder may start from, from one demux pass without decoding. :attr:`UNTIMED`
    (no times) means: count frames as they come, and decode from the start to go back."""

    times: tuple[int, ...]
    key_frames: tuple[int, ...]  # sorted frame indices

    @functools.cached_property
    def positions(self) -> dict[int, int]:
        """Frame index by presentation time."""
        return {time: index for index, time in enumerate(self.times)}

    @classmethod
    def of(cls, times: list[int | None], key_times: set[int]) -> _StreamIndex:
        """The index of the packets' ``times`` (the probe's, in demux order); :attr:`UNTIMED` when a
        packet has no time or two share one (numbering by time would then differ from a count)."""
        if None in times or len(set(times)) != len(times):
            return cls.UNTIMED
        ordered = sorted(times)
        return cls(tuple(ordered), tuple(i for i, time in enumerate(ordered) if time in key_times))

    def key_frame_before(self, index: int) -> int | None:
        """The last key frame at or before frame ``index``; None when there is none to seek to."""
        at = bisect.bisect_right(self.key_frames, index)
        return self.key_frames[at - 1] if at else None


_StreamIndex.UNTIMED = _StreamIndex((), ())


class RgbConverter:
    """Decoded frames to upright ``[H, W, 3]`` uint8 RGB at ``size`` = (width, height) after turning
    (None: native), through FFmpeg's filters: the turn ``rotation`` asks for (counter-clockwise, the
    display matrix's, what players apply), then the scale filter with bilinear weights into rgb24.

    That is decord 0.6.0's own conversion (its graph turns with ``transpose`` and then scales with
    ``scale=W:H`` into an rgb24 sink, and its FFmpeg 4.1 scales bilinearly by default), so both
    readers give the same pixels: bit-identical on every frame of the shared real clips and on
    turned phone videos (``tests/test_video.py``). PyAV's ``to_ndarray`` resizes through another
    path that differs by up to 10 grey levels.
    """

    # Filters that turn a stored frame as players do. transpose=2 turns counter-clockwise, =1 clockwise.
    _TURNS = {0: (), 90: (("transpose", "2"),), 180: (("hflip", ""), ("vflip", "")), 270: (("transpose", "1"),)}

    def __init__(self, size: tuple[int, int] | None, rotation: int = 0):
        self.size = size
        self.rotation = rotation
        self._graph: av.filter.Graph | None = None
        self._input: tuple | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        key = (frame.width, frame.height, frame.format.name)
        if key != self._input:
            self._graph, self._input = self._build(frame), key
        self._graph.vpush(frame)
        return self._graph.vpull().to_ndarray()

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        upright = (frame.height, frame.width) if self.rotation in (90, 270) else (frame.width, frame.height)
        width, height = self.size or upright
        graph = av.filter.Graph()
        chain = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                  time_base=frame.time_base or fractions.Fraction(1, 25))]
        chain += [graph.add(name, arguments) for name, arguments in self._TURNS[self.rotation]]
        chain += [graph.add("scale", f"{width}:{height}:flags=bilinear"), graph.add("format", "rgb24"),
                  graph.add("buffersink")]
        for before, after in zip(chain, chain[1:]):
            before.link_to(after)
        graph.configure()
        return graph


def probe_video(path: str | Path, *, min_present_fraction: float = 0.9, limits: VideoLimits | None = None) -> VideoInfo:
    """Check the file and read its metadata with PyAV, counting the frames really present; a video
    beyond ``limits`` (default: :meth:`VideoLimits.from_environment`) is a :class:`VideoError`."""
    return _probe(path, min_present_fraction, limits)[0]


def _probe(path: str | Path, min_present_fraction: float = 0.9,
           limits: VideoLimits | None = None) -> tuple[VideoInfo, _StreamIndex]:
    """:func:`probe_video`, and the frames' times from the same demux pass (:class:`PyAVSource` seeks by them)."""
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
        scan = _scan_stream(container, stream, path, limits.max_frames + 1)
        fps = _frame_rate(stream, scan.present)  # PyAV >= 18.1.1 reads a stream only while its file is open
    present, rotation, (width, height) = scan.present, scan.rotation, scan.size
    claimed = max(0, claimed - scan.discarded)
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
    info = VideoInfo(str(path), "probe", codec, fps, present, width, height, rotation, claimed, partial)
    return info, _StreamIndex.of(scan.times, scan.key_times) if codec != "gif" else _StreamIndex.UNTIMED


def open_video(path: str | Path, *, backend: Backend = "auto", resize: tuple[int, int] | None = None,
               num_threads: int = 0) -> VideoSource:
    """Probe ``path`` and open it: ``auto`` and ``pyav`` read with :class:`PyAVSource`, ``decord``
    with :class:`DecordSource` (``num_threads`` is decord's; 0 lets it choose)."""
    info, index = _probe(path)
    if backend == "decord":
        return DecordSource(info, resize, num_threads)
    return PyAVSource(info, index, resize)


def quiet_decoder_logs(verbose: bool = False) -> None:
    """FFmpeg prints every concealed decode error to stderr; keep that for ``--verbose`` only.

    Neither mode routes FFmpeg's log through Python (``av.logging.set_level`` with a level): that
    bridge takes the GIL in the decoder's own threads, and an error logged by a frame thread while
    the main thread holds the GIL and waits for that thread (a seek, a close) deadlocks the process.
    It hung the test suite at a seek with no CPU used. Quiet is PyAV's own default (FFmpeg's log
    dropped without the GIL); verbose is FFmpeg's own printer to stderr, also without it."""
    av.logging.set_level(None)
    if verbose:
        av.logging.restore_default_callback()
        av.logging.set_libav_level(av.logging.VERBOSE)


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


@dataclass
class _Scan:
    """What one demux pass over a video stream finds (:func:`_scan_stream`)."""

    present: int = 0  # packets with data: one per frame
    discarded: int = 0  # pre-roll an MP4 edit list cuts
    rotation: int = 0
    size: tuple[int, int] = (0, 0)  # stored (width, height)
    times: list[int | None] = field(default_factory=list)  # each present packet's presentation time
    key_times: set[int] = field(default_factory=set)


def _scan_stream(container, stream, path: Path, stop_at: int) -> _Scan:
    """Count packets with data (one per frame for video codecs), up to ``stop_at``, note their
    presentation times and key frames, and decode the first frame (size and rotation).

    Discarded packets are the pre-roll an MP4 edit list cuts (the Tokyo dive holds 91 before its
    109 frames): decoders decode them for reference but show none. A packet that fails to decode is
    still present (the readers count it as damaged, against the video's damage limit); the first
    frame is then taken from the next packet that decodes. Only the demuxer stopping ends the
    count (a cut file).
    """
    scan = _Scan(size=(stream.width, stream.height))
    first = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_corrupt:  # a cut file's last packet is flagged corrupt
                continue
            if packet.is_discard:
                scan.discarded += 1
                continue
            scan.present += 1
            if scan.present >= stop_at:  # past the limit: counting on is work the video will not get
                break
            scan.times.append(packet.pts)
            if packet.is_keyframe and packet.pts is not None:
                scan.key_times.add(packet.pts)
            if first is None:
                first = _decoded_frame(packet, path)
                if first is not None:
                    scan.rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
                    scan.size = (first.width, first.height)
    except (av.FFmpegError, ValueError) as error:
        log.debug("%s: demux stopped after %d packets: %s", path, scan.present, error)
    if scan.rotation not in (0, 90, 180, 270):
        log.warning("%s: rotation %d degrees is not a multiple of 90; ignored", path, scan.rotation)
        scan.rotation = 0
    return scan


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


def decode_last_frame(path: str | Path, size: tuple[int, int] | None, rotation: int = 0) -> np.ndarray:
    """The video's last frame as ``[H, W, 3]`` RGB (turned by ``rotation``, then resized to ``size``), decoded
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
    return RgbConverter(size, rotation)(last)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1].strip() if text else type(error).__name__
