"""The Vision Transformer ("An Image is Worth 16x16 Words", Dosovitskiy et al., 2021) on the shared core.

Patch embedding + class token + learned positions, a pre-norm encoder stack, then a classifier head. The
public methods follow timm's classifier contract so timm's data, optimizer and training utilities accept it.
"""

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from shared import heads
from shared.errors import ConfigError, InputError
from shared.init import init_weights
from shared.norms import LayerNorm
from shared.positions import LearnedPositions
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, TransformerStack, build_block
from vision.drop_path import DropPath, drop_path_rates
from vision.patch_embed import PatchEmbed

POOLS = ("token", "avg", "")


@dataclass(frozen=True)
class ViTConfig:
    """A ViT's shape and regularisation; field names follow timm's VisionTransformer arguments.

    global_pool: "token" (class token), "avg" (mean of the patch tokens) or "" (no pooling: the head sees
    every token). fc_norm: put the final LayerNorm after pooling instead of before; None means "when
    global_pool is avg", as in timm. drop_rate: dropout before the classifier; drop_path_rate: stochastic
    depth of the last block (rising linearly from 0 in the first).
    """

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    dim: int = 768
    depth: int = 12
    n_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    global_pool: str = "token"
    fc_norm: bool | None = None
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-6

    def __post_init__(self):
        check_pool(self.global_pool, self.class_token)
        if self.dim % self.n_heads:
            raise ConfigError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if min(self.img_size, self.patch_size, self.in_chans, self.dim, self.depth) < 1:
            raise ConfigError("img_size, patch_size, in_chans, dim and depth must be positive")
        if self.num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0 (0: features only), got {self.num_classes}")

    @property
    def use_fc_norm(self) -> bool:
        return self.global_pool == "avg" if self.fc_norm is None else self.fc_norm


def check_pool(global_pool: str, class_token: bool) -> None:
    if global_pool not in POOLS:
        raise ConfigError(f"unknown global_pool {global_pool!r}: use 'token', 'avg' or '' (no pooling)")
    if global_pool == "token" and not class_token:
        raise ConfigError("global_pool='token' needs the class token; "
                          "use global_pool='avg' or class_token=True")


def build_encoder(config: ViTConfig) -> TransformerStack:
    """The pre-norm encoder, with stochastic depth rising linearly over the blocks."""
    core = TransformerConfig(dim=config.dim, n_layers=config.depth, n_heads=config.n_heads,
                             mlp_hidden=int(config.dim * config.mlp_ratio), activation="gelu",
                             norm="layernorm", norm_eps=config.norm_eps, attn_dropout=config.attn_drop_rate,
                             qkv_bias=config.qkv_bias)
    blocks = [build_block(core, drop_path=DropPath(rate) if rate > 0 else None)
              for rate in drop_path_rates(config.drop_path_rate, config.depth)]
    final = None if config.use_fc_norm else LayerNorm(config.dim, eps=config.norm_eps)
    return TransformerStack(blocks, final_norm=final)


