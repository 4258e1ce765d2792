"""Conditioning by modulation (FiLM, DiT's adaLN-Zero): norms whose shift, scale and gate come from a vector.

A diffusion Transformer conditions every block on the timestep (and class or pooled prompt) through its norms,
not through extra tokens: `AdaLNZero` takes the place of a block's LayerNorm and also returns the gate that
scales the sublayer's output before the residual add. Its projection starts at zero, so every block starts
as the identity (the "Zero" of adaLN-Zero).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def timestep_sinusoids(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0, cos_first: bool = True,
                       freq_shift: float = 1.0) -> torch.Tensor:
    """(B,) timesteps (any float) -> (B, dim) sinusoids with frequencies max_period^(-i / (dim/2 - freq_shift)).

    DiT uses cos first and freq_shift 1; the paper's position table is sin/cos interleaved instead (see
    shared.positions.sinusoids), so this is its own small function.
    """
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(exponent / (half - freq_shift))  # (D/2,)
    angles = timesteps.float()[:, None] * freqs[None]  # (B, D/2)
    parts = (angles.cos(), angles.sin()) if cos_first else (angles.sin(), angles.cos())
    out = torch.cat(parts, dim=-1)
    return F.pad(out, (0, 1)) if dim % 2 else out


class TimestepEmbedding(nn.Module):
    """A diffusion timestep as a vector: sinusoids (freq_dim wide), then Linear, SiLU, Linear: (B,) -> (B, D)."""

    def __init__(self, dim: int, freq_dim: int = 256, cos_first: bool = True, freq_shift: float = 1.0):
        super().__init__()
        self.freq_dim, self.cos_first, self.freq_shift = freq_dim, cos_first, freq_shift
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        freqs = timestep_sinusoids(timesteps, self.freq_dim, cos_first=self.cos_first, freq_shift=self.freq_shift)
        return self.linear_2(F.silu(self.linear_1(freqs.to(self.linear_1.weight.dtype))))


class AdaLN(nn.Module):
    """LayerNorm without affine, then x·(1 + scale) + shift with (shift, scale) = Linear(SiLU(cond)).

    x (B, T, D), cond (B, Dc) -> (B, T, D). DiT's final layer.
    """

    chunks = 2

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.linear = nn.Linear(cond_dim, self.chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The chunks of Linear(SiLU(cond)), each (B, 1, D)."""
        return self.linear(F.silu(cond))[:, None].chunk(self.chunks, dim=-1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(cond)
        return self.norm(x) * (1 + scale) + shift


class AdaLNZero(AdaLN):
    """AdaLN that also returns the gate (B, 1, D) for its sublayer's output: x + gate · f(AdaLN(x)).

    Zero-initialised, so the gate starts at zero and a block starts as the identity.
    """

    chunks = 3

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, scale, gate = self.modulation(cond)
        return self.norm(x) * (1 + scale) + shift, gate
