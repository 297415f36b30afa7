"""models.fspn_parsing: FSPN's up-sampling parser, Eq. 5 boundaries, segment pooling and L_gc (Eq. 6-7)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aqa.models.fspn_parsing import (
    ActionParser,
    group_contrastive_loss,
    parse_boundaries,
    pool_clips,
    segment_labels,
    segment_pool,
    upsample_conv,
    upsample_mask,
)

LENGTHS = [1, 2, 9, 10, 103, 300]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("clips", LENGTHS)
def test_parser_upsamples_time_eightfold_and_narrows_the_width(clips):
    torch.manual_seed(0)
    parser = ActionParser(24, (16, 12, 8), num_subactions=4)
    mask = torch.ones(2, clips, dtype=torch.bool)
    mask[1, max(1, clips // 2):] = False
    steps, logits, step_mask = parser(torch.randn(2, clips, 24), mask)
    assert parser.factor == 8
    assert steps.shape == (2, 8 * clips, 8) and logits.shape == (2, 8 * clips, 4)
    assert torch.equal(step_mask, upsample_mask(mask, 8))
    assert steps[~step_mask].abs().sum() == 0


@pytest.mark.parametrize("clips", [1, 2, 9, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_the_upsampling_convolution_is_a_convolution_over_the_repeated_steps(clips, bias):
    generator = _generator(clips)
    x = torch.randn(3, clips, 10, generator=generator, dtype=torch.float64)
    weight = torch.randn(7, 10, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    offsets = torch.randn(7, generator=generator, dtype=torch.float64) if bias else None
    reference = F.conv1d(x.repeat_interleave(2, dim=1).transpose(1, 2), weight, offsets, padding=1).transpose(1, 2)
    fast = upsample_conv(x, weight, offsets)
    assert fast.shape == (3, 2 * clips, 7)
    assert torch.allclose(fast, reference, atol=1e-12)
    upstream = torch.randn(fast.shape, generator=generator, dtype=torch.float64)
    assert torch.allclose(*(torch.autograd.grad((y * upstream).sum(), weight)[0] for y in (fast, reference)),
                          atol=1e-12)
    with pytest.raises(ValueError, match="kernel of 3"):
        upsample_conv(x, weight[..., :2], offsets)


def test_the_parser_is_nearest_upsampling_then_conv_norm_relu():
    torch.manual_seed(0)
    parser = ActionParser(6, (8, 8, 8), num_subactions=4)
    mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7])
    clips = torch.randn(2, 7, 6).masked_fill(~mask.unsqueeze(-1), 0.0)
    steps, step_mask = clips, mask
    for block in parser.blocks:  # the reference: repeat every step, then the kernel-3 convolution on 2L steps
        steps, step_mask = steps.repeat_interleave(2, dim=1), upsample_mask(step_mask, 2)
        steps = torch.relu(block.norm(block.conv(steps.transpose(1, 2)).transpose(1, 2)))
        steps = steps.masked_fill(~step_mask.unsqueeze(-1), 0.0)
    fast_steps, logits, fast_mask = parser(clips, mask)
    assert torch.equal(fast_mask, step_mask)
    assert torch.allclose(fast_steps, steps, atol=1e-5)
    assert torch.allclose(logits, parser.classifier(steps), atol=1e-5)


def test_parser_ignores_padding():
    torch.manual_seed(0)
    parser = ActionParser(6, (8, 8, 8), num_subactions=4)
    clips = torch.randn(1, 5, 6)
    padded = torch.cat([clips, torch.randn(1, 4, 6) * 100], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 4])
    short_steps, short_logits, _ = parser(clips, torch.ones(1, 5, dtype=torch.bool))
    long_steps, long_logits, _ = parser(padded.masked_fill(~mask.unsqueeze(-1), 0.0), mask)
    assert torch.allclose(short_steps, long_steps[:, :40], atol=1e-5)
    assert torch.allclose(short_logits, long_logits[:, :40], atol=1e-5)


def test_boundaries_take_the_windowed_argmax_as_starts():
    # 8 steps, S = 4: windows {0,1} {2,3} {4,5} {6,7}; sub-action s peaks at step peaks[s]
    peaks = [1, 3, 4, 7]
    probs = torch.full((1, 8, 4), 0.1)
    for s, step in enumerate(peaks):
        probs[0, step, s] = 0.9
    starts = parse_boundaries(probs, torch.ones(1, 8, dtype=torch.bool))
    assert starts.tolist() == [[0, 3, 4, 7]]  # the first sub-action starts at the first step
    assert segment_labels(starts, 8).tolist() == [[0, 0, 0, 1, 2, 2, 2, 3]]


def test_a_confident_parse_is_recovered_where_transitions_fall_in_their_windows():
    phase = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3])  # starts 3, 5, 8; windows of 3 steps
    starts = parse_boundaries(F.one_hot(phase, 4).float().unsqueeze(0), torch.ones(1, 12, dtype=torch.bool))
    assert starts.tolist() == [[0, 3, 6, 9]]  # 5 lies before window 2 (6-8), 8 before window 3 (9-11)
    assert segment_labels(starts, 12)[0, :4].tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("clips", LENGTHS)
def test_boundaries_are_strictly_ordered_and_inside_the_real_steps(clips):
    steps = 8 * clips
    probs = torch.rand(3, steps + 16, 4, generator=_generator(clips)).softmax(-1)
    mask = torch.zeros(3, steps + 16, dtype=torch.bool)
    mask[0, :steps] = True
    mask[1, : max(8, steps // 2)] = True
    mask[2, 4: 4 + max(8, steps // 3)] = True  # real steps need not start at 0
    starts = parse_boundaries(probs, mask)
    assert starts.shape == (3, 4)
    assert (starts[:, 1:] > starts[:, :-1]).all()
    assert mask.gather(1, starts).all()
    assert starts[2, 0] == 4


def test_boundaries_ignore_padded_steps():
    probs = torch.rand(1, 40, 4, generator=_generator(1))
    padded = torch.cat([probs, torch.ones(1, 24, 4)], dim=1)  # padding would win every argmax
    mask = torch.tensor([[True] * 40 + [False] * 24])
    assert torch.equal(parse_boundaries(probs, torch.ones(1, 40, dtype=torch.bool)), parse_boundaries(padded, mask))


def test_segment_pool_averages_each_segment_and_skips_padding():
    steps = torch.arange(10, dtype=torch.float32).view(1, 10, 1).expand(2, 10, 3).clone()
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    starts = torch.tensor([[0, 2, 5, 9], [0, 1, 2, 4]])
    tokens = segment_pool(steps, starts, mask)
    assert tokens.shape == (2, 4, 3)
    assert tokens[0, :, 0].tolist() == [0.5, 3.0, 6.5, 9.0]
    assert tokens[1, :, 0].tolist() == [0.0, 1.0, 2.5, 4.5]  # steps 6-9 are padding


def _structured_logits(count: int, steps: int, seed: int) -> torch.Tensor:
    """Logits ``[N, L, 4]`` with a clear sub-action per step (a one-hot bump plus noise)."""
    labels = torch.randint(0, 4, (count, steps), generator=_generator(seed))
    return 4.0 * F.one_hot(labels, 4).float() + 0.3 * torch.randn(count, steps, 4, generator=_generator(seed + 1))


def test_contrastive_loss_is_lower_for_aligned_streams_than_for_shuffled_ones():
    actor = _structured_logits(6, 40, seed=0)
    mask = torch.ones(6, 40, dtype=torch.bool)
    aligned = actor + 0.3 * torch.randn(actor.shape, generator=_generator(5))
    shuffled = aligned[:, torch.randperm(40, generator=_generator(6))]  # the scene's steps out of step
    low = group_contrastive_loss(actor, aligned, mask, temperature=0.1)
    high = group_contrastive_loss(actor, shuffled, mask, temperature=0.1)
    assert high.item() > 10 * low.item() > 0  # 0.0098 vs 0.0003


def test_contrastive_loss_matches_eq7_written_out():
    actor, scene = _structured_logits(2, 12, seed=3), _structured_logits(2, 12, seed=7)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    tau = 0.5
    labels = (actor[mask].softmax(-1) + scene[mask].softmax(-1)).argmax(-1)  # one label per step, both views
    present = sorted(set(labels.tolist()))
    g_a = {p: F.normalize(actor[mask][labels == p].mean(0), dim=0) for p in present}
    g_i = {p: F.normalize(scene[mask][labels == p].mean(0), dim=0) for p in present}
    terms = []
    for p in present:
        positive = math.exp(float(g_a[p] @ g_i[p]) / tau)
        negatives = sum(math.exp(float(g_a[p] @ g[q]) / tau) for g in (g_a, g_i) for q in present if q != p)
        terms.append(-math.log(positive / (positive + negatives)))
    assert len(present) > 1
    assert group_contrastive_loss(actor, scene, mask, tau).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_contrastive_loss_is_zero_without_negatives_and_trains_the_logits():
    one_label = torch.zeros(2, 8, 4)
    one_label[..., 2] = 5.0
    mask = torch.ones(2, 8, dtype=torch.bool)
    assert group_contrastive_loss(one_label, one_label.clone(), mask).item() == 0.0
    actor = _structured_logits(3, 16, seed=1).requires_grad_()
    scene = _structured_logits(3, 16, seed=2).requires_grad_()
    group_contrastive_loss(actor, scene, torch.ones(3, 16, dtype=torch.bool)).backward()
    assert actor.grad.abs().sum() > 0 and scene.grad.abs().sum() > 0


def test_contrastive_loss_ignores_padded_steps():
    actor, scene = _structured_logits(2, 10, seed=4), _structured_logits(2, 10, seed=6)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[:, 7:] = False
    junk_actor, junk_scene = actor.clone(), scene.clone()
    junk_actor[:, 7:], junk_scene[:, 7:] = 50.0, -50.0
    assert group_contrastive_loss(actor, scene, mask).item() == pytest.approx(
        group_contrastive_loss(junk_actor, junk_scene, mask).item(), rel=1e-6)


def test_a_fresh_parser_spreads_its_steps_over_several_sub_actions():
    # the first pseudo-labels must follow the features: with one label L_gc has no gradient at all
    clips, mask = torch.randn(8, 6, 16, generator=_generator(3)), torch.ones(8, 6, dtype=torch.bool)
    for seed in range(8):
        torch.manual_seed(seed)
        _, logits, _ = ActionParser(16, (32, 16, 16), num_subactions=4)(clips, mask)
        assert len(logits.argmax(-1).unique()) >= 2, seed


def test_pool_clips_leaves_inputs_of_at_most_the_cap_as_they_are():
    clips, mask = torch.randn(2, 9, 5, generator=_generator()), torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    for cap in (0, 9, 32):  # 0: no cap
        pooled, pooled_mask, per_input = pool_clips(clips, mask, cap)
        assert pooled is clips and pooled_mask is mask and torch.equal(per_input, torch.ones(2))


def test_pool_clips_average_pools_long_videos_and_keeps_short_ones_whatever_their_padding():
    lengths = [40, 33, 32, 5, 1]
    clips = torch.randn(len(lengths), 50, 6, generator=_generator(1))
    mask = torch.arange(50) < torch.tensor(lengths).unsqueeze(1)
    garbage = clips.masked_fill(~mask.unsqueeze(-1), 1e6)  # padding never reaches an input
    pooled, pooled_mask, per_input = pool_clips(garbage, mask, 32)
    assert pooled.shape == (5, 32, 6) and pooled_mask.sum(1).tolist() == [32, 32, 32, 5, 1]
    assert torch.allclose(per_input, torch.tensor([40 / 32, 33 / 32, 1.0, 1.0, 1.0]))
    for row, length in enumerate(lengths):
        real = clips[row, :length]
        expected = F.adaptive_avg_pool1d(real.T.unsqueeze(0), 32)[0].T if length > 32 else real
        assert torch.allclose(pooled[row, : min(length, 32)], expected, atol=1e-6), length
        assert pooled[row, min(length, 32):].abs().sum() == 0
    assert torch.equal(pooled[3, :5], clips[3, :5])  # a kept clip is copied bit for bit


def test_pool_clips_passes_gradients_to_the_real_clips_only():
    clips = torch.randn(2, 12, 3, generator=_generator(2), requires_grad=True)
    mask = torch.arange(12) < torch.tensor([[12], [7]])
    pool_clips(clips, mask, 4)[0].sum().backward()
    assert (clips.grad[mask] > 0).all() and clips.grad[~mask].abs().sum() == 0
    assert torch.allclose(clips.grad.sum(dim=(1, 2)), torch.tensor([12.0, 12.0]))  # 4 inputs x 3 channels
