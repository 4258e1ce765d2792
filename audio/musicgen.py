"""MusicGen (Copet et al., 2023): text to music with the one TextDecoder over the K codebooks of an audio codec.

    prompt tokens (B, S) -> T5 encoder -> projection -> memory (B, S, D)   (the null prompt: zero memory)
    codes (B, K, T) -> codebook pattern (delay) -> steps (B, K, T + K - 1), the start token in front
    -> TextDecoder: the K codebook embeddings summed per step, sinusoidal positions, causal stack
       cross-attending to the memory, final norm, one head per codebook -> logits (B, K, steps, card)
    generation: one step emits one token of every codebook (rows B·K in shared.generation.generate),
       classifier-free guidance mixes the prompt's rows with null-prompt rows of the same batch
    -> codes (B, K, T) -> the codec's decoder -> audio (B, N)

The codec is a module of the model (its `encode(wav) -> (B, K, T)`, `decode(codes) -> wav`), chosen by name
from audio.music_codecs: EnCodec as MusicGen ships it, or the k-means spectral tokenizer zoo trains on the CPU.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from audio.codebooks import PATTERNS, CodebookPattern, ForcePad
from audio.music_codecs import CODECS
from shared import masks
from shared.cache import Cache
from shared.errors import ConfigError, InputError
from shared.generation import Guided, Sample, generate
from shared.inference import prepare_for_inference
from shared.layout import column_major, column_major_wide_mlps
from shared.positions import SinusoidalPositions
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, build_stack
from text.decoder import TextDecoder
from text.embedding import check_token_ids
from text.t5 import T5Config, T5Encoder


@dataclass(frozen=True)
class MusicGenConfig:
    """The decoder (dim ... max_len), the codec by name, and the T5 text encoder (text_*)."""

    codec: str = "encodec_32khz"
    pattern: str = "delay"
    num_codebooks: int = 4
    codebook_size: int = 2048
    dim: int = 1024
    n_layers: int = 24
    n_heads: int = 16
    mlp_hidden: int = 4096
    max_len: int = 2048
    norm_eps: float = 1e-5
    dropout: float = 0.1
    text_vocab_size: int = 32128
    text_dim: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_head_dim: int = 64
    text_mlp_hidden: int = 3072
    text_pad_id: int = 0
    max_prompt_len: int = 64

    def __post_init__(self):
        if self.pattern not in PATTERNS:
            raise ConfigError(f"unknown codebook pattern {self.pattern!r}; use one of {', '.join(PATTERNS)}")
        if self.codec not in CODECS:
            raise ConfigError(f"unknown codec {self.codec!r}; use one of {', '.join(CODECS)}")

    @property
    def pad_id(self) -> int:
        """The start token and the pattern's fill: one past the last code, as MusicGen."""
        return self.codebook_size

    @property
    def text_config(self) -> T5Config:
        return T5Config(vocab_size=self.text_vocab_size, dim=self.text_dim, n_encoder_layers=self.text_layers,
                        n_decoder_layers=0, n_heads=self.text_heads, head_dim=self.text_head_dim,
                        mlp_hidden=self.text_mlp_hidden, dropout=self.dropout, pad_id=self.text_pad_id)


