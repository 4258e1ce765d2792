"""ViT converters against the reference libraries at a tiny random size, weight files, resampling, errors."""

import pickle
import warnings

import pytest
import torch

import zoo
from shared.errors import WeightsError
from vision.convert import detect_format, from_hf, from_timm, from_torchvision, load_vit_weights
from vision.patch_embed import resample_pos_embed
from vision.vit import VisionTransformer, ViTConfig

SMALL = dict(img_size=32, patch_size=8, num_classes=7, dim=32, depth=2, n_heads=4, mlp_ratio=2.0)


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial values for every parameter (norms, biases, heads): no mapping hides behind a default."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.2)
    return model.eval()


def images(size=32, batch=2):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))


def ours(**fields) -> VisionTransformer:
    return VisionTransformer(ViTConfig(**{**SMALL, **fields})).eval()


def timm_vit(**kwargs):
    timm_vt = pytest.importorskip("timm.models.vision_transformer")
    args = dict(img_size=32, patch_size=8, num_classes=7, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0)
    return randomize(timm_vt.VisionTransformer(**{**args, **kwargs}))


def assert_logits_match(model, reference, x):
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("fields", [
    {},
    dict(global_pool="avg"),  # timm moves the final norm after pooling: fc_norm
    dict(qkv_bias=False),
    dict(class_token=False, global_pool="avg"),
])
def test_timm_parity(fields):
    timm_args = {"global_pool": fields.get("global_pool", "token"), "qkv_bias": fields.get("qkv_bias", True),
                 "class_token": fields.get("class_token", True)}
    reference = timm_vit(**timm_args)
    model = ours(**fields)
    model.load_state_dict(from_timm(reference.state_dict(), model.config))
    x = images()
    assert_logits_match(model, reference, x)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), reference.forward_features(x),
                                   rtol=0, atol=1e-5)
        mine = model.forward_intermediates(x, indices=[0, 1], norm=True, intermediates_only=True)
        theirs = reference.forward_intermediates(x, indices=[0, 1], norm=True, intermediates_only=True)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_torchvision_parity():
    tv = pytest.importorskip("torchvision.models.vision_transformer")
    reference = randomize(tv.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                               hidden_dim=32, mlp_dim=64, num_classes=7))
    model = ours()
    model.load_state_dict(from_torchvision(reference.state_dict(), model.config))
    assert_logits_match(model, reference, images())


def hf_config(**kwargs):
    transformers = pytest.importorskip("transformers")
    return transformers, transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
        patch_size=8, num_labels=7, hidden_act="gelu", layer_norm_eps=1e-12, **kwargs)


def test_hf_classifier_parity():
    transformers, config = hf_config()
    reference = randomize(transformers.ViTForImageClassification(config))
    model = ours(norm_eps=1e-12)
    model.load_state_dict(from_hf(reference.state_dict(), model.config))
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(pixel_values=x).logits, rtol=0, atol=1e-5)


def test_hf_model_hidden_states_parity():
    transformers, config = hf_config()
    reference = randomize(transformers.ViTModel(config))  # with its pooler, which zoo drops
    model = ours(norm_eps=1e-12, num_classes=0)
    model.load_state_dict(from_hf(reference.state_dict(), model.config))
    x = images()
    with torch.no_grad():
        out = reference(pixel_values=x, output_hidden_states=True)
        torch.testing.assert_close(model.forward_features(x), out.last_hidden_state, rtol=0, atol=1e-5)
        maps = model.forward_intermediates(x, output_fmt="NLC", intermediates_only=True)
    for i, hidden in enumerate(maps):  # hidden_states[0] is the embedding output, then one per layer
        torch.testing.assert_close(hidden, out.hidden_states[i + 1][:, 1:], rtol=0, atol=1e-5)


def test_resample_is_identity_at_the_same_grid_and_matches_timm_elsewhere():
    pos = pytest.importorskip("timm.layers")
    table = torch.randn(1 + 16, 8)
    assert resample_pos_embed(table, (4, 4)) is table
    torch.testing.assert_close(resample_pos_embed(table, (4, 4), old_grid=(4, 4)), table)
    for grid in ((6, 6), (2, 2), (3, 5)):
        mine = resample_pos_embed(table, grid)
        theirs = pos.resample_abs_pos_embed(table[None], new_size=list(grid), num_prefix_tokens=1)[0]
        torch.testing.assert_close(mine, theirs)
        assert torch.equal(mine[0], table[0])  # the class token's row is kept


def test_weights_made_at_32px_load_into_a_48px_model(tmp_path):
    from safetensors.torch import save_file

    timm_vt = pytest.importorskip("timm.models.vision_transformer")
    reference = timm_vit()
    path = tmp_path / "vit32.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = load_vit_weights(path, ours(img_size=48))
    assert model.pos_embed.weight.shape == (1 + 36, 32)
    # timm's own loader resamples the same way: the two 48px models agree
    at48 = timm_vt.VisionTransformer(img_size=48, patch_size=8, num_classes=7, embed_dim=32, depth=2,
                                     num_heads=4, mlp_ratio=2.0).eval()
    at48.load_state_dict(timm_vt.checkpoint_filter_fn(reference.state_dict(), at48))
    assert_logits_match(model, at48, images(48))
    # and through the registry: weights of one size, a model of another
    resized = zoo.create_model("vit_test", pretrained=path, img_size=48, patch_size=8, num_classes=7, dim=32,
                               depth=2, n_heads=4, mlp_ratio=2.0)
    assert_logits_match(resized.eval(), at48, images(48))


