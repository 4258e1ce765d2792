"""Named Whisper configs: the published dimensions of every released size, and a tiny one for tests."""

from audio.whisper import WhisperConfig

EN_VOCAB, MULTI_VOCAB, V3_VOCAB = 51864, 51865, 51866


def _size(dim: int, heads: int, layers: int, vocab: int, n_mels: int = 80, text_layers: int | None = None):
    return WhisperConfig(
        n_mels=n_mels,
        n_audio_ctx=1500,
        n_audio_state=dim,
        n_audio_head=heads,
        n_audio_layer=layers,
        n_vocab=vocab,
        n_text_ctx=448,
        n_text_state=dim,
        n_text_head=heads,
        n_text_layer=text_layers or layers,
    )


WHISPER = {
    "whisper_tiny_en": _size(384, 6, 4, EN_VOCAB),
    "whisper_tiny": _size(384, 6, 4, MULTI_VOCAB),
    "whisper_base_en": _size(512, 8, 6, EN_VOCAB),
    "whisper_base": _size(512, 8, 6, MULTI_VOCAB),
    "whisper_small_en": _size(768, 12, 12, EN_VOCAB),
    "whisper_small": _size(768, 12, 12, MULTI_VOCAB),
    "whisper_medium_en": _size(1024, 16, 24, EN_VOCAB),
    "whisper_medium": _size(1024, 16, 24, MULTI_VOCAB),
    "whisper_large_v2": _size(1280, 20, 32, MULTI_VOCAB),
    "whisper_large_v3": _size(1280, 20, 32, V3_VOCAB, n_mels=128),
    "whisper_large_v3_turbo": _size(1280, 20, 32, V3_VOCAB, n_mels=128, text_layers=4),
    # Tiny random model for unit tests: 16 encoder positions (32 mel frames).
    "whisper_test": WhisperConfig(
        n_mels=8,
        n_audio_ctx=16,
        n_audio_state=32,
        n_audio_head=4,
        n_audio_layer=2,
        n_vocab=96,
        n_text_ctx=24,
        n_text_state=32,
        n_text_head=4,
        n_text_layer=2,
    ),
}

# openai-whisper's short names and the Hugging Face / Systran repository ids.
_SHORT = {
    "tiny.en": "whisper_tiny_en",
    "tiny": "whisper_tiny",
    "base.en": "whisper_base_en",
    "base": "whisper_base",
    "small.en": "whisper_small_en",
    "small": "whisper_small",
    "medium.en": "whisper_medium_en",
    "medium": "whisper_medium",
    "large-v2": "whisper_large_v2",
    "large-v3": "whisper_large_v3",
    "large": "whisper_large_v3",
    "large-v3-turbo": "whisper_large_v3_turbo",
    "turbo": "whisper_large_v3_turbo",
}
ALIASES = dict(_SHORT)
ALIASES |= {
    f"openai/whisper-{short}": name for short, name in _SHORT.items() if short not in ("large", "turbo")
}
ALIASES |= {
    f"Systran/faster-whisper-{short}": name for short, name in _SHORT.items() if short != "large-v3-turbo"
}

# The Hugging Face repository each pretrained name is found under in a local HF cache.
HF_REPOS = {
    name: f"openai/whisper-{short}" for short, name in _SHORT.items() if short not in ("large", "turbo")
}
