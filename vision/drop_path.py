"""Stochastic depth ("Deep Networks with Stochastic Depth", Huang et al., 2016) for residual branches."""

import torch
from torch import nn


class DropPath(nn.Module):
    """Zeroes a residual branch for a random subset of samples while training.

    Each sample keeps the branch with probability 1 - rate; kept outputs are divided by 1 - rate so the
    expected value matches evaluation, where the module is the identity. Input (B, ...) -> same shape.
    """

    def __init__(self, rate: float = 0.0):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample, broadcast over tokens and channels
        mask = x.new_empty(shape).bernoulli_(keep).div_(keep)  # scale the small mask, not the whole tensor
        return x * mask

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """The usual linear rule: 0 in the first block up to `rate` in the last (a single block gets 0)."""
    if depth == 1:
        return [0.0]
    return [rate * i / (depth - 1) for i in range(depth)]
