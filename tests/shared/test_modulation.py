"""adaLN-Zero as a norm of the one pre-norm block: identity at init, then conditioning that matters."""

import math

import torch
from torch import nn

from shared.attention import Attention
from shared.block import PreNormBlock
from shared.mlp import MLP
from shared.modulation import AdaLN, AdaLNZero, TimestepEmbedding, timestep_sinusoids
from shared.transformer import TransformerStack


def _block(dim=16, cond_dim=8):
    return PreNormBlock(Attention(dim, 2), MLP(dim, 32), attn_norm=AdaLNZero(dim, cond_dim),
                        mlp_norm=AdaLNZero(dim, cond_dim))


def test_a_modulated_block_starts_as_the_identity():
    torch.manual_seed(0)
    block = _block()
    x, cond = torch.randn(2, 5, 16), torch.randn(2, 8)
    assert torch.equal(block(x, cond=cond), x)


def test_the_block_computes_x_plus_gate_times_sublayer_of_modulated_norm():
    torch.manual_seed(0)
    block = _block()
    for norm in (block.attn_norm, block.mlp_norm):
        nn.init.normal_(norm.linear.weight)
        nn.init.normal_(norm.linear.bias)
    x, cond = torch.randn(2, 5, 16), torch.randn(2, 8)

    def modulated(norm, h):
        shift, scale, gate = norm.linear(nn.functional.silu(cond))[:, None].chunk(3, dim=-1)
        return nn.functional.layer_norm(h, (16,), eps=1e-6) * (1 + scale) + shift, gate

    h, gate = modulated(block.attn_norm, x)
    expected = x + gate * block.attn(h)
    h, gate = modulated(block.mlp_norm, expected)
    expected = expected + gate * block.mlp(h)
    torch.testing.assert_close(block(x, cond=cond), expected)
    other = block(x, cond=torch.randn(2, 8))
    assert not torch.allclose(other, expected)  # the conditioning changes the output


def test_the_stack_passes_the_conditioning_to_every_block():
    torch.manual_seed(0)
    blocks = [_block() for _ in range(2)]
    for block in blocks:
        nn.init.normal_(block.attn_norm.linear.bias)
    stack = TransformerStack(blocks)
    x, cond = torch.randn(2, 5, 16), torch.randn(2, 8)
    torch.testing.assert_close(stack(x, cond=cond), blocks[1](blocks[0](x, cond=cond), cond=cond))


def test_adaln_shift_and_scale():
    norm = AdaLN(4, 3)
    nn.init.normal_(norm.linear.weight)
    x, cond = torch.randn(2, 6, 4), torch.randn(2, 3)
    shift, scale = norm.linear(nn.functional.silu(cond))[:, None].chunk(2, dim=-1)
    torch.testing.assert_close(norm(x, cond), nn.functional.layer_norm(x, (4,), eps=1e-6) * (1 + scale) + shift)


def test_timestep_sinusoids_follow_dits_formula():
    t = torch.tensor([0.0, 1.0, 999.0])
    out = timestep_sinusoids(t, 8)  # cos first, frequencies 10000^(-i / (half - 1))
    half = 4
    freqs = torch.tensor([math.exp(-math.log(10000.0) * i / (half - 1)) for i in range(half)])
    angles = t[:, None] * freqs[None]
    torch.testing.assert_close(out, torch.cat([angles.cos(), angles.sin()], dim=-1))
    assert TimestepEmbedding(16, freq_dim=8)(t).shape == (3, 16)
