"""models.fspn: the FSPN head end to end: shapes, parse, pairs and voting, ablations, losses, checkpoints."""

from __future__ import annotations

import io
import math
import time

import pytest
import torch
import torch.nn.functional as F

from aqa.config import config_to_json
from aqa.models import HeadConfigError, build_head, list_heads
from aqa.models.fspn import ABLATIONS, FSPNConfig, FSPNHead
from aqa.models.fspn_exemplars import Exemplars, bin_targets

DIM = 8  # per stream: the head's input is [scene | actor], 2 * DIM wide
TINY = {"parser_channels": (16, 12, 8), "smt_widths": (8, 16), "smt_blocks": 1, "smt_heads": 4, "fusion_dim": 8,
        "regressor_dim": 16, "num_bins": 6, "num_exemplars": 3}
LENGTHS = [1, 2, 9, 10, 103, 300]
NAN = math.nan


def _clips(batch: int, clips: int, dim: int = 2 * DIM, seed: int = 0) -> torch.Tensor:
    """Random clip features ``[B, T, dim]`` (both streams side by side at the default width)."""
    return torch.randn(batch, clips, dim, generator=torch.Generator().manual_seed(seed))


def _swap(features: torch.Tensor) -> torch.Tensor:
    """``[scene | actor]`` -> ``[actor | scene]``."""
    half = features.shape[-1] // 2
    return torch.cat([features[..., half:], features[..., :half]], dim=-1)


