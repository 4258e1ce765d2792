"""ViT weights from timm, torchvision and Hugging Face transformers, converted to this package's names.

Each converter is a pure function (foreign_state_dict, config) -> state_dict: a key table with `{}` standing
for the block index, then explicit transforms (a fused q/k/v projection split into three; (1, N, D) position
tables flattened to (N, D)). A key the table does not know, or a weight the model needs that is not there,
is a WeightsError naming it. A position table made for another patch grid is resampled to the config's.
A checkpoint without a classifier converts to a state without `head.fc.*`.
"""

import warnings
from pathlib import Path

import torch

from shared.convert import apply, check_keys, convert_state, linear, model_keys, split
from shared.errors import ConfigError, WeightsError
from shared.pretrained import load_checked
from shared.state_dict import read_state_dict
from vision.patch_embed import resample_pos_embed
from vision.vit import VisionTransformer, ViTConfig

HEAD_KEYS = ("head.fc.weight", "head.fc.bias")
HINT = "the checkpoint does not match this config (depth, class token, pooling)"
_BLOCK = "encoder.blocks.{}"


def _qkv(p: str):
    """A fused (3·D, ...) q/k/v parameter -> three (D, ...) ones, in q, k, v order."""
    return split(*(f"{_BLOCK}.attn.{n}_proj.{p}" for n in "qkv"))


# (1, N, D) position tables -> (N, D)
_POSITIONS = apply("pos_embed.weight", lambda pos: pos.reshape(-1, pos.shape[-1]))

TIMM = {
    "cls_token": "cls_token",
    "pos_embed": _POSITIONS,
    **linear("patch_embed.proj", "patch_embed.proj"),
    **linear("blocks.{}.norm1", f"{_BLOCK}.attn_norm"),
    **linear("blocks.{}.attn.qkv", _qkv),
    **linear("blocks.{}.attn.proj", f"{_BLOCK}.attn.out_proj"),
    **linear("blocks.{}.norm2", f"{_BLOCK}.mlp_norm"),
    **linear("blocks.{}.mlp.fc1", f"{_BLOCK}.mlp.fc1"),
    **linear("blocks.{}.mlp.fc2", f"{_BLOCK}.mlp.fc2"),
    **linear("norm", "encoder.final_norm"),
    **linear("fc_norm", "fc_norm"),
    **linear("head", "head.fc"),
}

_TV = "encoder.layers.encoder_layer_{}"
TORCHVISION = {
    "class_token": "cls_token",
    "encoder.pos_embedding": _POSITIONS,
    f"{_TV}.self_attention.in_proj_weight": _qkv("weight"),
    f"{_TV}.self_attention.in_proj_bias": _qkv("bias"),
    **linear("conv_proj", "patch_embed.proj"),
    **linear(f"{_TV}.ln_1", f"{_BLOCK}.attn_norm"),
    **linear(f"{_TV}.self_attention.out_proj", f"{_BLOCK}.attn.out_proj"),
    **linear(f"{_TV}.ln_2", f"{_BLOCK}.mlp_norm"),
    **linear(f"{_TV}.mlp.0", f"{_BLOCK}.mlp.fc1"),
    **linear(f"{_TV}.mlp.3", f"{_BLOCK}.mlp.fc2"),
    **linear(f"{_TV}.mlp.linear_1", f"{_BLOCK}.mlp.fc1"),  # names of torchvision releases before 0.13
    **linear(f"{_TV}.mlp.linear_2", f"{_BLOCK}.mlp.fc2"),
    **linear("encoder.ln", "encoder.final_norm"),
    **linear("heads.head", "head.fc"),
}

# One block's layers under both Hugging Face namings: (published checkpoints and transformers before 5.0
# under "encoder.layer.{}", transformers 5's modules under "layers.{}", zoo's name).
_HF_LAYERS = (
    ("layernorm_before", "layernorm_before", "attn_norm"),
    ("attention.attention.query", "attention.q_proj", "attn.q_proj"),
    ("attention.attention.key", "attention.k_proj", "attn.k_proj"),
    ("attention.attention.value", "attention.v_proj", "attn.v_proj"),
    ("attention.output.dense", "attention.o_proj", "attn.out_proj"),
    ("layernorm_after", "layernorm_after", "mlp_norm"),
    ("intermediate.dense", "mlp.fc1", "mlp.fc1"),
    ("output.dense", "mlp.fc2", "mlp.fc2"),
)
HF = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": _POSITIONS,
    **linear("embeddings.patch_embeddings.projection", "patch_embed.proj"),
    **{key: target for published, current, ours in _HF_LAYERS
       for src in (f"encoder.layer.{{}}.{published}", f"layers.{{}}.{current}")
       for key, target in linear(src, f"{_BLOCK}.{ours}").items()},
    **linear("layernorm", "encoder.final_norm"),
    **linear("classifier", "head.fc"),
}
# ViTModel's pooler (a tanh layer on the class token) and masked-image-modelling token feed no classifier.
HF_UNUSED = (r"pooler\.dense\.(weight|bias)", r"embeddings\.mask_token")


