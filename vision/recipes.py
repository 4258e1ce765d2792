"""Named ViT configs: timm's names and sizes, small-image variants for training from scratch, a test model."""

from vision.vit import ViTConfig

# width, depth, heads of the four standard sizes (Dosovitskiy et al. Table 1; "tiny" and "small" from DeiT).
SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}


def _vit(size: str, patch_size: int, img_size: int, **fields) -> ViTConfig:
    dim, depth, n_heads = SIZES[size]
    return ViTConfig(img_size=img_size, patch_size=patch_size, dim=dim, depth=depth, n_heads=n_heads,
                     **fields)


# The timm models of these sizes that have ImageNet weights: (size, patch, image size).
_TIMM = [
    ("tiny", 16, 224), ("tiny", 16, 384),
    ("small", 16, 224), ("small", 16, 384), ("small", 32, 224), ("small", 32, 384),
    ("base", 16, 224), ("base", 16, 384), ("base", 32, 224), ("base", 32, 384),
    ("large", 16, 224), ("large", 16, 384), ("large", 32, 224), ("large", 32, 384),
]

VIT = {f"vit_{size}_patch{patch}_{img}": _vit(size, patch, img) for size, patch, img in _TIMM}

VIT.update({
    # Small images trained from scratch (CIFAR-size 32 px, 4 px patches = an 8x8 grid of 64 tokens). Some
    # stochastic depth, since these models see far fewer images than the ImageNet ones.
    "vit_tiny_patch4_32": _vit("tiny", 4, 32, num_classes=10, drop_path_rate=0.1),
    "vit_small_patch4_32": _vit("small", 4, 32, num_classes=10, drop_path_rate=0.1),
    # 16 px inputs with 2 px patches (an 8x8 grid), e.g. upsampled 8x8 handwritten digits.
    "vit_tiny_patch2_16": _vit("tiny", 2, 16, num_classes=10, drop_path_rate=0.1),
    # Tiny model for the test suite.
    "vit_test": ViTConfig(img_size=16, patch_size=4, in_chans=3, num_classes=5, dim=32, depth=2, n_heads=4,
                          mlp_ratio=2.0),
})

# `zoo train`'s default: 8x8 handwritten digits upsampled to 16 px, 4 px patches (16 tokens), a narrow shallow
# encoder and mean pooling, which starts learning far sooner than a class token on 1,437 training images.
VIT["vit_digits_patch4_16"] = ViTConfig(img_size=16, patch_size=4, num_classes=10, dim=64, depth=4, n_heads=4,
                                        mlp_ratio=2.0, global_pool="avg", drop_path_rate=0.05)

# Where pretrained weights of a recipe live upstream: timm's default tag on the Hugging Face hub first,
# then Google's original checkpoint in the transformers format where one exists.
HF_REPOS = {
    "vit_tiny_patch16_224": ("timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",),
    "vit_tiny_patch16_384": ("timm/vit_tiny_patch16_384.augreg_in21k_ft_in1k",),
    "vit_small_patch16_224": ("timm/vit_small_patch16_224.augreg_in21k_ft_in1k",),
    "vit_small_patch16_384": ("timm/vit_small_patch16_384.augreg_in21k_ft_in1k",),
    "vit_small_patch32_224": ("timm/vit_small_patch32_224.augreg_in21k_ft_in1k",),
    "vit_small_patch32_384": ("timm/vit_small_patch32_384.augreg_in21k_ft_in1k",),
    "vit_base_patch16_224": ("timm/vit_base_patch16_224.augreg2_in21k_ft_in1k",
                             "google/vit-base-patch16-224"),
    "vit_base_patch16_384": ("timm/vit_base_patch16_384.augreg_in21k_ft_in1k", "google/vit-base-patch16-384"),
    "vit_base_patch32_224": ("timm/vit_base_patch32_224.augreg_in21k_ft_in1k",),
    "vit_base_patch32_384": ("timm/vit_base_patch32_384.augreg_in21k_ft_in1k",
                             "google/vit-base-patch32-384"),
    "vit_large_patch16_224": ("timm/vit_large_patch16_224.augreg_in21k_ft_in1k",
                              "google/vit-large-patch16-224"),
    "vit_large_patch16_384": ("timm/vit_large_patch16_384.augreg_in21k_ft_in1k",
                              "google/vit-large-patch16-384"),
    "vit_large_patch32_224": ("timm/vit_large_patch32_224.orig_in21k",),
    "vit_large_patch32_384": ("timm/vit_large_patch32_384.orig_in21k_ft_in1k",
                              "google/vit-large-patch32-384"),
}

# Upstream ids that name the same architecture.
ALIASES = {repo.split("/", 1)[1] if repo.startswith("timm/") else repo: name
           for name, repos in HF_REPOS.items() for repo in repos}

WEIGHTS_HINT = ("pass a weights file or folder: pretrained=PATH (timm, torchvision or Hugging Face ViT "
                "weights, safetensors or a PyTorch pickle)")


def preprocessing(config: ViTConfig) -> dict:
    """What the upstream ImageNet weights expect as input."""
    return {"input_size": (config.in_chans, config.img_size, config.img_size), "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5), "interpolation": "bicubic",
            "crop_pct": 0.9 if config.img_size == 224 else 1.0}