class VisionTransformer(PretrainedMixin, nn.Module):
    """ViT image classifier: images (B, C, H, W) -> logits (B, num_classes).

    forward_features gives the normed tokens (B, 1 + N, D) (class token first), forward_head pools and
    classifies them. Attributes follow timm: num_classes, num_features, embed_dim, in_chans,
    num_prefix_tokens, global_pool, pretrained_cfg.
    """

    config_class = ViTConfig

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.num_features = self.embed_dim = config.dim
        self.in_chans = config.in_chans
        self.num_prefix_tokens = 1 if config.class_token else 0
        self.global_pool = config.global_pool

        self.patch_embed = PatchEmbed(config.img_size, config.patch_size, config.in_chans, config.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim)) if config.class_token else None
        self.pos_embed = LearnedPositions(self.num_prefix_tokens + self.patch_embed.num_patches, config.dim)
        self.encoder = build_encoder(config)
        self.fc_norm = LayerNorm(config.dim, eps=config.norm_eps) if config.use_fc_norm else nn.Identity()
        self.head = self._new_head(config.num_classes)

        init_weights(self, "trunc_normal")
        nn.init.trunc_normal_(self.pos_embed.weight, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    # timm's data and optimizer helpers read these.
    @property
    def pretrained_cfg(self) -> dict:
        """Preprocessing the model expects, in timm's format (timm.data.resolve_data_config reads it)."""
        c = self.config
        return {
            "input_size": (c.in_chans, c.img_size, c.img_size), "fixed_input_size": True,
            "mean": (0.5,) * c.in_chans, "std": (0.5,) * c.in_chans, "interpolation": "bicubic",
            # timm's ViT weights are evaluated with a 0.9 centre crop at 224 and uncropped at 384; small
            # images trained from scratch are never cropped.
            "crop_pct": 0.9 if c.img_size == 224 else 1.0, "crop_mode": "center",
            "num_classes": self.num_classes, "first_conv": "patch_embed.proj", "classifier": "head.fc",
        }

    @property
    def default_cfg(self) -> dict:
        return self.pretrained_cfg

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "pos_embed.weight"}

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for layer-wise learning-rate decay (timm's optimizer factory)."""
        return {"stem": r"^cls_token|^pos_embed|^patch_embed",
                "blocks": [(r"^encoder\.blocks\.(\d+)", None), (r"^encoder\.final_norm", (99999,))]}

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh (zero) one for num_classes (0: pooled features only).

        The norm stays where it is, so only the pooling changes with global_pool.
        """
        changes = {"num_classes": num_classes, "fc_norm": self.config.use_fc_norm}
        if global_pool is not None:
            check_pool(global_pool, self.config.class_token)
            changes["global_pool"] = self.global_pool = global_pool
        # Keep the config in step so save_pretrained rebuilds this very model.
        self.config = dataclasses.replace(self.config, **changes)
        self.num_classes = num_classes
        like = self.pos_embed.weight  # the new head lives where the rest of the model does
        self.head = self._new_head(num_classes).to(device=like.device, dtype=like.dtype)
        self.head.train(self.training)

    def _new_head(self, num_classes: int) -> heads.ClassifierHead:
        # Pooling happens in forward_head (it may need the norm after it), so the head itself does not pool.
        return heads.ClassifierHead(self.embed_dim, num_classes, pool="none", dropout=self.config.drop_rate)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        return x + self.pos_embed(x.shape[1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> normed tokens (B, P + N, D), P prefix (class) tokens first."""
        return self.encoder(self._embed(x))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, P + N, D) -> (B, D) by the class token or the mean of the patch tokens."""
        if self.global_pool == "token":
            return heads.pool(x, "cls")
        if self.global_pool == "avg":
            return heads.pool(x[:, self.num_prefix_tokens:], "mean")
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, P + N, D) -> logits (B, num_classes), or the pooled features (B, D) with pre_logits."""
        x = self.fc_norm(self.pool(x))
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes)."""
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """Block outputs as feature maps, like timm.

        indices: None for every block, an int n for the last n, or a list of block indices (negative from the
        end). norm: apply the final norm to each. output_fmt: "NCHW" gives (B, D, H', W') maps, "NLC" gives
        (B, H'·W', D); prefix tokens are dropped. Returns (final normed tokens (B, P + N, D), [maps]), or
        only the list with intermediates_only.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise InputError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take = take_indices(len(self.encoder.blocks), indices)
        B = x.shape[0]
        x = self._embed(x)
        blocks = self.encoder.blocks[: max(take) + 1] if stop_early else self.encoder.blocks
        found = []
        for i, block in enumerate(blocks):
            x = block(x)
            if i in take:
                found.append(self.encoder.final_norm(x) if norm else x)
        found = [y[:, self.num_prefix_tokens:] for y in found]  # (B, H'·W', D)
        if output_fmt == "NCHW":
            H, W = self.patch_embed.grid_size
            found = [y.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous() for y in found]  # (B, D, H', W')
        if intermediates_only:
            return found
        return self.encoder.final_norm(x), found


def take_indices(depth: int, indices: int | list[int] | None) -> list[int]:
    """Absolute block indices: all for None, the last n for an int, a list with negatives from the end."""
    if indices is None:
        return list(range(depth))
    if isinstance(indices, int):
        if not 0 < indices <= depth:
            raise InputError(f"cannot take the last {indices} blocks of {depth}; use 1 to {depth}")
        return list(range(depth - indices, depth))
    taken = [i + depth if i < 0 else i for i in indices]
    bad = [i for i, t in zip(indices, taken) if not 0 <= t < depth]
    if bad:
        raise InputError(f"block index {bad[0]} is out of range for a model of {depth} blocks")
    return taken
