"""Decode in a child process that can be timed out, killed and replaced.

decord occasionally hangs inside its C++ reader on damaged files and slowly leaks memory over
long runs; neither can be interrupted from Python in the same process. :class:`DecodeWorker`
runs the readers of :mod:`extractors.video` in a child process: a request that makes no answer
within ``timeout_s`` kills the child and raises :class:`DecodeTimeout`, and the child is
replaced every ``recycle_after`` videos. The next request gets a fresh child, so one bad video
never stops the others.

Reads of one video in increasing frame order keep that video open in the child between
requests, so streaming a long video in chunks decodes each frame once. A read may also ask the
child to cut boxes out of the frames and resize them (the backbone's scene and actor inputs):
the cutting then runs in parallel across children, and only the small crops cross the pipe.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from extractors.crops import crop_and_resize
from extractors.errors import AqaError, DecodeTimeout, VideoError
from extractors.video import Backend, VideoInfo, open_video, probe_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadRequest:
    """Frames ``indices`` of ``path``, resized to ``resize`` (width, height) when given.

    With ``crops`` (boxes ``[K, N, 4]`` in the resized frames' pixels) the answer is not the
    frames but K cut-outs of each, resized to ``crop_size`` square (:func:`crop_and_resize`).
    """

    path: str
    indices: tuple[int, ...] = ()
    backend: Backend = "auto"
    resize: tuple[int, int] | None = None
    crops: np.ndarray | None = None
    crop_size: int = 0


@dataclass(frozen=True)
class ReadResult:
    """Frames ``[N, H, W, 3]`` (or crops ``[K, N, S, S, 3]``) uint8 RGB, the video's info and how
    many frames were concealed."""

    frames: np.ndarray
    info: VideoInfo
    damaged_frames: int


class _OpenVideoCache:
    """The child's state: the one video it has open, reused while requests stay on it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.source = None

    def read(self, request: ReadRequest) -> ReadResult:
        key = (request.path, request.backend, request.resize)
        if key != self.key:
            self.close()
            self.source = open_video(request.path, backend=request.backend, resize=request.resize)
            self.key = key
        frames = self.source.get_batch(request.indices)
        if request.crops is not None:
            frames = np.stack([crop_and_resize(frames, boxes, request.crop_size) for boxes in request.crops])
        return ReadResult(frames, self.source.info, self.source.damaged_frames)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        self.key = self.source = None


def _read_request(path: str, indices: Sequence[int], backend: Backend, resize: tuple[int, int] | None,
                  crops: np.ndarray | None, crop_size: int) -> ReadRequest:
    """A checked :class:`ReadRequest` for frames (or their crops) of ``path``."""
    if len(indices) == 0:
        raise ValueError("read needs at least one frame index; use probe() for metadata")
    if crops is not None:
        crops = np.asarray(crops, np.float32)
        if crops.ndim != 3 or crops.shape[1:] != (len(indices), 4) or crop_size < 1:
            raise ValueError(f"crops must be [K, {len(indices)}, 4] with crop_size >= 1, got {crops.shape} "
                             f"and {crop_size}")
    return ReadRequest(str(path), tuple(int(i) for i in indices), backend, resize, crops, int(crop_size))


def handle_request(cache: _OpenVideoCache, request: ReadRequest) -> ReadResult | VideoInfo:
    """What the child does per request: probe (no indices) or read frames."""
    if not request.indices:
        return probe_video(request.path)
    return cache.read(request)


def _child_main(connection: Connection, handler: Callable[[Any, ReadRequest], Any]) -> None:
    from extractors.video import quiet_decoder_logs

    # Ctrl-C reaches the whole process group; the parent decides when this child stops (it closes
    # the pipe or kills it), so the child neither dies mid-request nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_decoder_logs()
    cache = _OpenVideoCache()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        try:
            connection.send(("ok", handler(cache, request)))
        except AqaError as error:
            connection.send(("error", type(error).__name__, str(error)))
        except IndexError as error:
            connection.send(("error", "IndexError", str(error)))
        except Exception as error:  # any other decoder failure is still this video's problem
            connection.send(("error", "VideoError", f"{request.path}: {type(error).__name__}: {error}"))
    cache.close()


class DecodeWorker:
    """A replaceable decoding child process. Use as a context manager, or call :meth:`close`.

    ``handler`` is the function the child runs per request (module-level, so it can be sent to
    a spawned process); tests substitute one that stalls to prove the timeout.
    """

    def __init__(self, *, timeout_s: float = 120.0, recycle_after: int = 64, start_method: str = "spawn",
                 handler: Callable[[Any, ReadRequest], Any] = handle_request):
        self.timeout_s = timeout_s
        self.recycle_after = recycle_after
        self._context = mp.get_context(start_method)
        self._handler = handler
        self._process = None
        self._connection: Connection | None = None
        self._current_path: str | None = None
        self._videos_in_child = 0
        self.starts = 0  # child processes started so far (1 + restarts)

    def probe(self, path: str) -> VideoInfo:
        """Metadata of ``path`` (see :func:`extractors.video.probe_video`), read in the child."""
        return self._ask(ReadRequest(str(path)))

    def read(self, path: str, indices: Sequence[int], *, backend: Backend = "auto",
             resize: tuple[int, int] | None = None, crops: np.ndarray | None = None,
             crop_size: int = 0) -> ReadResult:
        """Frames of ``path`` at ``indices`` (or their ``crops``, see :class:`ReadRequest`);
        raises VideoError, DecodeTimeout or IndexError."""
        return self._ask(_read_request(path, indices, backend, resize, crops, crop_size))

    def _ask(self, request: ReadRequest):
        if request.path != self._current_path:
            if self._videos_in_child >= self.recycle_after:
                log.debug("recycling the decode worker after %d videos", self._videos_in_child)
                self._stop()
            self._current_path = request.path
            self._videos_in_child += 1
        self._ensure_started()
        try:
            self._connection.send(request)
            if not self._connection.poll(self.timeout_s):
                self._stop(kill=True)
                raise DecodeTimeout(f"{request.path}: decoding made no progress in {self.timeout_s:g} s "
                                    f"(the worker was restarted)")
            reply = self._connection.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._process.exitcode if self._process is not None else None
            self._stop(kill=True)
            raise VideoError(f"{request.path}: the decoder crashed (exit code {code}); "
                             f"the worker was restarted") from None
        if reply[0] == "ok":
            return reply[1]
        _, kind, message = reply
        raise (IndexError if kind == "IndexError" else DecodeTimeout if kind == "DecodeTimeout"
               else VideoError)(message)

    def _ensure_started(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._stop()
        parent_end, child_end = self._context.Pipe()
        self._process = self._context.Process(target=_child_main, args=(child_end, self._handler),
                                              daemon=True, name="aqa-decode")
        self._process.start()
        child_end.close()
        self._connection = parent_end
        self._videos_in_child = 1
        self.starts += 1

    def _stop(self, kill: bool = False) -> None:
        if self._process is None:
            return
        if not kill and self._process.is_alive():
            try:
                self._connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._connection.close()
        self._process = self._connection = None

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> DecodeWorker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class InlineDecoder:
    """The :class:`DecodeWorker` face, decoding in this process: no isolation, no start-up cost.

    For one trusted video (prediction), tests, and callers that isolate work themselves.
    """

    def __init__(self) -> None:
        self._cache = _OpenVideoCache()

    def probe(self, path: str) -> VideoInfo:
        return probe_video(path)

    def read(self, path: str, indices: Sequence[int], *, backend: Backend = "auto",
             resize: tuple[int, int] | None = None, crops: np.ndarray | None = None,
             crop_size: int = 0) -> ReadResult:
        return self._cache.read(_read_request(path, indices, backend, resize, crops, crop_size))

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> InlineDecoder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
