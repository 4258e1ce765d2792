"""An image captioner: any ViT encoder composed with the one text decoder, which cross-attends to the patches.

The encoder is a registered ViT recipe (named in the config, with field overrides) used as a feature
extractor: its normed tokens (B, P + N, D) — P prefix (class) tokens, then N patches — are the decoder's
memory. The decoder is GPT-2's layout (learned positions, pre-norm causal stack, final LayerNorm, LM head tied
to the token embedding) with a cross-attention sublayer in every block, which is also the layout of
transformers' VisionEncoderDecoderModel with a ViT encoder and a GPT-2 decoder. When the encoder is wider or
narrower than the decoder, a linear map brings the memory to the decoder's width (VisionEncoderDecoderModel's
`enc_to_dec_proj`).
"""

import dataclasses
import difflib
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from shared.cache import Cache
from shared.errors import ConfigError, InputError
from shared.generation import BeamSearch, Greedy
from shared.heads import LMHead
from shared.init import normal_init
from shared.positions import LearnedPositions, sinusoids
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, build_stack
from text.decoder import GenerationMixin, TextDecoder
from text.embedding import TextEmbedding
from vision.recipes import VIT
from vision.vit import VisionTransformer, ViTConfig

_VIT_FIELDS = {f.name for f in dataclasses.fields(ViTConfig)}
# The encoder is a feature extractor: no classifier, its final norm stays on the tokens (see encoder_config).
_FIXED_ENCODER_FIELDS = {"num_classes", "fc_norm"}


