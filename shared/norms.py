"""Normalisation layers: LayerNorm (BERT, GPT, ViT, Whisper) and RMSNorm (T5)."""

import torch
from torch import nn

LayerNorm = nn.LayerNorm


class RMSNorm(nn.Module):
    """Root-mean-square norm without mean subtraction or bias, as in T5.

    The variance is computed in float32 so half-precision activations do not overflow.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        x_normed = x.float() * torch.rsqrt(variance + self.eps)
        return self.weight * x_normed.to(x.dtype)


def make_norm(kind: str, dim: int, eps: float) -> nn.Module:
    """Build a norm by name ("layernorm" or "rmsnorm"); used by the stack builder only."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}: use 'layernorm' or 'rmsnorm'")
