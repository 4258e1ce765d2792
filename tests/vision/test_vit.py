"""The ViT model: shapes, timm's classifier contract, stochastic depth, config and input errors."""

import pytest
import torch

import zoo
from shared.errors import ConfigError, InputError
from vision.drop_path import DropPath, drop_path_rates
from vision.vit import VisionTransformer, ViTConfig

TINY = dict(img_size=16, patch_size=4, num_classes=5, dim=32, depth=3, n_heads=4, mlp_ratio=2.0)


def tiny(**fields) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(**{**TINY, **fields})).eval()


def images(batch=2, size=16, chans=3):
    return torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(1))


def test_shapes_and_attributes():
    model = tiny()
    x = images()
    tokens = model.forward_features(x)
    assert tokens.shape == (2, 1 + 16, 32)
    assert model.forward_head(tokens).shape == (2, 5)
    assert model.forward_head(tokens, pre_logits=True).shape == (2, 32)
    assert model(x).shape == (2, 5)
    assert (model.num_classes, model.num_features, model.embed_dim, model.in_chans) == (5, 32, 32, 3)
    assert model.get_classifier() is model.head.fc


def test_token_pool_reads_the_class_token_and_avg_pool_the_patches():
    model = tiny()
    tokens = model.forward_features(images())
    assert torch.equal(model.forward_head(tokens, pre_logits=True), tokens[:, 0])
    avg = tiny(global_pool="avg")
    tokens = avg.forward_features(images())
    # avg pooling moves the final norm after the pooling (timm's fc_norm), over patch tokens only
    expected = avg.fc_norm(tokens[:, 1:].mean(1))
    torch.testing.assert_close(avg.forward_head(tokens, pre_logits=True), expected)
    assert isinstance(avg.encoder.final_norm, torch.nn.Identity)


def test_no_class_token_model():
    model = tiny(class_token=False, global_pool="avg")
    assert model.cls_token is None and model.pos_embed.weight.shape == (16, 32)
    assert model.forward_features(images()).shape == (2, 16, 32)
    assert model(images()).shape == (2, 5)


def test_reset_classifier_changes_head_pooling_and_config(tmp_path):
    model = tiny()
    model.reset_classifier(3, global_pool="avg")
    assert model.num_classes == 3 and model.get_classifier().out_features == 3
    assert torch.count_nonzero(model.get_classifier().weight) == 0  # a fresh head
    # the norm stays before pooling: the change is only in how tokens are pooled
    assert not isinstance(model.encoder.final_norm, torch.nn.Identity)
    tokens = model.forward_features(images())
    torch.testing.assert_close(model.forward_head(tokens, pre_logits=True), tokens[:, 1:].mean(1))
    torch.nn.init.normal_(model.get_classifier().weight)
    again = VisionTransformer.from_pretrained(model.save_pretrained(tmp_path / "m")).eval()
    torch.testing.assert_close(again(images()), model(images()))
    model.reset_classifier(0)
    assert model(images()).shape == (2, 32)
    with pytest.raises(ConfigError, match="global_pool"):
        model.reset_classifier(3, global_pool="max")


