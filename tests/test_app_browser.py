"""aqa-app in a real browser: a real server on a free localhost port, Debian's headless chromium
driven through its chromedriver, real clips from ../shared/data/videos uploaded and scored.

Skips with its reason where chromium or chromedriver is missing (``.ci/run`` installs them).
The screenshot it takes lands in the test's folder; with ``AQA_SCREENSHOT_TO=docs/images/aqa-app.png``
it is also copied there: that is how the README's picture is made.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402
from test_athlete import inverted_athlete_scene  # noqa: E402

from aqa.pipeline.train.cli import cli as train_cli  # noqa: E402
from aqa.video_writer import write_video  # noqa: E402
from synthetic_video import write_moving_shapes  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_data,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="Debian's chromium and chromedriver are not installed (.ci/run installs them with "
                              "apt-get install chromium chromium-driver)"),
]

MAX_UPLOAD_MB = 5
RESULT_TIMEOUT_S = 300  # a 10-second clip on a 2-core CI machine, waiting behind another job
PROGRESS_STAGES = ("decoding the video", "tracking the athlete (300 frames)", "features: clip", "scoring")
JOB_LINE = re.compile(r"job (\d+) (started|finished) at ([\d.]+)(?:: (\S+) \((\d+) running, limit (\d+)\))?")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# An FSPN small enough to train in a second on the tiny store (3 clips a video, 4 training videos).
TINY_FSPN = ["--head", "fspn", *(item for key, value in [
    ("parser_channels", "[32,16,16]"), ("smt_widths", "[16,32]"), ("smt_blocks", 1), ("smt_heads", 4),
    ("fusion_dim", 32), ("regressor_dim", 32), ("num_bins", 4), ("num_exemplars", 2), ("train_window", 3)]
    for item in ("--set", f"head.{key}={value}"))]


@pytest.fixture(scope="module")
def app(trained, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``aqa-app`` serving the tiny trained CoFInAl checkpoint and an FSPN trained on the same
    features, one job at a time: (its URL, its log)."""
    root, dataset, checkpoint = trained
    folder = tmp_path_factory.mktemp("app")
    log = folder / "server.log"
    assert train_cli([str(root / "f.h5"), *TINY_FSPN, "--score", "score", "--out", str(folder / "fspn"),
                      "--epochs", "2", "--quiet"]) == 0
    port = free_port()
    example = sorted((dataset / "videos").glob("*.mp4"))[0]
    command = [sys.executable, "-m", "aqa.pipeline.app", "--checkpoint", str(checkpoint), "--checkpoint",
               str(folder / "fspn" / "model.pt"), "--port", str(port),
               "--max-concurrent", "1", "--max-queue", "4", "--max-upload-mb", str(MAX_UPLOAD_MB), "--workers", "2",
               "--examples", str(example), "--work-dir", str(folder / "jobs")]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                pytest.fail(f"aqa-app exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"aqa-app did not answer within 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def browser() -> Iterator:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500",
                     "--mute-audio"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, timeout: float, what: str, driver=None):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what`` (and the page)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            page = driver.find_element(By.TAG_NAME, "body").text if driver else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; the page says:\n{page[-2000:]}")
        time.sleep(0.3)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 60, "the page", driver)


def upload(driver, path: Path) -> None:
    driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))


def wait_uploaded(driver, path: Path) -> None:
    wait_for(lambda: path.stem in driver.find_element(By.ID, "upload").text, 60, f"{path.name} to upload", driver)


def press_score(driver, path: Path) -> None:
    """Score ``path`` once its upload shows in the page."""
    wait_uploaded(driver, path)
    driver.find_element(By.ID, "score-button").click()


def summary_text(driver) -> str:
    """The result's text (the progress bar shows over the summary while a job runs: not its text)."""
    return driver.find_element(By.CSS_SELECTOR, "#summary [data-testid=markdown]").text.strip()


def summary(driver, timeout: float = RESULT_TIMEOUT_S) -> str:
    return wait_for(lambda: summary_text(driver), timeout, "the result", driver)


def job_lines(log: Path) -> list[tuple[int, str, float, str | None, int | None]]:
    """The server's job log: (job, started/finished, epoch seconds, video, jobs running)."""
    found = []
    for match in JOB_LINE.finditer(log.read_text()):
        number, event, at, video, running, _ = match.groups()
        found.append((int(number), event, float(at), video, int(running) if running else None))
    return found


