"""The one attention module: Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V over several heads."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from shared import masks
from shared.cache import CrossKV, KVCache
from shared.layout import Linear
from shared.positions import RotaryEmbedding


class Attention(nn.Module):
    """Multi-head self- or cross-attention with separate q/k/v/out projections.

    Args:
        dim: model width of the queries (and of the output).
        n_heads: query heads.
        n_kv_heads: key/value heads (grouped-query attention when fewer than n_heads).
        head_dim: per-head width; dim // n_heads by default.
        bias: biases on the projections. qkv_bias: on the query, key and value projections only (timm's ViT
            option; the output projection keeps `bias`). key_bias: the key projection's (Whisper has none).
        scale: score scale; 1/√head_dim by default (T5 uses 1.0).
        memory_dim: width of the encoder memory that cross-attention reads, when it differs from dim.
        rotary: rotary embedding applied to queries and keys of self-attention.

    forward() uses F.scaled_dot_product_attention; forward_with_weights() takes the explicit softmax path to
    return the attention probabilities too (visualisation, word timestamps).
    """

    def __init__(self, dim: int, n_heads: int, *, n_kv_heads: int | None = None, head_dim: int | None = None,
                 bias: bool = True, qkv_bias: bool | None = None, key_bias: bool | None = None,
                 scale: float | None = None,
                 dropout: float = 0.0, memory_dim: int | None = None, rotary: RotaryEmbedding | None = None):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        if n_heads % self.n_kv_heads:
            raise ValueError(f"{n_heads} query heads cannot be grouped over {self.n_kv_heads} key/value heads")
        self.head_dim = head_dim or dim // n_heads
        self.scale = scale if scale is not None else 1.0 / math.sqrt(self.head_dim)
        self.dropout = dropout
        self.rotary = rotary
        kv_in = memory_dim or dim
        qkv_bias = bias if qkv_bias is None else qkv_bias
        self.q_proj = Linear(dim, n_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = Linear(kv_in, self.n_kv_heads * self.head_dim, bias=qkv_bias if key_bias is None else key_bias)
        self.v_proj = Linear(kv_in, self.n_kv_heads * self.head_dim, bias=qkv_bias)
        self.out_proj = Linear(n_heads * self.head_dim, dim, bias=bias)
        # Self-attention's q, k and v from one GEMM, (B, T, D) -> (B, T, (H + 2·Hkv)·Dh): None until an
        # inference step (shared.inference.prepare_for_inference, text.quantize) provides one.
        self.qkv = None

    def project(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                cache: KVCache | CrossKV | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, H, T, Dh) from x, keys and values (B, H, Tk, Dh) from x or the memory (and the cache)."""
        B, T, _ = x.shape
        H, Hkv, Dh = self.n_heads, self.n_kv_heads, self.head_dim
        if memory is None:
            if self.qkv is not None:
                q, k, v = self.qkv(x).split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
            else:
                q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
            q = q.view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
            k = k.view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
            v = v.view(B, T, Hkv, Dh).transpose(1, 2)
            if self.rotary is not None:
                offset = cache.length if cache is not None else 0
                q, k = self.rotary(q, offset), self.rotary(k, offset)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, Hkv, Tpast + T, Dh)
        else:
            q = self.q_proj(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
            if cache is not None and cache.k is not None:
                k, v = cache.k, cache.v  # projected from the memory at the first step
            else:
                Bm, S = memory.shape[:2]  # Bm: B, or 1 for a memory every row reads
                k = self.k_proj(memory).view(Bm, S, Hkv, Dh).transpose(1, 2)  # (Bm, Hkv, S, Dh)
                v = self.v_proj(memory).view(Bm, S, Hkv, Dh).transpose(1, 2)
                if cache is not None:
                    cache.k, cache.v = k, v
        if Hkv != H:  # grouped-query attention: share each K/V head across its group
            k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)  # (B, H, Tk, Dh)
        return q, k, v

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
                is_causal: bool = False, cache: KVCache | CrossKV | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D). memory: encoder output (B, S, Dm) for cross-attention; mask: see
        shared.masks; cache: this layer's KVCache (self-attention) or CrossKV (cross-attention)."""
        q, k, v = self.project(x, memory, cache)
        mask = masks.normalize(mask)
        if mask is not None and mask.dtype == torch.bool:
            mask = masks.to_bias(mask, q.dtype)  # finite, so a fully masked (padding) query row stays finite
        B, H, T, Dh = q.shape
        shared_memory = k.shape[0] == 1 < B  # one memory for every row: the beams or samples of one input
        if shared_memory and (mask is None or mask.dim() == 4 and mask.shape[0] == mask.shape[2] == 1):
            # every row's queries become query positions of one attention, which reads the keys and values
            # once instead of once per row (cross-attention: no causal mask, no per-query mask)
            out = self.attend(q.transpose(0, 1).reshape(1, H, B * T, Dh), k, v, mask, is_causal)
            out = out.view(H, B, T, Dh).transpose(0, 1)  # (B, H, T, Dh)
        else:
            if shared_memory:
                k, v = k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)
            out = self.attend(q, k, v, mask, is_causal)  # (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, H * Dh))  # (B, T, D)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               is_causal: bool) -> torch.Tensor:
        """softmax(Q Kᵀ · scale + mask) V by F.scaled_dot_product_attention: (B, H, T, Dh)."""
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal,
                                              scale=self.scale)

    def forward_with_weights(self, x: torch.Tensor, memory: torch.Tensor | None = None, *,
                             mask: torch.Tensor | None = None,
                             is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """forward() by the explicit softmax(Q Kᵀ · scale + mask) V: (B, T, D) and the weights (B, H, T, Tk)."""
        q, k, v = self.project(x, memory)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, T, Tk)
        if is_causal:
            scores = scores + masks.to_bias(masks.causal(q.shape[2], k.shape[2], device=q.device), scores.dtype)
        mask = masks.normalize(mask)
        if mask is not None:
            scores = scores + masks.to_bias(mask, scores.dtype)
        weights = scores.float().softmax(dim=-1).to(q.dtype)
        out = F.dropout(weights, self.dropout if self.training else 0.0) @ v  # (B, H, T, Dh)
        B, H, T, Dh = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, H * Dh)), weights
