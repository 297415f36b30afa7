"""Serving the page behind ``aqa-app``: :class:`AppRequest` says which models, where and within which
limits; :func:`run` checks it (checkpoints, limits, examples, the port: each in one line, before
minutes of loading), loads the models once, serves until Ctrl-C and stops the running jobs before
their models close. The command line is :mod:`pipeline.app.cli`, the page :mod:`pipeline.app.page`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aqa.pipeline.app.demo_model import DEMO_CHECKPOINT, demo_examples, find_demo
from aqa.pipeline.app.page import AppService, checkpoint_names, launch
from aqa.pipeline.app.scoring import AppLimits
from aqa.pipeline.extract import VIDEO_SUFFIXES
from aqa.pipeline.predict import LoadedPredictor, PredictSetupError, load_predictor

log = logging.getLogger(__name__)

JOB_STOP_TIMEOUT_S = 120.0  # a job stops at its next step; the overlay stage (bounded by the video limits) runs on


@dataclass(frozen=True)
class AppRequest:
    """One aqa-app server, typed (``aqa-app``'s flags, same names and defaults).

    checkpoints: the models offered (picked from a list in the page); None: the one `make demo` trained.
    examples: videos offered as examples; None: the demo's held-out videos when serving the demo.
    work_dir: where each job's overlay and JSON go; None: a new temporary folder, deleted at the end.
    """

    checkpoints: Sequence[Path] | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    max_concurrent: int = 1
    max_queue: int = 8
    max_upload_mb: float = 200.0
    max_minutes: float = 10.0
    examples: Sequence[Path] | None = None
    work_dir: Path | None = None
    device: str = "auto"
    workers: int = 0


def copy_examples(examples: Sequence[Path], folder: Path) -> list[Path]:
    """The example videos, copied where the server may serve files from: serving them from their own
    folders would let the page hand out whatever else lies beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, path in enumerate(examples):
        copy = folder / (path.name if path.name not in {c.name for c in copies} else f"{index}_{path.name}")
        shutil.copyfile(path, copy)
        copies.append(copy.resolve())
    return copies


def resolve_checkpoints(given: Sequence[Path] | None) -> list[Path]:
    """The checkpoints to serve: those given, else the demo's, else a message saying how to get one."""
    checkpoints = list(given or []) or [find_demo() / DEMO_CHECKPOINT]
    for path in checkpoints:
        if not path.is_file():
            raise PredictSetupError(f"--checkpoint {path}: no such file")
    return checkpoints


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, an address this machine cannot listen on (a port in use, a foreign host,
    a number no port has)."""
    if not 0 < port < 65536:  # bind() raises OverflowError for these, not OSError
        raise PredictSetupError(f"--port {port}: a port is a number from 1 to 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PredictSetupError(f"cannot listen on {host}:{port} ({error.strerror or error}): pick another "
                                    "--port, or stop what uses it") from None


def run(request: AppRequest) -> int:
    """Load the models, serve the page until Ctrl-C, then stop the running jobs before their models
    close. Every option the user can get wrong is refused before minutes of loading."""
    started = time.perf_counter()
    checkpoints = resolve_checkpoints(request.checkpoints)
    try:
        limits = AppLimits(request.max_upload_mb, request.max_concurrent, request.max_queue, request.max_minutes)
    except ValueError:
        raise PredictSetupError("--max-upload-mb, --max-concurrent and --max-queue must be positive") from None
    examples = list(request.examples) if request.examples else \
        (demo_examples(find_demo()) if not request.checkpoints else [])
    for path in examples:
        if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
            raise PredictSetupError(f"--examples {path}: not a video file")
    check_port_free(request.host, request.port)  # before minutes of loading, not after
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    work_dir = request.work_dir or Path(tempfile.mkdtemp(prefix="aqa-app-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    predictors: dict[str, LoadedPredictor] = {}
    service: AppService | None = None
    try:
        for name, path in zip(checkpoint_names(checkpoints), checkpoints):
            predictors[name] = load_predictor(path, device=request.device, workers=request.workers)
        service = AppService(predictors, limits, work_dir.resolve(), copy_examples(examples, work_dir / "examples"))
        log.info("aqa-app: %d model(s) loaded in %.1f s", len(predictors), time.perf_counter() - started)
        launch(service, request.host, request.port)
    finally:
        if service is not None:  # launch returns at Ctrl-C: the running jobs end before their models close
            service.jobs.stop(timeout_s=JOB_STOP_TIMEOUT_S)
        for predictor in predictors.values():
            predictor.close()
        if request.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0