def test_scores_a_real_clip_and_shows_score_overlay_plot_and_json(app, shared_videos, tmp_path):
    url, _ = app
    clip = shared_videos / "basketball.mp4"  # 10 s, 300 frames at 29.97 fps, 426x240
    with browser() as driver:
        open_page(driver, url)
        upload(driver, clip)
        press_score(driver, clip)
        stages_seen = set()

        def result_watching_progress() -> str:
            body = driver.find_element(By.TAG_NAME, "body").text
            stages_seen.update(stage for stage in PROGRESS_STAGES if stage in body)
            return summary_text(driver)

        text = wait_for(result_watching_progress, RESULT_TIMEOUT_S, "the result", driver)
        assert {"tracking the athlete (300 frames)", "features: clip"} <= stages_seen, stages_seen
        band = r"scores (-?[\d.]+--?[\d.]+|below -?[\d.]+|above -?[\d.]+)"
        beside = r"(; the score is (below|above) that band because it weighs every grade by its likelihood)?"
        assert re.match(rf"score: -?\d+\.\d\d\nGrade \d+ of \d+ \({band}\), \d+% likely{beside}\n", text), text
        link = driver.find_element(By.CSS_SELECTOR, "#report a").get_attribute("href")
        with urllib.request.urlopen(link, timeout=30) as response:
            document = json.load(response)
        (report,) = document["predictions"]
        assert report["video"] == "basketball.mp4" and report["frames"] == 300  # its name, not the server's path
        assert text.startswith(f"score: {report['score']:.2f}\nGrade {report['grade']} of {report['grades']}")
        assert "/tmp" not in driver.find_element(By.TAG_NAME, "body").text
        playable = wait_for(lambda: driver.execute_script(
            "const v = document.querySelector('#overlay video');"
            "return v && v.readyState >= 1 ? [v.duration, v.videoWidth, v.videoHeight] : null;"), 30,
            "the overlay video to load", driver)
        duration, width, height = playable
        assert duration == pytest.approx(300 / 29.97, abs=0.2) and width == 426  # the overlay adds a timeline strip
        assert height > 240
        plot_width = wait_for(lambda: driver.execute_script(
            "const i = document.querySelector('#timeline img'); return i && i.complete ? i.naturalWidth : 0;"),
            30, "the timeline plot", driver)
        assert plot_width >= 400
        screenshot = tmp_path / "aqa-app.png"
        driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 50_000
        if os.environ.get("AQA_SCREENSHOT_TO"):
            shutil.copyfile(screenshot, os.environ["AQA_SCREENSHOT_TO"])


def test_bad_uploads_get_messages_a_short_clip_warnings_and_an_example_a_score(app, trained, tmp_path):
    url, _ = app
    notes = tmp_path / "notes.mp4"
    notes.write_text("These are a coach's notes, not a video.\n")
    large = tmp_path / "large.mp4"
    large.write_bytes(os.urandom((MAX_UPLOAD_MB + 1) * 1_000_000))
    with browser() as driver:
        open_page(driver, url)
        upload(driver, notes)
        press_score(driver, notes)
        text = summary(driver, 60)
        assert text == ("Could not score notes.mp4: not a readable video: its contents are not in a video format "
                        "FFmpeg reads (a file of another kind renamed, or damaged)"), text
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Traceback" not in body and "/tmp" not in body and "Errno" not in body
        assert not driver.find_elements(By.CSS_SELECTOR, "#overlay video")

        open_page(driver, url)
        upload(driver, large)
        wait_for(lambda: "exceed the maximum allowed size" in driver.find_element(By.TAG_NAME, "body").text, 60,
                 "the upload limit's message", driver)

        open_page(driver, url)
        short = tmp_path / "short.mp4"  # 5 frames of shapes: shorter than a clip, nobody in it
        write_moving_shapes(short, num_frames=5)
        upload(driver, short)
        press_score(driver, short)
        text = summary(driver, 120)
        assert re.match(r"score: -?\d+\.\d\d", text), text
        assert "Warning: the athlete was never found" in text and "Warning: the video (5 frames) is shorter" in text

        open_page(driver, url)
        lost = tmp_path / "lost.mp4"  # a real person only from frame 20 of 40: the first second not located
        frames, _ = inverted_athlete_scene(num_frames=40, hidden=range(0, 20))
        write_video(lost, frames, 20.0)
        upload(driver, lost)
        press_score(driver, lost)
        text = summary(driver, 180)
        assert re.search(r"Warning: the athlete was not located on \d+% of the scored frames .*0\.0-1\.0 s", text), text

        open_page(driver, url)
        example = sorted((trained[1] / "videos").glob("*.mp4"))[0]
        driver.find_element(By.XPATH, f"//button[contains(., '{example.name}')]").click()
        press_score(driver, example)
        assert re.match(r"score: -?\d+\.\d\d", summary(driver)) and example.name in summary(driver)


