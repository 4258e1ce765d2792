"""Stacks: causality, padding, norm placement, and cached vs uncached equality."""

import pytest
import torch

from shared.block import PostNormBlock, PreNormBlock
from shared.positions import RelativePositionBias
from shared.transformer import TransformerConfig, build_stack


def stack(**overrides):
    torch.manual_seed(0)
    fields = dict(dim=16, n_layers=2, n_heads=4, mlp_hidden=32)
    fields.update(overrides)
    return build_stack(TransformerConfig(**fields)).eval()


@pytest.mark.parametrize("norm_first", [True, False])
def test_changing_a_future_token_leaves_the_past_unchanged(norm_first):
    model = stack(causal=True, norm_first=norm_first)
    x = torch.randn(2, 8, 16)
    changed = x.clone()
    changed[:, 5:] = torch.randn(2, 3, 16)
    before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_padding_does_not_change_real_positions():
    model = stack()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    valid = torch.tensor([[True] * 5 + [False] * 3])
    torch.testing.assert_close(model(padded, mask=valid)[:, :5], model(x), atol=1e-5, rtol=0)


def test_padding_in_a_causal_stack_with_relative_bias():
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=16, n_layers=2, n_heads=4, mlp_hidden=32, causal=True, norm="rmsnorm")
    model = build_stack(cfg, position_bias=RelativePositionBias(4, bidirectional=False)).eval()
    x = torch.randn(1, 4, 16)
    padded = torch.cat([x, torch.randn(1, 2, 16)], dim=1)
    valid = torch.tensor([[True] * 4 + [False] * 2])
    torch.testing.assert_close(model(padded, mask=valid)[:, :4], model(x), atol=1e-5, rtol=0)


def test_cross_attention_padding_is_ignored():
    model = stack(causal=True, cross_attention=True)
    x, memory = torch.randn(1, 3, 16), torch.randn(1, 4, 16)
    padded_memory = torch.cat([memory, torch.randn(1, 2, 16)], dim=1)
    memory_mask = torch.tensor([[True] * 4 + [False] * 2])
    torch.testing.assert_close(model(x, padded_memory, memory_mask=memory_mask),
                               model(x, memory), atol=1e-5, rtol=0)


def test_pre_and_post_norm_place_the_norm_differently():
    pre = stack(norm_first=True, final_norm=False, n_layers=1)
    post = stack(norm_first=False, final_norm=False, n_layers=1)
    post.load_state_dict(pre.state_dict())
    x = torch.randn(1, 3, 16) * 5
    out = post(x)  # post-norm ends with LayerNorm: zero mean, unit variance per position
    torch.testing.assert_close(out.mean(-1), torch.zeros(1, 3), atol=1e-5, rtol=0)
    assert not torch.allclose(pre(x), out)


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(cross_attention=True),
    dict(n_kv_heads=2, rotary=True),
    dict(norm_first=False, final_norm=False),
])
def test_cached_steps_equal_one_full_pass(overrides):
    model = stack(causal=True, **overrides)
    x = torch.randn(2, 9, 16)
    memory = torch.randn(2, 4, 16) if overrides.get("cross_attention") else None
    full = model(x, memory)
    cache = model.init_cache(16, memory=memory)
    steps = [model(x[:, :4], cache=cache)] + [model(x[:, t:t + 1], cache=cache) for t in range(4, 9)]
    assert cache.length == 9
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_cache_overflow_is_a_clear_error():
    model = stack(causal=True)
    cache = model.init_cache(3)
    with pytest.raises(ValueError, match="cache size of 3"):
        model(torch.randn(1, 4, 16), cache=cache)


def test_forward_with_weights_gives_one_dict_per_layer():
    model = stack(causal=True, cross_attention=True)
    x, memory = torch.randn(1, 3, 16), torch.randn(1, 5, 16)
    out, weights = model.forward_with_weights(x, memory)
    torch.testing.assert_close(out, model(x, memory), atol=1e-5, rtol=0)
    assert len(weights) == 2 and weights[0]["cross"].shape == (1, 4, 3, 5)
    assert torch.all(weights[0]["self"][0, :, 0, 1:] == 0)  # causal: the first token sees only itself


@pytest.mark.parametrize("norm_first", [True, False])
def test_weights_path_computes_what_forward_computes(norm_first):
    model = stack(causal=True, cross_attention=True, norm_first=norm_first, final_norm=norm_first)
    assert all(type(b) is (PreNormBlock if norm_first else PostNormBlock) for b in model.blocks)
    x, memory = torch.randn(2, 4, 16), torch.randn(2, 5, 16)
    memory_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    out, weights = model.forward_with_weights(x, memory, memory_mask=memory_mask)
    torch.testing.assert_close(out, model(x, memory, memory_mask=memory_mask), atol=1e-5, rtol=0)
    torch.testing.assert_close(weights[1]["cross"].sum(-1), torch.ones(2, 4, 4))
    assert torch.all(weights[1]["cross"][1, ..., 3:] == 0)  # padded memory gets no weight


def test_block_state_dict_names():
    block = stack(causal=True, cross_attention=True, n_layers=1).blocks[0]
    parts = {key.split(".")[0] for key in block.state_dict()}
    assert parts == {"attn", "attn_norm", "cross_attn", "cross_norm", "mlp", "mlp_norm"}


def test_a_cross_attending_stack_needs_its_memory():
    model = stack(causal=True, cross_attention=True)
    with pytest.raises(ValueError, match="pass the encoder output as `memory`"):
        model(torch.randn(1, 3, 16))
