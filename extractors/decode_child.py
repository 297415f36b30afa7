"""The decoding child's side of :class:`extractors.decode_worker.DecodeWorker`: what it runs.

Why a module of its own: the child is a fresh interpreter that imports only this module (numpy,
PyAV, decord when used, cv2 for the crops), not the parent's main module. A child started by
``multiprocessing``'s spawn re-imported the parent's ``__main__`` (``aqa-extract``, hence
torch, cv2 and MediaPipe): about 1 GB resident and seconds to start, per worker, for a process
that only decodes and crops. Nothing here may import torch; ``tests/test_decode_worker.py``
checks that a child never has it.

The protocol over the connection: the parent sends the handler first (pickled by reference: a
module-level function, see :func:`handle_request`), then :class:`ReadRequest` objects, and
``None`` to stop. Each request is answered ``("ok", result)`` or ``("error", kind, message)``, by
:func:`send_reply` (read with :func:`receive_reply`): arrays travel out of band, straight from the
child's array into the parent's.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from aqa.errors import AqaError
from aqa.extractors.crops import cut_and_resize
from aqa.extractors.video import Backend, VideoInfo, open_video, probe_video, quiet_decoder_logs


@dataclass(frozen=True)
class ReadRequest:
    """Frames ``indices`` of ``path``, resized to ``resize`` (width, height) when given.

    No indices: a probe (metadata only). With ``crops`` (boxes ``[K, N, 4]`` in the resized
    frames' pixels) the answer is not the frames but K cut-outs of each, resized to ``crop_size``
    square (:func:`crop_and_resize`).
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


class OpenVideoCache:
    """The child's state: the one video it has open, reused while requests stay on it (reads
    in increasing frame order then decode each frame once)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.source = None

    def read(self, request: ReadRequest) -> ReadResult:
        key = (request.path, request.backend, request.resize)
        if key != self.key:
            self.close()
            self.source = open_video(request.path, backend=request.backend, resize=request.resize)
            self.key = key
        if request.crops is None:
            frames = self.source.get_batch(request.indices)
        else:
            frames = _cut_while_decoding(self.source, request.indices, request.crops, request.crop_size)
        return ReadResult(frames, self.source.info, self.source.damaged_frames)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        self.key = self.source = None


def _cut_while_decoding(source, indices: Sequence[int], crops: np.ndarray, size: int) -> np.ndarray:
    """``crop_and_resize`` of each of ``crops`` (``[K, N, 4]``) on the frames at ``indices``, cut as
    each frame is decoded: the child never holds the request's frames (256 frames of 640x360 are
    177 MB, and gathering them cost a copy of each)."""
    unique, inverse = np.unique(np.asarray(indices, np.int64), return_inverse=True)
    out = np.empty((len(crops), len(indices), size, size, 3), np.uint8)
    places = [np.flatnonzero(inverse == slot) for slot in range(len(unique))]

    def cut(slot: int, frame: np.ndarray) -> None:
        for place in places[slot]:
            for stream, boxes in enumerate(crops):
                out[stream, place] = cut_and_resize(frame, boxes[place], size)

    source.read_each(unique.tolist(), cut)
    return out


def read_request(path: str, indices: Sequence[int], backend: Backend, resize: tuple[int, int] | None,
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


def handle_request(cache: OpenVideoCache, request: ReadRequest) -> ReadResult | VideoInfo:
    """What the child does per request: probe (no indices) or read frames."""
    if not request.indices:
        return probe_video(request.path)
    return cache.read(request)


def send_reply(connection: Connection, reply: object) -> None:
    """Send ``reply`` with its arrays' bytes out of band: a small pickle (with the arrays' sizes)
    through the connection, then each array's bytes written from the array itself.

    A pickled reply copies every array twice more on each side (into the pickle and through the
    connection's buffering); a 256-frame clip batch of both streams is 77 MB, and receiving such
    replies cost the main process about 1.2 ms a frame (reading, buffering, unpickling). Pickling
    runs before anything is written, so a reply that fails to pickle leaves the connection clean.
    """
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(reply, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    connection.send_bytes(pickle.dumps((header, [raw.nbytes for raw in raws]), protocol=5))
    for raw in raws:
        _write_all(connection.fileno(), raw)


def receive_reply(connection: Connection, timeout_s: float | None = None) -> object:
    """A reply :func:`send_reply` sent: each array read straight into its own memory.

    ``timeout_s``: the longest wait for the next bytes of an array once the reply has begun; a
    sender that stops mid-reply is then a :class:`TimeoutError` (the caller replaces it: the
    connection is out of step), one gone mid-reply an :class:`EOFError`."""
    header, sizes = pickle.loads(connection.recv_bytes())
    buffers = []
    for size in sizes:
        buffer = np.empty(size, np.uint8)  # not zeroed: every byte is read into it
        _read_into(connection, memoryview(buffer), timeout_s)
        buffers.append(buffer)
    return pickle.loads(header, buffers=buffers)


def _write_all(fd: int, data: memoryview) -> None:
    while data.nbytes:
        data = data[os.write(fd, data):]


def _read_into(connection: Connection, view: memoryview, timeout_s: float | None) -> None:
    while view.nbytes:
        if not connection.poll(timeout_s):
            raise TimeoutError(f"no reply bytes in {timeout_s:g} s")
        count = os.readv(connection.fileno(), [view])
        if count == 0:
            raise EOFError("the other end closed the connection mid-reply")
        view = view[count:]


def serve(fd: int) -> None:
    """The child's main loop on the connection ``fd``, until ``None`` or the parent is gone.

    Ctrl-C reaches the whole process group; the parent decides when this child stops (it closes
    the pipe or kills it), so the child neither dies mid-request nor prints a traceback. SIGINT
    has been blocked since the fork (the parent blocks it around the start); ignoring it here
    discards one that arrived during start-up, and unblocking it is then harmless.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    quiet_decoder_logs()
    connection = Connection(fd)
    try:
        handler = connection.recv()
    except (EOFError, OSError):
        return
    cache = OpenVideoCache()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        try:
            send_reply(connection, ("ok", handler(cache, request)))
        except AqaError as error:
            send_reply(connection, ("error", type(error).__name__, str(error)))
        except IndexError as error:
            send_reply(connection, ("error", "IndexError", str(error)))
        except Exception as error:  # any other decoder failure is still this video's problem
            send_reply(connection, ("error", "VideoError", f"{request.path}: {type(error).__name__}: {error}"))
    cache.close()

