"""The Whisper model against openai-whisper and HF transformers at a tiny random config; its contract."""

import dataclasses

import pytest
import torch

from audio.recipes import ALIASES, WHISPER
from audio.weights import openai_to_zoo
from audio.whisper import Whisper, WhisperConfig, whisper_sinusoids
from shared.errors import InputError

TINY = WHISPER["whisper_test"]


def _inputs(config: WhisperConfig, batch: int = 2, length: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, config.n_mels, 2 * config.n_audio_ctx, generator=g)
    tokens = torch.randint(0, config.n_vocab, (batch, length), generator=g)
    return mel, tokens


def _zoo_from_openai(reference, config: WhisperConfig) -> Whisper:
    model = Whisper(config).eval()
    model.load_state_dict(openai_to_zoo(reference.state_dict(), config), strict=True)
    return model


def test_sinusoids_match_openai_formula():
    whisper_model = pytest.importorskip("whisper.model")
    torch.testing.assert_close(
        whisper_sinusoids(1500, 384), whisper_model.sinusoids(1500, 384), atol=1e-6, rtol=0
    )
    assert whisper_sinusoids(10, 8)[0, :4].eq(0).all() and whisper_sinusoids(10, 8)[0, 4:].eq(1).all()


def test_logits_match_openai_whisper(make_openai_whisper):
    reference = make_openai_whisper(TINY)
    model = _zoo_from_openai(reference, TINY)
    mel, tokens = _inputs(TINY)
    with torch.no_grad():
        expected = reference(mel, tokens)
        torch.testing.assert_close(model.embed_audio(mel), reference.encoder(mel), atol=1e-4, rtol=0)
        torch.testing.assert_close(model(mel, tokens), expected, atol=1e-4, rtol=0)


def test_logits_match_hf_transformers(hf_whisper):
    from audio.convert import dims_from_hf, hf_to_openai

    reference = hf_whisper
    config = WhisperConfig(**dims_from_hf(reference.config))
    assert config == TINY
    model = Whisper(config).eval()
    model.load_state_dict(openai_to_zoo(hf_to_openai(reference.state_dict()), config), strict=True)
    mel, tokens = _inputs(config, seed=1)
    with torch.no_grad():
        expected = reference(input_features=mel, decoder_input_ids=tokens).logits
        torch.testing.assert_close(model(mel, tokens), expected, atol=1e-4, rtol=0)


def test_cached_decoding_equals_uncached(make_openai_whisper):
    model = _zoo_from_openai(make_openai_whisper(TINY, seed=3), TINY)
    mel, tokens = _inputs(TINY, batch=2, length=9, seed=2)
    with torch.no_grad():
        memory = model.embed_audio(mel)
        full = model.decoder(tokens, memory=memory)
        cache = model.init_cache(2, tokens.shape[1], memory=memory)
        steps = [model.logits(tokens[:, :4], cache)]  # prefill, then one token at a time
        steps += [model.logits(tokens[:, i : i + 1], cache) for i in range(4, tokens.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_forward_backward_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = Whisper(TINY)
    mel, tokens = _inputs(TINY)
    logits = model(mel, tokens)
    assert logits.shape == (2, tokens.shape[1], TINY.n_vocab)
    logits.logsumexp(-1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # the encoder's position table is a buffer in the state dict, not a parameter
    assert "audio_positions.weight" in model.state_dict()
    assert "audio_positions.weight" not in dict(model.named_parameters())


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Whisper(TINY).eval()
    model.save_pretrained(tmp_path)
    loaded = Whisper.from_pretrained(tmp_path).eval()
    mel, tokens = _inputs(TINY)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel, tokens), model(mel, tokens), atol=0, rtol=0)
    assert loaded.decoder.head._tied[0] is loaded.decoder.embed.token  # still tied after loading


def test_wide_decoder_weights_are_column_major_and_save_contiguous(tmp_path):
    """The tied head and the decoder's MLP input layers are stored transposed for fast matrix-vector
    products; values, shapes, gradients and the saved file are those of the ordinary row-major model."""
    torch.manual_seed(0)
    model = Whisper(TINY)
    head = model.decoder.embed.token.weight
    fc1 = model.decoder.stack.blocks[0].mlp.fc1.weight
    for weight in (head, fc1):
        assert weight.stride() == (1, weight.shape[0]) and weight.t().is_contiguous()
    assert model.encoder.blocks[0].mlp.fc1.weight.is_contiguous()  # matrix-matrix: left as it is
    state = model.state_dict()
    assert state["decoder.embed.token.weight"].shape == (TINY.n_vocab, TINY.n_text_state)
    row_major = Whisper(TINY)
    row_major.load_state_dict({k: v.contiguous() for k, v in state.items()})
    assert row_major.decoder.embed.token.weight.stride() == head.stride()  # loading keeps the layout
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "model.safetensors"))["decoder.embed.token.weight"]
    assert saved.is_contiguous() and torch.equal(saved, head.detach())
    assert model.to(torch.float64).decoder.embed.token.weight.stride() == head.stride()


def test_wrong_mel_shape_is_a_clear_error():
    model = Whisper(TINY)
    with pytest.raises(InputError, match="pad or trim"):
        model.embed_audio(torch.zeros(1, TINY.n_mels, 10))
    with pytest.raises(InputError, match="text context"):
        model.init_cache(1, TINY.n_text_ctx + 1)


def test_published_sizes_and_aliases():
    expected = {
        "whisper_tiny_en": (384, 4, 51864),
        "whisper_base": (512, 6, 51865),
        "whisper_small_en": (768, 12, 51864),
        "whisper_medium": (1024, 24, 51865),
        "whisper_large_v2": (1280, 32, 51865),
        "whisper_large_v3": (1280, 32, 51866),
    }
    for name, (width, layers, vocab) in expected.items():
        c = WHISPER[name]
        assert (c.n_audio_state, c.n_text_layer, c.n_vocab) == (width, layers, vocab), name
    turbo = WHISPER["whisper_large_v3_turbo"]
    assert (turbo.n_mels, turbo.n_audio_layer, turbo.n_text_layer) == (128, 32, 4)
    assert ALIASES["tiny.en"] == "whisper_tiny_en" and ALIASES["turbo"] == "whisper_large_v3_turbo"
    assert ALIASES["openai/whisper-tiny.en"] == "whisper_tiny_en"
    # every tensor of openai-whisper's state dict of the same dims, nothing else (on "meta": no memory)
    from audio.convert import openai_shapes

    for name in ("whisper_base", "whisper_large_v3_turbo"):
        with torch.device("meta"):
            ours = Whisper(WHISPER[name]).state_dict()
        theirs = openai_shapes(dataclasses.asdict(WHISPER[name]))
        assert sorted(tuple(t.shape) for t in ours.values()) == sorted(theirs.values()), name
