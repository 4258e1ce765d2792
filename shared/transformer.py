"""A stack of TransformerBlocks, its config and its builder."""

from dataclasses import dataclass

import torch
from torch import nn

from shared import masks
from shared.attention import Attention
from shared.block import TransformerBlock
from shared.cache import Cache
from shared.mlp import MLP, GatedMLP
from shared.norms import make_norm
from shared.positions import RotaryEmbedding


@dataclass(frozen=True)
class TransformerConfig:
    """Everything needed to build an encoder or decoder stack. Model families translate their configs into this."""

    dim: int
    n_layers: int
    n_heads: int
    mlp_hidden: int
    n_kv_heads: int | None = None
    head_dim: int | None = None
    activation: str = "gelu"
    gated_mlp: bool = False
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    norm_first: bool = True
    final_norm: bool = True
    bias: bool = True
    key_bias: bool | None = None
    attn_scale: float | None = None
    dropout: float = 0.0
    attn_dropout: float = 0.0
    causal: bool = False
    cross_attention: bool = False
    context_dim: int | None = None
    rotary: bool = False


class TransformerStack(nn.Module):
    """Blocks applied in order, an optional final norm and an optional shared position bias (T5).

    Masks are built only when needed: a causal stack with no padding, cache or bias passes is_causal=True so
    scaled_dot_product_attention keeps its fast path.
    """

    def __init__(self, blocks: list[TransformerBlock], final_norm: nn.Module | None = None, causal: bool = False,
                 position_bias: nn.Module | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.final_norm = final_norm if final_norm is not None else nn.Identity()
        self.causal = causal
        self.position_bias = position_bias

    def init_cache(self, max_len: int, memory: torch.Tensor | None = None,
                   memory_mask: torch.Tensor | None = None) -> Cache:
        """An empty cache for decoding up to max_len positions (with the encoder memory, if any)."""
        cross = self.blocks[0].cross_attn is not None
        return Cache(len(self.blocks), max_len, cross_attention=cross, memory=memory, memory_mask=memory_mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, cache: Cache | None = None, return_weights: bool = False):
        """x: (B, T, D) -> (B, T, D).

        mask: (B, Tk) bool of real tokens (Tk covers cached positions too) or a full mask; context: encoder
        output (B, S, Dc) with context_mask (B, S); cache: from init_cache, advanced in place.
        With return_weights, also returns a list with one dict of attention weights per layer.
        """
        T = x.shape[1]
        offset = cache.length if cache is not None else 0
        self_mask = masks.normalize(mask)
        is_causal = False
        if self.causal:
            if self_mask is None and cache is None and self.position_bias is None:
                is_causal = True
            elif T > 1 or self_mask is not None:
                self_mask = masks.merge(masks.causal(T, offset + T, offset, x.device), self_mask)
        if self.position_bias is not None:
            bias = self.position_bias(T, offset + T, offset)  # (1, H, T, Tk)
            self_mask = masks.merge(self_mask, bias, dtype=x.dtype)
        if cache is not None and context is None:
            context, context_mask = cache.memory, cache.memory_mask
        context_mask = masks.normalize(context_mask)

        all_weights = []
        for i, block in enumerate(self.blocks):
            x = block(x, mask=self_mask, is_causal=is_causal, context=context, context_mask=context_mask,
                      cache=cache.layers[i] if cache is not None else None, return_weights=return_weights)
            if return_weights:
                x, weights = x
                all_weights.append(weights)
        x = self.final_norm(x)
        return (x, all_weights) if return_weights else x


def build_block(cfg: TransformerConfig, drop_path: nn.Module | None = None) -> TransformerBlock:
    """One block from the config; everything is built here so the block itself only composes.

    drop_path: an optional module applied to each sublayer output before the residual add (stochastic depth).
    """
    rotary = RotaryEmbedding(cfg.head_dim or cfg.dim // cfg.n_heads) if cfg.rotary else None

    def attention(context_dim=None, rotary=None):
        return Attention(cfg.dim, cfg.n_heads, n_kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, bias=cfg.bias,
                         key_bias=cfg.key_bias, scale=cfg.attn_scale, dropout=cfg.attn_dropout,
                         context_dim=context_dim, rotary=rotary)

    def norm():
        return make_norm(cfg.norm, cfg.dim, cfg.norm_eps)

    mlp_cls = GatedMLP if cfg.gated_mlp else MLP
    return TransformerBlock(
        attn=attention(rotary=rotary), attn_norm=norm(),
        mlp=mlp_cls(cfg.dim, cfg.mlp_hidden, act=cfg.activation, bias=cfg.bias), mlp_norm=norm(),
        cross_attn=attention(context_dim=cfg.context_dim) if cfg.cross_attention else None,
        cross_norm=norm() if cfg.cross_attention else None,
        norm_first=cfg.norm_first, dropout=cfg.dropout, drop_path=drop_path)


def build_stack(cfg: TransformerConfig, position_bias: nn.Module | None = None) -> TransformerStack:
    """An encoder or decoder stack from a TransformerConfig."""
    blocks = [build_block(cfg) for _ in range(cfg.n_layers)]
    final = make_norm(cfg.norm, cfg.dim, cfg.norm_eps) if cfg.final_norm else None
    return TransformerStack(blocks, final_norm=final, causal=cfg.causal, position_bias=position_bias)
