"""The diffusion Transformer (Peebles & Xie, 2023): a ViT over latent patches that predicts the noise (or the
velocity) added to them, conditioned on the timestep and a class or a prompt.

    latents (B, C, H, W) -> patches (B, N, D) + 2-D sin-cos positions
        -> blocks: x + gate · attn(adaLN(x, c)), [x + cross_attn(LN(x), prompt)], x + gate · mlp(adaLN(x, c))
        -> adaLN(x, c) -> Linear -> unpatchify -> (B, C_out, H, W)

c = timestep embedding (+ class embedding, + pooled prompt). The blocks are the core's one pre-norm block
with adaLN-Zero norms (shared.modulation); prompts come in as token states of a text encoder (PixArt-α's
cross-attention) and the class table has one extra row, the null class of classifier-free guidance.
"""

from dataclasses import dataclass

import torch
from torch import nn

from shared.attention import Attention
from shared.block import PreNormBlock
from shared.errors import ConfigError, InputError
from shared.mlp import MLP
from shared.modulation import AdaLN, AdaLNZero, TimestepEmbedding
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerStack
from vision.patch_embed import PatchEmbed


@dataclass(frozen=True)
class DiTConfig:
    """sample_size: latent side; out_channels: 2·in_channels for a learned-sigma head (DiT-XL/2), else
    in_channels (None); num_classes > 0: class-conditional; text_dim > 0: cross-attends to prompt states of
    that width; mlp_norm_eps: the epsilon of each block's second adaLN-Zero (diffusers builds that one with its
    norm_eps, 1e-5 by default, where DiT's own code has 1e-6)."""

    sample_size: int = 32
    patch_size: int = 2
    in_channels: int = 4
    out_channels: int | None = None
    dim: int = 1152
    n_layers: int = 28
    n_heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int = 0
    text_dim: int = 0
    freq_dim: int = 256
    mlp_norm_eps: float = 1e-6

    def __post_init__(self):
        if self.dim % self.n_heads:
            raise ConfigError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if self.dim % 4:
            raise ConfigError(f"2-D sin-cos positions need dim divisible by 4, got {self.dim}")

    @property
    def output_channels(self) -> int:
        return self.out_channels or self.in_channels


def grid_sincos(height: int, width: int, dim: int) -> torch.Tensor:
    """(H·W, dim) positions of a patch grid, row-major: the first half encodes the column, the second the row,
    each as [sin | cos] of index · 10000^(-k / (dim/4)) (MAE's and DiT's table)."""
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (D/4,)

    def encode(index: torch.Tensor) -> torch.Tensor:  # (H·W,) -> (H·W, D/2)
        angles = index[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                                torch.arange(width, dtype=torch.float64), indexing="ij")  # (H, W) each
    return torch.cat([encode(cols.flatten()), encode(rows.flatten())], dim=-1).float()


class DiT(PretrainedMixin, nn.Module):
    """forward(latents (B, C, H, W), timesteps (B,), class_labels (B,) | None, context (B, S, Dt) | None,
    context_mask (B, S) | None) -> (B, C_out, H, W): the model's prediction (noise or velocity; with a
    learned-sigma head, the variance channels follow)."""

    config_class = DiTConfig

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = c = config
        self.patch_embed = PatchEmbed(c.sample_size, c.patch_size, c.in_channels, c.dim)
        self.register_buffer("pos_embed", grid_sincos(*self.patch_embed.grid_size, c.dim), persistent=False)
        self.time_embed = TimestepEmbedding(c.dim, c.freq_dim)
        self.class_embed = nn.Embedding(c.num_classes + 1, c.dim) if c.num_classes else None
        self.text_pool = nn.Linear(c.text_dim, c.dim) if c.text_dim else None
        hidden = int(c.dim * c.mlp_ratio)
        blocks = [PreNormBlock(
            Attention(c.dim, c.n_heads), MLP(c.dim, hidden, act="gelu_tanh"),
            attn_norm=AdaLNZero(c.dim, c.dim), mlp_norm=AdaLNZero(c.dim, c.dim, eps=c.mlp_norm_eps),
            cross_attn=Attention(c.dim, c.n_heads, memory_dim=c.text_dim) if c.text_dim else None,
            cross_norm=nn.LayerNorm(c.dim, eps=1e-6) if c.text_dim else None) for _ in range(c.n_layers)]
        self.stack = TransformerStack(blocks)
        self.final_norm = AdaLN(c.dim, c.dim)
        self.head = nn.Linear(c.dim, c.patch_size ** 2 * c.output_channels)
        init_dit(self)

    @property
    def null_class(self) -> int:
        """The class id that means "no class" (classifier-free guidance's unconditional row)."""
        return self.config.num_classes

    def conditioning(self, timesteps: torch.Tensor, class_labels: torch.Tensor | None,
                     context: torch.Tensor | None, context_mask: torch.Tensor | None) -> torch.Tensor:
        """The vector c (B, D) every adaLN reads: timestep + class + pooled prompt."""
        cond = self.time_embed(timesteps)
        if self.class_embed is not None:
            if class_labels is None:
                raise InputError("this DiT is class-conditional: pass class_labels (the null class "
                                 f"{self.null_class} for none)")
            cond = cond + self.class_embed(class_labels)
        if self.text_pool is not None:
            if context is None:
                raise InputError("this DiT reads a prompt: pass the text encoder's states as context")
            weights = torch.ones(context.shape[:2], device=context.device) if context_mask is None \
                else context_mask.to(context.dtype)  # (B, S)
            pooled = (context * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
            cond = cond + self.text_pool(pooled)
        return cond

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(latents.shape[0])
        cond = self.conditioning(timesteps, class_labels, context, context_mask)
        x = self.patch_embed(latents) + self.pos_embed.to(latents.dtype)  # (B, N, D)
        x = self.stack(x, context, memory_mask=context_mask, cond=cond)
        x = self.head(self.final_norm(x, cond))  # (B, N, p·p·C_out)
        return self.unpatchify(x)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, p·p·C) -> (B, C, H, W); within a patch the channel varies fastest (diffusers' order)."""
        p, C = self.config.patch_size, self.config.output_channels
        h, w = self.patch_embed.grid_size
        x = x.reshape(x.shape[0], h, w, p, p, C)
        x = torch.einsum("nhwpqc->nchpwq", x)  # (B, C, h, p, w, p)
        return x.reshape(x.shape[0], C, h * p, w * p)


def init_dit(model: DiT) -> None:
    """DiT's initialisation: Xavier-uniform linears and patch projection, N(0, 0.02) timestep MLP and class
    table, and zeros for every adaLN projection and the output head (each block starts as the identity)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    proj = model.patch_embed.proj
    nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
    nn.init.zeros_(proj.bias)
    nn.init.normal_(model.time_embed.linear_1.weight, std=0.02)
    nn.init.normal_(model.time_embed.linear_2.weight, std=0.02)
    if model.class_embed is not None:
        nn.init.normal_(model.class_embed.weight, std=0.02)
    for module in model.modules():
        if isinstance(module, AdaLN):
            nn.init.zeros_(module.linear.weight)
            nn.init.zeros_(module.linear.bias)
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
