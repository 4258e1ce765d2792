"""The one text decoder: token embedding, causal stack (optionally cross-attending), LM head.

GPT-2, T5's decoder, the original Transformer's decoder, the captioner and Whisper all use it, and through
DecoderMixin / GenerationMixin they share one way of being decoded by shared.generation.generate().
"""

import torch
from torch import nn

from shared.cache import Cache
from shared.generation import BeamSearch, GenerationOutput, Greedy, Sample, generate
from shared.heads import LMHead
from shared.transformer import TransformerStack
from text.embedding import TextEmbedding


class TextDecoder(nn.Module):
    """tokens (B, T) -> logits (B, T, V), with or without a cache; Decodable (shared.generation).

    memory: the encoder output (B, S, Dm) a cross-attending decoder reads, memory_mask (B, S) its real
    positions; mask: (B, Tk) real tokens, cached ones included; position_ids: (B, T) per-row positions (left
    padding), else consecutive from the cache length.
    """

    def __init__(self, embed: TextEmbedding, stack: TransformerStack, head: LMHead):
        super().__init__()
        if not stack.causal:
            raise ValueError("a text decoder needs a causal stack (TransformerConfig(causal=True))")
        self.embed, self.stack, self.head = embed, stack, head

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor | None = None, *,
                memory_mask: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: Cache | None = None, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, V)."""
        x = self.embed(tokens, offset=cache.length if cache is not None else 0, position_ids=position_ids)
        x = self.stack(x, memory, mask=mask, memory_mask=memory_mask, cache=cache)  # (B, T, D)
        return self.head(x)

    def hidden_states(self, tokens: torch.Tensor, memory: torch.Tensor | None = None, *,
                      memory_mask: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                      cache: Cache | None = None, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """forward() before the head: tokens (B, T) -> final-norm features (B, T, D), so a caller can project
        only the positions it reads."""
        x = self.embed(tokens, offset=cache.length if cache is not None else 0, position_ids=position_ids)
        return self.stack(x, memory, mask=mask, memory_mask=memory_mask, cache=cache)

    def forward_with_weights(self, tokens: torch.Tensor, memory: torch.Tensor | None = None, *,
                             memory_mask: torch.Tensor | None = None,
                             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[dict]]:
        """forward() without a cache, also returning the attention weights: one dict per layer with "self"
        (B, H, T, T) and, when the decoder cross-attends, "cross" (B, H, T, S)."""
        x, weights = self.stack.forward_with_weights(self.embed(tokens), memory, mask=mask, memory_mask=memory_mask)
        return self.head(x), weights

    def init_cache(self, batch_size: int, max_len: int, memory: torch.Tensor | None = None,
                   memory_mask: torch.Tensor | None = None) -> Cache:
        """An empty cache; encoder-decoder models pass their encoder output here once."""
        return self.stack.init_cache(max_len, memory=memory, memory_mask=memory_mask)

    def logits(self, tokens: torch.Tensor, cache: Cache, *, mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """One generation step (or the prefill): (B, T) new tokens -> (B, T, V) logits, cache advanced."""
        return self(tokens, mask=mask, cache=cache, position_ids=position_ids)


class DecoderMixin:
    """Makes a model whose tokens come out of `self.decoder` (a TextDecoder) Decodable: init_cache and logits
    pass through to the decoder. Models override them only to check their inputs."""

    decoder: TextDecoder

    def init_cache(self, batch_size: int, max_len: int, memory: torch.Tensor | None = None,
                   memory_mask: torch.Tensor | None = None) -> Cache:
        """An empty decoder cache of up to max_len positions (prompt included), holding the encoder memory
        (B, S, D) and its mask (B, S) for encoder-decoder models."""
        return self.decoder.init_cache(batch_size, max_len, memory=memory, memory_mask=memory_mask)

    def logits(self, tokens: torch.Tensor, cache: Cache, *, mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) new tokens -> (B, T, V) logits, advancing the cache (which holds any encoder memory).

        For left-padded batches (text.generate.generate_batch): mask (B, Tk) bool marks the real tokens of
        everything cached so far plus these, position_ids (B, T) each row's own positions.
        """
        return self.decoder.logits(tokens, cache, mask=mask, position_ids=position_ids)


class GenerationMixin(DecoderMixin):
    """generate() for a Decodable model with `start_generation(inputs, max_new_tokens, **options) -> (prompt,
    cache)` and a config with eos_id and pad_id (shared.generation.Generative)."""

    default_max_new_tokens = 32

    @torch.no_grad()  # not inference_mode: the tokens may feed a forward with gradients (training loops)
    def generate(self, inputs: torch.Tensor, max_new_tokens: int | None = None, *,
                 selector: Greedy | Sample | BeamSearch | None = None, processors=(), stop_tokens=None,
                 **options) -> GenerationOutput:
        """Decode up to max_new_tokens (default_max_new_tokens when None) tokens from `inputs`.

        start_generation(inputs, max_new_tokens, **options) gives the decoder prompt and its cache (a
        decoder-only model continues its input; an encoder-decoder model encodes it once and starts from its
        start token). Rows end at the config's eos_id unless other stop_tokens are given, and are padded with
        its pad_id. Returns shared.generation's GenerationOutput: tokens (B, T_prompt + new), prompt first.
        """
        if max_new_tokens is None:
            max_new_tokens = self.default_max_new_tokens
        prompt, cache = self.start_generation(inputs, max_new_tokens, **options)
        stops = [self.config.eos_id] if stop_tokens is None else stop_tokens
        return generate(self, prompt, max_new_tokens, cache=cache, selector=selector, processors=processors,
                        stop_tokens=stops, pad_token_id=self.config.pad_id)
