"""zoo's MusicGen against transformers' MusicgenForConditionalGeneration on the same random weights: the
converter, teacher-forced logits, greedy generation with and without guidance, decoded audio."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from audio.convert_musicgen import load_hf_musicgen, musicgen_config_from_hf, musicgen_from_hf
from audio.music_recipes import MUSICGEN
from audio.musicgen import musicgen_sinusoids
from shared.diffusion import guidance
from shared.errors import ConfigError, WeightsError
from shared.generation import Greedy

transformers = pytest.importorskip("transformers")

K, CARD = 4, 64
# the facts' tiny configs; the text encoder is narrower than the decoder, so enc_to_dec_proj exists
T5 = dict(vocab_size=99, d_model=24, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
ENCODEC = dict(sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[4, 4], codebook_size=CARD,
               codebook_dim=16, target_bandwidths=[24.0])  # transformers' defaults: causal, 1x1 shortcuts
DECODER = dict(vocab_size=CARD, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
               num_codebooks=K, pad_token_id=CARD, bos_token_id=CARD)


def _hf_config(t5: dict = T5, encodec: dict = ENCODEC, decoder: dict = DECODER):
    return transformers.MusicgenConfig(text_encoder=transformers.T5Config(**t5).to_dict(),
                                       audio_encoder=transformers.EncodecConfig(**encodec).to_dict(),
                                       decoder=transformers.MusicgenDecoderConfig(**decoder).to_dict())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(transformers' model with every weight perturbed, its save_pretrained folder, zoo's model from it)."""
    torch.manual_seed(0)
    hf = transformers.MusicgenForConditionalGeneration(_hf_config()).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.2 * torch.randn_like(param))
    folder = tmp_path_factory.mktemp("musicgen")
    hf.save_pretrained(folder)
    return hf, folder, musicgen_from_hf(folder).eval()


def _prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Two prompts (2, 7), the second padded after 4 tokens, and their mask."""
    tokens = torch.randint(2, T5["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(tokens)
    mask[1, 4:] = 0
    return tokens.masked_fill(mask == 0, 0), mask


def _hf_generate(hf, tokens, mask, frames: int, scale: float, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' greedy generation: (codes (B, K, frames), audio (B, 1, N)). Its generate() returns only
    the audio; the codes are the (delay-reverted) ones it hands to the audio encoder's decode."""
    seen = []
    decode = hf.audio_encoder.decode

    def spy(audio_codes, *args, **kwargs):
        seen.append(audio_codes)
        return decode(audio_codes, *args, **kwargs)

    monkeypatch.setattr(hf.audio_encoder, "decode", spy)
    audio = hf.generate(input_ids=tokens, attention_mask=mask, do_sample=False, guidance_scale=scale,
                        max_new_tokens=frames + K - 1)
    return seen[0][0], audio  # (1, B, K, T) -> (B, K, T)


def test_config_codec_and_positions(pair):
    hf, _, ours = pair
    assert ours.config == dataclasses.replace(MUSICGEN["musicgen_test"], text_dim=24, max_len=2048, dropout=0.1)
    assert ours.config.codec == "encodec_test" and ours.codec.config.use_causal_conv  # transformers' defaults
    assert not any(p.requires_grad for p in ours.codec.parameters())
    table = hf.decoder.model.decoder.embed_positions.weights
    assert torch.equal(musicgen_sinusoids(*table.shape), table)
    assert torch.equal(ours.decoder.embed.positions.weight, table)


def test_named_codec_and_small_recipe():
    musicgen = dict(use_causal_conv=False, use_conv_shortcut=False)
    with pytest.raises(ConfigError, match="none of zoo's named codecs"):
        musicgen_config_from_hf(_hf_config(encodec=ENCODEC | musicgen).to_dict())
    encodec_32khz = dict(sampling_rate=32000, hidden_size=128, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
                         codebook_size=2048, codebook_dim=128, target_bandwidths=[2.2], **musicgen)
    small = _hf_config(t5=dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),  # t5-base
                       encodec=encodec_32khz, decoder={})  # transformers' decoder defaults are musicgen-small's
    assert musicgen_config_from_hf(small.to_dict()) == MUSICGEN["musicgen_small"]


