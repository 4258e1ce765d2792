"""The registry sweep: every tiny `*_test` model builds, trains a step, and round-trips through save/load."""

import pytest
import torch

import zoo
from zoo import registry


def _tokens(vocab_size: int, shape) -> torch.Tensor:
    return torch.randint(3, vocab_size, shape)


def _images(vit_config) -> torch.Tensor:
    return torch.randn(2, vit_config.in_chans, vit_config.img_size, vit_config.img_size)


# One example-input builder per family: (config) -> positional arguments of model.forward.
INPUTS = {
    "transformer": lambda c: (_tokens(c.vocab_size, (2, 6)), _tokens(c.vocab_size, (2, 5))),
    "bert": lambda c: (_tokens(c.vocab_size, (2, 6)),),
    "gpt2": lambda c: (_tokens(c.vocab_size, (2, 7)),),
    "t5": lambda c: (_tokens(c.vocab_size, (2, 6)), _tokens(c.vocab_size, (2, 5))),
    "vit": lambda c: (_images(c),),
    "whisper": lambda c: (torch.randn(2, c.n_mels, 2 * c.n_audio_ctx), _tokens(c.n_vocab, (2, 5))),
    "captioner": lambda c: (_images(c.encoder_config), _tokens(c.vocab_size, (2, 5))),
    # latents, timesteps, class labels (a real class and the null class of classifier-free guidance)
    "dit": lambda c: (torch.randn(2, c.in_channels, c.sample_size, c.sample_size), torch.tensor([3.0, 700.0]),
                      torch.tensor([1, c.num_classes])),
    "autoencoder": lambda c: (torch.randn(2, c.in_channels, c.sample_size, c.sample_size),),
    # scaled latents, timesteps, prompt tokens
    "text-to-image": lambda c: (torch.randn(2, c.autoencoder_config.latent_channels,
                                            *(2 * [c.image_size // c.autoencoder_config.downsample])),
                                torch.tensor([3.0, 700.0]), _tokens(c.vocab_size, (2, 5))),
    # prompt tokens, their mask (all real), decoder input steps (codes and the start/pad id)
    "musicgen": lambda c: (_tokens(c.text_vocab_size, (2, 5)), None,
                           torch.randint(0, c.codebook_size + 1, (2, c.num_codebooks, 6))),
}

TEST_MODELS = zoo.list_models("*_test")


def _outputs(model, inputs) -> list[torch.Tensor]:
    out = model(*inputs)
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for t in out if isinstance(t, torch.Tensor) and t.is_floating_point()]


def test_every_family_has_a_test_model_and_inputs():
    families = {registry.get_entry(n).family for n in zoo.list_models()}
    tested = {registry.get_entry(n).family for n in TEST_MODELS}
    assert families == tested, f"families without a *_test recipe: {families - tested}"
    assert families <= set(INPUTS), f"add example inputs for: {families - set(INPUTS)}"


@pytest.mark.parametrize("name", TEST_MODELS)
def test_forward_backward_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = zoo.create_model(name).train()
    entry = registry.get_entry(name)
    outputs = _outputs(model, INPUTS[entry.family](entry.config))
    assert outputs and all(torch.isfinite(o).all() for o in outputs)
    sum((o.float() - 1).pow(2).mean() for o in outputs).backward()  # not o**2: zero-init heads output 0
    for param_name, param in model.named_parameters():
        if not param.requires_grad:  # a frozen part (text-to-image's autoencoder)
            continue
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"
    assert sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("name", TEST_MODELS)
def test_save_pretrained_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model(name).eval()
    entry = registry.get_entry(name)
    inputs = INPUTS[entry.family](entry.config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    loaded = zoo.load_pretrained(tmp_path).eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        for a, b in zip(_outputs(model, inputs), _outputs(loaded, inputs)):
            assert torch.equal(a, b)


def test_overrides_replace_config_fields():
    model = zoo.create_model("transformer_test", dim=48, n_heads=6)
    assert model.config.dim == 48 and model.config.n_heads == 6


def test_unknown_names_and_fields_name_the_closest_matches():
    with pytest.raises(zoo.ConfigError, match="did you mean transformer_base"):
        zoo.create_model("transformer_bse")
    with pytest.raises(zoo.ConfigError, match="did you mean n_heads"):
        zoo.create_model("transformer_test", n_head=4)


def test_list_models_filters():
    assert zoo.list_models("transformer*") == ["transformer_base", "transformer_big", "transformer_test"]
    assert set(zoo.list_models(task="translation")) >= {"transformer_base"}
    assert "transformer_base" not in zoo.list_models(pretrained=True)


def test_model_info_counts_parameters_like_the_model():
    info = zoo.model_info("transformer_test")
    model = zoo.create_model("transformer_test")
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["config"]["dim"] == model.config.dim


def test_paper_sizes():
    base = zoo.model_info("transformer_base")["config"]
    big = zoo.model_info("transformer_big")["config"]
    assert (base["dim"], base["n_heads"], base["mlp_hidden"], base["n_encoder_layers"]) == (512, 8, 2048, 6)
    assert (big["dim"], big["n_heads"], big["mlp_hidden"], big["n_decoder_layers"]) == (1024, 16, 4096, 6)
    # one embedding matrix for source, target and output: ~63M parameters for the base model, as in the paper
    assert 60e6 < zoo.model_info("transformer_base")["parameters"] < 66e6


def test_from_pretrained_errors_are_one_line(tmp_path):
    with pytest.raises(zoo.WeightsError, match="not found"):
        zoo.load_pretrained(tmp_path)
    model = zoo.create_model("transformer_test")
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(zoo.WeightsError, match="cannot read safetensors"):
        zoo.load_pretrained(tmp_path)
    other = zoo.create_model("transformer_test", dim=48, n_heads=6)
    other.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text().replace('"dim": 48', '"dim": 32')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(zoo.WeightsError, match="has shape"):
        zoo.load_pretrained(tmp_path)