def _expected(config: ViTConfig) -> list[str]:
    """The model's keys and a classifier's, which may come or go (see _fit_head)."""
    keys = list(model_keys(VisionTransformer, config))
    return keys + [k for k in HEAD_KEYS if k not in keys]


def _convert(state: dict, table: dict, config: ViTConfig, source: str, ignore=()) -> dict:
    out = convert_state(state, table, source=source, expected=_expected(config), ignore=ignore,
                        optional=HEAD_KEYS, hint=HINT)
    out["pos_embed.weight"] = fit_positions(out["pos_embed.weight"], config, source)
    return out


def fit_positions(pos: torch.Tensor, config: ViTConfig, source: str) -> torch.Tensor:
    """A (N, D) position table made for another patch grid, resampled to the config's."""
    prefix = 1 if config.class_token else 0
    grid = (config.img_size // config.patch_size,) * 2
    if pos.shape[0] == prefix + grid[0] * grid[1]:
        return pos
    try:
        return resample_pos_embed(pos, grid, num_prefix_tokens=prefix)
    except ConfigError as err:
        raise WeightsError(f"{source}: cannot fit its position table to this model: {err}") from None


def from_timm(state: dict, config: ViTConfig, source: str = "timm weights") -> dict:
    """timm VisionTransformer state dict -> this package's."""
    return _convert(state, TIMM, config, source)


def from_torchvision(state: dict, config: ViTConfig, source: str = "torchvision weights") -> dict:
    """torchvision.models.VisionTransformer (vit_b_16 and friends) state dict -> this package's."""
    return _convert(state, TORCHVISION, config, source)


def from_hf(state: dict, config: ViTConfig, source: str = "Hugging Face weights") -> dict:
    """transformers ViTModel or ViTForImageClassification state dict -> this package's."""
    state = {k.removeprefix("vit."): v for k, v in state.items()}
    return _convert(state, HF, config, source, ignore=HF_UNUSED)


def from_zoo(state: dict, config: ViTConfig, source: str = "zoo weights") -> dict:
    """This package's own state dict (save_pretrained, training checkpoints), resampled to the config."""
    check_keys(state, _expected(config), source=source, optional=HEAD_KEYS, hint=HINT)
    return {**state, "pos_embed.weight": fit_positions(state["pos_embed.weight"], config, source)}


CONVERTERS = {"zoo": from_zoo, "timm": from_timm, "torchvision": from_torchvision, "hf": from_hf}


def detect_format(state: dict, source: str = "weights") -> str:
    """Which library wrote a ViT state dict: "zoo", "timm", "torchvision" or "hf"."""
    keys = set(state)
    if "pos_embed.weight" in keys or any(k.startswith("encoder.blocks.") for k in keys):
        return "zoo"
    if "pos_embed" in keys or "patch_embed.proj.weight" in keys or any(k.startswith("blocks.") for k in keys):
        return "timm"
    if "conv_proj.weight" in keys or "encoder.pos_embedding" in keys:
        return "torchvision"
    if any(k.removeprefix("vit.").startswith("embeddings.patch_embeddings.") for k in keys):
        return "hf"
    raise WeightsError(f"{source}: not ViT weights in a known layout (first key {next(iter(state))!r}); "
                       "expected timm, torchvision, Hugging Face or zoo weights")


def _fit_head(state: dict, model: VisionTransformer, source: str) -> None:
    """Keep the model's own fresh classifier when the checkpoint has none or one for other classes, as timm
    does when num_classes is overridden on pretrained weights."""
    expected = model.state_dict()
    theirs = {k: state.get(k) for k in HEAD_KEYS}
    fits = all(k in expected and v is not None and v.shape == expected[k].shape for k, v in theirs.items())
    if fits or (not any(k in expected for k in HEAD_KEYS) and all(v is None for v in theirs.values())):
        return
    for k in HEAD_KEYS:
        state.pop(k, None)
        if k in expected:
            state[k] = expected[k]
    if model.num_classes > 0:
        weight = theirs["head.fc.weight"]
        found = "has no classifier" if weight is None else f"has a classifier for {weight.shape[0]} classes"
        warnings.warn(f"{source}: {found}, the model has {model.num_classes} classes; "
                      "keeping its freshly initialised head", stacklevel=3)


def load_vit_weights(path: str | Path, model: VisionTransformer) -> VisionTransformer:
    """Fill `model` in place from a timm, torchvision, Hugging Face or zoo ViT weights file or folder.

    Files are read as safetensors or as a pickle through torch.load(weights_only=True). Position tables are
    resampled to the model's image size; a classifier for a different number of classes is replaced by the
    model's fresh one (with a warning).
    """
    source = str(path)
    state = read_state_dict(path)
    converted = CONVERTERS[detect_format(state, source)](state, model.config, source)
    _fit_head(converted, model, source)
    return load_checked(model, converted, source)
