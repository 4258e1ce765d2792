"""The one text decoder: token embedding, causal stack (optionally cross-attending), LM head.

GPT-2, T5's decoder, the original Transformer's decoder, the captioner and Whisper all use it.
"""

import torch
from torch import nn

from shared.cache import Cache
from shared.heads import LMHead
from shared.transformer import TransformerStack
from text.embedding import TextEmbedding


class TextDecoder(nn.Module):
    """Decodable: `decode(tokens, cache)` and `init_cache(...)` are what shared.generation.generate() needs."""

    def __init__(self, embed: TextEmbedding, stack: TransformerStack, head: LMHead):
        super().__init__()
        if not stack.causal:
            raise ValueError("a text decoder needs a causal stack (TransformerConfig(causal=True))")
        self.embed, self.stack, self.head = embed, stack, head

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: Cache | None = None, return_weights: bool = False,
                position_ids: torch.Tensor | None = None):
        """tokens (B, T) -> logits (B, T, V). memory: encoder output (B, S, Dm); mask: (B, Tk) real tokens,
        cached ones included; position_ids: (B, T) per-row positions (left padding), else consecutive."""
        x = self.embed(tokens, offset=cache.length if cache is not None else 0,
                       position_ids=position_ids)  # (B, T, D)
        out = self.stack(x, mask=mask, context=memory, context_mask=memory_mask, cache=cache,
                         return_weights=return_weights)
        if return_weights:
            x, weights = out
            return self.head(x), weights
        return self.head(out)

    def init_cache(self, batch_size: int, max_len: int, memory: torch.Tensor | None = None,
                   memory_mask: torch.Tensor | None = None) -> Cache:
        """An empty cache; encoder-decoder models pass their encoder output here once."""
        return self.stack.init_cache(max_len, memory=memory, memory_mask=memory_mask)

    def decode(self, tokens: torch.Tensor, cache: Cache) -> torch.Tensor:
        """One generation step (or the prefill): (B, T) new tokens -> (B, T, V) logits, cache advanced."""
        return self(tokens, cache=cache)
