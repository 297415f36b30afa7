"""Where the model `make demo` trained and its held-out videos are, for an ``aqa-app`` started
without ``--checkpoint``: ``demo_out/`` in this folder, then in the source checkout aqa runs from.
"""

from __future__ import annotations

from pathlib import Path

from aqa.data.labels import read_label_files
from aqa.pipeline.predict import PredictSetupError

DEMO_OUT = Path("demo_out")
DEMO_CHECKPOINT = Path("run") / "model.pt"  # inside DEMO_OUT
# The source checkout this aqa runs from (an editable install, as setup.sh makes), where `make demo`
# writes its demo_out/; None for an installed wheel.
CHECKOUT: Path | None = next((folder for folder in [Path(__file__).resolve().parents[2]]
                              if (folder / "Makefile").is_file() and (folder / "setup.sh").is_file()), None)
EXAMPLES_FROM_DEMO = 3


def demo_places() -> list[Path]:
    """Where ``make demo``'s output may be, in the order looked at: ``demo_out/`` in this folder,
    then in the checkout aqa runs from (so that aqa-app finds the demo from any folder)."""
    places = [Path.cwd() / DEMO_OUT]
    if CHECKOUT is not None and (CHECKOUT / DEMO_OUT).resolve() != places[0].resolve():
        places.append(CHECKOUT / DEMO_OUT)
    return places


def demo_examples(out: Path = DEMO_OUT, count: int = EXAMPLES_FROM_DEMO) -> list[Path]:
    """A few of the demo's held-out videos (never seen in training), when ``make demo`` has run."""
    test_list = out / "dataset" / "test.txt"
    if not test_list.is_file():
        return []
    names = [record.name for record in read_label_files([test_list])]
    return [path for path in (out / "dataset" / "videos" / f"{name}.mp4" for name in names[:count]) if path.is_file()]


def find_demo() -> Path:
    """The demo's output folder (the first of :func:`demo_places` holding its model), or a message
    naming every path looked at and how to make one."""
    places = demo_places()
    for place in places:
        if (place / DEMO_CHECKPOINT).is_file():
            return place
    looked = " or ".join(str(place / DEMO_CHECKPOINT) for place in places)
    where = f"`make demo` in {CHECKOUT}" if CHECKOUT is not None else "`make demo` in aqa's source checkout"
    raise PredictSetupError(f"no --checkpoint given and no demo model at {looked}: run {where} (about 3 minutes) "
                            "or train one with aqa-train, then aqa-app --checkpoint runs/x/model.pt")
