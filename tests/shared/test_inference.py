"""prepare_for_inference: self-attention's q/k/v in one GEMM, the same function, and a fused copy that follows
its weights through every change (in place, moves, casts, swaps, copies, training)."""

import copy
import pickle

import pytest
import torch

from shared.attention import Attention
from shared.block import PreNormBlock
from shared.inference import FusedQKV, prepare_for_inference
from shared.mlp import MLP
from shared.norms import LayerNorm
from shared.transformer import TransformerConfig, build_stack
from tests.shared.test_attention import explicit


def make(**kwargs) -> Attention:
    """A prepared attention: the self-attention of a one-block model."""
    torch.manual_seed(0)
    attn = Attention(16, 4, **kwargs)
    block = PreNormBlock(attn, MLP(16, 32), attn_norm=LayerNorm(16), mlp_norm=LayerNorm(16))
    prepare_for_inference(block.eval())
    assert isinstance(attn.qkv, FusedQKV)
    return attn


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(2, 5, 16)


def test_plain_models_have_no_fused_projection():
    stack = build_stack(TransformerConfig(dim=16, n_layers=2, n_heads=4, mlp_hidden=32, cross_attention=True))
    assert all(m.qkv is None for m in stack.modules() if isinstance(m, Attention))


@pytest.mark.parametrize("kwargs", [{}, {"n_kv_heads": 2}, {"key_bias": False}, {"bias": False}])
@pytest.mark.parametrize("grad_mode", [torch.enable_grad, torch.no_grad, torch.inference_mode])
def test_fused_projection_matches_the_separate_layers(x, kwargs, grad_mode):
    attn = make(**kwargs)
    with torch.no_grad():
        expected = explicit(attn, x)
    with grad_mode():
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(attn.forward_with_weights(x, is_causal=True)[0],
                                   attn(x, mask=torch.ones(5, 5).tril().bool()[None, None]), atol=1e-5, rtol=0)


def test_prepared_stacks_compute_the_same_and_only_self_attention_is_fused():
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=16, n_layers=2, n_heads=4, mlp_hidden=32, causal=True, cross_attention=True)
    stack = build_stack(cfg).eval()
    x, memory = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    with torch.no_grad():
        before = stack(x, memory)
        prepare_for_inference(stack)
        torch.testing.assert_close(stack(x, memory), before, atol=1e-5, rtol=0)
    assert all(isinstance(block.attn.qkv, FusedQKV) and block.cross_attn.qkv is None for block in stack.blocks)
    fused = [block.attn.qkv for block in stack.blocks]
    prepare_for_inference(stack)  # a second call changes nothing
    assert [block.attn.qkv for block in stack.blocks] == fused


def test_state_dict_keeps_the_three_projections_and_no_copy(x):
    attn = make(key_bias=False)
    with torch.no_grad():
        attn(x)  # fuses
    keys = set(attn.state_dict())
    assert {"q_proj.weight", "q_proj.bias", "k_proj.weight", "v_proj.weight", "v_proj.bias"} <= keys
    assert "k_proj.bias" not in keys
    assert not any("qkv" in k for k in keys)
    assert len(list(attn.parameters())) == 7


def test_gradients_reach_each_projection_as_with_separate_layers(x):
    fused, separate = make(key_bias=False), make(key_bias=False)
    separate.qkv = None
    fused.train(), separate.train()
    (fused(x) ** 2).sum().backward()
    (explicit(separate, x) ** 2).sum().backward()
    for (name, p), q in zip(fused.named_parameters(), separate.parameters()):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_no_grad_reuses_one_concatenation_and_training_holds_none(x):
    attn = make()
    with torch.no_grad():
        attn(x)
        weight = attn.qkv.weight
        assert weight.t().is_contiguous()  # column-major (shared.layout)
        attn(x)
        assert attn.qkv.weight is weight
    attn(x)  # with gradients the layers run themselves and nothing is held
    assert attn.qkv.weight is None


@pytest.mark.parametrize("change", ["in_place", "load_state_dict", "optimizer", "inference_mode"])
def test_fused_copy_follows_in_place_changes(x, change):
    attn = make()
    with torch.no_grad():
        before = attn(x)
    if change == "in_place":
        with torch.no_grad():
            attn.k_proj.weight.mul_(2.0)
    elif change == "load_state_dict":
        state = {k: v + 0.1 if k == "v_proj.bias" else v for k, v in attn.state_dict().items()}
        attn.load_state_dict(state)
    elif change == "optimizer":
        optimizer = torch.optim.AdamW(attn.parameters(), lr=0.1)
        attn.train()
        attn(x).sum().backward()
        optimizer.step()
        attn.eval()
    else:
        with torch.inference_mode():
            attn.q_proj.weight.add_(0.5)
    with torch.no_grad():
        after = attn(x)
        expected = explicit(attn, x)
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)


def test_fused_copy_follows_moves_casts_and_swapped_parameters(x):
    attn = make()
    with torch.no_grad():
        attn(x)
        attn.double()
        out = attn(x.double())
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, explicit(attn, x.double()), atol=1e-10, rtol=0)
        attn.to(torch.float32)
        attn.v_proj.weight.data = torch.randn(16, 16) * 0.2  # same version number, new memory
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)
        attn.load_state_dict({k: torch.randn_like(v) * 0.2 for k, v in attn.state_dict().items()}, assign=True)
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)
        attn.k_proj = torch.nn.Linear(16, 16)  # a replaced layer is read, not the one fused before
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_fuse_their_own_weights(x, duplicate):
    attn = make()
    with torch.no_grad():
        attn(x)
        twin = duplicate(attn)
        assert twin.qkv.weight is None and twin.qkv.attn is twin
        twin.q_proj.weight.mul_(-1.0)
        torch.testing.assert_close(twin(x), explicit(twin, x), atol=1e-5, rtol=0)
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)


def test_inference_mode_fusing_then_training(x):
    attn = make()
    with torch.inference_mode():
        attn(x)
    attn.train()
    attn(x).sum().backward()  # an inference tensor in autograd would raise here
    assert attn.q_proj.weight.grad is not None


def test_model_built_under_inference_mode(x):
    with torch.inference_mode():
        attn = make()
        before = attn(x)
        attn.q_proj.weight.add_(0.5)  # inference tensors change without a version bump: nothing may be kept
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)
        assert not torch.allclose(before, attn(x), atol=1e-3)


def test_quantized_or_hooked_projections_run_as_themselves(x):
    attn = make()
    with torch.no_grad():
        expected = explicit(attn, x)
    seen = []
    attn.k_proj.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=0)
    assert seen == [(2, 5, 16)]
    quantized = torch.ao.quantization.quantize_dynamic(make(), {torch.nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        assert (quantized(x) - expected).abs().max() < 0.05
        assert 0 < (quantized(x) - expected).abs().max()  # the int8 layers ran, not a float copy of them
