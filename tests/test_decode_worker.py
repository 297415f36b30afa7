"""extractors.decode_worker: hangs are timed out, crashes contained, and the next video still reads."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from aqa.errors import DecodeTimeout, VideoError
from aqa.extractors.decode_worker import DecodeWorker
from bad_videos import crashing_handler, make_bad_inputs, stalling_handler
from synthetic_video import read_frame_index


def test_reads_frames_and_metadata_in_a_child_process(make_video):
    path, _ = make_video(num_frames=30)
    with DecodeWorker(timeout_s=30) as worker:
        info = worker.probe(str(path))
        first = worker.read(str(path), [0, 1, 2])
        later = worker.read(str(path), [20, 29])  # same video: stays open in the child
        resized = worker.read(str(path), [4], resize=(48, 32))
        assert worker.starts == 1
    assert info.num_frames == 30
    assert [read_frame_index(f) for f in first.frames] == [0, 1, 2]
    assert [read_frame_index(f) for f in later.frames] == [20, 4]
    assert resized.frames.shape == (1, 32, 48, 3)


def test_a_hang_is_timed_out_and_the_worker_replaced(make_video):
    stall, _ = make_video("stall.mp4", num_frames=5)
    good, _ = make_video("good.mp4", num_frames=5)
    with DecodeWorker(timeout_s=2, handler=stalling_handler) as worker:
        started = time.monotonic()
        with pytest.raises(DecodeTimeout, match="no progress in 2 s"):
            worker.read(str(stall), [0])
        assert time.monotonic() - started < 10
        assert worker.read(str(good), [0, 4]).frames.shape[0] == 2
        assert worker.starts == 2


def test_a_crashing_decoder_is_contained(make_video):
    crash, _ = make_video("crash.mp4", num_frames=5)
    good, _ = make_video("good.mp4", num_frames=5)
    with DecodeWorker(timeout_s=30, handler=crashing_handler) as worker:
        with pytest.raises(VideoError, match="crashed"):
            worker.read(str(crash), [0])
        assert worker.read(str(good), [1]).frames.shape[0] == 1


def test_one_bad_video_never_stops_the_others(tmp_path, make_video):
    """Every broken input gets its documented outcome and the good videos still decode."""
    inputs = make_bad_inputs(tmp_path / "bad")
    good, _ = make_video("zz_good.mp4", num_frames=8)
    outcomes = {}
    with DecodeWorker(timeout_s=30, recycle_after=3) as worker:
        for name, path in sorted(inputs.items()) + [("zz_good.mp4", good)]:
            try:
                info = worker.probe(str(path))
                result = worker.read(str(path), list(range(info.num_frames)))
                outcomes[name] = "partial" if result.info.partial else "ok"
            except VideoError as error:
                assert "\n" not in str(error)
                outcomes[name] = "error"
        assert worker.starts >= 3  # recycled along the way
    assert outcomes == {
        "audio_only.m4a": "error", "corrupt_middle.mp4": "error", "empty.mp4": "error",
        "missing.mp4": "error", "one_frame.mp4": "ok", "short.mp4": "ok",
        "text.mp4": "error", "truncated.mp4": "error", "truncated_faststart_tail.mp4": "partial",
        "zz_good.mp4": "ok",
    }


def test_out_of_range_indices_come_back_as_index_errors(make_video):
    path, _ = make_video(num_frames=5)
    with DecodeWorker(timeout_s=30) as worker:
        with pytest.raises(IndexError, match=r"\[0, 5\)"):
            worker.read(str(path), [7])
        assert worker.read(str(path), np.arange(5)).frames.shape[0] == 5


def test_crops_are_cut_in_the_child_exactly_as_in_this_process(make_video):
    from aqa.extractors.crops import crop_and_resize
    from aqa.extractors.decode_worker import InlineDecoder

    path, _ = make_video(num_frames=12)
    indices = [7, 2, 3, 2]  # any order, and a repeated frame cut to another box: each place its own crop
    boxes = np.array([[[0, 0, 128, 96]] * 4, [[10, 5, 60, 55], [20, 0, 84, 64], [100, 40, 128, 96], [0, 0, 40, 30]]],
                     np.float32)
    with DecodeWorker(timeout_s=30) as worker, InlineDecoder() as inline:
        frames = worker.read(str(path), indices).frames
        crops = worker.read(str(path), indices, crops=boxes, crop_size=24).frames
        inline_crops = inline.read(str(path), indices, crops=boxes, crop_size=24).frames
        with pytest.raises(ValueError, match="crops must be"):
            worker.read(str(path), indices, crops=boxes[:, :3], crop_size=24)
    assert crops.shape == (2, 4, 24, 24, 3)
    assert not np.array_equal(crops[1, 1], crops[1, 3])
    for stream, stream_boxes in enumerate(boxes):
        np.testing.assert_array_equal(crops[stream], crop_and_resize(frames, stream_boxes, 24))
    np.testing.assert_array_equal(inline_crops, crops)


def test_ctrl_c_is_left_to_the_parent(make_video):
    """Ctrl-C signals the whole process group: the child keeps serving until the parent stops it."""
    path, _ = make_video(num_frames=10)
    with DecodeWorker(timeout_s=30) as worker:
        worker.probe(str(path))
        os.kill(worker.pid, signal.SIGINT)
        time.sleep(0.5)
        assert worker.read(str(path), [3]).frames.shape[0] == 1
        assert worker.starts == 1


def test_ctrl_c_while_the_child_starts_is_ignored(make_video, capfd):
    """SIGINT is blocked from the child's first instruction: one that lands while it is still
    importing (long before it can set SIG_IGN) neither kills it nor prints a traceback."""
    path, _ = make_video(num_frames=5)
    with DecodeWorker(timeout_s=30) as worker:
        os.kill(worker.start(), signal.SIGINT)
        assert worker.probe(str(path)).num_frames == 5
        assert worker.starts == 1
    err = capfd.readouterr().err
    assert "KeyboardInterrupt" not in err and "Traceback" not in err, err


def test_a_decoding_child_never_imports_torch(tmp_path, make_video):
    """The parent's main module imports torch, as aqa-extract's does; the child must not have it.

    A child started by multiprocessing's spawn re-imported the parent's main module: torch, cv2
    and MediaPipe, about 1 GB resident and seconds to start, in a process that only decodes.
    """
    path, _ = make_video(num_frames=5)
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]!r}
        import torch
        from bad_videos import loaded_modules_handler
        from aqa.extractors.decode_worker import DecodeWorker

        if __name__ == "__main__":
            assert "torch" in sys.modules
            with DecodeWorker(timeout_s=60, handler=loaded_modules_handler) as worker:
                print(" ".join(worker.probe({str(path)!r})))
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    in_child = set(result.stdout.split())
    assert "aqa.extractors" in in_child and "av" in in_child  # the answer came from a decoding child
    assert not in_child & {"torch", "torchvision", "mediapipe", "ultralytics", "aqa.pipeline"}, in_child


def test_replies_carry_their_arrays_out_of_band_unchanged():
    """``send_reply``/``receive_reply``: a reply's arrays (large, empty, strided, in a dataclass)
    arrive equal and writable; a sender that stalls mid-reply is a TimeoutError, not a hang, and
    one gone mid-reply an EOFError, not a short array."""
    import threading
    from multiprocessing import Pipe

    from aqa.extractors.decode_child import ReadResult, receive_reply, send_reply
    from aqa.extractors.video import VideoInfo

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 4, 96, 96, 3), dtype=np.uint8)  # 221 KB: more than a pipe holds
    info = VideoInfo("clip.mp4", "pyav", "h264", 25.0, 4, 96, 96)
    reply = ("ok", ReadResult(frames, info, 1), np.zeros((0, 3)), np.arange(12.0).reshape(3, 4)[:, ::2])
    receiving, sending = Pipe()
    sender = threading.Thread(target=send_reply, args=(sending, reply))
    sender.start()
    got = receive_reply(receiving)
    sender.join()
    assert got[0] == "ok" and got[1].info == info and got[1].damaged_frames == 1
    np.testing.assert_array_equal(got[1].frames, frames)
    assert got[1].frames.flags.writeable
    assert got[2].shape == (0, 3)
    np.testing.assert_array_equal(got[3], [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]])

    sending.send_bytes(pickle.dumps((b"", [1000])))  # announces 1,000 bytes, sends 10, stalls
    os.write(sending.fileno(), b"x" * 10)
    with pytest.raises(TimeoutError):
        receive_reply(receiving, timeout_s=0.2)
    sending.send_bytes(pickle.dumps((b"", [1000])))  # the same, then is gone
    os.write(sending.fileno(), b"x" * 10)
    sending.close()
    with pytest.raises(EOFError):
        receive_reply(receiving, timeout_s=5)
