"""pipeline.demo (make demo): the whole pipeline offline on the embedded dataset, --quick size."""

from __future__ import annotations

import json

import pytest

from aqa.pipeline.demo import cli


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_ranks_held_out_videos(tmp_path, capsys):
    assert cli(["--quick", "--out", str(tmp_path), "--quiet"]) == 0
    output = capsys.readouterr().out
    line = next(line for line in output.splitlines() if "held-out Spearman rho" in line)
    rho = float(line.rsplit(": ", 1)[1])
    assert rho > 0.0, output
    predictions = json.loads((tmp_path / "heldout_predictions.json").read_text())
    assert len(predictions) == 4 and all("true_score" in p for p in predictions)
    for artifact in ("features.h5", "run/model.pt", "run/metrics.json", "run/predictions.png", "run/curves.png"):
        assert (tmp_path / artifact).is_file(), artifact
    assert list(tmp_path.glob("*_overlay.mp4"))
