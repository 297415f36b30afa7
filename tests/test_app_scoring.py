"""aqa-app's rules without a browser: what uploads it accepts, the job gauge, one scored upload's
outputs, the timeline figure and the command line's refusals (the page itself: test_app_browser)."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from predictions import make_prediction

from aqa.pipeline.app import checkpoint_names, demo_model, serve
from aqa.pipeline.app.cli import cli as app_cli
from aqa.pipeline.app.scoring import (
    AppLimits,
    JobGauge,
    UploadError,
    check_length,
    check_upload,
    score_upload,
    summary_markdown,
)
from aqa.pipeline.predict import load_predictor
from aqa.pipeline.predict.result import (
    ClipSpan,
    ExemplarVote,
    FramesNotScored,
    GradedDetail,
    ParsedDetail,
    ProcedureFocus,
    ScoreScale,
    SubAction,
)
from aqa.pipeline.predict.timeline import timeline_figure


def test_uploads_that_are_not_videos_or_too_large_are_refused_in_one_line(tmp_path):
    limits = AppLimits(max_upload_mb=0.01)
    cases = {"notes.txt": b"hello", "empty.mp4": b"", "large.mp4": b"\0" * 20_000}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(UploadError, match=r"notes.txt: not a video file \(expected one of .*\.mp4"):
        check_upload(tmp_path / "notes.txt", limits)
    with pytest.raises(UploadError, match="empty.mp4: the file is empty"):
        check_upload(tmp_path / "empty.mp4", limits)
    with pytest.raises(UploadError, match="large.mp4: 0.0 MB is over this server's upload limit of 0.01 MB"):
        check_upload(tmp_path / "large.mp4", limits)
    with pytest.raises(UploadError, match="gone.mp4: the upload is no longer on the server"):
        check_upload(tmp_path / "gone.mp4", limits)
    (tmp_path / "small.MP4").write_bytes(b"\0" * 100)
    check_upload(tmp_path / "small.MP4", limits)  # the bytes are the decoder's business


def test_a_video_longer_than_the_page_scores_is_refused_before_decoding(tmp_path):
    """Issue 24, defect 4: a 391 KB upload of 30,000 tiny frames held the page's only worker for
    about 25 minutes (every tool's own limit is 3 hours); the page now scores videos of minutes."""
    from aqa.video_writer import write_video

    frames = np.zeros((40, 32, 48, 3), np.uint8)
    write_video(tmp_path / "slow.mp4", frames, 1.0)  # 40 s
    write_video(tmp_path / "fast.mp4", frames, 1000.0)  # 0.04 s, but 40 frames
    check_length(tmp_path / "slow.mp4", AppLimits(max_minutes=1.0))
    with pytest.raises(UploadError, match=r"slow.mp4: 40 frames \(0.7 min\) is longer than this page scores "
                                          r"\(0.5 min, 900 frames\); score it with aqa-predict"):
        check_length(tmp_path / "slow.mp4", AppLimits(max_minutes=0.5))
    with pytest.raises(UploadError, match="fast.mp4: 40 frames"):
        check_length(tmp_path / "fast.mp4", AppLimits(max_minutes=1 / 60))  # 30 frames at most
    from aqa.pipeline.app.cli import get_args_parser

    assert get_args_parser().parse_args([]).max_minutes == AppLimits().max_minutes == 10.0


def test_limits_must_be_positive():
    for bad in ({"max_upload_mb": 0}, {"max_concurrent": 0}, {"max_queue": 0}, {"max_minutes": 0}):
        with pytest.raises(ValueError):
            AppLimits(**bad)


def test_the_gauge_counts_jobs_running_at_once_and_logs_each(caplog):
    gauge = JobGauge(limit=2)
    inside = threading.Barrier(2)

    def job(name):
        with gauge.job(name):
            inside.wait(timeout=10)  # both are inside at the same moment

    with caplog.at_level(logging.INFO, logger="aqa.pipeline.app.scoring"):
        threads = [threading.Thread(target=job, args=(f"v{i}.mp4",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert gauge.peak == 2 and gauge.running == 0
    started = [r.getMessage() for r in caplog.records if " started at " in r.getMessage()]
    assert len(started) == 2 and any("(2 running, limit 2)" in line for line in started)
    assert sum(" finished at " in r.getMessage() for r in caplog.records) == 2


def test_a_scored_upload_names_the_upload_and_writes_the_json_and_overlay(trained, tmp_path):
    _, dataset, checkpoint = trained
    upload = sorted((dataset / "videos").glob("*.mp4"))[0]
    stages = []
    with load_predictor(checkpoint, device="cpu", workers=1) as predictor:
        result = score_upload(predictor, upload, tmp_path / "job-1", checkpoint_name="run/model.pt",
                              on_stage=lambda stage, done, total: stages.append((stage, done, total)))
    document = json.loads(result.json_path.read_text())
    assert document["checkpoint"] == "run/model.pt" and document["failures"] == []
    (report,) = document["predictions"]
    assert report["video"] == upload.name  # never the server's path
    assert report == json.loads(json.dumps(result.prediction.to_json()))
    assert result.overlay is not None and result.overlay.stat().st_size > 1000
    assert result.json_path.name == f"{upload.stem}_score.json"  # the name the download link offers
    boxes, strip = result.legend.split("  \n")
    assert boxes.startswith("Athlete boxes: green detected") and boxes.endswith(".")
    assert strip.startswith(f"Strip under the video: one cell per scored clip ({report['clips']})")
    width, height = result.figure.get_size_inches() * result.figure.dpi
    assert width <= 600 and height >= 0.65 * width  # legible on a phone's 335 px (8 x 3 inches was not)
    grade = f"**Grade {report['grade']} of {report['grades']}"
    assert result.summary.startswith(f"## score: {report['score']:.2f}\n\n{grade}")
    order = [stage for stage, _, _ in stages]
    assert order[:2] == ["decoding", "tracking"] and order[-2:] == ["scoring", "overlay"]
    features = [(done, total) for stage, done, total in stages if stage == "features"]
    assert features[0][0] == 0 and features[-1] == (report["clips"], report["clips"])
    assert ("tracking", 0, report["frames"]) in stages
    lines = [line for line in result.figure.axes[0].get_lines() if line.get_label().startswith("procedure ")]
    assert len(lines) == len(report["procedures"])  # one attention line per procedure
    assert len(lines[0].get_xdata()) == report["clips"]


def test_the_summary_and_timeline_of_an_fspn_report():
    report = make_prediction(
        score=81.234, score_name="total", head="fspn", athlete_frames={"detected": 90, "fallback": 6, "held": 0},
        warnings=("the video is damaged: only its readable frames were scored",),
        detail=ParsedDetail(sub_actions=(SubAction(1, 0.0, 1.5), SubAction(2, 1.5, 4.0)),
                            exemplars=(ExemplarVote(3, 80.5, "dive_017"), ExemplarVote(5, 82.0))))
    text = summary_markdown(report)
    assert text.startswith("## total: 81.23\n")
    assert "> **Warning:** the video is damaged" in text
    assert "Athlete boxes: found by the detector on 90 frames, the whole frame (athlete not found) on 6." in text
    assert "- sub-action 2: 1.50-4.00 s" in text and "voted over 2 exemplars: dive_017 (80.50), #5 (82.00)" in text
    figure = timeline_figure(report)
    axes = figure.axes[0]
    assert len(axes.patches) == 2 and axes.get_title() == "parsed sub-actions (FSPN)"
    assert axes.get_xlim() == (0.0, 4.0)


def test_the_summary_says_what_the_text_report_says():
    """The scale, the model's line and the frames no clip covers are shown; a procedure's moment only
    where the text report names it, and the overlay's strip shaded only then (seen failing before: none
    of the three shown, and 'procedure 1 attends most to ... (clip 1)' for attention spread evenly)."""
    from aqa.pipeline.app.scoring import overlay_legend

    even = ProcedureFocus(procedure=1, peak_clip=1, peak_start_s=0.4, peak_end_s=0.8, peak_vs_even=1.2,
                          clear_peak=False, attention=(0.18, 0.24, 0.2, 0.2, 0.18))
    report = make_prediction(
        score=6.5, head="cofinal", frames=43, fps=20.0, clips=5, athlete_frames={"detected": 40, "held": 3},
        model_description="Learned synthetic motion; not a diving judge.", scale=ScoreScale(0.35, 9.54, 30),
        frames_not_scored=FramesNotScored(0, 0.0, 3, 0.15, 0, 8), detail=GradedDetail(procedures=(even,)),
        clip_spans=tuple(ClipSpan(0.4 * index, 0.4 * (index + 1), 1.0) for index in range(5)))
    text = summary_markdown(report)
    assert "*Scores seen in training: 0.35-9.54, 30 videos*" in text
    assert "*Model: Learned synthetic motion; not a diving judge.*" in text
    assert "- not scored: the last 0.15 s (3 frames)" in text
    assert "spread about evenly" in text and "procedure 1" not in text
    axes = timeline_figure(report).axes[0]
    assert axes.get_title() == "attention per clip: even, no moment stands out"
    # From 0 with the even share drawn (autoscaled, 0.18-0.24 filled the plot: even attention looked peaked)
    assert axes.get_ylim()[0] == 0 and axes.get_ylim()[1] >= 2 * 0.2
    assert [line.get_ydata()[0] for line in axes.get_lines() if line.get_label() == "even share"] == [0.2]
    assert "cell per scored clip (5), all alike; the white line" in overlay_legend(report)  # the strip is even too
    peaked = replace(even, clear_peak=True, peak_vs_even=2.4, attention=(0.1, 0.48, 0.2, 0.12, 0.1))
    report = report.with_changes(detail=GradedDetail(procedures=(peaked,)),
                                 clip_spans=tuple(replace(span, weight=weight)
                                                  for span, weight in zip(report.clip_spans, peaked.attention)))
    text = summary_markdown(report)
    assert "- where the model looked hardest (its 1 procedures" in text and "\n  - procedure 1: 0.40-0.80 s" in text
    assert "blue turning orange where the model's attention is highest" in overlay_legend(report)


def test_the_overlay_legend_names_only_what_the_video_shows():
    from aqa.pipeline.app.scoring import overlay_legend

    report = make_prediction(athlete_frames={"detected": 90, "interpolated": 0, "held": 0, "fallback": 6})
    assert overlay_legend(report) == ("Athlete boxes: green detected, grey never found (the whole frame used).  \n"
                                      "Strip under the video: one cell per scored clip (4), all alike; the white line "
                                      "is the frame shown.")  # no attention: the cells are alike
    report = make_prediction(athlete_frames={"detected": 0, "interpolated": 5, "held": 3, "fallback": 0},
                             weights=[0.1, 0.6, 0.2, 0.1])
    assert overlay_legend(report) == ("Athlete boxes: yellow estimated between detections, red not located (the last "
                                      "box kept).  \nStrip under the video: one cell per scored clip (4), blue "
                                      "turning orange where the model's attention is highest; the white line is the "
                                      "frame shown.")


def test_the_page_names_an_upload_once_and_never_where_the_server_keeps_it():
    from aqa.errors import VideoError
    from aqa.pipeline.app import page_reason

    upload = Path("/tmp/gradio/0123abcd/notes.mp4")
    error = VideoError(f"{upload}: not a readable video: its contents are not in a video format")
    assert page_reason(error, upload) == "not a readable video: its contents are not in a video format"


def test_checkpoints_get_short_distinct_names():
    assert checkpoint_names([Path("runs/dive/model.pt"), Path("runs/fspn/model.pt")]) == \
        ["dive/model.pt", "fspn/model.pt"]
    assert checkpoint_names([Path("a/run/model.pt"), Path("b/run/model.pt")]) == \
        ["a/run/model.pt", "b/run/model.pt"]


def test_the_demo_is_found_from_another_folder(tmp_path, monkeypatch):
    """aqa-app run elsewhere finds the model `make demo` wrote in the checkout, and its examples."""
    checkout = tmp_path / "checkout"
    (checkout / "demo_out" / "run").mkdir(parents=True)
    (checkout / "demo_out" / "run" / "model.pt").write_bytes(b"x")
    monkeypatch.setattr(demo_model, "CHECKOUT", checkout)
    monkeypatch.chdir(tmp_path)
    assert serve.resolve_checkpoints(None) == [checkout / "demo_out" / "run" / "model.pt"]
    (tmp_path / "demo_out" / "run").mkdir(parents=True)  # this folder's demo comes first
    (tmp_path / "demo_out" / "run" / "model.pt").write_bytes(b"x")
    assert demo_model.find_demo() == tmp_path / "demo_out"


def test_the_command_line_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no demo_out/ here
    monkeypatch.setattr(demo_model, "CHECKOUT", tmp_path / "checkout")  # nor in the checkout (make demo may have run)
    assert app_cli([]) == 2
    error = capsys.readouterr().err.strip()  # every place looked at, by its full path (seen failing: demo_out/...)
    assert error.startswith(f"aqa-app: error: no --checkpoint given and no demo model at {tmp_path}/demo_out/run/"
                            f"model.pt or {tmp_path}/checkout/demo_out/run/model.pt: run `make demo` in "
                            f"{tmp_path}/checkout") and "\n" not in error
    assert app_cli(["--checkpoint", "missing.pt"]) == 2
    assert capsys.readouterr().err.strip() == "aqa-app: error: --checkpoint missing.pt: no such file"
    (tmp_path / "model.pt").write_bytes(b"x")
    assert app_cli(["--checkpoint", "model.pt", "--max-concurrent", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert app_cli(["--checkpoint", "model.pt", "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"aqa-app: error: cannot listen on 127.0.0.1:{port} (")
    for port in ("99999", "-1"):  # 99999 was exit 3, an OverflowError from bind
        assert app_cli(["--checkpoint", "model.pt", "--port", port]) == 2
        assert capsys.readouterr().err.strip() == f"aqa-app: error: --port {port}: a port is a number from 1 to 65535"
    (tmp_path / "notes.txt").write_text("x")
    assert app_cli(["--checkpoint", "model.pt", "--examples", "notes.txt"]) == 2
    assert "--examples notes.txt: not a video file" in capsys.readouterr().err


def test_jobs_sharing_one_predictor_at_once_score_as_they_do_alone(trained, tmp_path):
    """``--max-concurrent 2``: two jobs run ``score_upload`` on the same LoadedPredictor (its worker pool
    and backbone) from two threads; each gets exactly the score it gets alone."""
    _, dataset, checkpoint = trained
    videos = sorted((dataset / "videos").glob("*.mp4"))[:2]
    with load_predictor(checkpoint, device="cpu", workers=2) as predictor:
        alone = [score_upload(predictor, video, tmp_path / f"alone-{i}", checkpoint_name="m").prediction.to_json()
                 for i, video in enumerate(videos)]
        together: dict[int, dict] = {}
        start = threading.Barrier(len(videos))

        def job(index: int) -> None:
            start.wait(timeout=30)
            together[index] = score_upload(predictor, videos[index], tmp_path / f"together-{index}",
                                           checkpoint_name="m").prediction.to_json()

        threads = [threading.Thread(target=job, args=(i,)) for i in range(len(videos))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert [together[i] for i in range(len(videos))] == alone


def test_one_ctrl_c_with_a_job_running_stops_the_job_and_the_server(trained, tmp_path):
    """Issue 24, defect 4: Ctrl-C while a video is being scored. Seen failing before: the job went on
    in Gradio's daemon thread while the interpreter shut down and the process aborted ("terminate
    called without an active exception", status -6), or waited on the job; now the job stops at its
    next step, the models close after it, and the server exits 0 after that one SIGINT."""
    from gradio_client import Client, handle_file

    from synthetic_video import write_moving_shapes

    _, _, checkpoint = trained
    video = tmp_path / "long.mp4"
    write_moving_shapes(video, num_frames=1200, height=128, width=128, seed=1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "aqa.pipeline.app", "--checkpoint", str(checkpoint),
                                   "--port", str(port), "--work-dir", str(tmp_path / "jobs"), "--workers", "1"],
                                  stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.5)
        job = Client(url, verbose=False).submit(handle_file(str(video)), checkpoint_names([checkpoint])[0], None,
                                                api_name="/score")
        while "clip" not in str(job.status().progress_data):  # the backbone is at work on its clips
            assert time.monotonic() < deadline and not job.done(), log_path.read_text()[-3000:]
            time.sleep(0.2)
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=150)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "stopping 1 running job(s)" in text and "terminate called" not in text and "Traceback" not in text
