"""Named text-to-image configs (the autoencoders they diffuse in are in vision.autoencoder_recipes)."""

from vision.text_to_image import TextToImageConfig

TEXT_TO_IMAGE = {
    # The shapes recipe: a DiT of 6 blocks over the 6x6 grid of 2x2 latent patches, a 2-layer prompt encoder
    # trained with it. The trainer sets vocab_size and latent_scale from the data; these are the values of the
    # shipped weights (examples/imagine/dit_shapes), so create_model("dit_shapes", pretrained=True) loads them.
    "dit_shapes": TextToImageConfig(vocab_size=20, latent_scale=1.471),
    "text_to_image_test": TextToImageConfig(autoencoder="autoencoder_kl_test", dim=32, n_layers=2, n_heads=2,
                                            text_dim=32, text_layers=1, text_heads=2, max_prompt_len=24),
}
