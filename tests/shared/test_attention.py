"""Attention against the formula softmax(Q Kᵀ / √d_k) V, computed by hand."""

import math

import pytest
import torch

from shared.attention import Attention


def explicit(attn: Attention, x, memory=None, bias=None):
    """The paper's formula with the module's own projections, head by head."""
    B, T, _ = x.shape
    kv_in = x if memory is None else memory
    H, Dh = attn.n_heads, attn.head_dim
    q = attn.q_proj(x).view(B, T, H, Dh).transpose(1, 2)
    k = attn.k_proj(kv_in).view(B, kv_in.shape[1], -1, Dh).transpose(1, 2)
    v = attn.v_proj(kv_in).view(B, kv_in.shape[1], -1, Dh).transpose(1, 2)
    k = k.repeat_interleave(H // k.shape[1], dim=1)
    v = v.repeat_interleave(H // v.shape[1], dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(Dh)
    if bias is not None:
        scores = scores + bias
    out = torch.softmax(scores, dim=-1) @ v  # (B, H, T, Dh)
    return attn.out_proj(out.transpose(1, 2).reshape(B, T, H * Dh))


@pytest.fixture
def data():
    torch.manual_seed(0)
    return torch.randn(2, 5, 16), torch.randn(2, 7, 16)


@pytest.mark.parametrize("n_kv_heads", [4, 2])
@pytest.mark.parametrize("cross", [False, True])
def test_attention_matches_formula(data, n_kv_heads, cross):
    x, memory = data
    attn = Attention(16, 4, n_kv_heads=n_kv_heads).eval()
    ctx = memory if cross else None
    expected = explicit(attn, x, ctx)
    torch.testing.assert_close(attn(x, ctx), expected, atol=1e-5, rtol=0)
    out, weights = attn.forward_with_weights(x, ctx)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))


@pytest.mark.parametrize("cross", [False, True])
def test_boolean_and_additive_masks(data, cross):
    x, memory = data
    attn = Attention(16, 4).eval()
    ctx = memory if cross else None
    Tk = 7 if cross else 5
    allowed = torch.rand(2, 1, 5, Tk) > 0.4
    allowed[..., 0] = True  # every query sees at least one key
    bias_from_bool = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
    expected = explicit(attn, x, ctx, bias_from_bool)
    torch.testing.assert_close(attn(x, ctx, mask=allowed), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(attn.forward_with_weights(x, ctx, mask=allowed)[0], expected,
                               atol=1e-5, rtol=0)

    additive = torch.randn(1, 4, 5, Tk)
    expected = explicit(attn, x, ctx, additive)
    torch.testing.assert_close(attn(x, ctx, mask=additive), expected, atol=1e-5, rtol=0)


def test_key_padding_mask_ignores_padded_keys(data):
    x, _ = data
    attn = Attention(16, 4).eval()
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = attn(x, mask=valid)
    torch.testing.assert_close(out[1, :3], attn(x[1:, :3])[0], atol=1e-5, rtol=0)


def test_causal_flag_matches_explicit_mask(data):
    x, _ = data
    attn = Attention(16, 4).eval()
    lower = torch.ones(5, 5).tril().bool()
    torch.testing.assert_close(attn(x, is_causal=True), attn(x, mask=lower[None, None]), atol=1e-6, rtol=0)
    torch.testing.assert_close(attn.forward_with_weights(x, is_causal=True)[0], attn(x, is_causal=True),
                               atol=1e-6, rtol=0)


def test_fully_masked_query_rows_stay_finite(data):
    x, _ = data
    attn = Attention(16, 4).eval()
    mask = torch.ones(1, 1, 5, 5, dtype=torch.bool)
    mask[..., 2, :] = False
    assert torch.isfinite(attn(x, mask=mask)).all()


def test_unscaled_attention_scale():
    torch.manual_seed(0)
    attn = Attention(8, 2, scale=1.0, bias=False).eval()
    x = torch.randn(1, 3, 8)
    _, weights = attn.forward_with_weights(x)
    q = attn.q_proj(x).view(1, 3, 2, 4).transpose(1, 2)
    k = attn.k_proj(x).view(1, 3, 2, 4).transpose(1, 2)
    torch.testing.assert_close(weights, torch.softmax(q @ k.transpose(-1, -2), -1))


def test_bad_grouping_is_a_clear_error():
    with pytest.raises(ValueError, match="grouped"):
        Attention(16, 4, n_kv_heads=3)


@pytest.mark.parametrize("mask", [None, "padding", "per-query"])
def test_a_memory_of_batch_one_serves_every_row(mask):
    """Beams or samples of one input: a (1, S, D) memory equals that memory repeated for each row, with a
    key-padding mask (its rows folded into one attention) or a per-query one (its keys expanded)."""
    torch.manual_seed(0)
    attn = Attention(16, 4, n_kv_heads=2).eval()
    x, memory = torch.randn(3, 2, 16), torch.randn(1, 7, 16)
    masks = {None: None, "padding": torch.arange(7)[None] < 5, "per-query": torch.rand(1, 1, 2, 7) > 0.3}
    mask = masks[mask]
    if mask is not None and mask.dim() == 4:
        mask[..., 0] = True
    expected = attn(x, memory.expand(3, -1, -1), mask=None if mask is None else mask.expand(3, *mask.shape[1:]))
    torch.testing.assert_close(attn(x, memory, mask=mask), expected, atol=1e-6, rtol=0)


def test_cached_keys_of_a_shared_memory_are_projected_once_and_never_copied():
    from shared.cache import Cache

    torch.manual_seed(0)
    attn = Attention(16, 4).eval()
    memory = torch.randn(1, 7, 16)
    cache = Cache(1, 4, cross_attention=True, memory=memory)
    cross = cache.layers[0].cross_attn
    x = torch.randn(3, 1, 16)
    first = attn(x, memory, cache=cross)
    keys = cross.k
    assert keys.shape[0] == 1
    cache.reorder(torch.tensor([2, 2, 0]))  # beam search follows its best rows
    assert cross.k is keys and cache.memory is memory
    torch.testing.assert_close(attn(x, memory, cache=cross), first)
    torch.testing.assert_close(first, attn(x, memory.expand(3, -1, -1)), atol=1e-6, rtol=0)
