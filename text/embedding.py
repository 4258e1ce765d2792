"""Token embeddings with positions: the input side of every text model."""

import math

import torch
from torch import nn

from shared.errors import InputError


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

    def forward(self, tokens: torch.Tensor, offset: int = 0,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:  # (B, T) -> (B, T, D)
        """tokens (B, T) at positions offset .. offset+T-1, or at per-row `position_ids` (B, T) (left-padded
        batches, where each row's first real token is position 0).

        Token ids are checked where a sequence starts (offset 0: a full forward or the prompt of a
        generation), not at cached decode steps, whose ids the model chose itself: the check reads the ids
        back, which on a GPU would stall every step.
        """
        if offset == 0:
            check_token_ids(tokens, self.token.num_embeddings)
        x = self.token(tokens) * self.scale if self.scale != 1.0 else self.token(tokens)
        if self.positions is not None:
            if position_ids is None:
                x = x + self.positions(tokens.shape[1], offset)
            else:  # per-row positions, all below offset + T: look them up in the table up to there
                x = x + self.positions(offset + tokens.shape[1])[position_ids]  # (B, T, D)
        return self.dropout(x)


def check_token_ids(tokens: torch.Tensor, vocab_size: int) -> None:
    """One-line InputError unless every id lies in [0, vocab_size)."""
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise InputError(f"token ids must lie in [0, {vocab_size}); got {tokens.min().item()}.."
                         f"{tokens.max().item()}; was the text encoded with this model's tokenizer?")