def test_two_sessions_at_once_both_get_results_one_job_at_a_time(app, shared_videos):
    url, log = app
    clips = [shared_videos / "makeup.avi", shared_videos / "olympic_dive.gif"]
    with browser() as first, browser() as second:
        for driver, clip in zip((first, second), clips):
            open_page(driver, url)
            upload(driver, clip)
        for driver, clip in zip((first, second), clips):
            wait_uploaded(driver, clip)
        before = len(job_lines(log))
        for driver in (first, second):
            driver.find_element(By.ID, "score-button").click()
        both_asked_at = time.time()
        results = [summary(driver) for driver in (first, second)]
    for clip, text in zip(clips, results):
        assert re.match(r"score: -?\d+\.\d\d", text), (clip.name, text)
        assert clip.name in text
    events = job_lines(log)[before:]
    started = sorted((at, number, running) for number, event, at, _, running in events if event == "started")
    finished = {number: at for number, event, at, _, _ in events if event == "finished"}
    assert len(started) == 2 and len(finished) == 2, events
    assert all(running == 1 for _, _, running in started)  # never two jobs inside the scorer
    (first_start, first_job, _), (second_start, _, _) = started
    assert second_start >= finished[first_job]  # the second waited for the first to finish...
    assert both_asked_at < finished[first_job]  # ...although both were asked for while the first ran


def test_the_server_reads_no_path_but_an_upload(app, shared_videos):
    """Gradio's API takes file references: one naming a file on the server that nobody uploaded is
    refused before our scorer sees it (no job starts)."""
    url, log = app
    before = len(job_lines(log))
    payload = {"data": [{"path": str(shared_videos / "olympic_dive.gif"), "meta": {"_type": "gradio.FileData"}},
                        "run/model.pt", None]}
    request = urllib.request.Request(url + "gradio_api/call/score", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/score/{event}", timeout=120) as response:
        stream = response.read().decode()
    assert stream.startswith("event: error"), stream
    assert len(job_lines(log)) == before and "was not uploaded by a user" in log.read_text()
    with pytest.raises(urllib.error.HTTPError):  # nor does it serve files from beside the examples
        urllib.request.urlopen(f"{url}gradio_api/file={shared_videos / 'olympic_dive.gif'}", timeout=30)


def test_an_fspn_picked_from_the_list_shows_sub_actions_and_exemplars(app, shared_videos):
    url, _ = app
    clip = shared_videos / "olympic_dive.gif"  # 21 frames at 10 fps
    with browser() as driver:
        open_page(driver, url)
        driver.find_element(By.CSS_SELECTOR, "#checkpoint input").click()
        options = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "[role=option]"), 10, "the model list", driver)
        assert [option.text.split("\n")[-1] for option in options] == ["run/model.pt", "fspn/model.pt"]
        next(option for option in options if option.text.endswith("fspn/model.pt")).click()
        upload(driver, clip)
        press_score(driver, clip)
        text = summary(driver)
        assert re.match(r"score: -?\d+\.\d\d\n", text) and "scored by a fspn head" in text, text
        assert re.search(r"sub-action 1: \d+\.\d\d-\d+\.\d\d s", text), text
        assert re.search(r"voted over 2 exemplars: syn_\d+ \(-?\d+\.\d\d\), syn_\d+", text), text
        wait_for(lambda: driver.execute_script(
            "const i = document.querySelector('#timeline img'); return i && i.complete ? i.naturalWidth : 0;"),
            30, "the timeline plot", driver)


SHOTS_TO = "AQA_SHOTS_TO"  # a folder: the phone-video test's screenshots are copied there too
DESKTOP, PHONE = (1280, 800), (400, 800)  # CSS pixels: a laptop's window, a phone held upright


def portrait_phone_video(path: Path) -> Path:
    """What a coach's phone films upright: stored 1280x720 with a display rotation of 90 degrees
    (shown 720x1280), 43 frames at 20 fps of a real person who appears at frame 20 (a warning), and
    3 frames past the last whole clip of 8 (frames not scored)."""
    from aqa.extractors.video import probe_video

    upright, _ = inverted_athlete_scene(num_frames=43, size=(720, 1280), hidden=range(0, 20))
    stored = np.ascontiguousarray(np.rot90(upright, k=-1, axes=(1, 2)))  # a player turns it back by 90
    write_video(path, stored, 20.0, rotation=90)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (720, 1280, 90)
    return path


def set_viewport(driver, size: tuple[int, int], phone: bool) -> None:
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone})


def progress_bars(driver) -> list[list[float]]:
    """Each progress bar shown now: [top, bottom] in the viewport."""
    return driver.execute_script(
        "return [...document.querySelectorAll('[role=progressbar]')].filter(b => b.offsetParent !== null)"
        ".map(b => { const r = b.getBoundingClientRect(); return [r.top, r.bottom]; });")


def score_watching_progress(driver, url: str, video: Path) -> tuple[str, list[list[list[float]]]]:
    """Score ``video`` on a fresh page: the summary's text and the progress bars seen meanwhile."""
    open_page(driver, url)
    upload(driver, video)
    press_score(driver, video)
    seen = []

    def result() -> str:
        seen.append(progress_bars(driver))
        return summary_text(driver)

    return wait_for(result, RESULT_TIMEOUT_S, "the result", driver), [bars for bars in seen if bars]


