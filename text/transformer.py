"""The original encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Post-norm layers, ReLU FFN, sinusoidal positions, embeddings scaled by √d_model and one embedding matrix shared
by the source, the target and the output projection.
"""

from dataclasses import dataclass

import torch
from torch import nn

from shared.cache import Cache
from shared.heads import LMHead
from shared.init import xavier_init
from shared.positions import SinusoidalPositions
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, build_stack
from text.decoder import GenerationMixin, TextDecoder
from text.embedding import TextEmbedding


@dataclass(frozen=True)
class Seq2SeqConfig:
    vocab_size: int = 32000
    dim: int = 512
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    n_heads: int = 8
    mlp_hidden: int = 2048
    dropout: float = 0.1
    max_len: int = 1024
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2


class TransformerSeq2Seq(GenerationMixin, PretrainedMixin, nn.Module):
    """Encoder-decoder Transformer. forward(src, tgt) gives teacher-forced logits; generate(src,
    max_new_tokens=64) translates: it encodes once, then decodes from BOS until EOS."""

    config_class = Seq2SeqConfig
    default_max_new_tokens = 64

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config

        def stack_config(n_layers: int, decoder: bool) -> TransformerConfig:
            return TransformerConfig(
                dim=config.dim, n_layers=n_layers, n_heads=config.n_heads, mlp_hidden=config.mlp_hidden,
                activation="relu", norm_first=False, final_norm=False, dropout=config.dropout,
                attn_dropout=config.dropout, causal=decoder, cross_attention=decoder)

        embed = TextEmbedding.scaled(config.vocab_size, config.dim, SinusoidalPositions(config.max_len, config.dim),
                                     dropout=config.dropout)
        self.encoder = build_stack(stack_config(config.n_encoder_layers, decoder=False))
        self.decoder = TextDecoder(embed, build_stack(stack_config(config.n_decoder_layers, decoder=True)),
                                   LMHead(config.dim, config.vocab_size, tied=embed.token))
        self.apply(xavier_init)
        nn.init.normal_(embed.token.weight, std=config.dim ** -0.5)  # unit-variance after the √d scale

    @property
    def embed(self) -> TextEmbedding:
        """The shared source/target embedding (it lives in the decoder so it appears once in the state dict)."""
        return self.decoder.embed

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) -> memory (B, S, D). src_mask (B, S) marks real tokens; by default tokens != pad_id."""
        if src_mask is None:
            src_mask = src != self.config.pad_id
        return self.encoder(self.embed(src), mask=src_mask)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None,
                tgt_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt (B, T) starting with BOS -> logits (B, T, V)."""
        if src_mask is None:
            src_mask = src != self.config.pad_id
        memory = self.encode(src, src_mask)
        return self.decoder(tgt, memory=memory, memory_mask=src_mask, mask=tgt_mask)

    def start_generation(self, src: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, Cache]:
        """Encode src (B, S) once; the decoder starts from BOS with the memory in its cache."""
        src_mask = src != self.config.pad_id
        memory = self.encode(src, src_mask)
        prompt = torch.full((src.shape[0], 1), self.config.bos_id, dtype=torch.long, device=src.device)
        return prompt, self.init_cache(src.shape[0], 1 + max_new_tokens, memory=memory, memory_mask=src_mask)
