"""Images to patch tokens, and resampling of learned position tables between patch grids."""

import torch
from torch import nn
from torch.nn import functional as F

from shared.errors import ConfigError, InputError


class PatchEmbed(nn.Module):
    """Cuts an image into non-overlapping patch_size × patch_size patches and projects each to `dim`.

    A convolution whose stride equals its kernel is exactly "flatten each patch, then a shared linear map",
    done in one call. Input (B, C, H, W) with H = W = img_size; output (B, N, dim), N = (img_size / patch)².
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        if img_size % patch_size:
            raise ConfigError(f"img_size {img_size} is not a multiple of patch_size {patch_size}; "
                              "choose sizes that tile the image exactly")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans or x.shape[-2:] != (self.img_size, self.img_size):
            want = f"(B, {self.in_chans}, {self.img_size}, {self.img_size})"
            raise InputError(f"expected images of shape {want}, "
                             f"got {tuple(x.shape)}; resize the images or create the model with "
                             f"img_size={x.shape[-1]}" + (f", in_chans={x.shape[1]}" if x.ndim == 4 else ""))
        x = self.proj(x)  # (B, D, H', W')
        return x.flatten(2).transpose(1, 2)  # (B, H'·W', D)


def resample_pos_embed(table: torch.Tensor, new_grid: tuple[int, int],
                       old_grid: tuple[int, int] | None = None, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Resample a learned position table made for one patch grid to another.

    table: (P + H·W, D) or (1, P + H·W, D), where the first P rows belong to prefix (class) tokens and are
    kept as they are; the grid rows are interpolated bicubically as an image of D channels (with
    anti-aliasing when shrinking). old_grid defaults to a square grid. Returns a table of the same rank.
    The same grid returns the input unchanged.
    """
    batched = table.ndim == 3
    rows = table[0] if batched else table  # (P + H·W, D)
    n_grid = rows.shape[0] - num_prefix_tokens
    if old_grid is None:
        side = round(n_grid ** 0.5)
        if side * side != n_grid:
            raise ConfigError(f"a position table of {n_grid} grid rows is not square; pass old_grid")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != n_grid:
        raise ConfigError(f"a position table of {n_grid} grid rows does not fit a "
                          f"{old_grid[0]}x{old_grid[1]} grid")
    new_grid = tuple(new_grid)
    if tuple(old_grid) == new_grid:
        return table
    prefix, grid = rows[:num_prefix_tokens], rows[num_prefix_tokens:]
    dim = grid.shape[-1]
    image = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, H, W)
    image = F.interpolate(image, size=new_grid, mode="bicubic", align_corners=False, antialias=True)
    grid = image.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], dim).to(rows.dtype)  # (H'·W', D)
    rows = torch.cat([prefix, grid], dim=0)
    return rows.unsqueeze(0) if batched else rows
