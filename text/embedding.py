"""Token embeddings with positions: the input side of every text model."""

import math

import torch
from torch import nn


class TextEmbedding(nn.Module):
    """token embedding × scale + positions, then dropout.

    The original Transformer scales by √d_model; GPT-2 and Whisper use scale 1. `positions` is any module
    with forward(length, offset) -> (T, D), or None when positions enter elsewhere (T5's relative bias).
    """

    def __init__(self, vocab_size: int, dim: int, positions: nn.Module | None = None, scale: float = 1.0,
                 dropout: float = 0.0):
        super().__init__()
        self.token = nn.Embedding(vocab_size, dim)
        self.positions = positions
        self.scale = scale
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def scaled(cls, vocab_size: int, dim: int, positions: nn.Module | None, dropout: float = 0.0):
        """The paper's embedding: multiplied by √d_model."""
        return cls(vocab_size, dim, positions, scale=math.sqrt(dim), dropout=dropout)

    def forward(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:  # (B, T) -> (B, T, D)
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.token.num_embeddings):
            raise IndexError(f"token ids must lie in [0, {self.token.num_embeddings}); "
                             f"got {tokens.min().item()}..{tokens.max().item()}")
        x = self.token(tokens) * self.scale if self.scale != 1.0 else self.token(tokens)
        if self.positions is not None:
            x = x + self.positions(tokens.shape[1], offset)
        return self.dropout(x)
