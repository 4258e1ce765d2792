"""A stack of TransformerBlocks, its config and its builder."""

from dataclasses import dataclass

import torch
from torch import nn

from shared import masks
from shared.attention import Attention
from shared.block import PostNormBlock, PreNormBlock, TransformerBlock
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
    qkv_bias: bool | None = None  # None: `bias`
    key_bias: bool | None = None
    attn_scale: float | None = None
    dropout: float = 0.0
    attn_dropout: float = 0.0
    causal: bool = False
    cross_attention: bool = False
    memory_dim: int | None = None
    rotary: bool = False


class TransformerStack(nn.Module):
    """Blocks applied in order, an optional final norm and an optional shared position bias (T5).

    Masks are built only when needed: a causal stack with no padding, cache or bias passes is_causal=True so
    scaled_dot_product_attention keeps its fast path.
    """

    def __init__(self, blocks: list[TransformerBlock], *, final_norm: nn.Module | None = None, causal: bool = False,
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

    def self_attention_mask(self, x: torch.Tensor, mask: torch.Tensor | None,
                            offset: int, cached: bool) -> tuple[torch.Tensor | None, bool]:
        """The mask of the self-attention over x (B, T, D) at positions offset.., and whether to pass
        is_causal=True instead of a causal mask."""
        T = x.shape[1]
        mask = masks.normalize(mask)
        is_causal = self.causal and mask is None and not cached and self.position_bias is None
        if self.causal and not is_causal and (T > 1 or mask is not None):
            mask = masks.merge(masks.causal(T, offset + T, offset, x.device), mask)
        if self.position_bias is not None:
            bias = self.position_bias(T, offset + T, offset)  # (1, H, T, Tk)
            mask = masks.merge(mask, bias, dtype=x.dtype)
        return mask, is_causal

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, cache: Cache | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D).

        memory: encoder output (B, S, Dm) for cross-attending stacks, with memory_mask (B, S) of its real
        positions (both taken from the cache when it holds them); mask: (B, Tk) bool of real tokens (Tk
        covers cached positions too) or a full mask; cache: from init_cache, advanced in place; cond (B, Dc):
        the vector that modulating norms (adaLN-Zero) read.
        """
        offset = cache.length if cache is not None else 0
        self_mask, is_causal = self.self_attention_mask(x, mask, offset, cached=cache is not None)
        if cache is not None and memory is None:
            memory, memory_mask = cache.memory, cache.memory_mask
        self.check_memory(memory)
        memory_mask = masks.normalize(memory_mask)
        conditioning = {} if cond is None else {"cond": cond}  # only pre-norm blocks can be modulated
        for i, block in enumerate(self.blocks):
            layer_cache = cache.layers[i] if cache is not None else None
            x = block(x, memory, mask=self_mask, is_causal=is_causal, memory_mask=memory_mask, cache=layer_cache,
                      **conditioning)
        return self.final_norm(x)

    def forward_with_weights(self, x: torch.Tensor, memory: torch.Tensor | None = None, *,
                             mask: torch.Tensor | None = None,
                             memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[dict]]:
        """forward() without a cache, also returning one dict of attention weights per layer (see the blocks)."""
        self_mask, is_causal = self.self_attention_mask(x, mask, 0, cached=False)
        self.check_memory(memory)
        memory_mask = masks.normalize(memory_mask)
        found = []
        for block in self.blocks:
            x, weights = block.forward_with_weights(x, memory, mask=self_mask, is_causal=is_causal,
                                                    memory_mask=memory_mask)
            found.append(weights)
        return self.final_norm(x), found

    def check_memory(self, memory: torch.Tensor | None) -> None:
        if memory is None and self.blocks[0].cross_attn is not None:
            raise ValueError("this decoder cross-attends: pass the encoder output as `memory`")


def build_block(cfg: TransformerConfig, drop_path: nn.Module | None = None) -> TransformerBlock:
    """One block from the config, pre-norm or post-norm by cfg.norm_first; everything is built here so the
    block itself only composes.

    drop_path: an optional module applied to each sublayer output before the residual add (stochastic depth).
    """
    rotary = RotaryEmbedding(cfg.head_dim or cfg.dim // cfg.n_heads) if cfg.rotary else None

    def attention(memory_dim=None, rotary=None):
        return Attention(cfg.dim, cfg.n_heads, n_kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, bias=cfg.bias,
                         qkv_bias=cfg.qkv_bias, key_bias=cfg.key_bias, scale=cfg.attn_scale, dropout=cfg.attn_dropout,
                         memory_dim=memory_dim, rotary=rotary)

    def norm():
        return make_norm(cfg.norm, cfg.dim, cfg.norm_eps)

    block = PreNormBlock if cfg.norm_first else PostNormBlock
    mlp = GatedMLP if cfg.gated_mlp else MLP
    return block(
        attention(rotary=rotary), mlp(cfg.dim, cfg.mlp_hidden, act=cfg.activation, bias=cfg.bias),
        attn_norm=norm(), mlp_norm=norm(),
        cross_attn=attention(memory_dim=cfg.memory_dim) if cfg.cross_attention else None,
        cross_norm=norm() if cfg.cross_attention else None,
        dropout=cfg.dropout, drop_path=drop_path)


def build_stack(cfg: TransformerConfig, position_bias: nn.Module | None = None) -> TransformerStack:
    """An encoder or decoder stack from a TransformerConfig."""
    blocks = [build_block(cfg) for _ in range(cfg.n_layers)]
    final = make_norm(cfg.norm, cfg.dim, cfg.norm_eps) if cfg.final_norm else None
    return TransformerStack(blocks, final_norm=final, causal=cfg.causal, position_bias=position_bias)