@dataclass(frozen=True)
class CaptionerConfig:
    """A captioner's encoder (a ViT recipe name plus ViTConfig field overrides) and its decoder's shape.

    The decoder fields follow GPT2Config. Token ids: captions are `bos_id, words..., eos_id`, padded with
    pad_id after the end.
    """

    encoder: str = "vit_test"
    encoder_overrides: dict = field(default_factory=dict)
    vocab_size: int = 64
    max_len: int = 32
    dim: int = 32
    n_layers: int = 2
    n_heads: int = 4
    mlp_hidden: int = 128
    activation: str = "gelu_tanh"
    norm_eps: float = 1e-5
    dropout: float = 0.0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 0

    def __post_init__(self):
        if self.encoder not in VIT:
            close = difflib.get_close_matches(self.encoder, list(VIT), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see `zoo list vit_*`"
            raise ConfigError(f"unknown ViT encoder recipe {self.encoder!r}; {hint}")
        unknown = sorted(set(self.encoder_overrides) - _VIT_FIELDS)
        if unknown:
            raise ConfigError(f"encoder_overrides: {', '.join(unknown)} are not ViTConfig fields; "
                              f"use some of {', '.join(sorted(_VIT_FIELDS - _FIXED_ENCODER_FIELDS))}")
        fixed = sorted(set(self.encoder_overrides) & _FIXED_ENCODER_FIELDS)
        if fixed:
            raise ConfigError(f"encoder_overrides: {', '.join(fixed)} cannot be set; the captioner's encoder "
                              f"has no classifier")
        if self.dim % self.n_heads:
            raise ConfigError(f"decoder dim {self.dim} is not divisible by n_heads {self.n_heads}")
        for name in ("bos_id", "eos_id", "pad_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ConfigError(f"{name} {getattr(self, name)} is outside the vocabulary of "
                                  f"{self.vocab_size}")
        self.encoder_config  # noqa: B018  (validates the encoder overrides now, not at build time)

    def __hash__(self) -> int:  # the overrides dict is not hashable; its JSON text is
        return hash(json.dumps(dataclasses.asdict(self), sort_keys=True))

    @property
    def encoder_config(self) -> ViTConfig:
        """The recipe's ViTConfig with the overrides, as a feature extractor: no classifier, and the final
        LayerNorm kept on the tokens (never moved after a pooling that a captioner does not do)."""
        return dataclasses.replace(VIT[self.encoder], **self.encoder_overrides, num_classes=0, fc_norm=False)


def grid_sinusoids(height: int, width: int, dim: int) -> torch.Tensor:
    """(height·width, dim) positions of a patch grid, row-major: the paper's sinusoids of the row index in the
    first half of the channels and of the column index in the second."""
    if dim % 4:
        raise ConfigError(f"2-D sinusoidal positions need a width divisible by 4, got {dim}")
    rows = sinusoids(height, dim // 2)[:, None, :].expand(height, width, dim // 2)  # (H, W, D/2)
    cols = sinusoids(width, dim // 2)[None, :, :].expand(height, width, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(height * width, dim)  # (H·W, D)


class Captioner(GenerationMixin, PretrainedMixin, nn.Module):
    """Images (B, C, H, W) and caption tokens (B, T) -> next-token logits (B, T, V).

    encode() gives the decoder memory (B, P + N, D); init_cache/logits/start_generation make the model
    Generative (shared.generation); generate(images, max_new_tokens=None, ...) captions images: tokens
    (B, 1 + new) with BOS first, padded with pad_id after EOS, max_new_tokens defaulting to the rest of the
    decoder's context; caption_with_attention() also returns, for every generated token, the
    cross-attention over the N patches.
    """

    config_class = CaptionerConfig

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = config
        enc = config.encoder_config
        self.encoder = VisionTransformer(enc)
        self.num_prefix_tokens = self.encoder.num_prefix_tokens
        self.grid_size = self.encoder.patch_embed.grid_size
        self.memory_proj = nn.Linear(enc.dim, config.dim) if enc.dim != config.dim else None
        stack = build_stack(TransformerConfig(
            dim=config.dim, n_layers=config.n_layers, n_heads=config.n_heads, mlp_hidden=config.mlp_hidden,
            activation=config.activation, norm_eps=config.norm_eps, norm_first=True, final_norm=True,
            dropout=config.dropout, attn_dropout=config.dropout, causal=True, cross_attention=True))
        embed = TextEmbedding(config.vocab_size, config.dim, LearnedPositions(config.max_len, config.dim),
                              dropout=config.dropout)
        self.decoder = TextDecoder(embed, stack, LMHead(config.dim, config.vocab_size, tied=embed.token))
        self.decoder.apply(normal_init)
        if self.memory_proj is not None:
            normal_init(self.memory_proj)
        # As in GPT-2: the projections writing into the residual stream start smaller, by 1/√(2·layers).
        for block in stack.blocks:
            for linear in (block.attn.out_proj, block.cross_attn.out_proj, block.mlp.fc2):
                nn.init.normal_(linear.weight, std=0.02 / (2 * config.n_layers) ** 0.5)
        # Patch positions start as fixed 2-D sinusoids (as in MAE) rather than noise: a captioner must say
        # which shape is left of which, and trained from scratch it learns that far sooner from here.
        table = self.encoder.pos_embed.weight
        if table.shape[1] % 4 == 0:
            with torch.no_grad():
                table[self.num_prefix_tokens:] = grid_sinusoids(*self.grid_size, table.shape[1])
                table[: self.num_prefix_tokens] = 0.0

    @property
    def image_size(self) -> int:
        return self.encoder.config.img_size

    def _check_tokens(self, tokens: torch.Tensor, offset: int = 0) -> None:
        if tokens.dim() != 2:
            raise InputError(f"caption tokens must have shape (batch, length), not {tuple(tokens.shape)}")
        if offset + tokens.shape[1] > self.config.max_len:
            raise InputError(f"{offset + tokens.shape[1]} caption tokens exceed the captioner's maximum of "
                             f"{self.config.max_len}; shorten the captions or ask for fewer new tokens")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> decoder memory (B, P + N, D_decoder): the encoder's normed tokens."""
        memory = self.encoder.forward_features(images)  # (B, P + N, D_encoder)
        return self.memory_proj(memory) if self.memory_proj is not None else memory

    def _check_pair(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        self._check_tokens(tokens)
        if images.shape[0] != tokens.shape[0]:
            raise InputError(f"{images.shape[0]} images but {tokens.shape[0]} captions; pass one per image")

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: images (B, C, H, W), tokens (B, T) starting with BOS -> logits (B, T, V).

        mask: (B, T) bool, True for real tokens (padding after the end needs none: the decoder is causal).
        """
        self._check_pair(images, tokens)
        return self.decoder(tokens, memory=self.encode(images), mask=mask)

    def forward_with_weights(self, images: torch.Tensor, tokens: torch.Tensor,
                             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[dict]]:
        """forward() and the per-layer attention weights (see TextDecoder.forward_with_weights)."""
        self._check_pair(images, tokens)
        return self.decoder.forward_with_weights(tokens, self.encode(images), mask=mask)

    def init_cache(self, batch_size: int, max_len: int, memory: torch.Tensor | None = None,
                   memory_mask: torch.Tensor | None = None) -> Cache:
        """An empty decoding cache holding the memory from encode(); max_len counts the prompt too."""
        if memory is None:
            raise InputError("a captioner's cache needs the image memory: "
                             "init_cache(..., memory=encode(images))")
        return super().init_cache(batch_size, max_len, memory=memory, memory_mask=memory_mask)

    def logits(self, tokens: torch.Tensor, cache: Cache, *, mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) new tokens -> (B, T, V) logits, advancing the cache."""
        self._check_tokens(tokens, cache.length)
        return super().logits(tokens, cache, mask=mask, position_ids=position_ids)

    def _prompt(self, batch: int, device) -> torch.Tensor:
        return torch.full((batch, 1), self.config.bos_id, dtype=torch.long, device=device)

    @property
    def default_max_new_tokens(self) -> int:
        """The rest of the decoder's context after BOS."""
        return self.config.max_len - 1

    def start_generation(self, images: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, Cache]:
        """Encode the images once; the decoder starts from BOS with their memory in its cache."""
        if 1 + max_new_tokens > self.config.max_len:
            raise InputError(f"{max_new_tokens} new tokens exceed the captioner's maximum of "
                             f"{self.config.max_len} (BOS included); ask for at most {self.config.max_len - 1}")
        cache = self.init_cache(images.shape[0], 1 + max_new_tokens, memory=self.encode(images))
        return self._prompt(images.shape[0], images.device), cache

    @torch.no_grad()
    def generate_uncached(self, images: torch.Tensor, max_new_tokens: int | None = None) -> torch.Tensor:
        """Greedy captions recomputing the whole prefix at every step (no cache): the reference that cached
        decoding must reproduce. Returns tokens (B, 1 + new) like generate()."""
        max_new = self.config.max_len - 1 if max_new_tokens is None else max_new_tokens
        memory = self.encode(images)
        tokens = self._prompt(images.shape[0], images.device)
        finished = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        for _ in range(max_new):
            next_tokens = self.decoder(tokens, memory=memory)[:, -1].argmax(-1)  # (B,)
            next_tokens = next_tokens.masked_fill(finished, self.config.pad_id)
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
            finished |= next_tokens == self.config.eos_id
            if finished.all():
                break
        return tokens

    @torch.no_grad()
    def caption_with_attention(self, images: torch.Tensor, max_new_tokens: int | None = None,
                               selector: Greedy | BeamSearch | None = None, layers: str = "mean"):
        """Captions and, for every generated token, where the decoder looked in the image.

        The tokens come from generate(); one teacher-forced pass over them (forward_with_weights) then gives
        the cross-attention of the query that produced each token. Heads are averaged, then layers: "mean"
        averages all decoder layers, "last" keeps the last one. Prefix (class) tokens are dropped and each map
        is renormalised over the patches, so every map sums to 1 over the N = H'·W' patches.

        Returns (the GenerationOutput, maps (B, new, H', W')): map t belongs to output.tokens[:, 1 + t]; a
        row's maps after its EOS (output.lengths) belong to padding.
        """
        if layers not in ("mean", "last"):
            raise InputError(f"layers must be 'mean' or 'last', got {layers!r}")
        output = self.generate(images, max_new_tokens, selector=selector)
        inputs = output.tokens[:, :-1]  # the query at position t produced token t + 1
        _, weights = self.forward_with_weights(images, inputs)
        cross = torch.stack([w["cross"] for w in weights])  # (L, B, H, new, P + N)
        cross = cross[-1:] if layers == "last" else cross
        maps = cross.float().mean(dim=(0, 2))[..., self.num_prefix_tokens:]  # (B, new, N)
        maps = maps / maps.sum(dim=-1, keepdim=True).clamp(min=1e-12)
        return output, maps.reshape(*maps.shape[:2], *self.grid_size)  # (B, new, H', W')
