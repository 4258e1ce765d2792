"""Whisper (Radford et al., 2022): log-mel → conv stem + sinusoids → pre-norm encoder; text decoder with
cross-attention and an output head tied to the token embedding. Built only from shared/ and text/.

State-dict names are zoo's own (stem.conv1, encoder.blocks.0.attn.q_proj, decoder.stack.blocks.0.cross_attn,
...); audio/weights.py maps openai-whisper, HF and CTranslate2 checkpoints onto them.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from audio.stem import ConvStem
from shared.cache import Cache
from shared.errors import InputError
from shared.heads import LMHead
from shared.layout import column_major_table, column_major_wide_mlps
from shared.positions import LearnedPositions, SinusoidalPositions
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, build_stack
from text.decoder import DecoderMixin, TextDecoder
from text.embedding import TextEmbedding

MULTILINGUAL_MIN_VOCAB = 51865  # English-only checkpoints have 51864 tokens, multilingual ones more


def whisper_sinusoids(length: int, dim: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's encoder table: sines in the first half of the channels, cosines in the second half.

    Unlike the paper's interleaved table, the timescales run geometrically from 1 to max_timescale over
    dim/2 - 1 steps. Returns (length, dim) float32.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dimension, got {dim}")
    increment = math.log(max_timescale) / (dim // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(dim // 2, dtype=torch.float32))  # (D/2,)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]  # (T, D/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@dataclass(frozen=True)
class WhisperConfig:
    """openai-whisper's ModelDimensions, field for field, so checkpoints' `dims` map onto it directly."""

    n_mels: int = 80
    n_audio_ctx: int = 1500
    n_audio_state: int = 384
    n_audio_head: int = 6
    n_audio_layer: int = 4
    n_vocab: int = 51864
    n_text_ctx: int = 448
    n_text_state: int = 384
    n_text_head: int = 6
    n_text_layer: int = 4


def _stack_config(dim: int, n_layers: int, n_heads: int, decoder: bool, memory_dim: int | None = None):
    # Whisper: pre-norm, GELU MLP of 4 × width, LayerNorm eps 1e-5, key projection without bias.
    return TransformerConfig(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        mlp_hidden=4 * dim,
        activation="gelu",
        norm="layernorm",
        norm_eps=1e-5,
        norm_first=True,
        final_norm=True,
        key_bias=False,
        causal=decoder,
        cross_attention=decoder,
        memory_dim=memory_dim if decoder else None,
    )


class Whisper(DecoderMixin, PretrainedMixin, nn.Module):
    """The Whisper encoder-decoder.

    embed_audio(mel) runs the encoder once per 30 s window; logits(tokens, cache) runs the decoder one step
    at a time against the encoder output held in the cache, as openai-whisper's `logits(tokens,
    audio_features)` does (audio/decoding.py decodes a whole window with Whisper's rules).
    """

    config_class = WhisperConfig

    def __init__(self, config: WhisperConfig):
        super().__init__()
        self.config = config
        c = config
        self.stem = ConvStem(c.n_mels, c.n_audio_state)
        # Stored in the state dict: checkpoints keep their own (fp16-rounded) table and it must load exactly.
        self.audio_positions = SinusoidalPositions(
            c.n_audio_ctx,
            c.n_audio_state,
            persistent=True,
            table=whisper_sinusoids(c.n_audio_ctx, c.n_audio_state),
        )
        self.encoder = build_stack(
            _stack_config(c.n_audio_state, c.n_audio_layer, c.n_audio_head, decoder=False)
        )
        embed = TextEmbedding(c.n_vocab, c.n_text_state, LearnedPositions(c.n_text_ctx, c.n_text_state))
        column_major_table(embed.token)  # the tied output head: see shared.layout
        stack = build_stack(
            _stack_config(
                c.n_text_state, c.n_text_layer, c.n_text_head, decoder=True, memory_dim=c.n_audio_state
            )
        )
        self.decoder = TextDecoder(embed, stack, LMHead(c.n_text_state, c.n_vocab, tied=embed.token))
        column_major_wide_mlps(stack.blocks)  # the encoder's matrix-matrix products do not depend on the layout

    @property
    def is_multilingual(self) -> bool:
        return self.config.n_vocab >= MULTILINGUAL_MIN_VOCAB

    @property
    def n_frames(self) -> int:
        """Mel frames in one window: the stem halves them into n_audio_ctx positions."""
        return 2 * self.config.n_audio_ctx

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, n_frames) or (n_mels, n_frames) -> encoder output (B, n_audio_ctx, D)."""
        if mel.dim() == 2:
            mel = mel[None]
        expected = (self.config.n_mels, self.n_frames)
        if mel.dim() != 3 or tuple(mel.shape[1:]) != expected:
            raise InputError(
                f"mel spectrogram of shape {tuple(mel.shape)} does not fit this model, which needs "
                f"(batch, {expected[0]}, {expected[1]}); pad or trim it with "
                "audio.features.pad_or_trim(mel, N_FRAMES)"
            )
        weight = self.stem.conv1.weight
        x = self.stem(mel.to(device=weight.device, dtype=weight.dtype))  # (B, T, D)
        x = x + self.audio_positions(x.shape[1]).to(x.dtype)
        return self.encoder(x)

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: mel (B, n_mels, n_frames), tokens (B, T) -> logits (B, T, n_vocab)."""
        return self.decoder(tokens, memory=self.embed_audio(mel))

    def init_cache(
        self,
        batch_size: int,
        max_len: int,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> Cache:
        """An empty decoder cache holding the encoder output (cross-attention K/V are projected once)."""
        if max_len > self.config.n_text_ctx:
            raise InputError(
                f"cannot decode {max_len} positions: this model's text context is "
                f"{self.config.n_text_ctx}; shorten the prompt or ask for fewer tokens"
            )
        return super().init_cache(batch_size, max_len, memory=memory, memory_mask=memory_mask)