def save_hf_folder(model, folder, safe: bool):
    """A Hugging Face model folder, with its weights as model.safetensors or as a pytorch_model.bin pickle."""
    from safetensors.torch import load_file

    model.save_pretrained(folder)  # the published layout's key names (encoder.layer.N.attention.attention...)
    if not safe:  # older folders hold the same names in a pickle
        weights = folder / "model.safetensors"
        torch.save(load_file(str(weights)), folder / "pytorch_model.bin")
        weights.unlink()
    return folder


@pytest.mark.parametrize("layout", ["timm-safetensors", "torchvision-pickle", "hf-folder", "hf-folder-bin",
                                    "training-checkpoint", "zoo-folder"])
def test_create_model_accepts_every_layout(tmp_path, layout):
    from safetensors.torch import save_file

    x = images()
    if layout == "timm-safetensors":
        reference = timm_vit()
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    elif layout == "torchvision-pickle":
        tv = pytest.importorskip("torchvision.models.vision_transformer")
        reference = randomize(tv.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                   hidden_dim=32, mlp_dim=64, num_classes=7))
        path = tmp_path / "vit.pth"
        torch.save(reference.state_dict(), path)
    elif layout.startswith("hf-folder"):
        transformers, config = hf_config()
        reference = randomize(transformers.ViTForImageClassification(config))
        path = save_hf_folder(reference, tmp_path / "hf", safe=layout == "hf-folder")
        reference = _Logits(reference)
    elif layout == "training-checkpoint":  # a DDP-wrapped timm training checkpoint with optimizer state
        reference = timm_vit()
        path = tmp_path / "checkpoint.pth.tar"
        state = {f"module.{k}": v for k, v in reference.state_dict().items()}
        torch.save({"epoch": 3, "state_dict": state, "optimizer": {"lr": 0.1}}, path)
    else:
        reference = randomize(ours())
        path = reference.save_pretrained(tmp_path / "zoo")
    eps = 1e-12 if layout.startswith("hf") else 1e-6
    model = zoo.create_model("vit_test", pretrained=path, **SMALL, norm_eps=eps).eval()
    assert_logits_match(model, reference, x)


class _Logits(torch.nn.Module):
    def __init__(self, hf):
        super().__init__()
        self.hf = hf

    def forward(self, x):
        return self.hf(pixel_values=x).logits


def test_other_class_count_keeps_a_fresh_head(tmp_path):
    from safetensors.torch import save_file

    reference = timm_vit()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    with pytest.warns(UserWarning, match="classifier for 7 classes, the model has 3"):
        model = zoo.create_model("vit_test", pretrained=path, **{**SMALL, "num_classes": 3}).eval()
    assert torch.count_nonzero(model.get_classifier().weight) == 0
    with torch.no_grad():  # the body is the checkpoint's
        torch.testing.assert_close(model.forward_features(images()), reference.forward_features(images()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # features only: nothing to warn about
        features = zoo.create_model("vit_test", pretrained=path, **{**SMALL, "num_classes": 0})
    assert features.eval()(images()).shape == (2, 32)


def test_unknown_and_missing_keys_name_the_key():
    state = timm_vit().state_dict()
    config = ours().config
    with pytest.raises(WeightsError, match="blocks.0.ls1.gamma"):
        from_timm({**state, "blocks.0.ls1.gamma": torch.ones(32)}, config)
    del state["blocks.1.mlp.fc2.weight"]
    with pytest.raises(WeightsError, match=r"missing weight 'encoder\.blocks\.1\.mlp\.fc2\.weight'"):
        from_timm(state, config)
    deeper = ViTConfig(**{**SMALL, "depth": 3})
    with pytest.raises(WeightsError, match="encoder.blocks.2"):
        from_timm(timm_vit().state_dict(), deeper)
    with pytest.raises(WeightsError, match="not ViT weights"):
        detect_format({"encoder.layer.0.weight": torch.ones(1)})


def test_mismatched_patch_size_is_a_weights_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in timm_vit().state_dict().items()}, str(path))
    with pytest.raises(WeightsError, match="patch_embed.proj.weight"):
        zoo.create_model("vit_test", pretrained=path, **{**SMALL, "patch_size": 4})


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_bad_files_are_weights_errors(tmp_path, capsys):
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_file({k: v.contiguous() for k, v in timm_vit().state_dict().items()}, str(good))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": _Boom()}, protocol=2))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    for path, match in [(truncated, "truncated.safetensors"), (garbage, "garbage.bin"), (evil, "evil.pth"),
                        (empty_dir, "no weights in this folder"), (tmp_path / "absent.pt", "does not exist")]:
        with pytest.raises(WeightsError, match=match):
            load_vit_weights(path, ours())
    assert "must never run" not in capsys.readouterr().out


def test_pretrained_true_reads_the_hf_cache(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    timm_mod = pytest.importorskip("timm")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="pass a weights file or folder"):
        zoo.create_model("vit_tiny_patch16_224", pretrained=True)
    torch.manual_seed(0)
    reference = timm_mod.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    snapshot = tmp_path / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"architecture": "vit_tiny_patch16_224", "num_classes": 1000}')
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
              str(snapshot / "model.safetensors"))
    assert zoo.list_models("vit_tiny_patch16_224", pretrained=True) == ["vit_tiny_patch16_224"]
    model = zoo.create_model("vit_tiny_patch16_224", pretrained=True).eval()
    assert_logits_match(model, reference, images(224, batch=1))


def test_sharded_safetensors_folder(tmp_path):
    import json

    from safetensors.torch import save_file

    reference = timm_vit()
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, str(tmp_path / name))
    index = {"weight_map": {k: name for name, part in shards.items() for k in part}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model = load_vit_weights(tmp_path, ours())
    assert_logits_match(model, reference, images())
