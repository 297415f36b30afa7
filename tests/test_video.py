"""extractors.video: both backends, metadata, batch reads, resize and the bad-input outcomes."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest

from aqa.errors import VideoError
from aqa.extractors.video import (
    VideoLimitError,
    VideoLimits,
    _StreamIndex,
    decode_last_frame,
    open_video,
    probe_video,
    quiet_decoder_logs,
)
from aqa.video_writer import write_video
from bad_videos import _remux_faststart, damage_packet, make_bad_inputs
from synthetic_video import moving_shapes, read_frame_index, write_moving_shapes

REAL_VIDEOS = {  # name: (codec, width, height, frames, fps), from ../shared/data/README.md
    "arm_wrestling.mp4": ("h264", 340, 256, 280, 28.0),
    "basketball.mp4": ("h264", 426, 240, 300, 30000 / 1001),
    "makeup.avi": ("mpeg4", 320, 240, 164, 25.0),
    "ntu_drink_1080p.avi": ("h264", 1920, 1080, 103, 30.0),
    "olympic_dive.gif": ("gif", 500, 281, 21, 10.0),
}


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(REAL_VIDEOS))
def test_real_video_metadata(shared_videos, name):
    codec, width, height, frames, fps = REAL_VIDEOS[name]
    info = probe_video(shared_videos / name)
    assert (info.codec, info.width, info.height, info.num_frames) == (codec, width, height, frames)
    assert info.fps == pytest.approx(fps)
    assert info.rotation == 0 and not info.partial


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(set(REAL_VIDEOS) - {"olympic_dive.gif"}))
def test_decord_and_pyav_return_identical_frames(shared_videos, name):
    num_frames = REAL_VIDEOS[name][3]
    indices = [num_frames - 1, 0, num_frames // 2, 1, num_frames // 2]  # unsorted, with a repeat
    with open_video(shared_videos / name, backend="decord") as fast, \
            open_video(shared_videos / name, backend="pyav") as fallback:
        decord_frames, pyav_frames = fast.get_batch(indices), fallback.get_batch(indices)
    assert decord_frames.shape == (5, REAL_VIDEOS[name][2], REAL_VIDEOS[name][1], 3)
    assert decord_frames.dtype == np.uint8
    np.testing.assert_array_equal(decord_frames, pyav_frames)
    np.testing.assert_array_equal(decord_frames[2], decord_frames[4])


@pytest.mark.real_data
def test_decord_never_gives_another_frame_for_the_last_one(shared_videos):
    """decord gave frame 82 for makeup.avi's last frame (163) in 10-40 % of reads, single-threaded
    too (the five-run check failed once on it); the last frame now comes from PyAV."""
    path = shared_videos / "makeup.avi"
    with open_video(path, backend="pyav") as reference:
        expected = reference.get_batch([82, 163])
    for _ in range(30):
        with open_video(path, backend="decord") as video:
            np.testing.assert_array_equal(video.get_batch([82, 163]), expected)


@pytest.mark.parametrize("resize", [None, (48, 32)])
def test_the_last_frame_decoded_from_the_last_keyframe_is_the_forward_reads(make_video, resize):
    path, _ = make_video(num_frames=75, height=64, width=96)  # (the real MP4s exercise the seek: test above)
    with open_video(path, backend="pyav", resize=resize) as video:
        expected = video.get_batch([74])[0]
    np.testing.assert_array_equal(decode_last_frame(path, resize), expected)


def _count_calls(video, method: str) -> list[int]:
    """Wrap ``video``'s ``method`` (``_next_frame``: each frame decoded; ``_to_rgb``: each converted)
    with a counter."""
    count, call = [0], getattr(video, method)

    def counted(*args):
        count[0] += 1
        return call(*args)

    setattr(video, method, counted)
    return count


@pytest.mark.parametrize("resize", [None, (48, 32)])
def test_pyav_seeks_to_the_key_frame_before_a_read_and_gives_the_forward_reads_frames(make_video, resize):
    path, _ = make_video(num_frames=75, height=64, width=96)  # key frames at 0, 25, 50 (one a second)
    with open_video(path, backend="pyav", resize=resize) as forward:
        expected = forward.get_batch(range(75))
    with open_video(path, backend="pyav", resize=resize) as video:
        decoded, converted = _count_calls(video, "_next_frame"), _count_calls(video, "_to_rgb")
        np.testing.assert_array_equal(video.get_batch([60, 61]), expected[[60, 61]])
        assert decoded[0] == 12  # 50..61: from the key frame before, not from the start
        assert converted[0] == 2  # only the frames asked for
        np.testing.assert_array_equal(video.get_batch([62, 63]), expected[[62, 63]])
        assert decoded[0] == 14  # on from where it stopped
        np.testing.assert_array_equal(video.get_batch([30, 5, 74]), expected[[30, 5, 74]])
        assert decoded[0] == 14 + 6 + 6 + 25  # 0..5, then each from its key frame: 25..30, 50..74


def test_pyav_without_frame_times_decodes_from_the_start(make_video):
    """A video whose frames cannot be placed by time (here: the index says so) is read forward."""
    path, _ = make_video(num_frames=60, height=64, width=96)
    with open_video(path, backend="pyav") as forward:
        expected = forward.get_batch([40, 10])
    with open_video(path, backend="pyav") as video:
        video._index = _StreamIndex.UNTIMED
        decoded = _count_calls(video, "_next_frame")
        np.testing.assert_array_equal(video.get_batch([40]), expected[:1])
        np.testing.assert_array_equal(video.get_batch([10]), expected[1:])
        assert decoded[0] == 41 + 11


@pytest.mark.parametrize("packet", [60, 50], ids=["mid-group", "key-frame"])
def test_a_damaged_video_numbers_its_frames_alike_read_in_order_or_by_seeking(make_video, tmp_path, packet):
    """Frames are numbered by their times, so a packet that fails to decode costs its own frames
    and no others: the frames after it keep their numbers (a count would shift them all by one and
    pad the end), and a read that seeks gives what a read in order gives."""
    path, _ = make_video(num_frames=150, height=64, width=96)  # key frames at 0, 25, 50, ...
    damaged = damage_packet(path, tmp_path / "damaged.mp4", packet)
    with open_video(path, backend="pyav") as intact:
        clean = intact.get_batch(range(150))
    with open_video(damaged, backend="pyav") as forward:
        in_order = forward.get_batch(range(150))
        assert 1 <= forward.damaged_frames <= 25
    with open_video(damaged, backend="pyav") as seeking:
        for index in (140, 62, 30, 99, 0, 61, 149):
            np.testing.assert_array_equal(seeking.get_batch([index])[0], in_order[index])
    for index in [*range(50), *range(75, 150)]:  # outside the damaged group, every frame is its own
        np.testing.assert_array_equal(in_order[index], clean[index], err_msg=f"frame {index}")


def test_a_seek_that_lands_past_its_key_frame_goes_further_back(make_video):
    """A container whose seek lands one key frame late (simulated: each seek goes to the next key
    frame) must not number the frames it skipped as missing: the reader seeks further back, down
    to the start, and gives the frame a read in order gives, with no damage."""
    path, _ = make_video(num_frames=100, height=64, width=96)  # key frames at 0, 25, 50, 75
    with open_video(path, backend="pyav") as forward:
        expected = forward.get_batch([62, 90])
    with open_video(path, backend="pyav") as video:
        video.get_batch([0])  # index and container ready
        seek = video._seek

        def landing_late(key_frame):
            later = [frame for frame in video._index.key_frames if frame > key_frame]
            seek(later[0] if later else key_frame)
            video._position = video._seeked_to = key_frame

        video._seek = landing_late
        np.testing.assert_array_equal(video.get_batch([62, 90]), expected)
        assert video.damaged_frames == 0


@pytest.mark.parametrize("verbose", [False, True])
def test_decoder_logs_never_go_through_pythons_log_bridge(verbose):
    """PyAV's Python log bridge (``av.logging.set_level`` with a level) takes the GIL in FFmpeg's
    frame threads: an error one logs while the main thread waits for it deadlocks the process (it
    hung the suite at a seek). Neither quiet nor verbose may leave it installed."""
    av.logging.set_level(av.logging.ERROR)  # what the CLI used to install
    try:
        quiet_decoder_logs(verbose=verbose)
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)


_SEEKS_AFTER_THE_CLI_SET_LOGS_UP = """
import sys
from aqa.extractors.video import open_video, quiet_decoder_logs
quiet_decoder_logs(verbose=sys.argv[2] == "verbose")
for _ in range(40):
    with open_video(sys.argv[1], backend="pyav") as video:
        video.get_batch([0])
        seek = video._seek
        def landing_late(key_frame, video=video, seek=seek):
            later = [frame for frame in video._index.key_frames if frame > key_frame]
            seek(later[0] if later else key_frame)
            video._position = video._seeked_to = key_frame
        video._seek = landing_late
        video.get_batch([62, 90])
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_seeking_with_the_clis_log_settings_does_not_deadlock(make_video, mode):
    """The scenario that hung the suite (about one run in four with the old log setting): seeks
    that land late, restarts and closes of a frame-threaded decoder, after the CLI set logs up."""
    path, _ = make_video(num_frames=100, height=64, width=96)
    done = subprocess.run([sys.executable, "-c", _SEEKS_AFTER_THE_CLI_SET_LOGS_UP, str(path), mode],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.real_data
def test_an_edit_lists_cut_pre_roll_is_not_counted_and_both_readers_agree(shared_footage):
    """The Tokyo dive's MP4 holds 200 packets, of which its edit list cuts the first 91 (pre-roll
    decoders decode for reference but never show). Counting them made 91 phantom frames: decord
    filled them with the last frame, PyAV refused the video as damaged."""
    path = shared_footage / "tokyo2020_platform_dive_720p.mp4"
    info = probe_video(path)
    assert (info.num_frames, info.claimed_frames, info.partial) == (109, 109, False)
    indices = [108, 0, 54, 70, 107]
    with open_video(path, backend="decord", resize=(320, 180)) as fast, \
            open_video(path, backend="pyav", resize=(320, 180)) as seeking:
        np.testing.assert_array_equal(fast.get_batch(indices), seeking.get_batch(indices))


@pytest.mark.real_data
def test_gif_is_read_through_pyav_in_auto_mode(shared_videos):
    with open_video(shared_videos / "olympic_dive.gif") as video:
        frames = video.get_batch(range(21))
        assert video.info.backend == "pyav"
    assert frames.shape == (21, 281, 500, 3)
    assert frames.std() > 10  # real picture content, not a blank conversion


@pytest.mark.real_data
def test_decode_time_resize_agrees_across_backends(shared_videos):
    path = shared_videos / "basketball.mp4"
    with open_video(path, backend="decord", resize=(224, 160)) as fast, \
            open_video(path, backend="pyav", resize=(224, 160)) as fallback:
        a, b = fast.get_batch([0, 150]), fallback.get_batch([0, 150])
    assert a.shape == b.shape == (2, 160, 224, 3)
    np.testing.assert_array_equal(a, b)  # PyAV scales through decord's own filter: the same pixels


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_frames_come_back_in_the_requested_order(make_video, backend):
    path, _ = make_video(num_frames=40)
    with open_video(path, backend=backend) as video:
        frames = video.get_batch([30, 2, 17, 2])
        later = video.get_batch([5, 6])  # PyAV restarts for an earlier frame
    assert [read_frame_index(f) for f in frames] == [30 % 25, 2, 17, 2]
    assert [read_frame_index(f) for f in later] == [5, 6]


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_read_each_gives_get_batchs_frames_one_at_a_time(make_video, backend):
    path, _ = make_video(num_frames=40)
    indices = [0, 3, 17, 30, 39]
    taken: dict[int, np.ndarray] = {}
    with open_video(path, backend=backend) as video:
        video.read_each(indices, lambda slot, frame: taken.__setitem__(slot, frame.copy()))
        expected = video.get_batch(indices)
        with pytest.raises(ValueError, match="sorted"):
            video.read_each([3, 2], taken.__setitem__)
        with pytest.raises(ValueError, match="sorted"):
            video.read_each([2, 2], taken.__setitem__)
        with pytest.raises(IndexError):
            video.read_each([40], taken.__setitem__)
    assert sorted(taken) == list(range(len(indices)))
    np.testing.assert_array_equal(np.stack([taken[slot] for slot in sorted(taken)]), expected)
    assert [read_frame_index(frame) for frame in expected] == [i % 25 for i in indices]


def test_indices_outside_the_video_are_an_index_error(make_video):
    path, _ = make_video(num_frames=10)
    with open_video(path) as video, pytest.raises(IndexError, match=r"\[0, 10\)"):
        video.get_batch([3, 10])


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(("name", "message"), [
    ("missing.mp4", "no such file"),
    ("empty.mp4", "empty file"),
    ("text.mp4", "not a readable video"),
    ("truncated.mp4", "not a readable video"),
    ("audio_only.m4a", r"no video stream \(the file holds audio\)"),
])
@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_unreadable_inputs_raise_one_line_video_errors(bad_inputs, name, message, backend):
    with pytest.raises(VideoError, match=message) as caught:
        open_video(bad_inputs[name], backend=backend)
    assert "\n" not in str(caught.value) and name in str(caught.value)


def test_a_truncated_tail_opens_as_partial_with_the_frames_present(bad_inputs):
    with open_video(bad_inputs["truncated_faststart_tail.mp4"]) as video:
        info = video.info
        frames = video.get_batch(range(info.num_frames))
    assert info.partial and info.claimed_frames == 60
    assert 54 <= info.num_frames < 60
    assert len(frames) == info.num_frames
    assert video.damaged_frames <= 0.1 * info.num_frames


@pytest.mark.parametrize("kept", [0.95, 0.97, 0.99])
def test_a_cut_tail_read_in_small_batches_gives_every_present_frame(tmp_path, kept):
    """Once refused ("2 of 2 requested frames fail to decode"): the damage limit was per read, the
    cut last packet counted as present, and sending it made the frame threads drop the two good
    frames before it. Now every present frame decodes, in its place, read two at a time."""
    whole = tmp_path / "whole.mp4"
    rendered = write_moving_shapes(whole, num_frames=120, height=64, width=96).frames.astype(np.int16)
    faststart = _remux_faststart(whole, tmp_path / "faststart.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart[: int(len(faststart) * kept)])
    with open_video(cut) as video:
        count = video.info.num_frames
        frames = np.concatenate([video.get_batch(range(start, min(start + 2, count))) for start in range(0, count, 2)])
        assert video.info.partial and 108 <= count < 120
        assert video.damaged_frames == 0
    distances = np.abs(frames[:, None].astype(np.int16) - rendered[None]).mean(axis=(2, 3, 4))
    drawn = distances.argmin(axis=1).tolist()
    # Each frame is the one drawn there, up to the cut: a B-frame shown before the last present
    # frame may sit past the cut (decode order), so the last places can hold later frames, never
    # a repeat or an earlier one (libx264's bytes vary run to run, and with them where the cut lands).
    assert drawn[:-2] == list(range(count - 2))
    assert all(later > earlier for earlier, later in zip(drawn, drawn[1:]))


def test_heavily_corrupted_middle_is_a_video_error_in_every_backend(bad_inputs):
    for backend in ("auto", "decord", "pyav"):
        with open_video(bad_inputs["corrupt_middle.mp4"], backend=backend) as video:
            with pytest.raises(VideoError, match="fail") as caught:
                video.get_batch(range(video.info.num_frames))
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_one_frame_and_short_videos_read_fully(bad_inputs, backend):
    with open_video(bad_inputs["one_frame.mp4"], backend=backend) as video:
        assert video.get_batch([0, 0]).shape == (2, 64, 96, 3)
    with open_video(bad_inputs["short.mp4"], backend=backend) as video:
        assert video.info.num_frames == 12
        assert [read_frame_index(f) for f in video.get_batch(range(12))] == list(range(12))


@pytest.mark.parametrize("packet", [0, 100, 101], ids=["first", "keyframe-mid-stream", "mid-stream"])
def test_an_undecodable_packet_is_damage_first_or_mid_stream(make_video, tmp_path, packet):
    """One packet the decoder refuses: the probe counts it as present wherever it is (the first one
    was decoded inside the demuxing ``try``, so its error ended the count: "truncated: only 1 of the
    260 frames"); the readers count what it costs against the damage limit. Measured: the first
    packet (the only reference of the first 25 frames) costs 25 frames, mid-stream ones 1."""
    path, _ = make_video(num_frames=260, height=64, width=96)
    damaged = damage_packet(path, tmp_path / "damaged.mp4", packet)
    info = probe_video(damaged)
    assert (info.num_frames, info.partial, info.width, info.height) == (260, False, 96, 64)
    with open_video(damaged) as video:
        assert video.get_batch(range(260)).shape == (260, 64, 96, 3)
        assert 1 <= video.damaged_frames <= 26


@pytest.mark.parametrize("stored", [(64, 64), (64, 36)], ids=["square", "landscape-stored"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_come_out_upright_and_the_same_from_both_backends(tmp_path, rotation, stored):
    """A phone video: frames stored as shot, the display matrix (real side data in the MP4) saying
    how to turn them. Players, FFmpeg and decord show ``np.rot90(stored, rotation // 90)`` (the
    matrix's rotation is counter-clockwise); both readers must give exactly that, once, at native
    size and resized, the last frame (decord's PyAV path) included."""
    width, height = stored
    clip = moving_shapes(num_frames=12, height=height, width=width)
    path = tmp_path / "phone.mp4"
    write_video(path, clip.frames, clip.fps, rotation=rotation)
    shown = np.rot90(clip.frames, k=rotation // 90, axes=(1, 2))  # [T, H', W', 3] as a player shows it
    indices = [11, 0, 5]
    info = probe_video(path)
    assert info.rotation == rotation and (info.width, info.height) == (shown.shape[2], shown.shape[1])
    read, resized = {}, {}
    for backend in ("decord", "pyav"):
        with open_video(path, backend=backend) as video:
            read[backend] = video.get_batch(indices)
        try:
            with open_video(path, backend=backend, resize=(shown.shape[2] // 2, shown.shape[1] // 2)) as video:
                resized[backend] = video.get_batch(indices)
        except VideoError:  # decord 0.6.0 swaps the size of a turned-over frame that is not square
            assert backend == "decord" and rotation == 180 and width != height
        assert read[backend].shape == shown[indices].shape, backend
        error = np.abs(read[backend].astype(int) - shown[indices]).mean()
        assert error < 3, f"{backend}: frames differ from the upright ones by {error:.1f} grey levels"
    np.testing.assert_array_equal(read["decord"], read["pyav"])
    assert resized["pyav"].shape == (3, shown.shape[1] // 2, shown.shape[2] // 2, 3)
    if "decord" in resized:
        np.testing.assert_array_equal(resized["decord"], resized["pyav"])


def write_at_rate(path, fps, num_frames: int = 12):
    write_video(path, moving_shapes(num_frames=num_frames, height=64, width=96, seed=1).frames, fps)
    return path


# Issue 24, defect 4: nothing bounded the work one video causes. Seen failing before: each probe
# returned its info (the 0.001 fps file, resampled by --target-fps 25, made 300,000 frames).
@pytest.mark.parametrize(("fps", "num_frames", "environment", "message"), [
    (0.001, 12, {}, r"lasts 3.33 h \(12 frames at 0.001 fps\), longer than the limit per video of 3 h "
                    r"\(AQA_MAX_VIDEO_SECONDS"),
    (25, 30, {"AQA_MAX_VIDEO_FRAMES": "20"}, r"holds more than 20 frames, the limit per video \(AQA_MAX_VIDEO_FRAMES"),
    (25, 30, {"AQA_MAX_VIDEO_SECONDS": "1"}, r"lasts 1.2 s .* longer than the limit per video of 1 s"),
], ids=["0.001-fps", "frames", "seconds"])
def test_a_video_beyond_the_limits_is_refused_by_the_probe(tmp_path, monkeypatch, fps, num_frames, environment,
                                                           message):
    path = write_at_rate(tmp_path / "long.mp4", fps, num_frames)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(VideoError, match=message) as error:
        probe_video(path)
    assert "\n" not in str(error.value)
    monkeypatch.setenv("AQA_MAX_VIDEO_FRAMES", "30")  # the limit itself is allowed
    monkeypatch.setenv("AQA_MAX_VIDEO_SECONDS", "1e9")
    assert probe_video(path).num_frames == num_frames


@pytest.mark.parametrize(("variable", "value"), [("AQA_MAX_VIDEO_FRAMES", "many"), ("AQA_MAX_VIDEO_SECONDS", "0"),
                                                 ("AQA_MAX_VIDEO_SECONDS", "nan")])
def test_unusable_video_limits_are_a_setting_error(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(VideoLimitError, match="AQA_MAX_VIDEO"):
        VideoLimits.from_environment()
