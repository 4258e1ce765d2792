"""Positional information: the paper's sinusoids, learned tables, T5's relative bias and rotary embeddings."""

import math

import torch
from torch import nn


def sinusoids(length: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The paper's table: PE(pos, 2i) = sin(pos / base^(2i/d)), PE(pos, 2i+1) = cos(pos / base^(2i/d)).

    Returns (length, dim) float32; sines on even channels, cosines on odd ones.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dimension, got {dim}")
    position = torch.arange(length, dtype=torch.float64)[:, None]  # (T, 1)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angles = position * inv_freq  # (T, D/2)
    table = torch.empty(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table.float()


class _PositionTable(nn.Module):
    """Shared lookup for absolute position tables: rows offset .. offset+length."""

    weight: torch.Tensor

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:  # -> (T, D)
        end = offset + length
        if end > self.weight.shape[0]:
            raise ValueError(
                f"sequence of {end} positions is longer than this model's maximum of {self.weight.shape[0]}; "
                "shorten the input"
            )
        return self.weight[offset:end]


class SinusoidalPositions(_PositionTable):
    """Fixed sinusoidal positions. `table` overrides the paper's formula (Whisper stores its own table);
    `persistent=True` keeps the table in the state dict so stored tables load exactly."""

    def __init__(self, max_len: int, dim: int, table: torch.Tensor | None = None, persistent: bool = False):
        super().__init__()
        table = sinusoids(max_len, dim) if table is None else table
        self.register_buffer("weight", table.clone(), persistent=persistent)


class LearnedPositions(_PositionTable):
    """A learned table of absolute positions (BERT, GPT-2, ViT, Whisper's decoder)."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.weight, std=0.02)


class RelativePositionBias(nn.Module):
    """T5's bucketed relative position bias, one learned scalar per (bucket, head).

    Returns an additive attention bias (1, H, Tq, Tk). Nearby offsets get their own bucket; farther ones share
    logarithmically wider buckets up to `max_distance`.
    """

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = True):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(num_buckets, n_heads)

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        """Map key-minus-query offsets to bucket ids."""
        buckets = torch.zeros_like(relative)
        num_buckets = self.num_buckets
        if self.bidirectional:
            num_buckets //= 2
            buckets += (relative > 0).long() * num_buckets
            distance = relative.abs()
        else:
            distance = (-relative).clamp(min=0)  # a causal decoder only looks back
        exact = num_buckets // 2
        log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(self.max_distance / exact)
        far = exact + (log_ratio * (num_buckets - exact)).long()
        far = far.clamp(max=num_buckets - 1)
        return buckets + torch.where(distance < exact, distance, far)

    def forward(self, q_len: int, k_len: int, offset: int = 0) -> torch.Tensor:  # -> (1, H, Tq, Tk)
        device = self.embedding.weight.device
        query_pos = torch.arange(offset, offset + q_len, device=device)[:, None]
        key_pos = torch.arange(k_len, device=device)[None, :]
        bias = self.embedding(self.bucket(key_pos - query_pos))  # (Tq, Tk, H)
        return bias.permute(2, 0, 1).unsqueeze(0)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (rotate-half layout) applied to queries and keys of shape (B, H, T, Dh)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.shape[-2]
        t = torch.arange(offset, offset + T, device=x.device, dtype=torch.float32)
        angles = torch.outer(t, self.inv_freq)  # (T, Dh/2)
        cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(x.dtype)  # (T, Dh)
        sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return x * cos + rotated * sin
