"""Task heads: language modelling (optionally tied to the token embedding), classification, masked LM."""

import torch
from torch import nn

from shared.layout import linear
from shared.mlp import activation


class LMHead(nn.Module):
    """Projects hidden states to vocabulary logits. With `tied`, reuses the embedding matrix (no copy in the
    state dict: the embedding is held outside the module tree)."""

    def __init__(self, dim: int, vocab_size: int, bias: bool = False, tied: nn.Embedding | None = None):
        super().__init__()
        self._tied = (tied,) if tied is not None else None
        self.weight = None if tied is not None else nn.Parameter(torch.empty(vocab_size, dim).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, V)
        weight = self._tied[0].weight if self._tied is not None else self.weight
        return linear(x, weight, self.bias)  # decoding's few rows run on every thread (shared.layout)


def pool(x: torch.Tensor, kind: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, D) -> (B, D): the first (class) token, or the mean over real tokens (mask (B, T) bool)."""
    if kind == "cls":
        return x[:, 0]
    if kind == "mean":
        if mask is None:
            return x.mean(dim=1)
        weights = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
        return (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    if kind == "none":
        return x
    raise ValueError(f"unknown pooling {kind!r}: use 'cls', 'mean' or 'none'")


class ClassifierHead(nn.Module):
    """Pool, dropout, linear. Zero-initialised so a fresh head starts from uniform predictions.

    num_classes=0 gives pooled features only (timm's convention for feature extractors).
    """

    def __init__(self, dim: int, num_classes: int, pool: str = "cls", dropout: float = 0.0):
        super().__init__()
        self.pool = pool
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.reset_head()

    def reset_head(self) -> None:
        if isinstance(self.fc, nn.Linear):
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(pool(x, self.pool, mask))  # (B, D)
        return x if pre_logits else self.fc(x)  # (B, num_classes)


class MLMHead(nn.Module):
    """BERT's masked-LM head: dense, activation, LayerNorm, then the (tied) vocabulary projection plus bias."""

    def __init__(self, dim: int, vocab_size: int, act: str = "gelu", eps: float = 1e-12,
                 tied: nn.Embedding | None = None):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.act = activation(act)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.decoder = LMHead(dim, vocab_size, bias=True, tied=tied)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, V)
        return self.decoder(self.norm(self.act(self.dense(x))))
