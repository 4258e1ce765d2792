"""Named captioner configs: a small one trainable on a CPU, the ViT + GPT-2 layout of transformers'
VisionEncoderDecoderModel, and a tiny one for tests."""

from vision.captioner import CaptionerConfig

# A narrow 3-block ViT without a class token over 48 px scenes cut into 8 px patches (a 6x6 grid of 36
# tokens): every decoder query attends over patches only, so its attention map is a map of the image.
_SHAPES_ENCODER = {"img_size": 48, "patch_size": 8, "dim": 64, "depth": 3, "n_heads": 4, "mlp_ratio": 2.0,
                   "class_token": False, "global_pool": "avg", "drop_path_rate": 0.0}

CAPTIONER = {
    # The default of `zoo train --task caption --dataset shapes`; vocab_size is set from the training
    # captions by the trainer.
    "captioner_tiny_shapes": CaptionerConfig(
        encoder="vit_tiny_patch4_32", encoder_overrides=_SHAPES_ENCODER, vocab_size=32, max_len=24, dim=64,
        n_layers=2, n_heads=4, mlp_hidden=128, dropout=0.0),
    # ViT-B/16 at 224 px with GPT-2 (124M) cross-attending to it: the layout of VisionEncoderDecoderModel with
    # a ViTModel encoder (LayerNorm eps 1e-12) and GPT2LMHeadModel(add_cross_attention=True), e.g.
    # nlpconnect/vit-gpt2-image-captioning. GPT-2 starts and ends captions with <|endoftext|>.
    "captioner_vit_gpt2": CaptionerConfig(
        encoder="vit_base_patch16_224", encoder_overrides={"norm_eps": 1e-12}, vocab_size=50257, max_len=1024,
        dim=768, n_layers=12, n_heads=12, mlp_hidden=3072, dropout=0.1, bos_id=50256, eos_id=50256,
        pad_id=50256),
    # Tiny model for the test suite: vit_test (16 px, 4 px patches, a class token) and a 2-layer decoder.
    "captioner_test": CaptionerConfig(encoder="vit_test", vocab_size=64, max_len=32, dim=32, n_layers=2,
                                      n_heads=4, mlp_hidden=64),
}

HF_REPOS = {"captioner_vit_gpt2": "nlpconnect/vit-gpt2-image-captioning"}
ALIASES = {**{repo: name for name, repo in HF_REPOS.items()},
           "vit-gpt2-image-captioning": "captioner_vit_gpt2"}
WEIGHTS_HINT = ("pass pretrained=PATH to an HF VisionEncoderDecoderModel folder (config.json and "
                "model.safetensors or pytorch_model.bin) with a ViT encoder and a GPT-2 decoder")
PREPROCESSING = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                 "interpolation": "bilinear",
                 "tokenizer": "GPT-2 byte-level BPE (tokenizer.json in the folder)"}
