"""Which video decoder: decord 0.6.0 (ours, unmaintained since 2021) against its maintained fork
decord2, torchcodec and PyAV, on the three things issue 28 asks of a replacement: speed, frame
indices that are exact, and what each does with damaged files.

Self-contained on purpose (numpy and PyAV beside the decoder, no ``aqa`` import but for ``--decoder
aqa``, the project's own default reader, which uses PyAV's frame threads): decord2 installs
under the same module name as decord (``import decord``), so the two cannot share an environment,
and each decoder is measured in its own::

    python bench/decoders.py --decoder decord                       # the project's .venv
    python bench/decoders.py --decoder aqa                          # the project's reader, same .venv
    python -m venv /tmp/d2 && /tmp/d2/bin/pip install decord2 numpy av
    /tmp/d2/bin/python bench/decoders.py --decoder decord           # reports decord 3.x: decord2
    python -m venv /tmp/tc && /tmp/tc/bin/pip install torchcodec torch numpy av   # + FFmpeg's libraries
    /tmp/tc/bin/python bench/decoders.py --decoder torchcodec

It writes its own inputs (H.264 at 640x360 whose frames carry their index as a 16-bit block code,
and damaged copies) into ``--work``, and reads the real clips named by ``--real`` if present. Per
decoder it prints JSON lines:

* ``speed``: frames/s decoding a whole video in sorted batches of 64 (as extraction reads), and
  milliseconds per frame for 64 random frames (as key-frame detection seeks);
* ``indices``: the share of frames whose decoded block code equals the index asked for, in order
  and at random (a decoder that seeks to the wrong frame is silently wrong);
* ``damage``: for each damaged file, what the decoder did, in a child process with a timeout so a
  crash or a hang is recorded, not suffered: refused to open, or the frames read one by one and
  those that raised; ``crashed`` (signal) or ``hung``. Not for PyAV, whose damaged packets aqa's
  own reader steps over (``extractors/video.py``, tested in ``tests/test_video.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

BITS = 16
BLOCK = 20  # pixels per code block: survives H.264 at the default quality
CHUNK = 64


# ---------------------------------------------------------------------------------- the inputs

def coded_frames(count: int, width: int = 640, height: int = 360, seed: int = 0) -> np.ndarray:
    """``count`` RGB frames of a textured, panning scene, each with its index in a row of
    ``BITS`` black/white blocks along the top (the texture keeps the encoder honest)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, (height, width * 2, 3), np.uint8)
    frames = np.empty((count, height, width, 3), np.uint8)
    for index in range(count):
        shift = (index * 3) % width
        frames[index] = texture[:, shift:shift + width]
        frames[index, :BLOCK * 2] = 128
        for bit in range(BITS):
            value = 255 if (index >> bit) & 1 else 0
            frames[index, BLOCK // 2:BLOCK // 2 + BLOCK, bit * BLOCK * 2:bit * BLOCK * 2 + BLOCK] = value
    return frames


def read_code(frame: np.ndarray) -> int:
    """The index a frame carries (:func:`coded_frames`), from its blocks' mean brightness."""
    index = 0
    for bit in range(BITS):
        block = frame[BLOCK // 2 + 4:BLOCK // 2 + BLOCK - 4, bit * BLOCK * 2 + 4:bit * BLOCK * 2 + BLOCK - 4]
        index |= int(block.mean() > 128) << bit
    return index


def write_h264(path: Path, frames: np.ndarray, fps: int = 30, gop: int = 25) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"g": str(gop), "crf": "20"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def break_packet(source: Path, target: Path, index: int) -> Path:
    """``source`` with its ``index``-th video packet undecodable (its first NAL length past the end)."""
    import av

    with av.open(str(source)) as container:
        packet = [packet for packet in container.demux(video=0) if packet.size][index]
    data = bytearray(source.read_bytes())
    data[packet.pos:packet.pos + 4] = (0x7FFFFFFF).to_bytes(4, "big")
    target.write_bytes(bytes(data))
    return target


def make_inputs(work: Path, frames: int) -> tuple[Path, dict[str, Path]]:
    """The coded video and the damaged files, written once into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    coded = work / f"coded_{frames}.mp4"
    if not coded.exists():
        write_h264(coded, coded_frames(frames))
    raw = coded.read_bytes()
    damaged = {
        "first_packet_broken": break_packet(coded, work / "first_packet_broken.mp4", 0),
        "mid_packet_broken": break_packet(coded, work / "mid_packet_broken.mp4", frames // 2),
        "cut_at_60_percent": work / "cut_at_60_percent.mp4",
        "random_bytes": work / "random_bytes.mp4",
        "empty": work / "empty.mp4",
        "text": work / "text.mp4",
    }
    damaged["cut_at_60_percent"].write_bytes(raw[: int(len(raw) * 0.6)])
    damaged["random_bytes"].write_bytes(np.random.default_rng(0).bytes(50_000))
    damaged["empty"].write_bytes(b"")
    damaged["text"].write_text("a coach's notes, not a video\n")
    return coded, damaged


# ---------------------------------------------------------------------------------- the decoders

class Reader:
    """One decoder behind the two calls the bench needs: ``len`` and ``batch(indices) -> [N, H, W, 3]``."""

    def __init__(self, decoder: str, path: Path):
        self.decoder = decoder
        if decoder == "decord":
            import decord

            self._video = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
            self.length = len(self._video)
        elif decoder == "aqa":  # the project's default reader: PyAV, seeking, decord's conversion
            from aqa.extractors.video import open_video

            self._video = open_video(path)
            self.length = self._video.info.num_frames
        elif decoder == "torchcodec":
            from torchcodec.decoders import VideoDecoder

            self._video = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode="exact")
            self.length = len(self._video)
        else:  # pyav: decode forward, keep what is asked; start again only to go back
            import av

            self._path, self._frames, self._next = path, None, 0
            with av.open(str(path)) as container:
                self.length = sum(1 for packet in container.demux(video=0) if packet.size)

    def batch(self, indices: list[int]) -> np.ndarray:
        if self.decoder == "decord":
            return self._video.get_batch(indices).asnumpy()
        if self.decoder == "aqa":
            return self._video.get_batch(indices)
        if self.decoder == "torchcodec":
            return self._video.get_frames_at(indices=indices).data.numpy()
        import av

        found = {}
        for index in sorted(set(indices)):
            if self._frames is None or index < self._next:
                self._frames, self._next = av.open(str(self._path)).decode(video=0), 0
            for frame in self._frames:
                self._next += 1
                if self._next - 1 == index:
                    found[index] = frame.to_ndarray(format="rgb24")
                    break
        return np.stack([found[index] for index in indices])


def version_of(decoder: str) -> str:
    if decoder in ("pyav", "aqa"):
        import av

        return f"av {av.__version__}" + (" through aqa's PyAVSource" if decoder == "aqa" else "")
    if decoder == "torchcodec":
        import torchcodec

        return f"torchcodec {torchcodec.__version__}"
    import decord

    return f"decord {decord.__version__}"


# ---------------------------------------------------------------------------------- measurements

def measure_speed(decoder: str, path: Path, repeats: int = 2) -> dict:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        reader = Reader(decoder, path)
        for start in range(0, reader.length, CHUNK):
            reader.batch(list(range(start, min(reader.length, start + CHUNK))))
        best = min(best, time.perf_counter() - started)
    reader = Reader(decoder, path)
    picks = sorted(np.random.default_rng(1).choice(reader.length, min(CHUNK, reader.length), replace=False).tolist())
    started = time.perf_counter()
    reader.batch(picks)
    random_ms = 1000 * (time.perf_counter() - started) / len(picks)
    return {"video": path.name, "frames": reader.length, "sequential_fps": round(reader.length / best, 1),
            "random_ms_per_frame": round(random_ms, 2)}


def measure_indices(decoder: str, path: Path) -> dict:
    reader = Reader(decoder, path)
    in_order = [read_code(frame) for start in range(0, reader.length, CHUNK)
                for frame in reader.batch(list(range(start, min(reader.length, start + CHUNK))))]
    rng = np.random.default_rng(2)
    asked = rng.permutation(reader.length)[:CHUNK].tolist()
    at_random = [read_code(frame) for frame in Reader(decoder, path).batch(asked)]
    return {"video": path.name, "frames": reader.length,
            "exact_in_order": round(float(np.mean(np.array(in_order) == np.arange(reader.length))), 4),
            "exact_at_random": round(float(np.mean(np.array(at_random) == np.array(asked))), 4)}


def _read_all(decoder: str, path: str, answer) -> None:
    """Open ``path`` and read its frames one at a time, in order: how many come back, how many
    raise (a decoder that gives up on a whole batch for one bad packet loses its neighbours too)."""
    try:
        reader = Reader(decoder, Path(path))
    except Exception as error:  # noqa: BLE001 - what each decoder raises is the measurement
        answer.put(f"refused to open: {type(error).__name__}")
        return
    read, failed = 0, 0
    for index in range(reader.length):
        try:
            reader.batch([index])
            read += 1
        except Exception:  # noqa: BLE001
            failed += 1
            if decoder == "pyav":
                reader._frames = None  # its generator died with the error: decode again from the start
    answer.put(f"opened; {read} of {reader.length} frames read one by one, {failed} raised")


def measure_damage(decoder: str, path: Path, timeout_s: float = 60.0) -> str:
    """What reading every frame of ``path`` does, in a child: its answer, ``crashed`` or ``hung``."""
    context = mp.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=_read_all, args=(decoder, str(path), answer))
    child.start()
    child.join(timeout_s)
    if child.is_alive():
        child.kill()
        child.join()
        return f"hung (killed after {timeout_s:.0f} s)"
    if child.exitcode != 0:
        return f"crashed (exit {child.exitcode})"
    return answer.get(timeout=5)


def main(args: argparse.Namespace) -> None:
    coded, damaged = make_inputs(Path(args.work), args.frames)
    common = {"bench": "decoders", "decoder": args.decoder, "version": version_of(args.decoder)}
    lines = [{**common, "measure": "indices", **measure_indices(args.decoder, coded)}]
    for path in [coded, *[Path(p) for p in args.real if Path(p).exists()]]:
        lines.append({**common, "measure": "speed", **measure_speed(args.decoder, path)})
    for name, path in damaged.items():  # PyAV's damage handling is aqa's own reader's (tests/test_video.py)
        if args.decoder != "pyav":
            lines.append({**common, "measure": "damage", "case": name, "outcome": measure_damage(args.decoder, path)})
    for line in lines:
        print(json.dumps(line), flush=True)
        if args.out:
            with open(args.out, "a") as out:
                out.write(json.dumps(line) + "\n")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", choices=["decord", "torchcodec", "pyav", "aqa"], required=True,
                        help="decord: whichever decord this environment imports (decord 0.6 or decord2); "
                             "aqa: the project's default reader (PyAV seeking to key frames; needs aqa installed)")
    parser.add_argument("--frames", type=int, default=600, help="frames of the coded test video")
    parser.add_argument("--work", default="/tmp/aqa-bench-decoders", help="folder for the written inputs")
    parser.add_argument("--real", action="append", default=[], help="a real clip to time too (repeatable)")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args(sys.argv[1:]))
