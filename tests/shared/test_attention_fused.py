"""Self-attention's single q/k/v GEMM: same function, same parameters, and a weight cache that cannot go stale."""

import copy
import pickle

import pytest
import torch

from shared.attention import Attention
from tests.shared.test_attention import explicit


def make(**kwargs) -> Attention:
    torch.manual_seed(0)
    return Attention(16, 4, **kwargs).eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(2, 5, 16)


@pytest.mark.parametrize("kwargs", [{}, {"n_kv_heads": 2}, {"key_bias": False}, {"bias": False}])
@pytest.mark.parametrize("grad_mode", [torch.enable_grad, torch.no_grad, torch.inference_mode])
def test_fused_projection_matches_the_separate_layers(x, kwargs, grad_mode):
    attn = make(**kwargs)
    with torch.no_grad():
        expected = explicit(attn, x)
    with grad_mode():
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(attn(x, is_causal=True, return_weights=True)[0],
                                   attn(x, mask=torch.ones(5, 5).tril().bool()[None, None]), atol=1e-5, rtol=0)


def test_state_dict_keeps_the_three_projections_and_no_cache(x):
    attn = make(key_bias=False)
    with torch.no_grad():
        attn(x)  # fills the cache
    keys = set(attn.state_dict())
    assert {"q_proj.weight", "q_proj.bias", "k_proj.weight", "v_proj.weight", "v_proj.bias"} <= keys
    assert "k_proj.bias" not in keys
    assert not any("fused" in k for k in keys)
    assert len(list(attn.parameters())) == 7


def test_gradients_reach_each_projection_as_with_separate_layers(x):
    fused, separate = make(key_bias=False), make(key_bias=False)
    fused.train(), separate.train()
    (fused(x) ** 2).sum().backward()
    (explicit(separate, x) ** 2).sum().backward()
    for (name, p), q in zip(fused.named_parameters(), separate.parameters()):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_no_grad_reuses_one_concatenation(x):
    attn = make()
    with torch.no_grad():
        attn(x)
        weight = attn.fused_qkv.weight
        attn(x)
        assert attn.fused_qkv.weight is weight
    attn(x)  # with gradients the concatenation is taken inside autograd and nothing is held
    assert attn.fused_qkv.weight is None


@pytest.mark.parametrize("change", ["in_place", "load_state_dict", "optimizer", "inference_mode"])
def test_cache_follows_in_place_changes(x, change):
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
        attn(x).sum().backward()
        optimizer.step()
    else:
        with torch.inference_mode():
            attn.q_proj.weight.add_(0.5)
    with torch.no_grad():
        after = attn(x)
        expected = explicit(attn, x)
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)


def test_cache_follows_dtype_moves_and_swapped_parameters(x):
    attn = make()
    with torch.no_grad():
        attn(x)
        attn.double()
        out = attn(x.double())
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, explicit(attn, x.double()), atol=1e-10, rtol=0)
        attn.float()
        attn.v_proj.weight.data = torch.randn(16, 16) * 0.2  # same version number, new memory
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)
        attn.load_state_dict({k: torch.randn_like(v) * 0.2 for k, v in attn.state_dict().items()}, assign=True)
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_start_without_the_cache(x, duplicate):
    attn = make()
    with torch.no_grad():
        attn(x)
        twin = duplicate(attn)
        assert twin.fused_qkv.weight is None
        twin.q_proj.weight.mul_(-1.0)
        torch.testing.assert_close(twin(x), explicit(twin, x), atol=1e-5, rtol=0)
        torch.testing.assert_close(attn(x), explicit(attn, x), atol=1e-5, rtol=0)


def test_inference_mode_cache_then_training(x):
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
        attn.q_proj.weight.add_(0.5)  # inference tensors change without a version bump: nothing may be cached
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


def test_cross_attention_keeps_separate_projections(x):
    torch.manual_seed(0)
    attn = Attention(16, 4, context_dim=8).eval()
    context = torch.randn(2, 7, 8)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, context=context), explicit(attn, x, context), atol=1e-5, rtol=0)
