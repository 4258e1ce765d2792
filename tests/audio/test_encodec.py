"""zoo's EnCodec against transformers' EncodecModel on the same random weights: codes, audio, loading."""

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from audio.convert_encodec import convert_encodec_state, encodec_config_from_hf, load_encodec
from audio.encodec import Encodec, EncodecConfig
from shared.errors import ConfigError, InputError, WeightsError

TINY = dict(sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[4, 4], codebook_size=64,
            codebook_dim=16, target_bandwidths=[24.0])  # 4 codebooks of 64 at 1000 frames a second
CONFIGS = {
    "causal": TINY,  # transformers' defaults: causal, weight norm, 1x1 shortcuts
    "musicgen": TINY | dict(use_causal_conv=False, norm_type="weight_norm", use_conv_shortcut=False,
                            upsampling_ratios=[5, 4], num_residual_layers=2),  # an odd stride; 5 codebooks
    "group_norm": TINY | dict(use_causal_conv=True, norm_type="time_group_norm", trim_right_ratio=0.5,
                              pad_mode="constant", audio_channels=2),
}


def _hf_model(fields: dict, seed: int = 0):
    """transformers' EncodecModel with every parameter perturbed and codebooks spread like its features."""
    torch.manual_seed(seed)
    model = transformers.EncodecModel(transformers.EncodecConfig(**fields)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
        probe = torch.randn(1, model.config.audio_channels, 400)
        scale = model.encoder(probe).std()
        for layer in model.quantizer.layers:
            layer.codebook.embed.copy_(scale * torch.randn_like(layer.codebook.embed))
    return model


def _hf_codes(model, wav: torch.Tensor) -> torch.Tensor:
    return model.encode(wav, bandwidth=model.config.target_bandwidths[-1]).audio_codes[0]  # (B, K, T)


def _hf_audio(model, codes: torch.Tensor) -> torch.Tensor:
    return model.decode(codes[None], [None]).audio_values  # (B, C, N)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    """(transformers model, its save_pretrained folder, zoo model loaded from that folder)."""
    hf = _hf_model(CONFIGS[request.param])
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return hf, folder, load_encodec(folder).eval()


@pytest.mark.parametrize("samples", [1000, 1003, 21])
def test_codes_and_audio_match_transformers(pair, samples):
    hf, _, zoo = pair
    torch.manual_seed(1)
    wav = torch.randn(2, hf.config.audio_channels, samples)
    with torch.no_grad():
        expected = _hf_codes(hf, wav)
        codes = zoo.encode(wav)
        assert codes.shape == (2, hf.config.num_quantizers, -(-samples // zoo.config.hop_length))
        assert torch.equal(codes, expected)
        assert all(stage.unique().numel() > 1 for stage in codes.unbind(1))  # the quantizer really chooses
        audio, reference = zoo.decode(codes), _hf_audio(hf, expected)
    assert audio.shape == reference.shape == (2, hf.config.audio_channels, codes.shape[-1] * zoo.config.hop_length)
    assert (audio - reference).abs().max() < 1e-4
    assert reference.abs().max() > 1e-2


def test_properties_and_fewer_codebooks(pair):
    hf, _, zoo = pair
    properties = (zoo.sample_rate, zoo.frame_rate, zoo.num_codebooks, zoo.codebook_size)
    assert properties == (16000, hf.config.frame_rate, hf.config.num_quantizers, 64)
    codes = torch.randint(0, 64, (1, 2, 7))
    with torch.no_grad():
        assert (zoo.decode(codes) - _hf_audio(hf, codes)).abs().max() < 1e-4


def test_legacy_weight_norm_names(pair, tmp_path):
    """The published checkpoints name weight norm's tensors weight_g / weight_v."""
    hf, folder, zoo = pair
    state = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
    assert any(key.endswith(".weight_g") for key in renamed) == (hf.config.norm_type == "weight_norm")
    save_file(renamed, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    loaded = load_encodec(tmp_path)
    for key, tensor in zoo.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_prefixed_conversion(pair):
    _, folder, zoo = pair
    state = {"audio_encoder." + k: v for k, v in load_file(str(folder / "model.safetensors")).items()}
    converted = convert_encodec_state(state, zoo.config, src="audio_encoder.", dst="codec.")
    assert sorted(converted) == sorted("codec." + k for k in zoo.state_dict())


def _broken(folder, tmp_path, edit) -> str:
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    tmp_path.mkdir()
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(WeightsError) as err:
        load_encodec(tmp_path)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_bad_folders_are_one_line_errors(pair, tmp_path):
    _, folder, _ = pair
    codebook = "quantizer.layers.3.codebook.embed"
    message = _broken(folder, tmp_path / "missing", lambda s: s.pop(codebook))
    assert "missing weight 'quantizer.codebooks.3.weight'" in message and codebook in message
    message = _broken(folder, tmp_path / "shape", lambda s: s.update({codebook: s[codebook][:-1]}))
    assert "quantizer.codebooks.3.weight" in message and "(63, 16)" in message
    message = _broken(folder, tmp_path / "extra", lambda s: s.update({"encoder.layers.99.conv.bias": torch.zeros(3)}))
    assert "unexpected weight 'encoder.layers.99.conv.bias'" in message


def test_half_a_weight_norm_pair_is_missing(tmp_path):
    hf = _hf_model(CONFIGS["musicgen"])
    hf.save_pretrained(tmp_path / "good")
    v = "encoder.layers.0.conv.parametrizations.weight.original1"
    assert v in _broken(tmp_path / "good", tmp_path / "bad", lambda s: s.pop(v))


def test_configs():
    hf = transformers.EncodecConfig(**CONFIGS["musicgen"]).to_dict()
    config = encodec_config_from_hf(hf)
    assert config.upsampling_ratios == (5, 4) and config.num_quantizers == 5 and not config.use_causal_conv
    # a config.json that leaves fields out means transformers' defaults
    assert encodec_config_from_hf({}) == encodec_config_from_hf(transformers.EncodecConfig().to_dict())
    assert encodec_config_from_hf({}).num_quantizers == transformers.EncodecConfig().num_quantizers
    chunked = transformers.EncodecConfig(chunk_length_s=1.0, overlap=0.01).to_dict()
    with pytest.raises(ConfigError, match="chunk_length_s"):
        encodec_config_from_hf(chunked)
    with pytest.raises(ConfigError, match="norm_type"):
        EncodecConfig(norm_type="batch_norm")


def test_save_pretrained_round_trip_and_bad_input(pair, tmp_path):
    _, _, zoo = pair
    again = Encodec.from_pretrained(zoo.save_pretrained(tmp_path))
    assert again.config == zoo.config
    wav = torch.randn(1, zoo.config.audio_channels, 300)
    with torch.no_grad():
        assert torch.equal(again.encode(wav), zoo.encode(wav))
    with pytest.raises(InputError, match="shape"):
        zoo.encode(torch.randn(1, zoo.config.audio_channels + 1, 300))
    with pytest.raises(InputError, match="lie in"):
        zoo.decode(torch.full((1, 4, 3), 64))


def test_musicgen_codec_config_and_keys():
    """facebook/encodec_32khz: the fields its conversion set over transformers' defaults give zoo's defaults,
    and the table covers every key of that model (built without memory, on the meta device)."""
    fields = dict(upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], num_filters=64, sampling_rate=32000,
                  codebook_size=2048, use_causal_conv=False, normalize=False, use_conv_shortcut=False)
    config = encodec_config_from_hf(fields)
    assert config == EncodecConfig()
    with torch.device("meta"):
        hf_state = transformers.EncodecModel(transformers.EncodecConfig(**fields)).state_dict()
        converted = convert_encodec_state(hf_state, config)
        model = Encodec(config)
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert (model.sample_rate, model.frame_rate, model.num_codebooks, model.codebook_size) == (32000, 50, 4, 2048)
