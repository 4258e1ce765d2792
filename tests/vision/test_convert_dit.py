"""diffusers' class-conditional DiT -> zoo's: parity at tiny random sizes, the shared embedder, strict keys,
config refusals, DiTPipeline folders and the registry's DiT names."""

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from shared.errors import ConfigError, WeightsError
from vision.autoencoder import AutoencoderKL
from vision.convert_dit import dit_config_from_diffusers, load_diffusers_dit, load_dit_pipeline
from vision.dit import DiT
from zoo import registry

TINY = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=2, sample_size=8, patch_size=2,
            norm_num_groups=1)
WEIGHTS = "diffusion_pytorch_model.safetensors"


def diffusers_dit(share_embedder: bool = True, **fields):
    """diffusers' DiT at its (random, not zero) initialisation; with share_embedder, every block's timestep +
    class embedder is a copy of block 0's, as in converted DiT checkpoints."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.DiTTransformer2DModel(**{**TINY, **fields}).eval()
    if share_embedder:
        with torch.no_grad():
            first = model.transformer_blocks[0].norm1.emb
            for block in model.transformer_blocks[1:]:
                block.norm1.emb.load_state_dict(first.state_dict())
    return model


def inputs(model, batch=4):
    """Latents, a different timestep per row, class labels with the null class (num_classes) in the last row."""
    cfg = model.config
    classes = cfg.num_embeds_ada_norm
    latents = torch.randn(batch, cfg.in_channels, cfg.sample_size, cfg.sample_size,
                          generator=torch.Generator().manual_seed(1))
    timesteps = torch.tensor([0, 17, 500, 999])[:batch]
    labels = torch.tensor([0, 3, classes - 1, classes])[:batch]
    return latents, timesteps, labels


def assert_parity(ours: DiT, theirs, atol=1e-5):
    latents, timesteps, labels = inputs(theirs)
    with torch.no_grad():
        expected = theirs(latents, timesteps, labels).sample
        got = ours(latents, timesteps, labels)
    assert expected.abs().mean() > 0.1  # a real signal, not a zero-initialised head's output
    torch.testing.assert_close(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("out_channels", [8, None], ids=["learned-sigma", "plain"])
def test_parity_with_diffusers(out_channels, tmp_path):
    theirs = diffusers_dit(out_channels=out_channels)
    theirs.save_pretrained(tmp_path)
    ours = load_diffusers_dit(tmp_path)
    cfg = ours.config
    assert (cfg.dim, cfg.n_heads, cfg.n_layers, cfg.num_classes) == (16, 2, 2, 1000)
    assert cfg.output_channels == (out_channels or 4) and cfg.mlp_norm_eps == 1e-5
    assert not ours.training
    assert_parity(ours, theirs)


def test_embedder_copies_that_differ_are_refused(tmp_path):
    diffusers_dit(share_embedder=False).save_pretrained(tmp_path)  # diffusers initialises each block's own
    with pytest.raises(WeightsError) as err:
        load_diffusers_dit(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "transformer_blocks.1.norm1.emb.timestep_embedder.linear_1.weight differs from " \
           "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1.weight" in message


@pytest.mark.parametrize("key, named", [
    ("transformer_blocks.1.attn1.to_k.weight", "missing weight 'stack.blocks.1.attn.k_proj.weight', named "
                                               "'transformer_blocks.1.attn1.to_k.weight'"),
    ("transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight",
     "missing weight 'transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight'"),
], ids=["layer", "embedder-copy"])
def test_a_missing_key_is_refused(key, named, tmp_path):
    diffusers_dit().save_pretrained(tmp_path)
    state = load_file(tmp_path / WEIGHTS)
    del state[key]
    save_file(state, tmp_path / WEIGHTS)
    with pytest.raises(WeightsError, match="^[^\n]*$") as err:
        load_diffusers_dit(tmp_path)
    assert named in str(err.value)


@pytest.mark.parametrize("change, problem", [
    ({"norm_type": "ada_norm_single"}, "norm_type='ada_norm_single'"),
    ({"activation_fn": "geglu"}, "activation_fn='geglu'"),
    ({"norm_elementwise_affine": True}, "norm_elementwise_affine=True"),
    ({"_class_name": "PixArtTransformer2DModel"}, "PixArtTransformer2DModel"),
    ({"num_embeds_ada_norm": None}, "num_embeds_ada_norm=None"),
    ({"sample_size": [8, 16]}, "sample_size=[8, 16]"),
])
def test_configs_zoo_cannot_build_are_refused(change, problem):
    config = {"_class_name": "DiTTransformer2DModel", **TINY, **change}
    with pytest.raises(ConfigError, match="^[^\n]*$") as err:
        dit_config_from_diffusers(config)
    assert problem in str(err.value)


def test_older_transformer2d_configs_convert_with_dit_defaults():
    """DiT-XL/2's published config.json: a Transformer2DModel that diffusers builds as a DiTTransformer2DModel."""
    published = {"_class_name": "Transformer2DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
                 "attention_head_dim": 72, "cross_attention_dim": None, "dropout": 0.0, "in_channels": 4,
                 "norm_elementwise_affine": False, "norm_num_groups": 32, "norm_type": "ada_norm_zero",
                 "num_attention_heads": 16, "num_embeds_ada_norm": 1000, "num_layers": 28, "num_vector_embeds": None,
                 "only_cross_attention": False, "out_channels": 8, "patch_size": 2, "sample_size": 32,
                 "upcast_attention": False, "use_linear_projection": False}
    assert dit_config_from_diffusers(published) == registry.get_entry("dit_xl_2_256").config
    assert dit_config_from_diffusers({**published, "sample_size": 64}) == registry.get_entry("dit_xl_2_512").config