def layout(driver) -> dict:
    """Where the page put the overlay video, its caption's spot, the plot and the report link."""
    return driver.execute_script("""
        const v = document.querySelector('#overlay video'), r = v.getBoundingClientRect();
        const column = document.querySelector('#summary').parentElement.getBoundingClientRect();
        const top = document.elementFromPoint(r.left + 0.08 * r.width, r.top + 0.025 * r.height);
        const img = document.querySelector('#timeline img');
        return {natural: [v.videoWidth, v.videoHeight], shown: [r.width, r.height], column: column.width,
                window: [window.innerWidth, window.innerHeight], caption_on_top: top === v || v.contains(top),
                plot_natural: [img.naturalWidth, img.naturalHeight], plot_shown: [img.clientWidth, img.clientHeight],
                download: document.querySelector('#report a').getAttribute('download')};""")


def test_a_portrait_phone_video_on_a_computer_and_a_phone(app, trained, tmp_path):
    """A rotated phone video scored on the page at 1280 and 400 px: the score with its scale and the
    model's one-line description, the warnings in words, the video upright at its own size with its
    caption in view and a legend, one progress bar (in view on the phone), a plot a phone can read."""
    from aqa.models.checkpoint import load_checkpoint

    url, _ = app
    _, _, info = load_checkpoint(trained[2], device="cpu")  # the model the page offers first
    video = portrait_phone_video(tmp_path / "phone.mp4")
    with browser() as driver:
        for name, size, phone in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
            set_viewport(driver, size, phone)
            text, bars = score_watching_progress(driver, url, video)
            assert bars and all(len(shown) == 1 for shown in bars), bars  # one bar (was one per output: three)
            if phone:  # under the inputs, the summary is scrolled into view: its bar is on the screen
                assert all(0 <= top and bottom <= size[1] for (top, bottom), in bars), bars
            body = driver.find_element(By.TAG_NAME, "body").text
            assert not [raw for raw in ("Traceback", "Errno", "/tmp", "Internal error") if raw in body], body
            link = driver.find_element(By.CSS_SELECTOR, "#report a").get_attribute("href")
            with urllib.request.urlopen(link, timeout=30) as response:
                (report,) = json.load(response)["predictions"]
            assert (report["video"], report["frames"]) == ("phone.mp4", 43)
            assert text.startswith(f"score: {report['score']:.2f}"), text
            assert info.description and report["model_description"] == info.description
            assert info.description in body  # the model says what it is
            low, high = report["scale"]["low"], report["scale"]["high"]
            assert f"{low:.2f}-{high:.2f}" in text  # the score's scale
            assert re.search(r"Warning: the athlete was not located on \d+% of the scored frames .*0\.\d-1\.0 s",
                             text), text
            left = report["frames_not_scored"]  # 43 frames, 5 clips of 8: 3 frames left over, said
            assert left["start_frames"] + left["end_frames"] == 3 and "\nnot scored: " in text, text
            legend = driver.find_element(By.ID, "legend").text
            assert legend.startswith("Athlete boxes: ") and "Strip under the video: one cell per scored clip" in legend
            wait_for(lambda: driver.execute_script(
                "const v = document.querySelector('#overlay video'); return v && v.readyState >= 1;"), 30,
                "the overlay video to load", driver)
            placed = layout(driver)
            (width, height), (shown_width, shown_height) = placed["natural"], placed["shown"]
            assert (width, height) == (720, 1280 + 24)  # upright, with its strip
            assert shown_width <= min(width, placed["column"]) + 1 and shown_height <= 0.8 * size[1] + 1
            assert shown_width / shown_height == pytest.approx(width / height, rel=0.02)  # never stretched
            assert placed["caption_on_top"]  # no label over the score burnt into the video
            assert placed["download"] == "phone_score.json"
            plot_width, (plot_shown_width, plot_shown_height) = placed["plot_natural"][0], placed["plot_shown"]
            assert plot_shown_width <= plot_width and plot_shown_height >= 200  # 125 px tall on a phone before
            for screen in range(4):  # the page a screen at a time, from the top (what is above the fold first)
                driver.execute_script("window.scrollTo(0, arguments[0] * window.innerHeight)", screen)
                driver.save_screenshot(str(tmp_path / f"aqa-app-{name}-{screen}.png"))
    if os.environ.get(SHOTS_TO):
        Path(os.environ[SHOTS_TO]).mkdir(parents=True, exist_ok=True)
        for path in tmp_path.glob("aqa-app-*.png"):
            shutil.copyfile(path, Path(os.environ[SHOTS_TO]) / path.name)
