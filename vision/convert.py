"""ViT weights from timm, torchvision and Hugging Face transformers, converted to this package's names.

Each converter is a pure function (foreign_state_dict, config) -> state_dict: a key table with `{}` standing
for the block index, then explicit transforms (a fused q/k/v projection split into three; (1, N, D) position
tables flattened to (N, D)). A key the table does not know, or a weight the model needs that is not there,
is a WeightsError naming it. A position table made for another patch grid is resampled to the config's.
A checkpoint without a classifier converts to a state without `head.fc.*`.
"""

import re
import warnings
from pathlib import Path

import torch

from shared.errors import ConfigError, WeightsError
from shared.pretrained import load_checked
from vision.patch_embed import resample_pos_embed
from vision.vit import VisionTransformer, ViTConfig
from vision.weights import read_state_dict

HEAD_KEYS = ("head.fc.weight", "head.fc.bias")


def _params(modules: dict) -> dict:
    """Expand module-name pairs into weight and bias pairs; a tuple target: a fused tensor split in order."""
    table = {}
    for src, dst in modules.items():
        for p in ("weight", "bias"):
            table[f"{src}.{p}"] = tuple(f"{d}.{p}" for d in dst) if isinstance(dst, tuple) else f"{dst}.{p}"
    return table


_BLOCK = "encoder.blocks.{}"
_QKV = (f"{_BLOCK}.attn.q_proj", f"{_BLOCK}.attn.k_proj", f"{_BLOCK}.attn.v_proj")

TIMM = {
    "cls_token": "cls_token",
    "pos_embed": "pos_embed.weight",
    **_params({
        "patch_embed.proj": "patch_embed.proj",
        "blocks.{}.norm1": f"{_BLOCK}.attn_norm",
        "blocks.{}.attn.qkv": _QKV,
        "blocks.{}.attn.proj": f"{_BLOCK}.attn.out_proj",
        "blocks.{}.norm2": f"{_BLOCK}.mlp_norm",
        "blocks.{}.mlp.fc1": f"{_BLOCK}.mlp.fc1",
        "blocks.{}.mlp.fc2": f"{_BLOCK}.mlp.fc2",
        "norm": "encoder.final_norm",
        "fc_norm": "fc_norm",
        "head": "head.fc",
    }),
}

_TV = "encoder.layers.encoder_layer_{}"
TORCHVISION = {
    "class_token": "cls_token",
    "encoder.pos_embedding": "pos_embed.weight",
    f"{_TV}.self_attention.in_proj_weight": tuple(f"{d}.weight" for d in _QKV),
    f"{_TV}.self_attention.in_proj_bias": tuple(f"{d}.bias" for d in _QKV),
    **_params({
        "conv_proj": "patch_embed.proj",
        f"{_TV}.ln_1": f"{_BLOCK}.attn_norm",
        f"{_TV}.self_attention.out_proj": f"{_BLOCK}.attn.out_proj",
        f"{_TV}.ln_2": f"{_BLOCK}.mlp_norm",
        f"{_TV}.mlp.0": f"{_BLOCK}.mlp.fc1",
        f"{_TV}.mlp.3": f"{_BLOCK}.mlp.fc2",
        f"{_TV}.mlp.linear_1": f"{_BLOCK}.mlp.fc1",  # names of torchvision releases before 0.13
        f"{_TV}.mlp.linear_2": f"{_BLOCK}.mlp.fc2",
        "encoder.ln": "encoder.final_norm",
        "heads.head": "head.fc",
    }),
}

