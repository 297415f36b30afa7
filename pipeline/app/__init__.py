"""``aqa-app``: score a video in the browser.

    aqa-app                                   # the model `make demo` trained
    aqa-app --checkpoint runs/dive/model.pt --checkpoint runs/fspn/model.pt
    aqa-app --checkpoint model.pt --host 0.0.0.0 --port 7860 --max-concurrent 2

The path of the data: an uploaded video, checked (:mod:`.scoring`) -> scored by
:mod:`pipeline.predict` with a model loaded once at start-up -> the page's summary, overlay video,
timeline plot and JSON report (:mod:`.page`), written under the job's work folder. Without
``--checkpoint`` the demo's model and examples are served (:mod:`.demo_model`).

    from aqa.pipeline.app import AppRequest, run
    run(AppRequest(checkpoints=[Path("runs/dive/model.pt")], port=7860))   # serves until Ctrl-C

Modules: :mod:`.serve` (the request and :func:`run`), :mod:`.cli` (the command line only),
:mod:`.page` (the Gradio page and its handlers), :mod:`.scoring` (one upload scored, the limits),
:mod:`.demo_model`.
"""

from aqa.pipeline.app.page import checkpoint_names, page_reason
from aqa.pipeline.app.serve import AppRequest, run

__all__ = ["AppRequest", "checkpoint_names", "page_reason", "run"]
