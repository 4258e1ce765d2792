"""T5 (Raffel et al., 2020): an encoder stack plus the one TextDecoder with cross-attention.

RMSNorm without biases, T5's bucketed relative position bias shared by all layers of a stack (bidirectional in
the encoder, causal in the decoder), unscaled attention, a ReLU FFN (v1.0) or a gated-GELU one (v1.1), and one
embedding matrix shared by encoder and decoder. v1.0 ties the LM head to it and rescales the decoder output by
d_model^-0.5 first; v1.1 has its own head and no rescale.
"""

from dataclasses import dataclass

import torch
from torch import nn

from shared.cache import Cache
from shared.errors import InputError
from shared.heads import LMHead
from shared.positions import RelativePositionBias
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, build_stack
from text.decoder import GenerationMixin, TextDecoder
from text.embedding import TextEmbedding


@dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    dim: int = 512
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    n_heads: int = 8
    head_dim: int = 64
    mlp_hidden: int = 2048
    gated_mlp: bool = False  # False: ReLU FFN (v1.0); True: gated-GELU FFN (v1.1)
    activation: str = "relu"
    tie_embeddings: bool = True
    num_buckets: int = 32
    max_distance: int = 128
    norm_eps: float = 1e-6
    dropout: float = 0.1
    pad_id: int = 0
    eos_id: int = 1
    decoder_start_id: int = 0


def stack_config(config: T5Config, n_layers: int, decoder: bool) -> TransformerConfig:
    """T5's encoder (decoder=False) or decoder stack."""
    return TransformerConfig(
        dim=config.dim, n_layers=n_layers, n_heads=config.n_heads, head_dim=config.head_dim,
        mlp_hidden=config.mlp_hidden, activation=config.activation, gated_mlp=config.gated_mlp, norm="rmsnorm",
        norm_eps=config.norm_eps, norm_first=True, final_norm=True, bias=False, attn_scale=1.0,
        dropout=config.dropout, attn_dropout=config.dropout, causal=decoder, cross_attention=decoder)


def relative_bias(config: T5Config, bidirectional: bool) -> RelativePositionBias:
    """The bucketed relative position bias a T5 stack shares between its layers."""
    return RelativePositionBias(config.n_heads, config.num_buckets, config.max_distance, bidirectional=bidirectional)


def init_weights(model: nn.Module, config: T5Config, stacks) -> None:
    """T5's scheme: each projection's std is 1/√fan_in, the embedding is N(0, 1), and the query also absorbs
    the 1/√d_k that T5's attention leaves out."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=module.in_features ** -0.5)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=1.0)
    for stack in stacks:
        for block in stack.blocks:
            for attn in filter(None, (block.attn, block.cross_attn)):
                nn.init.normal_(attn.q_proj.weight, std=(config.dim * config.head_dim) ** -0.5)


class T5Head(nn.Module):
    """Dropout, optional rescale, then the vocabulary projection: (B, T, D) -> (B, T, V).

    The rescale by d_model^-0.5 belongs to the tied head of T5 v1.0: the embedding it shares was trained at
    the scale of inputs, not of outputs.
    """

    def __init__(self, lm_head: LMHead, scale: float = 1.0, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.lm_head = lm_head
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        return self.lm_head(x * self.scale if self.scale != 1.0 else x)


class T5(GenerationMixin, PretrainedMixin, nn.Module):
    """T5 for conditional generation.

    encode(src (B, S), src_mask) -> memory (B, S, D); forward(src, tgt) -> teacher-forced logits (B, T, V)
    where tgt starts with decoder_start_id; generate(input_ids, max_new_tokens, mask=None, ...) encodes once
    and decodes through shared.generation; its tokens start with decoder_start_id and rows end at EOS.
    """

    config_class = T5Config

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config

        embed = TextEmbedding(config.vocab_size, config.dim, positions=None, dropout=config.dropout)
        self.encoder = build_stack(stack_config(config, config.n_encoder_layers, False),
                                   position_bias=relative_bias(config, True))
        self.encoder_dropout = nn.Dropout(config.dropout)
        tied = config.tie_embeddings
        head = T5Head(LMHead(config.dim, config.vocab_size, tied=embed.token if tied else None),
                      scale=config.dim ** -0.5 if tied else 1.0, dropout=config.dropout)
        self.decoder = TextDecoder(embed, build_stack(stack_config(config, config.n_decoder_layers, True),
                                                      position_bias=relative_bias(config, False)), head)
        init_weights(self, config, (self.encoder, self.decoder.stack))
        lm_head = self.decoder.head.lm_head
        if lm_head.weight is not None:
            nn.init.normal_(lm_head.weight, std=config.dim ** -0.5)

    @property
    def embed(self) -> TextEmbedding:
        """The shared encoder/decoder embedding (held by the decoder so it appears once in the state dict)."""
        return self.decoder.embed

    def _check(self, tokens: torch.Tensor, what: str) -> None:
        if tokens.dim() != 2:
            raise InputError(f"T5 takes {what} token ids of shape (batch, length), not {tuple(tokens.shape)}")

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) -> memory (B, S, D) after the final norm and dropout. src_mask (B, S): real tokens."""
        self._check(src, "source")
        return self.encoder_dropout(self.encoder(self.embed(src), mask=src_mask))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None,
                tgt_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt (B, T) starting with decoder_start_id -> logits (B, T, V)."""
        self._check(tgt, "target")
        memory = self.encode(src, src_mask)
        return self.decoder(tgt, memory=memory, memory_mask=src_mask, mask=tgt_mask)

    def start_generation(self, input_ids: torch.Tensor, max_new_tokens: int,
                         mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Cache]:
        """Encode the input once; the decoder starts from decoder_start_id with the memory in its cache."""
        if mask is None:
            mask = input_ids != self.config.pad_id
        memory = self.encode(input_ids, mask)
        prompt = torch.full((input_ids.shape[0], 1), self.config.decoder_start_id, dtype=torch.long,
                            device=input_ids.device)
        cache = self.init_cache(input_ids.shape[0], 1 + max_new_tokens, memory=memory, memory_mask=mask)
        return prompt, cache


class T5Encoder(nn.Module):
    """T5's encoder alone, as text-conditioned models use it (MusicGen): tokens (B, S), mask (B, S) of the real
    tokens -> states (B, S, D) after the final norm. Its own embedding; T5's keys without the decoder."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.embed = TextEmbedding(config.vocab_size, config.dim, positions=None, dropout=config.dropout)
        self.encoder = build_stack(stack_config(config, config.n_encoder_layers, False),
                                   position_bias=relative_bias(config, True))
        self.dropout = nn.Dropout(config.dropout)
        init_weights(self, config, (self.encoder,))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if tokens.dim() != 2:
            raise InputError(f"T5's encoder takes token ids of shape (batch, length), not {tuple(tokens.shape)}")
        return self.dropout(self.encoder(self.embed(tokens), mask=mask))
