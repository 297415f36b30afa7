"""pipeline.plots: the PNG files are written, also when a series is missing."""

from __future__ import annotations

from PIL import Image

from aqa.pipeline.plots import plot_cumulative_score, plot_curves, plot_predictions


def test_both_plots_write_pngs(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": None, "train_srcc": 0.1 * e, "val_srcc": None}
               for e in range(1, 6)]
    curves = plot_curves(tmp_path / "curves.png", {0: history, 1: history}, title="t")
    scatter = plot_predictions(tmp_path / "pred.png", [1.0, 2.0, 3.0], [1.5, 1.8, 3.3], title="t", score_name="TES")
    cumulative = plot_cumulative_score(tmp_path / "cs.png", {"seed 0": [(0.0, 0.1), (0.5, 0.6), (1.0, 1.0)],
                                                             "seed 1": [[0.0, 0.0], [0.5, 0.4], [1.0, 0.9]]},
                                       title="t", score_name="total")
    for path, size in ((curves, (1000, 400)), (scatter, (500, 500)), (cumulative, (500, 400))):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == size


def test_curves_of_a_run_without_epochs_warn_about_nothing(tmp_path):
    """An ensemble's seeds have no epochs of their own (each member trained its own): the curves are
    drawn empty, without matplotlib's "no artists with labels" warning on the user's terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plot_curves(tmp_path / "curves.png", {0: [], 1: []}, title="ensemble")
    with Image.open(path) as image:
        assert image.format == "PNG"
