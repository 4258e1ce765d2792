"""Named text-to-image configs (the autoencoders they diffuse in are in vision.autoencoder_recipes)."""

from vision.text_to_image import TextToImageConfig

TEXT_TO_IMAGE = {
    # The shapes recipe: a DiT of 6 blocks over the 6x6 grid of 2x2 latent patches, a 2-layer prompt encoder
    # trained with it; vocab_size and latent_scale are set by the trainer from the data.
    "dit_shapes": TextToImageConfig(),
    "text_to_image_test": TextToImageConfig(autoencoder="autoencoder_kl_test", dim=32, n_layers=2, n_heads=2,
                                            text_dim=32, text_layers=1, text_heads=2, max_prompt_len=24),
}