def _filled(head: FSPNHead, count: int = 10, clips: int = 6, seed: int = 1) -> FSPNHead:
    """Fit the bins and fill the bank from ``count`` random training videos in groups 1 and 2."""
    features = _clips(count, clips, head.input_dim, seed)
    mask = torch.ones(count, clips, dtype=torch.bool)
    mask[::3, clips // 2:] = False
    scores = torch.rand(count, generator=torch.Generator().manual_seed(seed))
    groups = torch.tensor([1.0, 2.0] * (count // 2))
    head.fit_bins(scores, groups)
    head.exemplars.fill(features, mask, scores, groups)
    return head


def _head(seed: int = 0, **overrides) -> FSPNHead:
    torch.manual_seed(seed)
    dim = DIM if overrides.get("use_actor", True) is False else 2 * DIM
    return _filled(build_head("fspn", {**TINY, **overrides}, input_dim=dim)).eval()


def _exemplars(batch: int, clips: int, dim: int = 2 * DIM, seed: int = 5) -> Exemplars:
    mask = torch.ones(batch, clips, dtype=torch.bool)
    mask[0, 1:] = False
    return Exemplars(_clips(batch, clips, dim, seed), mask, torch.linspace(0.2, 0.8, batch))


def test_fspn_is_registered_as_a_pairwise_head_with_the_papers_defaults():
    assert "fspn" in list_heads()
    c = FSPNConfig()
    assert (c.smt_widths, c.smt_blocks, c.smt_heads, c.parser_channels) == ((64, 128, 256), 3, 8, (512, 256, 128))
    assert (c.temperature, c.num_exemplars, c.num_subactions) == (0.1, 10, 4)
    assert (c.train_lr, c.train_weight_decay, c.train_batch_size, c.train_epochs) == (1e-3, 0.0, 8, 200)
    head = build_head("fspn", TINY, input_dim=2 * DIM)
    assert head.pairwise and head.stream_dim == DIM
    assert build_head("fspn", {**TINY, "use_actor": False}, input_dim=DIM).stream_dim == DIM


def test_parameter_count_at_the_papers_feature_size():
    head = build_head("fspn", None, input_dim=2 * 1024)  # I3D: D = 1024 per stream
    count = {name: sum(p.numel() for p in module.parameters()) for name, module in head.named_children()}
    total = sum(p.numel() for p in head.parameters())
    print(f"FSPN at D=1024: {total / 1e6:.2f} M parameters; " + ", ".join(f"{k} {v / 1e6:.3f} M" for k, v in
                                                                          count.items()))
    assert total == sum(count.values()) and count["exemplars"] == 0
    assert 3.0e6 < count["transformer"] + count["fusion"] < 3.75e6  # the paper's 3.75 M covers all of FSPN
    assert 2.0e6 < count["parser"] < 2.2e6  # a real temporal decoder (the paper's is TSA's 9-channel PSNet)


@pytest.mark.slow
def test_shapes_through_every_stage_at_the_papers_sizes():
    torch.manual_seed(0)
    head = _filled(build_head("fspn", None, input_dim=2 * 1024), count=4, clips=9).eval()
    seen: dict[str, list[tuple[int, ...]]] = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, []).append(tuple((output[0] if isinstance(output, tuple) else output).shape))
        return hook

    for index, block in enumerate(head.parser.blocks):
        block.register_forward_hook(record(f"up{index}"))
    for index, stage in enumerate(head.transformer.stages):
        stage.register_forward_hook(record(f"smt{index}"))
    head.fusion.register_forward_hook(record("mtf"))
    started = time.perf_counter()
    for call, clips in enumerate(LENGTHS):
        seen.clear()
        with torch.no_grad():  # the 2 queries, then (first call only: cached after) the 4 exemplars of 9 clips
            out = head(_clips(2, clips, 2 * 1024))
        inputs = min(clips, 32)  # parse_max_steps: a longer video is pooled to 32 parser inputs
        steps = 8 * inputs
        exemplars = call == 0
        assert seen["up0"] == [(4, 2 * inputs, 512)] + [(8, 18, 512)] * exemplars  # both streams in one pass
        assert seen["up1"][0] == (4, 4 * inputs, 256) and seen["up2"][0] == (4, steps, 128)
        assert [seen[f"smt{i}"][0] for i in range(3)] == [(2, 4, 64), (2, 4, 128), (2, 4, 256)]  # S = 4 tokens
        assert seen["mtf"] == [(2, 3 * 256)] + [(4, 3 * 256)] * exemplars
        assert out["score"].shape == (2,) and torch.isfinite(out["score"]).all()
        assert out["votes"].shape == out["exemplar_index"].shape == (2, 10)  # M = 10 ...
        assert out["exemplar_valid"].sum(1).tolist() == [4, 4]  # ... of which a 4-video bank fills 4
        assert out["boundaries"].shape == (2, 2, 3) and out["sub_action_probs"].shape == (2, 2, 4, steps)
    print(f"6 forwards (T = {LENGTHS}, 2 queries, 4 exemplars): {time.perf_counter() - started:.2f} s")


@pytest.mark.parametrize("clips", LENGTHS)
def test_boundaries_are_ordered_inside_the_real_steps(clips):
    head = _head()
    mask = torch.ones(3, clips, dtype=torch.bool)
    mask[1, max(1, clips // 2):] = False
    with torch.no_grad():
        out = head(_clips(3, clips, seed=clips), mask)
    boundaries = out["boundaries"]  # [B, 2, S - 1]: first steps of sub-actions 2..S
    assert (boundaries[..., 1:] > boundaries[..., :-1]).all() and (boundaries > 0).all()
    inputs = mask.sum(1).clamp_max(head.config.parse_max_steps)  # real clips, or 32 pooled inputs
    assert (boundaries < 8 * inputs.view(-1, 1, 1)).all()
    details = head.predict_details(out)["boundaries"]
    clips_per_step = mask.sum(1) / inputs / 8
    assert torch.equal(out["clips_per_step"], clips_per_step)
    assert torch.equal(details, boundaries[:, 1].float() * clips_per_step.unsqueeze(1))  # actor stream, in clips
    assert (details < mask.sum(1).unsqueeze(1)).all()


@pytest.mark.parametrize("ablation", ["full", *sorted(ABLATIONS)])
def test_padding_changes_nothing(ablation):
    head = _head(**ABLATIONS.get(ablation, {}))
    features = _clips(3, 5, head.input_dim, seed=2)
    padded = torch.cat([features, torch.full((3, 7, head.input_dim), NAN)], 1)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[:, :5] = True
    exemplars = _exemplars(3, 4, head.input_dim)
    with torch.no_grad():
        short, long = head(features), head(padded, mask)
        pair_short, pair_long = head(features, exemplars=exemplars), head(padded, mask, exemplars=exemplars)
    for key in ("score", "votes", "boundaries"):
        if key in short:
            assert torch.allclose(short[key], long[key], atol=1e-5), key
    if "sub_action_probs" in short:
        assert torch.allclose(short["sub_action_probs"], long["sub_action_probs"][..., :40], atol=1e-6)
        assert long["sub_action_probs"][..., 40:].abs().sum() == 0
    assert torch.allclose(pair_short["score"], pair_long["score"], atol=1e-5)


@pytest.mark.parametrize("cap", [3, 8])  # 3: the 5-clip videos pooled; 8: pooled only once padded past 8
def test_padding_changes_nothing_with_the_parsers_inputs_capped(cap):
    head = _head(parse_max_steps=cap)
    features = _clips(3, 5, seed=2)
    padded = torch.cat([features, torch.full((3, 7, head.input_dim), NAN)], 1)
    mask = torch.arange(12).expand(3, -1) < 5
    with torch.no_grad():
        short, long = head(features), head(padded, mask)
        exemplars = _exemplars(3, 4)
        pair_short, pair_long = head(features, exemplars=exemplars), head(padded, mask, exemplars=exemplars)
    for key in ("score", "votes", "boundaries", "clips_per_step"):
        assert torch.allclose(short[key].float(), long[key].float(), atol=1e-5), key
    steps = short["sub_action_probs"].shape[-1]
    assert steps == 8 * min(5, cap) and long["sub_action_probs"][..., steps:].abs().sum() == 0
    assert torch.allclose(pair_short["score"], pair_long["score"], atol=1e-5)
    assert torch.allclose(pair_short["sub_action_probs"], pair_long["sub_action_probs"][..., :steps], atol=1e-6)


@pytest.mark.parametrize("ablation", ["full", "no_actor"])
def test_the_cap_leaves_inputs_of_at_most_that_many_clips_bit_for_bit(ablation):
    overrides = ABLATIONS.get(ablation, {})
    heads = [_head(parse_max_steps=cap, **overrides) for cap in (0, 10)]  # 0: no cap (the paper's FSPN)
    features, mask = _clips(4, 10, heads[0].input_dim, seed=6), torch.arange(10).expand(4, -1) < 9
    exemplars = _exemplars(4, 7, heads[0].input_dim)
    outputs = []
    for head in heads:
        with torch.no_grad():
            votes = head(features, mask)
        head.train()
        pairs = head(features, mask, exemplars=exemplars)
        pairs["loss"] = head.loss(pairs, torch.tensor([0.1, 0.4, 0.6, 0.9]))[0]
        pairs["loss"].backward()
        outputs.append((votes, pairs, [p.grad for p in head.parameters()]))
    (votes, pairs, grads), (capped_votes, capped_pairs, capped_grads) = outputs
    for mine, theirs in ((votes, capped_votes), (pairs, capped_pairs)):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[key], theirs[key]) for key in mine)
    assert all(torch.equal(a, b) for a, b in zip(grads, capped_grads))


def test_a_long_video_is_parsed_as_its_pooled_clips_with_boundaries_in_clips():
    capped, uncapped = _head(parse_max_steps=8), _head(parse_max_steps=0)
    features = _clips(2, 24, seed=7)
    pooled = F.avg_pool1d(features.transpose(1, 2), 3).transpose(1, 2)  # 24 clips -> 8 inputs of 3 clips
    seen = []
    capped.parser.blocks[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    with torch.no_grad():
        long, short = capped(features), uncapped(pooled)
    assert seen[0] == (4, 8, DIM)  # both streams of 2 videos, 8 inputs each, not 24 clips
    assert torch.allclose(long["score"], short["score"], atol=1e-5)
    assert torch.equal(long["boundaries"], short["boundaries"])
    assert torch.equal(long["clips_per_step"], torch.full((2,), 3 / 8))
    details, pooled_details = capped.predict_details(long), uncapped.predict_details(short)
    assert torch.allclose(details["boundaries"], 3 * pooled_details["boundaries"])  # clip positions of the 24


def test_gradients_reach_every_trainable_parameter_through_the_pooled_parse():
    head = _head(parse_max_steps=4).train()
    outputs = head(_clips(4, 13, seed=8), exemplars=_exemplars(4, 9))
    head.loss(outputs, torch.tensor([0.1, 0.4, 0.6, 0.9]))[0].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for p in head.parameters())


def test_voting_with_one_exemplar_equals_the_single_pair_prediction():
    head = _head(num_exemplars=1)
    features = _clips(4, 7, seed=3)
    with torch.no_grad():
        voted = head(features, groups=torch.tensor([1.0, 2.0, NAN, 1.0]))
        index = voted["exemplar_index"][:, 0]
        bank = head.exemplars
        paired = head(features, exemplars=Exemplars(bank.features[index], bank.mask[index], bank.score[index]))
    assert torch.allclose(voted["score"], paired["score"], atol=1e-6)
    assert torch.allclose(voted["votes"][:, 0], paired["score"], atol=1e-6)


def test_voting_averages_over_the_querys_group():
    head = _head()
    with torch.no_grad():
        out = head(_clips(2, 6, seed=4), groups=torch.tensor([2.0, 1.0]))
    assert (head.exemplars.group[out["exemplar_index"]] == torch.tensor([[2.0], [1.0]])).all()
    assert torch.allclose(out["score"], out["votes"].mean(dim=1), atol=1e-6)


def _fresh_votes(head: FSPNHead, features: torch.Tensor, groups: torch.Tensor | None = None) -> dict:
    """Votes with the bank encoded afresh (gradients on skip the cache), detached."""
    with torch.enable_grad():
        return {key: value.detach() for key, value in head(features, groups=groups).items()}


def _votes(head: FSPNHead, features: torch.Tensor, groups: torch.Tensor | None = None) -> dict:
    with torch.no_grad():
        return head(features, groups=groups)


def _same_votes(first: dict, second: dict) -> bool:
    return torch.allclose(first["score"], second["score"], atol=1e-6) and torch.allclose(
        first["votes"], second["votes"], atol=1e-6, equal_nan=True) and torch.equal(
        first["exemplar_index"], second["exemplar_index"])


def test_voting_encodes_each_bank_exemplar_once_and_votes_as_without_the_cache():
    head = _head()
    encoded: list[int] = []
    head.fusion.register_forward_hook(lambda module, inputs, output: encoded.append(output.shape[0]))
    batches = [(_clips(3, 7, seed=seed), torch.tensor(groups)) for seed, groups in
               [(1, [1.0, NAN, 1.0]), (2, [2.0, 2.0, 1.0]), (3, [NAN, NAN, 2.0])]]
    cached = [_votes(head, features, groups) for features, groups in batches]
    expected, seen = [], set()  # per call: the 3 queries, then only the bank rows not encoded before
    for _, groups in batches:
        rows = set(head.exemplars.select(groups, 3)[0].unique().tolist()) - seen
        expected += [3] + [len(rows)] * bool(rows)
        seen |= rows
    assert encoded == expected and expected[-1] == 3  # the last batch's exemplars were all encoded before
    for (features, groups), votes in zip(batches, cached):
        assert _same_votes(votes, _fresh_votes(head, features, groups))


def test_the_bank_cache_follows_every_change_of_the_head():
    head, features = _head(), _clips(4, 5, seed=7)
    before = _votes(head, features)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)  # an optimiser step changes the weights in place
    head.train()
    loss, _ = head.loss(head(features, exemplars=_exemplars(4, 5)), torch.rand(4))
    loss.backward()
    optimizer.step()
    head.eval()
    _votes(head, features)  # fill the cache with the stepped weights
    with torch.no_grad():
        head.regressor[0].weight.mul_(1.5)  # in place, in eval mode
    stepped = _votes(head, features)
    assert not _same_votes(before, stepped) and _same_votes(stepped, _fresh_votes(head, features))
    head.load_state_dict(_head(seed=3).state_dict())  # a load
    loaded = _votes(head, features)
    assert _same_votes(loaded, _fresh_votes(_head(seed=3), features))
    _filled(head, count=8, clips=4, seed=9)  # a new bank
    assert _same_votes(_votes(head, features), _fresh_votes(head, features))


def test_the_banks_padding_is_zeroed_like_a_querys():
    features, mask = _clips(4, 6, seed=2), torch.ones(4, 6, dtype=torch.bool)
    mask[1:, 4:] = False
    heads = [_head(), _head()]
    for head, fill in zip(heads, (0.0, 100.0)):  # garbage after each bank video's end must not count
        head.exemplars.fill(features.masked_fill(~mask.unsqueeze(-1), fill), mask, torch.linspace(0.1, 0.9, 4))
    queries = _clips(2, 5, seed=3)
    assert _same_votes(_votes(heads[0], queries), _votes(heads[1], queries))


def test_the_bank_cache_is_kept_while_nothing_changes_and_dropped_by_train_mode():
    head, features = _head(), _clips(2, 5)
    _votes(head, features)
    cache = head._bank_cache
    _votes(head, features)
    assert head._bank_cache is cache
    head.train().eval()
    assert head._bank_cache is None
    with torch.inference_mode():  # another mode: encoded afresh, and usable afterwards
        inferred = head(features)
    assert _same_votes(inferred, _votes(head, features))


def test_swapping_the_streams_changes_the_prediction():
    head = _head()
    features = _clips(3, 9, seed=6)
    with torch.no_grad():
        straight, swapped = head(features)["score"], head(_swap(features))["score"]
    assert (straight - swapped).abs().max() > 1e-4


def test_without_the_actor_stream_one_stream_serves_as_both():
    head = _head(use_actor=False)
    assert head.input_dim == head.stream_dim == DIM
    with torch.no_grad():
        out = head(_clips(2, 6, DIM, seed=7))
    assert torch.equal(out["boundaries"][:, 0], out["boundaries"][:, 1])  # one parse, seen as both streams
    with pytest.raises(HeadConfigError, match="input_dim must be even"):
        build_head("fspn", TINY, input_dim=2 * DIM + 1)


def test_one_stream_computes_what_two_equal_streams_compute():
    one = _head(use_actor=False).train()
    two = build_head("fspn", TINY, input_dim=2 * DIM).train()  # same weights; buffers as wide as the input differ
    shapes = {name: value.shape for name, value in two.state_dict().items()}
    two.load_state_dict({k: v for k, v in one.state_dict().items() if shapes[k] == v.shape}, strict=False)
    assert all(torch.equal(a, b) for a, b in zip(one.parameters(), two.parameters()))
    features, exemplars = _clips(3, 7, DIM, seed=4), _exemplars(3, 5, DIM)
    doubled = Exemplars(torch.cat([exemplars.features] * 2, -1), exemplars.mask, exemplars.score)
    targets = torch.tensor([0.2, 0.5, 0.9])
    outputs = [one(features, exemplars=exemplars), two(torch.cat([features] * 2, -1), exemplars=doubled)]
    for key in ("score", "parse_logits", "step_mask", "boundaries", "sub_action_probs", "bin_logits"):
        assert torch.allclose(outputs[0][key].float(), outputs[1][key].float(), atol=1e-6), key
    losses = [head.loss(out, targets)[0] for head, out in zip((one, two), outputs)]
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    for loss in losses:
        loss.backward()
    for (name, first), second in zip(one.named_parameters(), two.parameters()):
        assert torch.allclose(first.grad, second.grad, atol=1e-6), name


@pytest.mark.parametrize("ablation", ["full", *sorted(ABLATIONS)])
def test_gradients_reach_every_trainable_parameter(ablation):
    head = _head(**ABLATIONS.get(ablation, {})).train()
    outputs = head(_clips(4, 6, head.input_dim, seed=8), exemplars=_exemplars(4, 5, head.input_dim))
    total, _ = head.loss(outputs, torch.tensor([0.1, 0.4, 0.6, 0.9]))
    total.backward()
    missing = [name for name, param in head.named_parameters()
               if param.grad is None or not torch.isfinite(param.grad).all() or param.grad.abs().sum() == 0]
    # L_gc is the parser MLP's only signal (argmax boundaries pass no gradient): without it the parse stays put
    assert missing == ([name for name, _ in head.parser.classifier.named_parameters(prefix="parser.classifier")]
                       if ablation == "no_gc" else [])


@pytest.mark.parametrize(("ablation", "parts"), [
    ("full", {"gc", "bce", "reg"}),
    ("no_iap", {"bce", "reg"}),
    ("no_gc", {"bce", "reg"}),
    ("no_bce", {"gc", "reg"}),
    ("no_actor", {"gc", "bce", "reg"}),
    ("single_scale", {"gc", "bce", "reg"}),
])
def test_loss_parts_follow_the_ablation_and_sum_to_the_total(ablation, parts):
    head = _head(**ABLATIONS.get(ablation, {}))
    out = head(_clips(3, 6, head.input_dim, seed=9), exemplars=_exemplars(3, 6, head.input_dim))
    total, named = head.loss(out, torch.tensor([0.3, 0.5, 0.7]))
    assert set(named) == parts and all(not value.requires_grad for value in named.values())
    assert total.item() == pytest.approx(sum(value.item() for value in named.values()), rel=1e-6)


def test_bce_and_reg_are_cores_interval_classification_and_in_interval_regression():
    head = _head()
    exemplars = _exemplars(3, 6)
    out = head(_clips(3, 6, seed=10), exemplars=exemplars)
    targets = torch.tensor([0.3, 0.5, 0.7])
    interval, position = bin_targets(targets - exemplars.score, head.bin_edges)
    _, parts = head.loss(out, targets)
    one_hot = torch.nn.functional.one_hot(interval, 6).float()
    bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out["bin_logits"]), one_hot)
    assert parts["bce"].item() == pytest.approx(bce.item(), rel=1e-5)
    chosen = out["bin_positions"][torch.arange(3), interval]
    assert parts["reg"].item() == pytest.approx(((chosen - position) ** 2).mean().item(), rel=1e-5)
    assert torch.allclose(out["score"], exemplars.score + out["difference"])


