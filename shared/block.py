"""One Transformer layer for encoders, decoders and cross-attending decoders."""

import torch
from torch import nn

from shared.attention import Attention
from shared.cache import LayerCache


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, then the FFN; each sublayer wrapped in a residual connection.

    norm_first=True is pre-norm, x + f(norm(x)) (GPT-2, ViT, Whisper, T5); norm_first=False is the paper's
    post-norm, norm(x + f(x)) (the original Transformer, BERT). The block receives its parts ready-made.
    """

    def __init__(self, attn: Attention, attn_norm: nn.Module, mlp: nn.Module, mlp_norm: nn.Module,
                 cross_attn: Attention | None = None, cross_norm: nn.Module | None = None,
                 norm_first: bool = True, dropout: float = 0.0, drop_path: nn.Module | None = None):
        super().__init__()
        self.attn, self.attn_norm = attn, attn_norm
        self.cross_attn, self.cross_norm = cross_attn, cross_norm
        self.mlp, self.mlp_norm = mlp, mlp_norm
        self.norm_first = norm_first
        self.dropout = nn.Dropout(dropout)
        # Stochastic depth (ViT training): drops a sublayer's whole output per sample before the residual add.
        self.drop_path = drop_path if drop_path is not None else nn.Identity()

    def _residual(self, x: torch.Tensor, norm: nn.Module, sublayer, weights: list | None) -> torch.Tensor:
        out = sublayer(norm(x) if self.norm_first else x)
        if isinstance(out, tuple):  # (output, attention weights)
            out, w = out
            weights.append(w)
        x = x + self.drop_path(self.dropout(out))
        return x if self.norm_first else norm(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, is_causal: bool = False,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                cache: LayerCache | None = None, return_weights: bool = False):
        """x: (B, T, D) -> (B, T, D); with return_weights also a dict of self/cross attention weights."""
        found: list = []
        x = self._residual(x, self.attn_norm, lambda h: self.attn(
            h, mask=mask, is_causal=is_causal, cache=cache.self_attn if cache else None,
            return_weights=return_weights), found)
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("this decoder cross-attends: pass the encoder output as `context`")
            x = self._residual(x, self.cross_norm, lambda h: self.cross_attn(
                h, context=context, mask=context_mask, cache=cache.cross_attn if cache else None,
                return_weights=return_weights), found)
        x = self._residual(x, self.mlp_norm, self.mlp, None)
        if return_weights:
            return x, dict(zip(("self", "cross"), found))
        return x
