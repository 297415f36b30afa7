"""models.windows: evenly spaced test windows, and CoFInAl heads scored as the mean of them."""

from __future__ import annotations

import pytest
import torch

from aqa.models import build_head
from aqa.models.cofinal import CoFInAlConfig
from aqa.models.windows import evenly_spaced_windows


def _clip_ids(count: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One video whose clip i is the vector [i + 1], padded to ``steps``."""
    features = torch.zeros(1, steps, 1)
    features[0, :count, 0] = torch.arange(1, count + 1, dtype=torch.float32)
    return features, torch.arange(steps).unsqueeze(0) < count


def test_windows_run_from_the_first_clip_to_the_last_evenly():
    features, mask = _clip_ids(10, 12)
    windows, window_mask = evenly_spaced_windows(features, mask, length=4, count=3)
    assert windows.shape == (3, 4, 1) and bool(window_mask.all())
    assert windows[..., 0].tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]


def test_a_video_no_longer_than_a_window_is_its_own_window_every_time():
    features, mask = _clip_ids(3, 6)
    windows, window_mask = evenly_spaced_windows(features, mask, length=4, count=2)
    assert window_mask.tolist() == [[True, True, True, False]] * 2
    assert windows[..., 0].tolist() == [[1, 2, 3, 0]] * 2


def test_real_clips_are_found_wherever_the_mask_puts_them():
    features = torch.tensor([[[9.0], [1.0], [9.0], [2.0], [3.0]]])
    mask = torch.tensor([[False, True, False, True, True]])
    windows, _ = evenly_spaced_windows(features, mask, length=2, count=2)
    assert windows[..., 0].tolist() == [[1, 2], [2, 3]]


@pytest.mark.parametrize("coarse", ["classify", "likert"])
def test_a_windowed_head_scores_the_mean_of_its_windows_and_short_videos_as_before(coarse):
    torch.manual_seed(0)
    windowed = build_head("cofinal", CoFInAlConfig(coarse=coarse, train_window=4, test_windows=3), input_dim=8).eval()
    whole = build_head("cofinal", CoFInAlConfig(coarse=coarse, train_window=4, test_windows=1), input_dim=8).eval()
    whole.load_state_dict(windowed.state_dict())
    features = torch.randn(2, 10, 8)
    mask = torch.arange(10).unsqueeze(0) < torch.tensor([[10], [3]])  # a long video and a short one
    with torch.no_grad():
        scores = windowed(features, mask)["score"]
        one_by_one = [float(whole(features[:1, start:start + 4])["score"]) for start in (0, 3, 6)]
        assert float(scores[0]) == pytest.approx(sum(one_by_one) / 3, abs=1e-5)
        assert float(scores[1]) == pytest.approx(float(whole(features[1:, :3])["score"]), abs=1e-5)
        assert float(scores[0]) != pytest.approx(float(whole(features[:1])["score"]), abs=1e-4)


def test_training_mode_sees_the_clips_it_is_given():
    torch.manual_seed(0)
    head = build_head("cofinal", CoFInAlConfig(train_window=4, test_windows=3, dropout=0.0), input_dim=8)
    features = torch.randn(1, 10, 8)
    head.train()
    trained = head(features)["score"].detach()
    head.eval()
    with torch.no_grad():
        assert float(trained) != pytest.approx(float(head(features)["score"]), abs=1e-4)