_HF = "encoder.layer.{}"  # the names in published checkpoints (and transformers before 5.0)
_HF5 = "layers.{}"  # the names of transformers 5's modules
HF = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed.weight",
    **_params({
        "embeddings.patch_embeddings.projection": "patch_embed.proj",
        f"{_HF}.layernorm_before": f"{_BLOCK}.attn_norm",
        f"{_HF}.attention.attention.query": _QKV[0],
        f"{_HF}.attention.attention.key": _QKV[1],
        f"{_HF}.attention.attention.value": _QKV[2],
        f"{_HF}.attention.output.dense": f"{_BLOCK}.attn.out_proj",
        f"{_HF}.layernorm_after": f"{_BLOCK}.mlp_norm",
        f"{_HF}.intermediate.dense": f"{_BLOCK}.mlp.fc1",
        f"{_HF}.output.dense": f"{_BLOCK}.mlp.fc2",
        f"{_HF5}.layernorm_before": f"{_BLOCK}.attn_norm",
        f"{_HF5}.attention.q_proj": _QKV[0],
        f"{_HF5}.attention.k_proj": _QKV[1],
        f"{_HF5}.attention.v_proj": _QKV[2],
        f"{_HF5}.attention.o_proj": f"{_BLOCK}.attn.out_proj",
        f"{_HF5}.layernorm_after": f"{_BLOCK}.mlp_norm",
        f"{_HF5}.mlp.fc1": f"{_BLOCK}.mlp.fc1",
        f"{_HF5}.mlp.fc2": f"{_BLOCK}.mlp.fc2",
        "layernorm": "encoder.final_norm",
        "classifier": "head.fc",
    }),
}
# ViTModel's pooler (a tanh layer on the class token) and masked-image-modelling token feed no classifier.
HF_UNUSED = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.mask_token")


def _compile(table: dict) -> list[tuple[re.Pattern, object]]:
    return [(re.compile(re.escape(src).replace(r"\{\}", r"(\d+)") + "$"), dst) for src, dst in table.items()]


_TABLES = {id(t): _compile(t) for t in (TIMM, TORCHVISION, HF)}


def _rename(state: dict, table: dict, source: str) -> dict:
    """Apply a key table: rename, split fused q/k/v tensors, flatten position tables."""
    out = {}
    for key, tensor in state.items():
        for pattern, dst in _TABLES[id(table)]:
            match = pattern.match(key)
            if match:
                break
        else:
            raise WeightsError(f"{source}: unexpected weight {key!r}; not a plain ViT of this layout")
        if isinstance(dst, tuple):  # fused (3·D, ...) projection -> three (D, ...) ones, in q, k, v order
            for name, part in zip(dst, tensor.chunk(3, dim=0)):
                out[name.format(*match.groups())] = part
        else:
            out[dst.format(*match.groups())] = tensor
    if "pos_embed.weight" in out:
        pos = out["pos_embed.weight"]
        out["pos_embed.weight"] = pos.reshape(-1, pos.shape[-1])  # (1, N, D) -> (N, D)
    return out


def _finish(state: dict, config: ViTConfig, source: str) -> dict:
    """Resample positions to the config's grid, then require every weight the model has."""
    with torch.device("meta"):
        expected = VisionTransformer(config).state_dict()
    if "pos_embed.weight" in state:
        prefix = 1 if config.class_token else 0
        grid = (config.img_size // config.patch_size,) * 2
        if state["pos_embed.weight"].shape[0] != expected["pos_embed.weight"].shape[0]:
            try:
                state["pos_embed.weight"] = resample_pos_embed(state["pos_embed.weight"], grid,
                                                               num_prefix_tokens=prefix)
            except ConfigError as err:
                raise WeightsError(f"{source}: cannot fit its position table to this model: {err}") from None
    missing = [k for k in expected if k not in state and k not in HEAD_KEYS]
    if missing:
        raise WeightsError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing in all); "
                           "the checkpoint does not match this config (depth, class token, pooling)")
    unexpected = [k for k in state if k not in expected and k not in HEAD_KEYS]
    if unexpected:
        raise WeightsError(f"{source}: weight {unexpected[0]!r} has no place in this config "
                           "(depth, class token or pooling differ)")
    return state


def from_timm(state: dict, config: ViTConfig, source: str = "timm weights") -> dict:
    """timm VisionTransformer state dict -> this package's."""
    return _finish(_rename(state, TIMM, source), config, source)


def from_torchvision(state: dict, config: ViTConfig, source: str = "torchvision weights") -> dict:
    """torchvision.models.VisionTransformer (vit_b_16 and friends) state dict -> this package's."""
    return _finish(_rename(state, TORCHVISION, source), config, source)


def from_hf(state: dict, config: ViTConfig, source: str = "Hugging Face weights") -> dict:
    """transformers ViTModel or ViTForImageClassification state dict -> this package's."""
    state = {k.removeprefix("vit."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k not in HF_UNUSED}
    return _finish(_rename(state, HF, source), config, source)


def from_zoo(state: dict, config: ViTConfig, source: str = "zoo weights") -> dict:
    """This package's own state dict (save_pretrained, training checkpoints), resampled to the config."""
    return _finish(dict(state), config, source)


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
