"""models.fspn_transformer: SMT cross-attention (actor queries, scene keys/values), its stages, and MTF."""

from __future__ import annotations

import pytest
import torch

from aqa.models.fspn_transformer import CrossAttentionBlock, MultiscaleFusion, MultiscaleTransformer

LENGTHS = [1, 2, 9, 10, 103, 300]


def _tokens(batch: int, length: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, length, width, generator=torch.Generator().manual_seed(seed))


def _block(width: int = 16, heads: int = 8) -> CrossAttentionBlock:
    torch.manual_seed(0)
    return CrossAttentionBlock(width, heads).eval()


def test_actor_tokens_are_the_queries_and_scene_tokens_the_keys_and_values():
    block = _block()
    actor, scene = _tokens(2, 6, 16, 1), _tokens(2, 6, 16, 2)
    mask = torch.ones(2, 6, dtype=torch.bool)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        out = block(actor, scene, mask)
        # keys/values are a set: reordering the scene tokens changes nothing
        assert torch.allclose(block(actor, scene[:, order], mask), out, atol=1e-5)
        # one output row per query: reordering the actor tokens reorders the output
        assert torch.allclose(block(actor[:, order], scene, mask), out[:, order], atol=1e-5)
        # and the roles are not symmetric
        assert not torch.allclose(block(scene, actor, mask), out, atol=1e-3)


def test_the_scene_stream_reaches_the_output_only_through_attention():
    block = _block()
    actor, scene = _tokens(1, 4, 16, 3), _tokens(1, 4, 16, 4)
    mask = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        out = block(actor, scene, mask)
        block.attention.out_proj.weight.zero_()
        block.attention.out_proj.bias.zero_()
        assert torch.allclose(block(actor, scene, mask), block(actor, scene * 10 + 3, mask), atol=1e-6)
        assert not torch.allclose(block(actor, scene, mask), out, atol=1e-3)


def test_padded_scene_tokens_are_never_attended_to():
    block = _block()
    actor, scene = _tokens(1, 7, 16, 5), _tokens(1, 7, 16, 6)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    junk = scene.clone()
    junk[:, 4:] = 1e4
    with torch.no_grad():
        out, out_junk = block(actor, scene, mask), block(actor, junk, mask)
    assert torch.allclose(out, out_junk, atol=1e-5)
    assert out[:, 4:].abs().sum() == 0


@pytest.mark.parametrize("length", LENGTHS)
def test_smt_stage_widths_and_lengths(length):
    torch.manual_seed(0)
    smt = MultiscaleTransformer(12, (16, 32, 64), blocks=1, heads=8).eval()
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, (length + 1) // 2:] = False
    with torch.no_grad():
        stages = smt(_tokens(2, length, 12, 0), _tokens(2, length, 12, 1), mask)
        fused = MultiscaleFusion((16, 32, 64), 24)(stages, mask)
    assert [tuple(stage.shape) for stage in stages] == [(2, length, 16), (2, length, 32), (2, length, 64)]
    assert fused.shape == (2, 3 * 24)


def test_smt_is_padding_invariant():
    torch.manual_seed(0)
    smt = MultiscaleTransformer(8, (16, 32), blocks=2, heads=4).eval()
    actor, scene = _tokens(1, 5, 8, 0), _tokens(1, 5, 8, 1)
    full = torch.ones(1, 5, dtype=torch.bool)
    mask = torch.tensor([[True] * 5 + [False] * 6])
    pad = torch.zeros(1, 6, 8)
    with torch.no_grad():
        short = smt(actor, scene, full)
        long = smt(torch.cat([actor, pad], 1), torch.cat([scene, pad], 1), mask)
    for a, b in zip(short, long):
        assert torch.allclose(a, b[:, :5], atol=1e-5) and b[:, 5:].abs().sum() == 0


def test_mtf_projects_adds_progressively_concatenates_and_pools():
    torch.manual_seed(0)
    fusion = MultiscaleFusion((4, 8, 16), 6)
    stages = [_tokens(2, 3, width, seed) for seed, width in enumerate((4, 8, 16))]
    mask = torch.tensor([[True, True, True], [True, True, False]])
    w1, w2, w3 = fusion.projections
    f1 = w1(stages[0])
    f2 = f1 + w2(stages[1])
    f3 = f2 + w3(stages[2])
    levels = torch.cat([f1, f2, f3], dim=-1)
    expected = torch.stack([levels[0].mean(0), levels[1, :2].mean(0)])
    assert torch.allclose(fusion(stages, mask), expected, atol=1e-6)


def test_mtf_rejects_stages_of_different_lengths():
    fusion = MultiscaleFusion((4, 8), 6)
    with pytest.raises(ValueError, match="one length"):
        fusion([torch.randn(1, 3, 4), torch.randn(1, 4, 8)], torch.ones(1, 3, dtype=torch.bool))
