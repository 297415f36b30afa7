"""aqa.synthetic.dataset: a deterministic, resumable dataset whose score lives in the motion, not the pixels."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from aqa.data.labels import read_label_files
from aqa.extractors.detect import BlazePoseDetector, DetectorConfig
from aqa.extractors.video import open_video
from aqa.pipeline.synthetic import cli
from aqa.synthetic.dataset import (
    MOVE_DIFFICULTY,
    SCORE_WEIGHTS,
    SyntheticDatasetConfig,
    SyntheticDatasetError,
    athlete_boxes,
    athlete_trajectory,
    execution_score,
    generate_dataset,
    render_video,
    sample_routine,
)

SMALL = SyntheticDatasetConfig(num_videos=6, num_frames=24, width=96, height=80, moves=2, seed=3)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synthetic") / "dataset", SMALL)


def decode(path: Path) -> np.ndarray:
    with open_video(path) as video:
        return video.get_batch(range(video.info.num_frames))


def test_label_files_read_back_with_splits_scores_and_difficulty(small_dataset):
    table = read_label_files([small_dataset / "train.txt", small_dataset / "test.txt"])
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    videos = {video["name"]: video for video in manifest["videos"]}
    on_disk = sorted(path.stem for path in (small_dataset / "videos").glob("*.mp4"))
    assert sorted(table.names) == on_disk == sorted(videos)
    assert table.score_names == ("score",) and table.splits == ["test", "train"]
    assert len(table.select("test")) == 2 and len(table.select("train")) == 4  # round(6 * 0.25)
    for record in table:
        video = videos[record.name]
        assert record.scores["score"] == pytest.approx(video["score"], abs=0.005)
        assert record.difficulty == pytest.approx(sum(MOVE_DIFFICULTY[move] for move in video["moves"]))
        assert record.split == video["split"]
        assert np.array(video["boxes"]).shape == (SMALL.num_frames, 4)


def test_videos_decode_with_the_configured_length_size_and_rate(small_dataset):
    for path in sorted((small_dataset / "videos").glob("*.mp4")):
        with open_video(path) as video:
            info = video.info
            assert (info.num_frames, info.width, info.height) == (24, 96, 80)
            assert info.fps == pytest.approx(25.0)
            assert video.get_batch([0, 23]).shape == (2, 80, 96, 3)
    assert not list((small_dataset / "videos").glob(".*"))  # no partial files left behind


def test_same_seed_gives_the_same_dataset_and_another_seed_another(small_dataset, tmp_path):
    again = generate_dataset(tmp_path / "again", SMALL)
    for name in ("manifest.json", "train.txt", "test.txt"):
        assert (again / name).read_text() == (small_dataset / name).read_text()
    # The seed fixes the frames; their H.264 encoding is not bit-reproducible (libx264 encoded the
    # same frames to different bytes run to run on the loaded CI machine, even on one thread: the
    # cause of this test's old, occasional failure), so each file is compared with the frames.
    rendered = render_video(sample_routine(SMALL, 1), SMALL).astype(np.int16)
    for folder in (small_dataset, again):
        decoded = decode(folder / "videos" / "syn_0001.mp4").astype(np.int16)
        assert decoded.shape == rendered.shape and np.abs(decoded - rendered).mean() < 8  # H.264 + 4:2:0 at 96x80
    another = decode(again / "videos" / "syn_0002.mp4").astype(np.int16)
    assert np.abs(another - rendered).mean() > 2 * np.abs(decoded - rendered).mean()
    other = [sample_routine(dataclasses.replace(SMALL, seed=4), index).score for index in range(6)]
    assert other != [sample_routine(SMALL, index).score for index in range(6)]


def test_rerun_keeps_finished_videos_remakes_missing_ones_and_grows(tmp_path):
    config = dataclasses.replace(SMALL, num_videos=3)
    out = generate_dataset(tmp_path / "dataset", config)
    videos = out / "videos"
    kept = (videos / "syn_0000.mp4").stat().st_mtime_ns
    original = decode(videos / "syn_0002.mp4").astype(np.int16)
    (videos / "syn_0002.mp4").unlink()
    (videos / ".syn_0002.partial.mp4").write_bytes(b"interrupted")  # a crash mid-write
    made = []
    generate_dataset(out, dataclasses.replace(config, num_videos=4), progress=made.append)
    assert made == ["syn_0000", "syn_0001", "syn_0002", "syn_0003"]
    assert (videos / "syn_0000.mp4").stat().st_mtime_ns == kept
    # The same frames encoded anew: libx264 does not encode them to the same pictures every time
    # (it reads uninitialised memory: under MALLOC_PERTURB_ every write is the same), so this once
    # exact comparison failed now and then. Measured over 20 writes of this clip and another: up
    # to 1.8 levels mean difference between writes; a different video is ~55 levels away.
    assert np.abs(decode(videos / "syn_0002.mp4").astype(np.int16) - original).mean() < 5.0
    assert sorted(path.name for path in videos.iterdir()) == [f"syn_000{i}.mp4" for i in range(4)]
    # Video i does not depend on how many videos there are.
    assert [v["score"] for v in json.loads((out / "manifest.json").read_text())["videos"][:3]] == \
        [sample_routine(config, index).score for index in range(3)]


def test_a_folder_made_with_other_settings_is_refused(small_dataset):
    with pytest.raises(SyntheticDatasetError, match=r"other settings \(width: 96 -> 128\)"):
        generate_dataset(small_dataset, dataclasses.replace(SMALL, width=128))


def test_cli_writes_a_dataset_and_reports_bad_settings_in_one_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli([str(out), "--videos", "2", "--seed", "5", "--set", "num_frames=24", "--set", "width=64",
                "--set", "height=64", "--quiet"]) == 0
    assert sorted(path.name for path in (out / "videos").iterdir()) == ["syn_0000.mp4", "syn_0001.mp4"]
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 5
    capsys.readouterr()
    assert cli([str(out), "--videos", "2", "--quiet"]) == 2  # seed 0 now, the folder holds seed 5
    error = capsys.readouterr().err
    assert error.startswith("aqa-synthetic: error:") and "seed: 5 -> 0" in error and error.count("\n") == 1


def test_scores_follow_the_formula_and_spread_over_the_range():
    assert execution_score(dict.fromkeys(SCORE_WEIGHTS, 1.0)) == pytest.approx(10.0)
    assert execution_score(dict.fromkeys(SCORE_WEIGHTS, 0.0)) == 0.0
    config = SyntheticDatasetConfig()
    routines = [sample_routine(config, index) for index in range(100)]
    scores = np.array([routine.score for routine in routines])
    assert scores.min() < 1.5 and scores.max() > 8.5 and scores.std() > 2.0
    assert ((scores >= 0) & (scores <= 10)).all()
    for routine in routines:
        assert routine.execution == pytest.approx(execution_score(routine.quality), abs=1e-3)
        assert abs(routine.score - routine.execution) < 5 * config.label_noise or routine.score in (0.0, 10.0)
        assert any(move != "jump" for move in routine.moves)  # every routine turns, so rotation shows
    difficulty = [routine.difficulty for routine in routines]
    assert abs(spearmanr(difficulty, scores)[0]) < 0.3  # difficulty is recorded, not scored


def test_score_is_not_in_pixel_statistics_but_in_the_motion():
    """Brightness and colour carry no score; frame-difference energy and the lean's jerk do."""
    config = SyntheticDatasetConfig(num_videos=100, num_frames=32, width=64, height=64, moves=2, seed=0)
    scores, pixels, motion = [], [], []
    for index in range(config.num_videos):
        routine = sample_routine(config, index)
        video = render_video(routine, config).astype(np.float32)
        histogram = [np.histogram(video[..., c], bins=4, range=(0, 256))[0] for c in range(3)]
        pixels.append([video.mean(), *video.mean(axis=(0, 1, 2)), *np.concatenate(histogram)])
        lean = athlete_trajectory(routine, config)[:, 4]
        motion.append([np.abs(np.diff(video, n=2, axis=0)).mean(), np.abs(np.diff(lean, n=3)).mean()])
        scores.append(routine.score)
    pixel_rho = [spearmanr(column, scores)[0] for column in np.array(pixels).T if np.ptp(column) > 0]
    assert max(abs(rho) for rho in pixel_rho) < 0.3, pixel_rho
    frame_energy_rho, lean_jerk_rho = (spearmanr(column, scores)[0] for column in np.array(motion).T)
    assert frame_energy_rho < -0.3  # shaky, wobbly routines change more from frame to frame
    assert lean_jerk_rho < -0.8


