"""Named KL autoencoder configs: the latent spaces text-to-image diffuses in."""

from vision.autoencoder import AutoencoderConfig

AUTOENCODERS = {
    # Stable Diffusion's VAE (and DiT's): 8x smaller latents of 4 channels.
    "autoencoder_kl_sd": AutoencoderConfig(),
    # The generated scenes (48 px): 4x smaller latents (12x12x4), three narrow levels; trains in minutes.
    "autoencoder_kl_shapes": AutoencoderConfig(block_out_channels=(16, 32, 64), layers_per_block=1,
                                               latent_channels=4, norm_num_groups=8, sample_size=48,
                                               scaling_factor=1.0),
    "autoencoder_kl_test": AutoencoderConfig(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4,
                                             norm_num_groups=4, sample_size=16, scaling_factor=1.0),
}
