"""A corpus of broken inputs, made on the fly, each with the outcome docs/video-inputs.md promises."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from synthetic_video import write_moving_shapes


def make_bad_inputs(folder: Path) -> dict[str, Path]:
    """Write every broken input into ``folder``; returns name -> path (the missing one not created)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.mp4"
    write_moving_shapes(good, num_frames=60, height=64, width=96)
    raw = good.read_bytes()
    paths = {name: folder / name for name in (
        "missing.mp4", "empty.mp4", "text.mp4", "truncated.mp4", "truncated_faststart_tail.mp4",
        "corrupt_middle.mp4", "audio_only.m4a", "one_frame.mp4", "short.mp4")}
    paths["empty.mp4"].write_bytes(b"")
    paths["text.mp4"].write_text("this is a text file with a video's name\n" * 20)
    paths["truncated.mp4"].write_bytes(raw[: int(len(raw) * 0.6)])  # index (moov) at the end: lost
    faststart = _remux_faststart(good, folder / "faststart.mp4").read_bytes()
    paths["truncated_faststart_tail.mp4"].write_bytes(faststart[: int(len(faststart) * 0.95)])
    damaged = bytearray(raw)
    middle = len(damaged) // 2
    damaged[middle:middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    paths["corrupt_middle.mp4"].write_bytes(bytes(damaged))
    _write_audio_only(paths["audio_only.m4a"])
    write_moving_shapes(paths["one_frame.mp4"], num_frames=1, height=64, width=96)
    write_moving_shapes(paths["short.mp4"], num_frames=12, height=64, width=96)
    return paths


def _remux_faststart(source: Path, target: Path) -> Path:
    """Copy ``source`` with its index moved to the front, as streaming uploads have it."""
    with av.open(str(source)) as reader, av.open(str(target), "w", options={"movflags": "faststart"}) as writer:
        stream = reader.streams.video[0]
        out_stream = writer.add_stream_from_template(stream)
        for packet in reader.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            writer.mux(packet)
    return target


def damage_packet(source: Path, target: Path, index: int) -> Path:
    """Copy ``source`` with its ``index``-th video packet made undecodable: the length of its first
    H.264 unit set past the packet's end, so the decoder refuses the packet (the demuxer still
    reads it, as a bad sector or a botched edit leaves a file)."""
    with av.open(str(source)) as container:
        packet = [packet for packet in container.demux(video=0) if packet.size][index]
    data = bytearray(source.read_bytes())
    data[packet.pos:packet.pos + 4] = (0x7FFFFFFF).to_bytes(4, "big")
    target.write_bytes(bytes(data))
    return target


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def stalling_handler(cache, request):
    """A decode-worker handler that hangs on files named ``*stall*``, as decord can."""
    import time

    from aqa.extractors.decode_child import handle_request

    if "stall" in Path(request.path).name:
        time.sleep(3600)
    return handle_request(cache, request)


def crashing_handler(cache, request):
    """A decode-worker handler whose process dies on files named ``*crash*``, as a segfault would."""
    import os

    from aqa.extractors.decode_child import handle_request

    if "crash" in Path(request.path).name:
        os._exit(139)
    return handle_request(cache, request)


def loaded_modules_handler(cache, request):
    """A decode-worker handler that answers with the top-level names of the modules loaded in the child
    (for aqa's own modules, the stage: ``aqa.extractors``)."""
    import sys

    return sorted({".".join(name.split(".")[:2]) if name.startswith("aqa.") else name.partition(".")[0]
                   for name in sys.modules})