def test_quality_changes_only_the_athlete():
    config = dataclasses.replace(SMALL, num_frames=16)
    routine = sample_routine(config, 0)
    good, bad = (dataclasses.replace(routine, quality=dict.fromkeys(SCORE_WEIGHTS, q)) for q in (1.0, 0.0))
    good_video, bad_video = render_video(good, config), render_video(bad, config)
    assert np.abs(good_video.astype(int) - bad_video).mean() > 1.0  # the motion differs...
    outside = np.ones(good_video.shape[:3], bool)
    for boxes in (athlete_boxes(good, config), athlete_boxes(bad, config)):
        for t, (x1, y1, x2, y2) in enumerate(boxes):
            pad_x, pad_y = 0.15 * (x2 - x1) + 2, 0.1 * (y2 - y1) + 2
            outside[t, max(0, int(y1 - pad_y)):int(y2 + pad_y) + 1, max(0, int(x1 - pad_x)):int(x2 + pad_x) + 1] = False
    assert outside.mean() > 0.3
    np.testing.assert_array_equal(good_video[outside], bad_video[outside])  # ...the scene does not


def test_blazepose_finds_the_athlete_in_most_frames(tmp_path):
    config = SyntheticDatasetConfig(num_videos=2, seed=1)
    out = generate_dataset(tmp_path / "dataset", config)
    with BlazePoseDetector(DetectorConfig(kind="blazepose")) as detector:
        for index in range(config.num_videos):
            routine = sample_routine(config, index)
            frames = decode(out / "videos" / f"{routine.name}.mp4")[::3]
            truth = athlete_boxes(routine, config)[::3]
            hits = [len(found) == 1 and on_athlete(found[0], box) for found, box in zip(detector.detect(frames), truth)]
            assert np.mean(hits) >= 0.75, (routine.name, hits)


def on_athlete(found: np.ndarray, truth: np.ndarray) -> bool:
    """The detection lies mostly inside the athlete's cut-out and spans a fair part of its height."""
    x1, y1 = np.maximum(found[:2], truth[:2])
    x2, y2 = np.minimum(found[2:4], truth[2:4])
    inside = max(0.0, x2 - x1) * max(0.0, y2 - y1) / ((found[2] - found[0]) * (found[3] - found[1]))
    return inside >= 0.7 and (found[3] - found[1]) >= 0.4 * (truth[3] - truth[1])
