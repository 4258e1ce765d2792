"""The KL autoencoder of latent diffusion (Rombach et al., 2022; diffusers' AutoencoderKL): a convolutional
encoder to a Gaussian over latents at 1/2^(levels-1) of the resolution, and the mirror decoder back to pixels.

Each level is ResNet blocks (GroupNorm, SiLU, 3×3 conv, twice, plus a 1×1 shortcut when widths differ) and a
resampler; between encoder and decoder sits a middle block whose attention over the H·W positions is the
core's one Attention (a single head as wide as the channels). Module names follow diffusers' layout so that
its checkpoints convert by a short key table (vision.convert_autoencoder).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from shared.attention import Attention
from shared.errors import ConfigError, InputError
from shared.pretrained import PretrainedMixin


@dataclass(frozen=True)
class AutoencoderConfig:
    """diffusers' AutoencoderKL fields. scaling_factor: multiplies latents before diffusion (1/std of the
    training latents: 0.18215 for Stable Diffusion's)."""

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 256
    scaling_factor: float = 0.18215
    mid_block_attention: bool = True

    def __post_init__(self):
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ConfigError(f"block widths {bad} are not multiples of norm_num_groups={self.norm_num_groups}")

    @property
    def downsample(self) -> int:
        """How much smaller a latent is than its image, per side."""
        return 2 ** (len(self.block_out_channels) - 1)


class ResnetBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))), with a 1×1 shortcut when the width changes:
    (B, Ci, H, W) -> (B, Co, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=1e-6)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=1e-6)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class SpatialAttention(nn.Module):
    """x + Attention(GN(x)) over the H·W positions as a sequence: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.attn = Attention(channels, n_heads=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.group_norm(x).flatten(2).transpose(1, 2)  # (B, H·W, C)
        h = self.attn(h).transpose(1, 2).reshape(B, C, H, W)
        return x + h


class MidBlock(nn.Module):
    """ResNet block, attention, ResNet block at the lowest resolution."""

    def __init__(self, channels: int, groups: int, attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, groups) for _ in range(2)])
        self.attention = SpatialAttention(channels, groups) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if self.attention is not None:
            x = self.attention(x)
        return self.resnets[1](x)


class Downsample(nn.Module):
    """A stride-2 3×3 conv after padding one pixel right and below (as diffusers): halves H and W."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv: doubles H and W."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """ResNet blocks at one resolution, then an optional resampler."""

    def __init__(self, resnets: list[ResnetBlock], resample: nn.Module | None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.resample = resample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.resample is None else self.resample(x)


class Encoder(nn.Module):
    """Image (B, Cin, H, W) -> the latent Gaussian's mean and log-variance, (B, 2·Cz, H/f, W/f)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        widths, g = cfg.block_out_channels, cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        levels, prev = [], widths[0]
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            resnets = [ResnetBlock(prev if j == 0 else width, width, g) for j in range(cfg.layers_per_block)]
            levels.append(Level(resnets, None if last else Downsample(width)))
            prev = width
        self.down_blocks = nn.ModuleList(levels)
        self.mid_block = MidBlock(widths[-1], g, cfg.mid_block_attention)
        self.conv_norm_out = nn.GroupNorm(g, widths[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(widths[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for level in self.down_blocks:
            x = level(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """Latent (B, Cz, h, w) -> image (B, Cout, h·f, w·f); each level has one ResNet block more than the
    encoder's."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        widths, g = tuple(reversed(cfg.block_out_channels)), cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.latent_channels, widths[0], 3, padding=1)
        self.mid_block = MidBlock(widths[0], g, cfg.mid_block_attention)
        levels, prev = [], widths[0]
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            resnets = [ResnetBlock(prev if j == 0 else width, width, g) for j in range(cfg.layers_per_block + 1)]
            levels.append(Level(resnets, None if last else Upsample(width)))
            prev = width
        self.up_blocks = nn.ModuleList(levels)
        self.conv_norm_out = nn.GroupNorm(g, widths[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(widths[-1], cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for level in self.up_blocks:
            x = level(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(PretrainedMixin, nn.Module):
    """encode(images) -> (mean, logvar) of the latents; decode(latents) -> images. Images are in [-1, 1];
    latents are unscaled (multiply by config.scaling_factor before diffusion, divide after)."""

    config_class = AutoencoderConfig

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        z2 = 2 * config.latent_channels
        self.quant_conv = nn.Conv2d(z2, z2, 1)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Cin, H, W) -> mean and log-variance, each (B, Cz, H/f, W/f); H and W multiples of f."""
        f = self.config.downsample
        if images.ndim != 4 or images.shape[1] != self.config.in_channels or images.shape[-1] % f \
                or images.shape[-2] % f:
            raise InputError(f"expected images (B, {self.config.in_channels}, H, W) with H and W multiples of "
                             f"{f}, got {tuple(images.shape)}")
        moments = self.quant_conv(self.encoder(images))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, Cz, h, w) -> images (B, Cout, h·f, w·f)."""
        if latents.ndim != 4 or latents.shape[1] != self.config.latent_channels:
            raise InputError(f"expected latents (B, {self.config.latent_channels}, h, w), "
                             f"got {tuple(latents.shape)}")
        return self.decoder(self.post_quant_conv(latents))

    def forward(self, images: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct: (reconstruction (B, Cout, H, W), mean, logvar); sample=True decodes a draw from the
        posterior instead of its mean (training)."""
        mean, logvar = self.encode(images)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return self.decode(z), mean, logvar