def test_forward_intermediates_shapes_and_values():
    model = tiny()
    x = images()
    final, maps = model.forward_intermediates(x)
    assert len(maps) == 3 and all(m.shape == (2, 32, 4, 4) for m in maps)
    torch.testing.assert_close(final, model.forward_features(x))
    maps = model.forward_intermediates(x, indices=2, norm=True, intermediates_only=True)
    assert len(maps) == 2
    # the last block's normed patch tokens are exactly forward_features without the class token
    last = model.forward_features(x)[:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(maps[-1], last)
    nlc = model.forward_intermediates(x, indices=[0, -1], output_fmt="NLC", intermediates_only=True)
    assert [m.shape for m in nlc] == [(2, 16, 32), (2, 16, 32)]
    _, early = model.forward_intermediates(x, indices=[0], stop_early=True)
    torch.testing.assert_close(early[0], nlc[0].transpose(1, 2).reshape(2, 32, 4, 4))
    with pytest.raises(InputError, match="out of range"):
        model.forward_intermediates(x, indices=[3])
    with pytest.raises(InputError, match="last 4 blocks"):
        model.forward_intermediates(x, indices=4)
    with pytest.raises(InputError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")


def test_pretrained_cfg_feeds_timm_data_config():
    timm_data = pytest.importorskip("timm.data")
    model = zoo.create_model("vit_test", in_chans=1, img_size=32)
    cfg = timm_data.resolve_data_config(model=model)
    assert cfg["input_size"] == (1, 32, 32) and len(cfg["mean"]) == 1 and cfg["crop_pct"] == 1.0
    assert model.default_cfg["num_classes"] == model.num_classes
    with torch.device("meta"):  # no memory or time spent on the weights
        big = zoo.create_model("vit_base_patch16_224")
    assert big.pretrained_cfg["crop_pct"] == 0.9 and big.pretrained_cfg["input_size"] == (3, 224, 224)


def test_timm_layer_decay_optimizer_groups():
    optim = pytest.importorskip("timm.optim")
    model = tiny()
    opt = optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    assert len(scales) == 3 + 2  # stem, three blocks, final norm + head
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert id(model.cls_token) in no_decay and id(model.pos_embed.weight) in no_decay
    assert id(model.encoder.blocks[0].attn.q_proj.weight) not in no_decay


def test_drop_path_module_and_rates():
    assert drop_path_rates(0.1, 5) == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    assert drop_path_rates(0.3, 1) == [0.0]
    drop = DropPath(0.5)
    x = torch.ones(4000, 3, 2)
    torch.manual_seed(0)
    y = drop(x)
    kept = y[:, 0, 0] != 0
    assert torch.all((y == 0).all(dim=(1, 2)) | (y == 2).all(dim=(1, 2)))  # whole samples dropped or scaled
    assert 0.45 < kept.float().mean() < 0.55
    drop.eval()
    assert torch.equal(drop(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_stochastic_depth_in_the_model():
    model = tiny(drop_path_rate=0.5)
    rates = [b.drop_path.rate if isinstance(b.drop_path, DropPath) else 0.0 for b in model.encoder.blocks]
    assert rates == pytest.approx([0.0, 0.25, 0.5])
    x = images(batch=8)
    assert torch.equal(model(x), model(x))  # eval: deterministic
    model.train()
    torch.manual_seed(3)
    a = model.forward_features(x)
    torch.manual_seed(4)
    assert not torch.allclose(a, model.forward_features(x))


def test_qkv_bias_false_keeps_output_bias():
    model = tiny(qkv_bias=False)
    attn = model.encoder.blocks[0].attn
    assert attn.q_proj.bias is None and attn.k_proj.bias is None and attn.v_proj.bias is None
    assert attn.out_proj.bias is not None
    assert model(images()).shape == (2, 5)


@pytest.mark.parametrize("fields, match", [
    (dict(global_pool="max"), "global_pool"),
    (dict(class_token=False), "class token"),
    (dict(img_size=18), "multiple of patch_size"),
    (dict(n_heads=5), "divisible"),
    (dict(drop_path_rate=1.0), "drop_path_rate"),
    (dict(num_classes=-1), "num_classes"),
])
def test_config_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**fields)


def test_wrong_image_shape_is_an_input_error():
    model = tiny()
    with pytest.raises(InputError, match=r"expected images of shape \(B, 3, 16, 16\).*img_size=32"):
        model(images(size=32))
    with pytest.raises(InputError, match="in_chans=1"):
        model(images(chans=1))


def test_create_model_overrides():
    model = zoo.create_model("vit_test", num_classes=7, img_size=32, in_chans=1, drop_path_rate=0.2)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert model.pos_embed.weight.shape[0] == 1 + (32 // 4) ** 2
    assert isinstance(model.encoder.blocks[-1].drop_path, DropPath)
    with pytest.raises(ConfigError, match="did you mean"):
        zoo.create_model("vit_test", num_class=3)


def test_timm_sizes_of_recipes():
    info = zoo.model_info("vit_small_patch16_224")
    assert info["parameters"] == 22_050_664  # timm's vit_small_patch16_224
    assert zoo.model_info("google/vit-base-patch16-224")["name"] == "vit_base_patch16_224"
    names = zoo.list_models("vit_*", task="image-classification")
    for name in ("vit_tiny_patch4_32", "vit_small_patch4_32", "vit_tiny_patch2_16", "vit_large_patch16_384"):
        assert name in names


def test_autocast_bfloat16_runs():
    model = tiny()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images())
    assert out.shape == (2, 5) and torch.isfinite(out.float()).all()