def test_pipeline_folder(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    transformer = diffusers_dit(out_channels=8)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2).eval()
    diffusers.DiTPipeline(transformer, vae, diffusers.DDIMScheduler()).save_pretrained(tmp_path)
    ours, autoencoder = load_dit_pipeline(tmp_path)
    assert isinstance(ours, DiT) and isinstance(autoencoder, AutoencoderKL)
    assert not ours.training and not autoencoder.training
    assert_parity(ours, transformer)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(autoencoder.decode(latents), vae.decode(latents).sample, rtol=0, atol=1e-4)
    assert_parity(load_diffusers_dit(tmp_path), transformer)  # the pipeline folder itself reads transformer/


def test_pipeline_folder_without_vae_is_refused(tmp_path):
    diffusers_dit().save_pretrained(tmp_path / "transformer")
    with pytest.raises(WeightsError, match="no vae/config.json"):
        load_dit_pipeline(tmp_path)


def test_registry_names_build_and_load_diffusers_folders(tmp_path, monkeypatch):
    model = zoo.create_model("dit_test")
    cfg = model.config
    latents = torch.randn(2, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    assert model(latents, torch.tensor([1, 900]), torch.tensor([0, cfg.num_classes])).shape == (2, 8, 8, 8)
    # a diffusers folder of dit_test's sizes loads through create_model(pretrained=PATH)
    theirs = diffusers_dit(attention_head_dim=16, out_channels=8, num_embeds_ada_norm=10)
    theirs.save_pretrained(tmp_path / "dit")
    assert_parity(zoo.create_model("dit_test", pretrained=tmp_path / "dit").eval(), theirs)
    with pytest.raises(WeightsError, match="the checkpoint has sample_size=8, this model sample_size=16"):
        zoo.create_model("dit_test", pretrained=tmp_path / "dit", sample_size=16)
    # the upstream ids, and a cached DiTPipeline download found by its transformer/ folder
    assert registry.get_entry("facebook/DiT-XL-2-512").name == "dit_xl_2_512"
    xl = registry.get_entry("DiT-XL-2-256")
    assert (xl.config.dim, xl.config.n_layers, xl.config.sample_size, xl.config.output_channels) == (1152, 28, 32, 8)
    snapshot = tmp_path / "hub" / "models--facebook--DiT-XL-2-256" / "snapshots" / "0123abc"
    (snapshot / "transformer").mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert xl.weights.available() is None
    (snapshot / "transformer" / "config.json").write_text("{}")
    assert xl.weights.available() == snapshot / "transformer"
