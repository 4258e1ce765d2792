"""diffusers AutoencoderKL -> zoo's: parity at tiny random sizes, config refusals, strict keys, round trip."""

import pytest
import torch

from shared.errors import ConfigError, WeightsError
from vision.autoencoder import AutoencoderKL
from vision.convert_autoencoder import (
    WEIGHTS_FILES,
    autoencoder_config_from_diffusers,
    convert_autoencoder,
    load_diffusers_autoencoder,
)

TWO_LEVELS = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                  sample_size=16)
THREE_LEVELS = dict(block_out_channels=(8, 16, 16), layers_per_block=2, norm_num_groups=4, latent_channels=4,
                    sample_size=16, scaling_factor=0.5)
NO_ATTENTION = {**TWO_LEVELS, "mid_block_add_attention": False, "in_channels": 2, "out_channels": 5}


def diffusers_vae(**fields):
    """diffusers' AutoencoderKL with every parameter random (GroupNorm affine too), so no mapping hides
    behind a default value."""
    diffusers = pytest.importorskip("diffusers")
    levels = len(fields["block_out_channels"])
    vae = diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * levels,
                                  up_block_types=("UpDecoderBlock2D",) * levels, **fields)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            p.normal_(std=0.2)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)  # GroupNorm scales near one keep activations in a range where 1e-4 means something
    return vae.eval()


def images(channels=3, size=16, batch=2):
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))


