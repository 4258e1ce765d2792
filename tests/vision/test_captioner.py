"""The captioner: parity with transformers' VisionEncoderDecoderModel, decoding, attention maps, errors."""

import dataclasses

import pytest
import torch

import zoo
from shared.errors import ConfigError, InputError, WeightsError
from shared.generation import BeamSearch
from vision.captioner import Captioner, CaptionerConfig
from vision.captioner_recipes import CAPTIONER

TEST = CAPTIONER["captioner_test"]


def _images(n: int, size: int = 16) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(n))


# --- parity with transformers ---------------------------------------------------------------------------

transformers_reason = "transformers is the reference implementation"


def _hf_pair(decoder_dim: int):
    """(HF VisionEncoderDecoderModel, zoo Captioner) with the same random weights: a 2-layer ViT of width 32
    and a 2-layer GPT-2 of width decoder_dim (a different width adds HF's enc_to_dec_proj)."""
    transformers = pytest.importorskip("transformers", reason=transformers_reason)
    from vision.convert_captioner import config_from_hf, convert_vision_encoder_decoder

    torch.manual_seed(0)
    enc = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=48, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0)
    dec = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=decoder_dim, n_layer=2, n_head=4,
                                  add_cross_attention=True, is_decoder=True, resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0, bos_token_id=1, eos_token_id=2)
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    hf = transformers.VisionEncoderDecoderModel(config).eval()
    ours = Captioner(config_from_hf(hf.config.to_dict())).eval()
    ours.load_state_dict(convert_vision_encoder_decoder(hf.state_dict(), ours.config))
    return hf, ours


@pytest.mark.parametrize("decoder_dim", [32, 24])
def test_logits_match_vision_encoder_decoder(decoder_dim):
    hf, ours = _hf_pair(decoder_dim)
    assert (ours.memory_proj is None) == (decoder_dim == 32)
    images, tokens = _images(2), torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        expected = hf(pixel_values=images, decoder_input_ids=tokens).logits
        torch.testing.assert_close(ours(images, tokens), expected, atol=1e-4, rtol=0)


def test_greedy_captions_match_hf_generate():
    hf, ours = _hf_pair(24)
    images = _images(3)
    with torch.no_grad():
        expected = hf.generate(pixel_values=images, max_new_tokens=8, do_sample=False, num_beams=1)
    got = ours.generate(images, max_new_tokens=8).tokens
    # HF stops the whole batch when every row has ended; both pad finished rows with pad_token_id
    width = min(expected.shape[1], got.shape[1])
    assert torch.equal(got[:, :width], expected[:, :width])


def test_converts_a_saved_hf_folder(tmp_path):
    from vision.convert_captioner import captioner_from_hf

    hf, ours = _hf_pair(24)
    hf.save_pretrained(tmp_path)
    loaded = captioner_from_hf(tmp_path).eval()
    images, tokens = _images(1), torch.randint(0, 50, (1, 5))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, tokens), ours(images, tokens), atol=1e-5, rtol=0)
    model = zoo.create_model("captioner_vit_gpt2", pretrained=tmp_path, **dataclasses.asdict(loaded.config))
    assert isinstance(model, Captioner)