@pytest.mark.parametrize("change, word", [({"decoder": {"audio_channels": 2}}, "stereo"),
                                          ({"decoder": {"scale_embedding": True}}, "scale_embedding"),
                                          ({"text_encoder": {"feed_forward_proj": "gated-gelu"}}, "gated_mlp")])
def test_refused_configs(change, word):
    config = _hf_config().to_dict()
    for section, fields in change.items():
        config[section] |= fields
    with pytest.raises(ConfigError, match=word):
        musicgen_config_from_hf(config)


def test_teacher_forced_logits_match(pair):
    hf, _, ours = pair
    tokens, mask = _prompts()
    codes = torch.randint(0, CARD, (2, K, 6), generator=torch.Generator().manual_seed(4))
    inputs, _ = ours.input_steps(codes)  # (B, K, S): the start token, then the delay pattern
    # transformers' own delay pattern of the same codes, with the start token in front, agrees
    start = torch.full((2 * K, 1), CARD)
    _, pattern = hf.decoder.build_delay_pattern_mask(torch.cat([start, codes.flatten(0, 1)], dim=1), CARD,
                                                     max_length=codes.shape[-1] + K)
    assert torch.equal(pattern[:, :-1], inputs.flatten(0, 1))
    with torch.no_grad():
        expected = hf(input_ids=tokens, attention_mask=mask, decoder_input_ids=inputs.flatten(0, 1)).logits
        logits = ours(tokens, mask.bool(), inputs)  # (B, K, S, card)
    assert logits.shape == (2, K, inputs.shape[-1], CARD)
    assert (logits.flatten(0, 1) - expected).abs().max() < 1e-5
    assert expected.std() > 0.1


@pytest.mark.parametrize("scale", [3.0, 1.0])
def test_greedy_codes_and_audio_match(pair, scale, monkeypatch):
    hf, _, ours = pair
    tokens, mask = _prompts()
    frames = 9
    expected, audio = _hf_generate(hf, tokens, mask, frames, scale, monkeypatch)
    codes = ours.generate(tokens, mask.bool(), frames, guidance_scale=scale, selector=Greedy())
    assert codes.shape == (2, K, frames)
    assert torch.equal(codes, expected)
    assert codes.unique().numel() > 8  # not one code repeated
    wav = ours.decode_audio(codes)
    assert wav.shape == (2, audio.shape[-1]) == (2, frames * 16)
    assert (wav - audio[:, 0]).abs().max() < 1e-4 and audio.abs().max() > 1e-2


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_cached_generation_is_the_teacher_forced_argmax(pair, scale):
    _, _, ours = pair
    tokens, mask = _prompts()
    frames = 7
    codes = ours.generate(tokens, mask.bool(), frames, guidance_scale=scale, selector=Greedy())
    inputs, targets = ours.input_steps(codes)
    with torch.no_grad():
        logits = ours(tokens, mask.bool(), inputs)
        if scale != 1.0:
            null = ours(tokens, mask.bool(), inputs, null=torch.ones(2, dtype=torch.bool))
            logits = guidance(null, logits, scale)
    valid = ours.pattern.valid(frames)  # (K, S): the cells that hold a code
    assert torch.equal(logits.argmax(-1)[:, valid], targets[:, valid])


def test_registry_builds_and_loads_the_folder(pair):
    _, folder, ours = pair
    model = zoo.create_model("musicgen_test", text_dim=24, max_len=2048)
    load_hf_musicgen(folder, model)
    for (name, a), b in zip(model.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), name


def test_missing_weight_is_one_line(pair, tmp_path):
    _, folder, _ = pair
    state = load_file(folder / "model.safetensors")
    del state["decoder.lm_heads.2.weight"]
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(json.loads((folder / "config.json").read_text())))
    with pytest.raises(WeightsError) as error:
        musicgen_from_hf(tmp_path)
    message = str(error.value)
    assert "\n" not in message and "'decoder.lm_heads.2.weight' in the checkpoint" in message
