"""pipeline.demo (make demo): the whole pipeline offline on the embedded dataset, --quick size."""

from __future__ import annotations

import json

import pytest
from scipy.stats import spearmanr

from aqa.pipeline.demo import DEMO_DESCRIPTION, cli, heldout_table


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_reports_its_held_out_videos(tmp_path, capsys):
    """The quick run is plumbing: 12 training videos, 4 held out, one seed. Its rho over 4 videos is
    chance-level either way (seen at 0.0 after the athlete's boxes changed by a few pixels), so this
    checks that the reported rho is the Spearman rho of the scores aqa-predict gave; that the heads
    learn is tests/test_heads_learning.py's, and the full demo's numbers are in the README."""
    assert cli(["--quick", "--out", str(tmp_path), "--quiet"]) == 0
    output = capsys.readouterr().out
    line = next(line for line in output.splitlines() if "held-out Spearman rho" in line)
    rho = float(line.rsplit(": ", 1)[1])
    predictions = json.loads((tmp_path / "heldout_predictions.json").read_text())
    assert len(predictions) == 4 and all("true_score" in p for p in predictions)
    expected = spearmanr([p["true_score"] for p in predictions], [p["score"] for p in predictions]).statistic
    assert rho == pytest.approx(expected, abs=5e-4), output
    assert len({round(p["score"], 4) for p in predictions}) == 4  # not one constant prediction
    for artifact in ("features.h5", "run/model.pt", "run/metrics.json", "run/predictions.png", "run/curves.png"):
        assert (tmp_path / artifact).is_file(), artifact
    assert list(tmp_path.glob("*_overlay.mp4"))
    assert sum(line.startswith("demo: syn_") for line in output.splitlines()) == 4  # every held-out video
    assert json.loads((tmp_path / "run" / "model_card.json").read_text())["description"] == DEMO_DESCRIPTION
    assert all(p["model_description"] == DEMO_DESCRIPTION for p in predictions)


def test_the_demo_shows_every_held_out_video_and_says_its_model_is_no_real_judge():
    reports = [{"video": "out/syn_0010.mp4", "score": 5.1299, "true_score": 5.33},
               {"video": "out/syn_0035.mp4", "score": 4.8711, "true_score": 0.35}]
    assert heldout_table(reports) == ["video           true  predicted   error",
                                      "syn_0010.mp4    5.33       5.13   -0.20",
                                      "syn_0035.mp4    0.35       4.87   +4.52",
                                      "mean absolute error 2.36 over 2 videos (scores 0-10)"]
    assert "synthetic" in DEMO_DESCRIPTION and "not a diving, skating" in DEMO_DESCRIPTION
