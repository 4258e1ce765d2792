"""The one attention module: Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V over several heads."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from shared import masks
from shared.cache import CrossKV, KVCache
from shared.positions import RotaryEmbedding


class FusedWeights:
    """The concatenation of several nn.Linear layers' weights and biases, for one GEMM over a shared input.

    With gradients on, the concatenation is taken inside autograd on every call, so each layer's own
    parameters receive their gradients. With gradients off it is cached: reused while every source tensor
    still points at the same memory (not moved, cast or swapped) and has the same `_version` (not changed in
    place, e.g. by an optimizer step or load_state_dict); parameters made under inference_mode have no
    version counter, so they are concatenated afresh. A missing bias is a zero bias (Whisper's keys).
    A plain object, so the cache is never in a state dict and never moved by `.to()`.
    """

    def __init__(self):
        self.sources: list[tuple[torch.Tensor, int]] = []  # (detached alias, version) per source tensor
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def __call__(self, layers: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            self.clear()  # do not hold a copy of the weights while training
            return concat(layers)
        tensors = [t for layer in layers for t in (layer.weight, layer.bias) if t is not None]
        if any(t.is_inference() for t in tensors):  # made under inference_mode: no version to watch
            return concat(layers)
        if len(tensors) != len(self.sources) or not all(
                alias.is_set_to(t) and version == t._version for (alias, version), t in zip(self.sources, tensors)):
            weight, self.bias = concat(layers)
            self.weight = weight.t().contiguous().t()  # column-major: faster when decoding (shared.layout)
            # Holding the aliases keeps the old memory alive, so a new tensor can never reuse its address.
            self.sources = [(t.detach(), t._version) for t in tensors]
        return self.weight, self.bias

    def clear(self) -> None:
        self.sources, self.weight, self.bias = [], None, None


def concat(layers: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stacked weights (sum of outputs, in) and biases (sum of outputs,), or None when no layer has a bias."""
    weight = torch.cat([layer.weight for layer in layers])
    if all(layer.bias is None for layer in layers):
        return weight, None
    bias = torch.cat([layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)
                      for layer in layers])
    return weight, bias


def plain_linear(layer: nn.Module) -> bool:
    """Whether the layer is exactly F.linear(x, weight, bias), so that fusing it changes nothing.

    Quantized, parametrized or wrapped layers (subclasses) and layers with hooks run as themselves.
    """
    return type(layer) is nn.Linear and not (layer._forward_hooks or layer._forward_pre_hooks)


class Attention(nn.Module):
    """Multi-head self- or cross-attention with separate q/k/v/out projections.

    Args:
        dim: model width of the queries (and of the output).
        n_heads: query heads.
        n_kv_heads: key/value heads (grouped-query attention when fewer than n_heads).
        head_dim: per-head width; dim // n_heads by default.
        bias: biases on the projections. key_bias: the key projection's bias (Whisper has none).
        scale: score scale; 1/√head_dim by default (T5 uses 1.0).
        context_dim: width of the cross-attention memory when it differs from dim.
        rotary: rotary embedding applied to queries and keys of self-attention.

    Uses F.scaled_dot_product_attention, except when `return_weights=True` asks for the probabilities,
    which takes the explicit softmax path. Self-attention projects q, k and v with one GEMM over the three
    layers' concatenated weights (see FusedWeights); the parameters stay the three separate layers.
    """

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int | None = None, head_dim: int | None = None,
                 bias: bool = True, key_bias: bool | None = None, scale: float | None = None,
                 dropout: float = 0.0, context_dim: int | None = None, rotary: RotaryEmbedding | None = None):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        if n_heads % self.n_kv_heads:
            raise ValueError(f"{n_heads} query heads cannot be grouped over {self.n_kv_heads} key/value heads")
        self.head_dim = head_dim or dim // n_heads
        self.scale = scale if scale is not None else 1.0 / math.sqrt(self.head_dim)
        self.dropout = dropout
        self.rotary = rotary
        kv_in = context_dim or dim
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(kv_in, self.n_kv_heads * self.head_dim, bias=bias if key_bias is None else key_bias)
        self.v_proj = nn.Linear(kv_in, self.n_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(n_heads * self.head_dim, dim, bias=bias)
        self.fused_qkv = FusedWeights()  # used by self-attention only

    def _apply(self, fn, recurse=True):
        self.fused_qkv.clear()  # moved or cast: drop the old copy now rather than at the next call
        return super()._apply(fn, recurse)

    def __getstate__(self):
        # deepcopy and pickle: a copy starts without the cache (its tensors get new versions and memory).
        return {**super().__getstate__(), "fused_qkv": FusedWeights()}

    def _project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of self-attention from one GEMM: (B, T, H·Dh), (B, T, Hkv·Dh), (B, T, Hkv·Dh)."""
        layers = (self.q_proj, self.k_proj, self.v_proj)
        if not all(plain_linear(layer) for layer in layers):
            return tuple(layer(x) for layer in layers)
        weight, bias = self.fused_qkv(layers)
        qkv = F.linear(x, weight, bias)  # (B, T, (H + 2·Hkv)·Dh)
        kv_width = self.n_kv_heads * self.head_dim
        return qkv.split([self.n_heads * self.head_dim, kv_width, kv_width], dim=-1)

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, n, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                is_causal: bool = False, cache: KVCache | CrossKV | None = None, return_weights: bool = False):
        """x: (B, T, D); context: (B, S, Dc) for cross-attention; mask: see shared.masks.

        Returns (B, T, D), or ((B, T, D), (B, H, T, Tk) weights) when return_weights.
        """
        if context is None:
            q, k, v = self._project_qkv(x)
            q = self._heads(q, self.n_heads)  # (B, H, T, Dh)
            k, v = self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)  # (B, Hkv, T, Dh)
            if self.rotary is not None:
                offset = cache.length if cache is not None else 0
                q, k = self.rotary(q, offset), self.rotary(k, offset)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, Hkv, Tpast + T, Dh)
        else:
            q = self._heads(self.q_proj(x), self.n_heads)  # (B, H, T, Dh)
            if cache is not None and cache.k is not None:
                k, v = cache.k, cache.v  # projected from the memory at the first step
            else:
                k = self._heads(self.k_proj(context), self.n_kv_heads)  # (B, Hkv, S, Dh)
                v = self._heads(self.v_proj(context), self.n_kv_heads)
                if cache is not None:
                    cache.k, cache.v = k, v

        if self.n_kv_heads != self.n_heads:  # grouped-query attention: share each K/V head across its group
            repeat = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)  # (B, H, Tk, Dh)
        mask = masks.normalize(mask)
        if mask is not None and mask.dtype == torch.bool:
            mask = masks.to_bias(mask, q.dtype)
        dropout = self.dropout if self.training else 0.0
        if return_weights:
            out, weights = self._explicit(q, k, v, mask, is_causal, dropout)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal,
                                                 scale=self.scale)
        B, H, T, Dh = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(B, T, H * Dh))  # (B, T, D)
        return (out, weights) if return_weights else out

    def _explicit(self, q, k, v, mask, is_causal, dropout):
        """softmax(Q Kᵀ · scale + mask) V, returning the attention probabilities too."""
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, T, Tk)
        if is_causal:
            scores = scores + masks.to_bias(masks.causal(q.shape[2], k.shape[2], device=q.device), scores.dtype)
        if mask is not None:
            scores = scores + mask
        weights = scores.float().softmax(dim=-1).to(q.dtype)
        return F.dropout(weights, dropout) @ v, weights
