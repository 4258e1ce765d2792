"""One Transformer layer: self-attention, optional cross-attention to an encoder memory, then the FFN, each
sublayer in a residual connection. Pre-norm and post-norm are two small classes (as timm's Block and
ResPostBlock); shared.transformer.build_block picks one."""

import torch
from torch import nn

from shared.attention import Attention
from shared.cache import LayerCache
from shared.modulation import AdaLNZero


def _normed(norm: nn.Module, x: torch.Tensor, cond: torch.Tensor | None):
    """(norm(x), gate): the gate is None for a plain norm, and adaLN-Zero's (B, 1, D) for a modulating one."""
    if isinstance(norm, AdaLNZero):
        return norm(x, cond)
    return norm(x), None


class TransformerBlock(nn.Module):
    """The parts of one layer, received ready-made; the subclasses say how they connect.

    dropout: applied to each sublayer's output before the residual add (GPT-2's resid_pdrop). drop_path:
    stochastic depth, a module that drops a sublayer's whole output per sample (ViT training).
    """

    def __init__(self, attn: Attention, mlp: nn.Module, *, attn_norm: nn.Module, mlp_norm: nn.Module,
                 cross_attn: Attention | None = None, cross_norm: nn.Module | None = None,
                 dropout: float = 0.0, drop_path: nn.Module | None = None):
        super().__init__()
        self.attn, self.attn_norm = attn, attn_norm
        self.cross_attn, self.cross_norm = cross_attn, cross_norm
        self.mlp, self.mlp_norm = mlp, mlp_norm
        self.dropout = nn.Dropout(dropout)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()

    def residual(self, h: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """What a sublayer's output h adds to the stream: gated (adaLN-Zero), then dropped out and path-dropped
        while training; both are the identity in eval mode, so inference skips their calls."""
        if gate is not None:
            h = gate * h
        return self.drop_path(self.dropout(h)) if self.training else h


class PreNormBlock(TransformerBlock):
    """x + f(norm(x)) for each sublayer (GPT-2, ViT, Whisper, T5); x + gate · f(norm(x, cond)) where the norm
    is adaLN-Zero (DiT), which reads the conditioning vector `cond`."""

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
                is_causal: bool = False, memory_mask: torch.Tensor | None = None,
                cache: LayerCache | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D). memory (B, S, Dm): what the cross-attention reads, with memory_mask;
        cond (B, Dc): what modulating norms read."""
        self_cache, cross_cache = (cache.self_attn, cache.cross_attn) if cache is not None else (None, None)
        h, gate = _normed(self.attn_norm, x, cond)
        x = x + self.residual(self.attn(h, mask=mask, is_causal=is_causal, cache=self_cache), gate)
        if self.cross_attn is not None:
            h, gate = _normed(self.cross_norm, x, cond)
            x = x + self.residual(self.cross_attn(h, memory, mask=memory_mask, cache=cross_cache), gate)
        h, gate = _normed(self.mlp_norm, x, cond)
        return x + self.residual(self.mlp(h), gate)

    def forward_with_weights(self, x: torch.Tensor, memory: torch.Tensor | None = None, *,
                             mask: torch.Tensor | None = None, is_causal: bool = False,
                             memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """forward() without a cache, also returning the attention weights: {"self": (B, H, T, T)} and,
        when the block cross-attends, "cross": (B, H, T, S)."""
        h, weights = self.attn.forward_with_weights(self.attn_norm(x), mask=mask, is_causal=is_causal)
        x = x + self.residual(h)
        found = {"self": weights}
        if self.cross_attn is not None:
            h, found["cross"] = self.cross_attn.forward_with_weights(self.cross_norm(x), memory, mask=memory_mask)
            x = x + self.residual(h)
        x = x + self.residual(self.mlp(self.mlp_norm(x)))
        return x, found


class PostNormBlock(TransformerBlock):
    """norm(x + f(x)) for each sublayer: the paper's layout (the original Transformer, BERT)."""

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
                is_causal: bool = False, memory_mask: torch.Tensor | None = None,
                cache: LayerCache | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D). memory (B, S, Dm): what the cross-attention reads, with memory_mask."""
        self_cache, cross_cache = (cache.self_attn, cache.cross_attn) if cache is not None else (None, None)
        h = self.attn(x, mask=mask, is_causal=is_causal, cache=self_cache)
        x = self.attn_norm(x + self.residual(h))
        if self.cross_attn is not None:
            h = self.cross_attn(x, memory, mask=memory_mask, cache=cross_cache)
            x = self.cross_norm(x + self.residual(h))
        x = self.mlp_norm(x + self.residual(self.mlp(x)))
        return x

    def forward_with_weights(self, x: torch.Tensor, memory: torch.Tensor | None = None, *,
                             mask: torch.Tensor | None = None, is_causal: bool = False,
                             memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """forward() without a cache, also returning the attention weights: {"self": (B, H, T, T)} and,
        when the block cross-attends, "cross": (B, H, T, S)."""
        h, weights = self.attn.forward_with_weights(x, mask=mask, is_causal=is_causal)
        x = self.attn_norm(x + self.residual(h))
        found = {"self": weights}
        if self.cross_attn is not None:
            h, found["cross"] = self.cross_attn.forward_with_weights(x, memory, mask=memory_mask)
            x = self.cross_norm(x + self.residual(h))
        x = self.mlp_norm(x + self.residual(self.mlp(x)))
        return x, found
