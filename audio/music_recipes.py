"""Named text-to-music configs."""

from audio.musicgen import MusicGenConfig

MUSICGEN = {
    # facebook/musicgen-small and -medium: EnCodec 32 kHz, t5-base as the text encoder
    "musicgen_small": MusicGenConfig(dim=1024, n_layers=24, n_heads=16, mlp_hidden=4096),
    "musicgen_medium": MusicGenConfig(dim=1536, n_layers=48, n_heads=24, mlp_hidden=6144),
    # the melodies recipe (`zoo train --task text-to-music`): the k-means spectral codec, a small T5 encoder
    # over the grammar's words trained with the decoder. The trainer sets text_vocab_size from the grammar; 33 is
    # the shipped weights' (examples/compose/musicgen_melodies), so create_model(..., pretrained=True) loads them.
    "musicgen_melodies": MusicGenConfig(codec="spectral_16khz", codebook_size=256, dim=192, n_layers=6, n_heads=4,
                                        mlp_hidden=512, max_len=256, dropout=0.0, text_vocab_size=33, text_dim=128,
                                        text_layers=2, text_heads=4, text_head_dim=32, text_mlp_hidden=512,
                                        max_prompt_len=16),
    "musicgen_test": MusicGenConfig(codec="encodec_test", codebook_size=64, dim=32, n_layers=2, n_heads=4,
                                    mlp_hidden=64, max_len=128, dropout=0.0, text_vocab_size=99, text_dim=32,
                                    text_layers=2, text_heads=4, text_head_dim=8, text_mlp_hidden=64),
}
ALIASES = {"facebook/musicgen-small": "musicgen_small", "facebook/musicgen-medium": "musicgen_medium"}
HF_REPOS = {"musicgen_small": "facebook/musicgen-small", "musicgen_medium": "facebook/musicgen-medium"}
WEIGHTS_HINT = ("pass pretrained=PATH to a transformers MusicgenForConditionalGeneration folder (config.json and "
                "model.safetensors), e.g. a download of facebook/musicgen-small")
