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

The child is a fresh interpreter running :mod:`aqa.extractors.decode_child` (numpy, PyAV, decord,
cv2; no torch), started with SIGINT blocked so that a Ctrl-C during its start-up cannot kill it.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from aqa.errors import DecodeTimeout, VideoError
from aqa.extractors.decode_child import (
    OpenVideoCache,
    ReadRequest,
    ReadResult,
    handle_request,
    read_request,
    receive_reply,
)
from aqa.extractors.video import Backend, VideoInfo, probe_video

__all__ = ["DecodeWorker", "InlineDecoder", "ReadRequest", "ReadResult", "handle_request"]

log = logging.getLogger(__name__)

# The child's whole command line: the parent's sys.path first (as multiprocessing's spawn does, so
# handlers resolve as they do here), then only the child's own module; never the parent's __main__.
_CHILD_COMMAND = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
                  "from aqa.extractors.decode_child import serve; serve(int(sys.argv[1]))")


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in the calling thread only while a child starts (other threads still take
    Ctrl-C; in the main thread it is only delayed until the start is done).

    A started child inherits the mask through fork and exec, so a Ctrl-C that reaches the process
    group before the child has set SIG_IGN stays pending and is then discarded, instead of
    killing the child mid-import with a ``KeyboardInterrupt`` traceback.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class DecodeWorker:
    """A replaceable decoding child process. Use as a context manager, or call :meth:`close`.

    ``handler`` is the function the child runs per request; it is sent by reference, so it must
    be a module-level function of a module the child can import (not ``__main__``) and that
    does not import torch. Tests substitute one that stalls to prove the timeout.
    """

    def __init__(self, *, timeout_s: float = 120.0, recycle_after: int = 64,
                 handler: Callable[[Any, ReadRequest], Any] = handle_request):
        self.timeout_s = timeout_s
        self.recycle_after = recycle_after
        self._handler = handler
        self._process: subprocess.Popen | None = None
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
        return self._ask(read_request(path, indices, backend, resize, crops, crop_size))

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before the first request and after :meth:`close`)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> int:
        """Start the child now if none is running (otherwise the first request does); its pid."""
        self._ensure_started()
        return self._process.pid

    def _ask(self, request: ReadRequest):
        if request.path != self._current_path:
            if self._videos_in_child >= self.recycle_after:
                log.debug("recycling the decode worker after %d videos", self._videos_in_child)
                self._stop()
            self._current_path = request.path
            self._videos_in_child += 1
        try:
            self._ensure_started()
            self._connection.send(request)
            if not self._connection.poll(self.timeout_s):
                raise TimeoutError
            reply = receive_reply(self._connection, self.timeout_s)
        except TimeoutError:  # no answer, or one that stopped part-way: the child is stuck
            self._stop(kill=True)
            raise DecodeTimeout(f"{request.path}: decoding made no progress in {self.timeout_s:g} s "
                                f"(the worker was restarted)") from None
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._stop(kill=True)
            raise VideoError(f"{request.path}: the decoder crashed (exit code {code}); "
                             f"the worker was restarted") from None
        if reply[0] == "ok":
            return reply[1]
        _, kind, message = reply
        raise (IndexError if kind == "IndexError" else DecodeTimeout if kind == "DecodeTimeout"
               else VideoError)(message)

    def _ensure_started(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._stop()
        parent_end, child_end = Pipe()
        paths = json.dumps([str(entry) for entry in sys.path])
        try:
            with _sigint_blocked():
                self._process = subprocess.Popen([sys.executable, "-c", _CHILD_COMMAND, str(child_end.fileno()), paths],
                                                 pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._connection = parent_end
        self._connection.send(self._handler)
        self._videos_in_child = 1
        self.starts += 1

    def _stop(self, kill: bool = False) -> int | None:
        """Stop the child (asking it first unless ``kill``); its exit code, None if none ran."""
        if self._process is None:
            return None
        if not kill and self._process.poll() is None:
            try:
                self._connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            _wait(self._process, 5)
        if self._process.poll() is None:
            self._process.kill()
            _wait(self._process, 5)
        code = self._process.returncode
        self._connection.close()
        self._process = self._connection = None
        return code

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
        self._cache = OpenVideoCache()

    def probe(self, path: str) -> VideoInfo:
        return probe_video(path)

    def read(self, path: str, indices: Sequence[int], *, backend: Backend = "auto",
             resize: tuple[int, int] | None = None, crops: np.ndarray | None = None,
             crop_size: int = 0) -> ReadResult:
        return self._cache.read(read_request(path, indices, backend, resize, crops, crop_size))

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> InlineDecoder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _wait(process: subprocess.Popen, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for ``process`` to exit (the caller kills it if it has not)."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