def test_without_bce_the_regressor_predicts_the_difference_directly():
    head = _head(use_bce=False)
    exemplars = _exemplars(2, 6)
    out = head(_clips(2, 6, seed=11), exemplars=exemplars)
    assert "bin_logits" not in out and not hasattr(head, "classifier")
    _, parts = head.loss(out, torch.tensor([0.4, 0.6]))
    expected = ((out["difference"] - (torch.tensor([0.4, 0.6]) - exemplars.score)) ** 2).mean()
    assert parts["reg"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_loss_of_a_vote_is_the_mse_of_the_voted_score():
    head = _head()
    with torch.no_grad():
        out = head(_clips(2, 6, seed=13))
    total, parts = head.loss(out, torch.tensor([0.25, 0.75]))
    assert set(parts) == {"score"}
    assert total.item() == pytest.approx(((out["score"] - torch.tensor([0.25, 0.75])) ** 2).mean().item())


def test_ablations_drop_their_modules():
    assert not hasattr(_head(use_iap=False), "parser")
    assert len(_head(smt_widths=(8,)).transformer.stages) == 1
    assert "boundaries" not in _head(use_iap=False)(_clips(1, 4))


def test_state_dict_round_trip_keeps_the_weights_bins_and_bank():
    head = _head(seed=1)
    features, groups = _clips(3, 8, seed=12), torch.tensor([1.0, NAN, 2.0])
    buffer = io.BytesIO()
    torch.save(head.state_dict(), buffer)
    buffer.seek(0)
    restored = build_head("fspn", TINY, input_dim=2 * DIM).eval()  # fresh: other weights, uniform bins, empty bank
    assert len(restored.exemplars) == 0 and not torch.equal(restored.bin_edges, head.bin_edges)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.bin_edges, head.bin_edges) and len(restored.exemplars) == len(head.exemplars)
    with torch.no_grad():
        assert torch.equal(restored(features, groups=groups)["score"], head(features, groups=groups)["score"])


