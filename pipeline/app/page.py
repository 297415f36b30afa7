"""The page ``aqa-app`` serves: score a video in the browser.

A Gradio page: upload a video (or pick an example), press Score, follow the progress (decoding,
athlete tracking, features, scoring) and get the score with its grade or sub-actions, the overlay
video with the tracked athlete, a timeline of the clips, warnings, and the JSON ``aqa-predict
--json`` prints. The models load once, at start-up, with their worker pools kept warm; jobs queue
and at most ``--max-concurrent`` run at once. The server reads no path but the uploaded file, and
listens on localhost unless ``--host`` says otherwise. Everything runs offline.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqa.errors import AqaError, one_line
from aqa.models.streams import difficulty_use
from aqa.pipeline.app.scoring import AppLimits, JobGauge, check_length, check_upload, prune_jobs, score_upload
from aqa.pipeline.extract import VIDEO_SUFFIXES
from aqa.pipeline.predict import LoadedPredictor

log = logging.getLogger(__name__)

UPLOADS_KEPT_S = 3 * 3600

# Progress along one job, as the page's bar shows it: where each stage starts (0-1).
STAGE_AT = {"decoding": 0.02, "tracking": 0.08, "features": 0.35, "scoring": 0.9, "overlay": 0.93}
STAGE_SAYS = {"decoding": "decoding the video", "tracking": "tracking the athlete", "scoring": "scoring",
              "overlay": "drawing the overlay video"}


class ServerStopping(AqaError):
    """Ctrl-C stopped the server while a job was running; the job ends at its next step."""


class RunningJobs:
    """The threads scoring a video now, so that one Ctrl-C stops them before the models close.

    Gradio runs each job in a daemon thread and returns from ``launch`` at Ctrl-C; a job left running
    while the interpreter shuts down aborted the process ("terminate called without an active
    exception", status -6) or kept it waiting. :meth:`stop` makes every job raise
    :class:`ServerStopping` at its next progress step (a clip, a stage) and waits for them."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._lock:
            self._threads.add(threading.current_thread())
        try:
            self.check()
            yield
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def check(self) -> None:
        if self.stopping.is_set():
            raise ServerStopping("the server is stopping (Ctrl-C); score it again when it is back")

    def stop(self, timeout_s: float) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        if threads:
            log.info("aqa-app: stopping %d running job(s)", len(threads))
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class AppService:
    """What the page's handlers share: the loaded models (by the name the page lists), the
    limits, the job gauge and the folder where each job's overlay and JSON are written."""

    predictors: dict[str, LoadedPredictor]
    limits: AppLimits
    work_dir: Path
    examples: list[Path] = field(default_factory=list)
    gauge: JobGauge = field(init=False)
    jobs: RunningJobs = field(init=False, default_factory=RunningJobs)

    def __post_init__(self) -> None:
        self.gauge = JobGauge(self.limits.max_concurrent)

    @property
    def uses_difficulty(self) -> bool:
        """Whether any model offered needs, or picks its exemplars by, the video's difficulty degree."""
        return any(any(difficulty_use(predictor.head.config)) for predictor in self.predictors.values())


def checkpoint_names(paths: Sequence[Path]) -> list[str]:
    """A short, distinct name per checkpoint for the page's list: its folder and file name."""
    names = [f"{path.parent.name}/{path.name}" if path.parent.name else path.name for path in paths]
    if len(set(names)) < len(names):
        names = [str(path) for path in paths]
    return names


def score_handler(service: AppService):
    """The Score button's function: outputs (summary Markdown, overlay video, timeline figure,
    JSON file). Any failure becomes a line in the summary, never a stack trace."""
    import gradio as gr

    def score(upload: str | None, checkpoint: str, difficulty: float | None,
              progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (how Gradio finds it)
        if not upload:
            return "**Nothing to score:** upload a video (or pick an example) first.", None, "", None, None
        path = Path(upload)

        def on_stage(stage: str, done: int, total: int) -> None:
            service.jobs.check()  # Ctrl-C: the job ends here
            if stage == "features":
                share = done / max(total, 1)
                progress(STAGE_AT["features"] + share * (STAGE_AT["scoring"] - STAGE_AT["features"]),
                         desc=f"features: clip {done} of {total}")
            else:
                frames = f" ({total} frames)" if stage == "tracking" and total else ""
                progress(STAGE_AT[stage], desc=STAGE_SAYS[stage] + frames)

        prune_jobs(service.work_dir)
        with service.gauge.job(path.name) as number:
            try:
                with service.jobs.running():
                    check_upload(path, service.limits)
                    check_length(path, service.limits)
                    result = score_upload(service.predictors[checkpoint], path,
                                          Path(tempfile.mkdtemp(prefix=f"job-{number}-", dir=service.work_dir)),
                                          checkpoint_name=checkpoint, difficulty=difficulty or None,
                                          on_stage=on_stage)
            except AqaError as error:  # the page names the upload, never where the server keeps it
                return f"**Could not score {path.name}:** {page_reason(error, path)}", None, "", None, None
            except Exception as error:  # a bug: one line on the page, the traceback in the server's log
                log.exception("job %d (%s) failed", number, path.name)
                return f"**Internal error while scoring {path.name}:** {type(error).__name__}", None, "", None, None
        overlay = str(result.overlay) if result.overlay else None
        return result.summary, overlay, result.legend, result.figure, str(result.json_path)

    return score


def page_reason(error: AqaError, upload: Path) -> str:
    """An error's line for the page: the upload by its name, never where the server keeps it, and
    not named twice ("Could not score a.mp4: a.mp4: not a readable video...")."""
    text = one_line(error).replace(str(upload), upload.name)
    return text.removeprefix(f"{upload.name}: ")


# The page's own layout rules. The overlay video at its own size (never blown up: a 320-pixel video
# stretched to the column's 790 looked broken), at most the column's width and most of the window's
# height (a portrait phone video is 1304 px tall).
PAGE_CSS = """
#overlay video { width: auto !important; height: auto !important; max-width: 100%; max-height: 80vh !important;
                 object-fit: contain; margin: 0 auto; display: block; }
#timeline img { width: auto !important; max-width: 100%; height: auto !important; }
"""
# On a narrow screen the results column comes under the inputs: Score brings its summary (where
# the progress shows) into view, then hands the inputs on unchanged.
SHOW_PROGRESS_JS = """(...inputs) => { if (window.innerWidth < 768) {
    document.getElementById('summary')?.scrollIntoView({behavior: 'instant', block: 'start'}); } return inputs; }"""


def build_page(service: AppService):
    """The Gradio page (a ``gr.Blocks``), not yet launched."""
    import gradio as gr

    names = list(service.predictors)
    # Uploads and results live in Gradio's cache: files older than UPLOADS_KEPT_S go, every hour.
    with gr.Blocks(title="aqa: action quality assessment", delete_cache=(3600, UPLOADS_KEPT_S)) as page:
        gr.Markdown("# Score a sports video\nUpload a video of one athlete's performance, press **Score**, and get "
                    "a judge-like score with the tracked athlete and where in the video the score comes from.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="video", file_types=sorted(VIDEO_SUFFIXES), type="filepath",
                                 elem_id="upload")
                checkpoint = gr.Dropdown(names, value=names[0], label="model", elem_id="checkpoint",
                                         interactive=len(names) > 1)
                difficulty = gr.Number(label="difficulty degree (for models trained with it; 0: not given)", value=None,
                                       minimum=0, elem_id="difficulty", visible=service.uses_difficulty)
                button = gr.Button("Score", variant="primary", elem_id="score-button")
                if service.examples:
                    gr.Examples([[str(path)] for path in service.examples], inputs=[upload],
                                label="examples")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="summary", min_height=80)
                # No labels on the video and the plot: Gradio draws them over the picture's top left,
                # where the overlay's caption (the score) and the plot's title are; the legend under
                # the video says what it shows.
                overlay = gr.Video(show_label=False, elem_id="overlay", interactive=False)
                legend = gr.Markdown(elem_id="legend")
                timeline = gr.Plot(show_label=False, elem_id="timeline")  # the figure has its own title
                report = gr.File(label="report (aqa-predict --json)", elem_id="report", interactive=False)
        # One progress bar, on the summary (every output showed its own: three bars).
        button.click(score_handler(service), inputs=[upload, checkpoint, difficulty],
                     outputs=[summary, overlay, legend, timeline, report], show_progress_on=[summary],
                     js=SHOW_PROGRESS_JS, concurrency_limit=service.limits.max_concurrent, concurrency_id="score",
                     api_name="score")
    page.queue(max_size=service.limits.max_queue)
    return page


def launch(service: AppService, host: str, port: int) -> None:
    """Serve the page until Ctrl-C."""
    import gradio as gr

    page = build_page(service)
    system_fonts = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web-font download: the page works offline
    theme = gr.themes.Default(font=system_fonts, font_mono=["ui-monospace", "monospace"])
    log.info("aqa-app: serving on http://%s:%d", host, port)
    page.launch(server_name=host, server_port=port, max_file_size=f"{service.limits.max_upload_mb:g}mb",
                allowed_paths=[str(service.work_dir)],
                theme=theme, css=PAGE_CSS, show_error=False, quiet=True, footer_links=[], ssr_mode=False,
                mcp_server=False, pwa=False)