def musicgen_sinusoids(length: int, dim: int) -> torch.Tensor:
    """MusicGen's position table (length, dim): cosines in the first half, sines in the second, frequencies
    10000^(-i / (dim/2 - 1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None]  # (T, D/2)
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class CodebookEmbedding(nn.Module):
    """Rows (B·K, T) of codebook tokens -> (B, T, D): each codebook's own table, summed over the K codebooks of
    a step, plus positions; the TextEmbedding interface, so the TextDecoder takes it."""

    def __init__(self, num_codebooks: int, vocab_size: int, dim: int, positions: nn.Module):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(vocab_size, dim) for _ in range(num_codebooks))
        self.positions = positions

    def forward(self, tokens: torch.Tensor, offset: int = 0, position_ids: torch.Tensor | None = None):
        K = len(self.tables)
        if offset == 0:
            check_token_ids(tokens, self.tables[0].num_embeddings)
        codes = tokens.view(-1, K, tokens.shape[-1])  # (B, K, T)
        x = sum(table(codes[:, k]) for k, table in enumerate(self.tables))  # (B, T, D)
        return x + self.positions(tokens.shape[-1], offset)


class CodebookHeads(nn.Module):
    """(B, T, D) -> logits (B·K, T, card): one bias-free projection per codebook, rows in the embedding's order."""

    def __init__(self, num_codebooks: int, dim: int, codebook_size: int):
        super().__init__()
        self.heads = nn.ModuleList(column_major(nn.Linear(dim, codebook_size, bias=False))  # see shared.layout
                                   for _ in range(num_codebooks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([head(x) for head in self.heads], dim=1)  # (B, K, T, card)
        return logits.flatten(0, 1)


class MusicGen(PretrainedMixin, nn.Module):
    """forward(tokens, mask, steps) -> teacher-forced logits (B, K, S, card); generate(tokens, mask, frames)
    -> codes (B, K, frames); codec.decode(codes) -> audio. Prompt tokens come from the text encoder's tokenizer;
    the input steps come from `input_steps(codes)`."""

    config_class = MusicGenConfig

    def __init__(self, config: MusicGenConfig):
        super().__init__()
        self.config = c = config
        self.codec = CODECS[c.codec]()
        if (self.codec.num_codebooks, self.codec.codebook_size) != (c.num_codebooks, c.codebook_size):
            raise ConfigError(f"codec {c.codec} has {self.codec.num_codebooks} codebooks of "
                              f"{self.codec.codebook_size}, the decoder {c.num_codebooks} of {c.codebook_size}")
        self.codec.requires_grad_(False)
        self.text_encoder = T5Encoder(c.text_config)
        self.enc_to_dec_proj = nn.Linear(c.text_dim, c.dim) if c.text_dim != c.dim else nn.Identity()
        stack = build_stack(TransformerConfig(
            dim=c.dim, n_layers=c.n_layers, n_heads=c.n_heads, mlp_hidden=c.mlp_hidden, activation="gelu",
            norm_eps=c.norm_eps, bias=False, dropout=c.dropout, attn_dropout=c.dropout, causal=True,
            cross_attention=True))
        column_major_wide_mlps(stack.blocks)  # read whole at every decoding step: see shared.layout
        positions = SinusoidalPositions(c.max_len, c.dim, table=musicgen_sinusoids(c.max_len, c.dim))
        self.decoder = TextDecoder(CodebookEmbedding(c.num_codebooks, c.codebook_size + 1, c.dim, positions),
                                   stack, CodebookHeads(c.num_codebooks, c.dim, c.codebook_size))
        self.pattern: CodebookPattern = PATTERNS[c.pattern](c.num_codebooks, c.pad_id)

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # frozen
        return self

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def max_frames(self) -> int:
        """The longest audio (in codec frames) the decoder's positions cover."""
        return self.config.max_len - 1 - max(self.pattern.delays)

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                    null: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt tokens (B, S) with mask (B, S) -> memory (B, S, D) and its mask. Rows where `null` (B,) bool
        is set get the null prompt, zero memory: cross-attention then adds nothing (MusicGen's unconditional
        input); their mask is all true, as attention over no key at all is undefined."""
        if tokens.shape[1] > self.config.max_prompt_len:
            raise InputError(f"the prompt has {tokens.shape[1]} tokens; this model reads at most "
                             f"{self.config.max_prompt_len}")
        if mask is None:
            mask = torch.ones_like(tokens, dtype=torch.bool)
        memory = self.enc_to_dec_proj(self.text_encoder(tokens, mask)) * mask[..., None]
        if null is not None:
            memory = memory.masked_fill(null[:, None, None], 0.0)
            mask = mask | null[:, None]
        return memory, mask

    def input_steps(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes (B, K, T) -> decoder inputs (B, K, S) (the start token, then the pattern's steps but the last)
        and targets (B, K, S) (the pattern's steps; pad where the pattern holds no code)."""
        steps = self.pattern.apply(codes)  # (B, K, S)
        start = steps.new_full(steps.shape[:2] + (1,), self.config.pad_id)
        return torch.cat([start, steps[..., :-1]], dim=-1), steps

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None, inputs: torch.Tensor,
                null: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: prompt tokens (B, S) with mask (B, S), inputs (B, K, S') from input_steps ->
        logits (B, K, S', card). `null` (B,) bool: rows trained on the null prompt."""
        memory, memory_mask = self.encode_text(tokens, mask, null)
        B, K, S = inputs.shape
        logits = self.decoder(inputs.reshape(B * K, S), memory=memory, memory_mask=memory_mask)  # (B·K, S, card)
        return logits.view(B, K, S, -1)

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, mask: torch.Tensor | None, frames: int, *,
                 guidance_scale: float = 3.0, selector=None, progress=None) -> torch.Tensor:
        """Codes (B, K, frames) for prompts (B, S). selector: shared.generation's Greedy() or Sample(...)
        (default: Sample(top_k=250), as MusicGen); guidance_scale 1 turns classifier-free guidance off."""
        if frames < 1 or frames > self.max_frames:
            raise InputError(f"{frames} frames ({frames / self.frame_rate:.2f} s) is outside what this model "
                             f"can generate: 1 to {self.max_frames} frames ({self.max_frames / self.frame_rate:.2f} s)")
        B, K = tokens.shape[0], self.config.num_codebooks
        prepare_for_inference(self.decoder)  # self-attention's q/k/v in one GEMM; a second call changes nothing
        memory, memory_mask = self.encode_text(tokens, mask)
        guided = guidance_scale != 1.0
        if guided:  # the null prompt's rows (see encode_text) after the prompts' rows, in one batch
            memory = torch.cat([memory, torch.zeros_like(memory)])
            memory_mask = torch.cat([memory_mask, torch.ones_like(memory_mask)])
        # the additive bias every cross-attention would make of the mask at every step, made once; none when
        # every prompt token is real (a zero bias changes no score)
        memory_mask = None if mask is None else masks.to_bias(masks.key_padding(memory_mask), memory.dtype)
        steps = self.pattern.steps(frames)
        cache = self.decoder.init_cache(memory.shape[0], 1 + steps, memory=memory, memory_mask=memory_mask)
        model = _CodebookSteps(Guided(self.decoder, guidance_scale) if guided else self.decoder, progress)
        start = tokens.new_full((B * K, 1), self.config.pad_id)
        out = generate(model, start, steps, cache=cache, selector=selector or Sample(top_k=250),
                       processors=[ForcePad(self.pattern, frames)], pad_token_id=self.config.pad_id)
        return self.pattern.revert(out.tokens[:, 1:].reshape(B, K, steps))  # (B, K, frames)

    @torch.no_grad()
    def decode_audio(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, T) -> audio (B, N) through the codec."""
        wav = self.codec.decode(codes)
        return wav.reshape(wav.shape[0], -1)


class _CodebookSteps:
    """The decoder (maybe guided) as generate() sees it: rows (B·K) of tokens; logits get a column for the pad
    id (never chosen unless ForcePad forces it) so every row's choices live in one vocabulary."""

    def __init__(self, decoder, progress=None):
        self.decoder, self.progress = decoder, progress

    def init_cache(self, batch_size: int, max_len: int) -> Cache:
        raise RuntimeError("MusicGen.generate passes its cache")

    def logits(self, tokens: torch.Tensor, cache: Cache) -> torch.Tensor:  # (B·K, T) -> (B·K, T, card + 1)
        logits = self.decoder.logits(tokens, cache)
        if self.progress is not None:
            self.progress(tokens.shape[1])
        return torch.cat([logits, logits.new_full(logits.shape[:-1] + (1,), float("-inf"))], dim=-1)