def latents(cfg, batch=2):
    side = cfg.sample_size // cfg.downsample
    return torch.randn(batch, cfg.latent_channels, side, side, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The two-level diffusers model, written as diffusers writes it."""
    vae = diffusers_vae(**TWO_LEVELS)
    folder = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(folder)
    return vae, folder


@pytest.mark.parametrize("fields", [TWO_LEVELS, THREE_LEVELS, NO_ATTENTION], ids=["two", "three", "no-attn"])
def test_parity_with_diffusers(fields, tmp_path):
    vae = diffusers_vae(**fields)
    vae.save_pretrained(tmp_path)
    model = load_diffusers_autoencoder(tmp_path)
    cfg = model.config
    assert cfg.block_out_channels == fields["block_out_channels"]
    assert cfg.scaling_factor == fields.get("scaling_factor", 0.18215)
    assert cfg.mid_block_attention == fields.get("mid_block_add_attention", True)
    x, z = images(cfg.in_channels), latents(cfg)
    with torch.no_grad():
        theirs = vae.encode(x).latent_dist
        mean, logvar = model.encode(x)
        torch.testing.assert_close(mean, theirs.mean, rtol=0, atol=1e-4)
        torch.testing.assert_close(logvar, theirs.logvar, rtol=0, atol=1e-4)
        decoded, theirs_decoded = model.decode(z), vae.decode(z).sample
        assert decoded.shape == (2, cfg.out_channels, 16, 16)
        assert theirs_decoded.abs().mean() > 0.1  # a real signal, not a collapsed output
        torch.testing.assert_close(decoded, theirs_decoded, rtol=0, atol=1e-4)
        reconstruction, _, _ = model(x)
        torch.testing.assert_close(reconstruction, vae(x, sample_posterior=False).sample, rtol=0, atol=1e-4)


def test_checkpoints_with_pre_rename_attention_names(saved):
    """Older diffusers checkpoints name the attention query/key/value/proj_attn; both convert alike."""
    vae, _ = saved
    cfg = autoencoder_config_from_diffusers(dict(vae.config))
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for key, tensor in vae.state_dict().items():
        for new, before in renames.items():
            key = key.replace(f"attentions.0.{new}.", f"attentions.0.{before}.")
        old[key] = tensor
    assert any(".proj_attn." in k for k in old)
    converted, reference = convert_autoencoder(old, cfg), convert_autoencoder(vae.state_dict(), cfg)
    assert converted.keys() == reference.keys()
    assert all(torch.equal(converted[k], reference[k]) for k in reference)


def test_missing_key_is_one_line_weights_error(saved):
    vae, _ = saved
    cfg = autoencoder_config_from_diffusers(dict(vae.config))
    state = vae.state_dict()
    del state["decoder.up_blocks.0.upsamplers.0.conv.weight"]
    with pytest.raises(WeightsError, match="missing weight 'decoder.up_blocks.0.resample.conv.weight'") as err:
        convert_autoencoder(state, cfg)
    assert "decoder.up_blocks.0.upsamplers.0.conv.weight" in str(err.value)  # named as the checkpoint names it
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("extra", ["encoder.mid_block.attentions.1.to_q.weight", "decoder.conv_act.weight",
                                   "encoder.down_blocks.1.downsamplers.0.conv.weight"])
def test_extra_key_is_one_line_weights_error(saved, extra):
    """An unknown name, and a known pattern at a level the config has no module for (the last level)."""
    vae, _ = saved
    cfg = autoencoder_config_from_diffusers(dict(vae.config))
    state = {**vae.state_dict(), extra: torch.zeros(1)}
    with pytest.raises(WeightsError, match=f"unexpected weight '{extra}'") as err:
        convert_autoencoder(state, cfg)
    assert "\n" not in str(err.value)


def test_zoo_round_trip_is_identical(saved, tmp_path):
    _, folder = saved
    model = load_diffusers_autoencoder(folder)
    again = AutoencoderKL.from_pretrained(model.save_pretrained(tmp_path / "zoo")).eval()
    assert again.config == model.config
    x, z = images(), latents(model.config)
    with torch.no_grad():
        assert torch.equal(again.decode(z), model.decode(z))
        for a, b in zip(again.encode(x), model.encode(x)):
            assert torch.equal(a, b)


def test_config_fields_and_diffusers_defaults():
    cfg = autoencoder_config_from_diffusers({
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.42.1", "block_out_channels": [8, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
        "norm_num_groups": 4, "sample_size": [16, 16], "scaling_factor": 0.13025, "force_upcast": False,
        "mid_block_add_attention": False})
    assert cfg.block_out_channels == (8, 16) and cfg.sample_size == 16 and cfg.scaling_factor == 0.13025
    assert not cfg.mid_block_attention
    assert cfg.layers_per_block == 1 and cfg.latent_channels == 4  # diffusers' defaults for absent fields


@pytest.mark.parametrize("change, words", [
    (dict(use_quant_conv=False), "use_quant_conv=False"),
    (dict(use_post_quant_conv=False), "use_post_quant_conv=False"),
    (dict(down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"]), "down_block_types="),
    (dict(up_block_types=["UpDecoderBlock2D"]), "up_block_types="),
    (dict(act_fn="gelu"), "act_fn='gelu'"),
    (dict(shift_factor=0.0609), "shift_factor=0.0609"),
    (dict(latents_mean=[0.1] * 4), "latents_mean"),
    (dict(sample_size=[16, 32]), "sample_size=[16, 32]"),
    (dict(_class_name="AutoencoderKLWan"), "AutoencoderKLWan"),
    (dict(norm_num_groups=3), "norm_num_groups=3"),
])
def test_config_zoo_cannot_build_is_refused(change, words):
    config = {"block_out_channels": [8, 16], "down_block_types": ["DownEncoderBlock2D"] * 2,
              "up_block_types": ["UpDecoderBlock2D"] * 2, "norm_num_groups": 4, **change}
    with pytest.raises(ConfigError, match="not supported|not multiples") as err:
        autoencoder_config_from_diffusers(config)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_folder_without_weights_or_config(saved, tmp_path):
    _, folder = saved
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(WeightsError, match=WEIGHTS_FILES[0]) as err:
        load_diffusers_autoencoder(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="config"):
        load_diffusers_autoencoder(tmp_path / "missing")
    (tmp_path / "pipeline" / "vae").mkdir(parents=True)
    (tmp_path / "pipeline" / "vae" / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="vae/ subfolder"):
        load_diffusers_autoencoder(tmp_path / "pipeline")