def test_fit_bins_sets_the_buffer_only():
    head = build_head("fspn", TINY, input_dim=2 * DIM)
    before = [param.clone() for param in head.parameters()]
    edges = head.fit_bins(torch.tensor([0.1, 0.2, 0.4, 0.8, 0.9]))
    assert edges is head.bin_edges and edges[0] < 0 < edges[-1] and edges[-1].item() == pytest.approx(0.8)
    assert all(torch.equal(a, b) for a, b in zip(before, head.parameters()))


def test_errors_say_what_the_head_needs():
    head = _head()
    features = _clips(2, 4)
    with pytest.raises(ValueError, match="expected features"):
        head(features[..., :DIM])  # one stream given to a two-stream head
    with pytest.raises(ValueError, match="one exemplar per query"):
        head(features, exemplars=_exemplars(3, 4))
    with pytest.raises(ValueError, match="trains on \\(query, exemplar\\) pairs"):
        head.train()(features)
    with pytest.raises(ValueError, match="exemplar bank is empty"):
        build_head("fspn", TINY, input_dim=2 * DIM).eval()(features)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"num_subactions": 9}, "fewer than num_subactions"),
    ({"smt_widths": (64, 100)}, "divisible by smt_heads"),
    ({"parser_channels": ()}, "non-empty"),
    ({"temperature": 0.0}, "temperature"),
    ({"num_exemplars": 0}, "num_exemplars"),
    ({"train_exemplar_groups": "action"}, "train_exemplar_groups"),
    ({"pair_dropout": 1.0}, r"pair_dropout must be in \[0, 1\), got 1.0$"),
    ({"pair_dropout": -0.1}, r"pair_dropout must be in \[0, 1\), got -0.1$"),
])
def test_invalid_configs_are_rejected_with_a_reason(overrides, message):
    with pytest.raises(HeadConfigError, match=message) as error:
        FSPNConfig(**overrides)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("use_bce", [True, False])