def test_unknown_and_missing_keys_are_errors():
    from vision.convert_captioner import convert_vision_encoder_decoder

    hf, ours = _hf_pair(24)
    state = hf.state_dict()
    extra = dict(state, **{"decoder.transformer.h.0.crossattention.extra.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="crossattention.extra"):
        convert_vision_encoder_decoder(extra, ours.config)
    missing = {k: v for k, v in state.items() if "h.1.crossattention.q_attn.weight" not in k}
    with pytest.raises(WeightsError, match="missing weight .*h.1.crossattention.q_attn.weight"):
        convert_vision_encoder_decoder(missing, ours.config)
    stray = dict(state, **{"lm_head.bias": torch.zeros(50)})
    with pytest.raises(WeightsError, match="unexpected weight 'lm_head.bias'"):
        convert_vision_encoder_decoder(stray, ours.config)
    fewer_layers = dataclasses.replace(ours.config, n_layers=1)
    with pytest.raises(WeightsError, match="more decoder layers"):
        convert_vision_encoder_decoder(state, fewer_layers)


# --- decoding -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Captioner(TEST).eval()


def test_cached_and_uncached_decoding_give_identical_captions(model):
    images = _images(4)
    cached = model.generate(images, max_new_tokens=12).tokens
    uncached = model.generate_uncached(images, max_new_tokens=12)
    assert cached.shape[1] > 2 and torch.equal(cached, uncached)


def test_step_logits_equal_teacher_forced_logits(model):
    images, tokens = _images(2), torch.randint(3, 64, (2, 9))
    with torch.no_grad():
        full = model(images, tokens)
        cache = model.init_cache(2, 9, memory=model.encode(images))
        steps = [model.logits(tokens[:, :3], cache)]
        steps += [model.logits(tokens[:, t:t + 1], cache) for t in range(3, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_beam_search_runs_and_one_beam_is_greedy(model):
    images = _images(3)
    greedy = model.generate(images, max_new_tokens=10)
    one = model.generate(images, max_new_tokens=10, selector=BeamSearch(num_beams=1))
    width = min(greedy.tokens.shape[1], one.tokens.shape[1])
    assert torch.equal(greedy.tokens[:, :width], one.tokens[:, :width])
    four = model.generate(images, max_new_tokens=10, selector=BeamSearch(num_beams=4, length_penalty=0.0))
    assert (four.sum_logprobs >= greedy.sum_logprobs - 1e-4).all()  # beam search never scores below greedy


@pytest.mark.parametrize("layers", ["mean", "last"])
def test_attention_maps_sum_to_one_over_the_patches(model, layers):
    images = _images(2)
    output, maps = model.caption_with_attention(images, max_new_tokens=6, layers=layers)
    new = output.tokens.shape[1] - 1
    assert maps.shape == (2, new, 4, 4)  # vit_test: 16 px images in 4 px patches
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(2, new))
    assert (maps >= 0).all()
    assert torch.equal(output.tokens, model.generate(images, max_new_tokens=6).tokens)


def test_attention_maps_follow_the_cross_attention_weights(model):
    """Without a class token the map is the raw head-and-layer mean of the cross-attention weights."""
    overrides = {"class_token": False, "global_pool": "avg"}
    no_cls = Captioner(dataclasses.replace(TEST, encoder_overrides=overrides))
    no_cls.eval()
    images = _images(1)
    output, maps = no_cls.caption_with_attention(images, max_new_tokens=4, layers="last")
    with torch.no_grad():
        _, weights = no_cls.forward_with_weights(images, output.tokens[:, :-1])
    expected = weights[-1]["cross"].mean(dim=1).reshape(maps.shape)  # (B, T, H', W')
    torch.testing.assert_close(maps, expected)


# --- config, registry and input errors ------------------------------------------------------------------

def test_registered_models_build_and_train_a_step():
    torch.manual_seed(0)
    model = zoo.create_model("captioner_test").train()
    logits = model(_images(2), torch.randint(3, 64, (2, 6)))
    assert logits.shape == (2, 6, 64)
    logits.float().pow(2).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad}"
    names = {"captioner_test", "captioner_tiny_shapes", "captioner_vit_gpt2"}
    assert set(zoo.list_models("captioner_*")) >= names
    assert zoo.model_info("nlpconnect/vit-gpt2-image-captioning")["name"] == "captioner_vit_gpt2"


def test_save_and_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = zoo.load_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    images, tokens = _images(1), torch.randint(3, 64, (1, 5))
    with torch.no_grad():
        assert torch.equal(loaded(images, tokens), model(images, tokens))


def test_vit_gpt2_layout_counts_like_the_hf_model():
    # ViT-B/16 (86.4M with its pooler, which a captioner does not use: 0.6M) + GPT-2 with cross-attention
    info = zoo.model_info("captioner_vit_gpt2")
    assert 230e6 < info["parameters"] < 245e6


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="did you mean vit_test"):
        CaptionerConfig(encoder="vit_tset")
    with pytest.raises(ConfigError, match="not ViTConfig fields"):
        CaptionerConfig(encoder_overrides={"width": 3})
    with pytest.raises(ConfigError, match="cannot be set"):
        CaptionerConfig(encoder_overrides={"num_classes": 3})
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        CaptionerConfig(vocab_size=2)
    with pytest.raises(ConfigError, match="did you mean"):
        zoo.create_model("captioner_test", vocab=10)


def test_input_errors(model):
    with pytest.raises(InputError, match="2 images but 3 captions"):
        model(_images(2), torch.randint(3, 64, (3, 4)))
    with pytest.raises(InputError, match="exceed the captioner's maximum of 32"):
        model(_images(1), torch.randint(3, 64, (1, 40)))
    with pytest.raises(InputError, match="expected images of shape"):
        model(_images(1, size=20), torch.randint(3, 64, (1, 4)))
    with pytest.raises(InputError, match="layers must be"):
        model.caption_with_attention(_images(1), layers="first")
