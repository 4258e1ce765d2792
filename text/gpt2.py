"""GPT-2 (Radford et al., 2019): the one TextDecoder with learned positions, a pre-norm causal stack, a final
LayerNorm and an LM head tied to the token embedding."""

from dataclasses import dataclass

import torch
from torch import nn

from shared.cache import Cache
from shared.errors import InputError
from shared.heads import LMHead
from shared.init import normal_init
from shared.layout import column_major_table, column_major_wide_mlps
from shared.positions import LearnedPositions
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, build_stack
from text.decoder import GenerationMixin, TextDecoder
from text.embedding import TextEmbedding


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int = 50257
    max_len: int = 1024
    dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    mlp_hidden: int = 3072
    activation: str = "gelu_tanh"  # GPT-2's "gelu_new"
    norm_eps: float = 1e-5
    dropout: float = 0.1
    bos_id: int = 50256
    eos_id: int = 50256
    pad_id: int = 50256  # GPT-2 has no pad token; padding reuses <|endoftext|>, hidden by the attention mask


class GPT2(GenerationMixin, PretrainedMixin, nn.Module):
    """GPT-2 language model.

    forward(tokens (B, T), mask=None) -> logits (B, T, V); hidden_states() gives the final-norm features
    (B, T, D); init_cache/logits/start_generation make it Generative (shared.generation); generate()
    continues input_ids and ends rows at <|endoftext|> unless other stop_tokens are given.
    """

    config_class = GPT2Config

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.config = config
        stack = build_stack(TransformerConfig(
            dim=config.dim, n_layers=config.n_layers, n_heads=config.n_heads, mlp_hidden=config.mlp_hidden,
            activation=config.activation, norm_eps=config.norm_eps, norm_first=True, final_norm=True,
            dropout=config.dropout, attn_dropout=config.dropout, causal=True))
        embed = TextEmbedding(config.vocab_size, config.dim, LearnedPositions(config.max_len, config.dim),
                              dropout=config.dropout)
        column_major_table(embed.token)  # the tied output head, read whole for every token: see shared.layout
        self.decoder = TextDecoder(embed, stack, LMHead(config.dim, config.vocab_size, tied=embed.token))
        self.apply(normal_init)
        # GPT-2 scales the init of the projections that write into the residual stream by 1/√(2·layers).
        for block in stack.blocks:
            for linear in (block.attn.out_proj, block.mlp.fc2):
                nn.init.normal_(linear.weight, std=0.02 / (2 * config.n_layers) ** 0.5)
        column_major_wide_mlps(stack.blocks)

    def _check(self, tokens: torch.Tensor, offset: int = 0) -> None:
        if tokens.dim() != 2:
            raise InputError(f"GPT-2 takes token ids of shape (batch, length), not {tuple(tokens.shape)}")
        if offset + tokens.shape[1] > self.config.max_len:
            raise InputError(f"{offset + tokens.shape[1]} tokens exceed GPT-2's context of "
                             f"{self.config.max_len}; shorten the prompt or ask for fewer new tokens")

    def hidden_states(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) -> final-norm hidden states (B, T, D). mask: (B, T) bool, True for real tokens."""
        self._check(tokens)
        return self.decoder.hidden_states(tokens, mask=mask)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) -> next-token logits (B, T, V)."""
        self._check(tokens)
        return self.decoder(tokens, mask=mask)

    def logits(self, tokens: torch.Tensor, cache: Cache, *, mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) new tokens -> (B, T, V) logits, advancing the cache; mask and position_ids: DecoderMixin."""
        self._check(tokens, cache.length)
        return super().logits(tokens, cache, mask=mask, position_ids=position_ids)

    def start_generation(self, input_ids: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, Cache]:
        """The decoder prompt and an empty cache sized for it: a decoder-only model continues its input."""
        self._check(input_ids, max_new_tokens)
        return input_ids, self.init_cache(input_ids.shape[0], input_ids.shape[1] + max_new_tokens)