def test_pair_dropout_is_off_by_default_and_leaves_the_papers_modules(use_bce):
    head = _head(use_bce=use_bce)
    assert FSPNConfig().pair_dropout == 0.0
    # Runs made before it was added keep their config hashes: the default is not hashed.
    assert "pair_dropout" not in config_to_json(FSPNConfig())
    assert "pair_dropout" in config_to_json(FSPNConfig(pair_dropout=0.5))
    assert not any(isinstance(module, torch.nn.Dropout) for module in head.modules())
    mlps = ["classifier", "regressor"] if use_bce else ["regressor"]
    assert [key for key in head.state_dict() if key.split(".")[0] in mlps] == [
        f"{mlp}.{layer}.{kind}" for mlp in mlps for layer in (0, 2) for kind in ("weight", "bias")]


@pytest.mark.parametrize("use_bce", [True, False])
def test_pair_dropout_draws_in_train_mode_only_and_eval_computes_the_head_without_it(use_bce):
    dropped, plain = _head(seed=3, use_bce=use_bce, pair_dropout=0.5), _head(seed=3, use_bce=use_bce)
    assert sum(isinstance(module, torch.nn.Dropout) for module in dropped.modules()) == 1 + use_bce
    features, exemplars = _clips(4, 6, seed=21), _exemplars(4, 6)
    dropped.train()
    first, second = (dropped(features, exemplars=exemplars)["difference"] for _ in range(2))
    assert not torch.equal(first, second)  # a fresh mask per call
    dropped.eval()
    with torch.no_grad():
        pairs = [dropped(features, exemplars=exemplars)["difference"] for _ in range(2)]
        votes = [dropped(features)["score"] for _ in range(2)]
        assert torch.equal(*pairs) and torch.equal(*votes)  # deterministic
        # Dropout adds no weights and draws no numbers when built: the same seed gives the same weights.
        assert torch.equal(pairs[0], plain(features, exemplars=exemplars)["difference"])
        assert torch.equal(votes[0], plain(features)["score"])
