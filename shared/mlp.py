"""Position-wise feed-forward networks: FFN(x) = act(x W1 + b1) W2 + b2, and gated variants."""

import torch
from torch import nn
from torch.nn import functional as F

from shared.layout import Linear

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def activation(name: str):
    """Look up an activation function by name (relu, gelu, gelu_tanh, silu)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """The paper's position-wise FFN: two linear maps with an activation between them."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.fc1 = Linear(dim, hidden, bias=bias)
        self.fc2 = Linear(hidden, dim, bias=bias)
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class GatedMLP(nn.Module):
    """Gated FFN (GEGLU / SwiGLU, T5 v1.1): act(x Wg) * (x Wu), then W2."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu_tanh", bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.gate = Linear(dim, hidden, bias=bias)
        self.up = Linear(dim, hidden, bias=bias)
        self.fc2 = Linear(hidden, dim, bias=bias)
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.fc2(self.dropout(self.act(self.gate(x)) * self.up(x)))
