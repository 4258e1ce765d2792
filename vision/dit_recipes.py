"""Named class-conditional DiT configs: DiT-XL/2 at 256 and 512 px (ImageNet-1k) and a tiny one for tests."""

from vision.dit import DiTConfig


def _xl2(sample_size: int) -> DiTConfig:
    """DiT-XL/2 (Peebles & Xie, Table 1: 28 blocks of width 1152, 16 heads, 2x2 patches) over the latents of
    Stable Diffusion's VAE (4 channels, 8x smaller than the image), predicting noise and a learned variance.
    mlp_norm_eps is diffusers' norm_eps, so that the published diffusers weights reproduce its outputs."""
    return DiTConfig(sample_size=sample_size, patch_size=2, in_channels=4, out_channels=8, dim=1152, n_layers=28,
                     n_heads=16, num_classes=1000, mlp_norm_eps=1e-5)


DIT = {
    "dit_xl_2_256": _xl2(32),
    "dit_xl_2_512": _xl2(64),
    # Tiny model for the test suite: an 8x8 latent of 4 channels in 2x2 patches (16 tokens), learned sigma.
    "dit_test": DiTConfig(sample_size=8, patch_size=2, in_channels=4, out_channels=8, dim=32, n_layers=2,
                          n_heads=2, num_classes=10, mlp_norm_eps=1e-5),
}

# The DiTPipeline repositories the weights are published in (transformer/, vae/, scheduler/ subfolders).
HF_REPOS = {"dit_xl_2_256": ("facebook/DiT-XL-2-256",), "dit_xl_2_512": ("facebook/DiT-XL-2-512",)}
ALIASES = {alias: name for name, repos in HF_REPOS.items() for repo in repos
           for alias in (repo, repo.split("/", 1)[1])}

WEIGHTS_HINT = ("pass a diffusers DiT folder as pretrained=PATH: a DiTPipeline download (transformer/ and vae/ "
                "subfolders, e.g. facebook/DiT-XL-2-256) or its transformer/ folder")


def preprocessing(config: DiTConfig) -> dict:
    """What the published weights expect: latents of the pipeline's VAE, ImageNet-1k class ids."""
    side = config.sample_size
    return {"latent_size": (config.in_channels, side, side), "image_size": (3, 8 * side, 8 * side),
            "autoencoder": "the vae/ subfolder of the pipeline (latents scaled by its scaling_factor, 0.18215)",
            "classes": f"ImageNet-1k ids 0-{config.num_classes - 1}; {config.num_classes} is the null class",
            "output": "noise prediction, then the learned variance channels"}
