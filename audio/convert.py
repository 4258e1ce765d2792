"""Key tables from foreign Whisper checkpoints to openai-whisper's names, applied by `shared.convert`.

openai-whisper's `Whisper.state_dict()` names are the canonical form here: audio/weights.py maps them onto
zoo's model, so each foreign format needs one table to get there:

    CTranslate2 model.bin variables     --ct2_to_openai-->           openai names
    HF WhisperForConditionalGeneration  --hf_to_openai-->            openai names
    openai-whisper .pt                  --load_openai_checkpoint-->  (dims, openai names)

The transforms are steps in the tables: CTranslate2 fuses q/k/v and cross-attention k/v (split), Whisper's
key projection has no bias (CTranslate2 stores zero rows, which must be zero), and the output projection is
tied to the token embedding (checked equal, then dropped).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from audio.ct2 import load_ct2_variables
from shared.convert import Step, check_keys, convert_state, drop, linear, mismatch_error, prefixed, require_equal, split
from shared.errors import WeightsError
from shared.state_dict import read_checkpoint, read_json

DIM_FIELDS = (
    "n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
    "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer",
)  # fmt: skip
TIED = "openai-whisper ties the output projection to the token embedding"

# ---------------------------------------------------------------------------------------------------------
# openai-whisper's names and shapes


def openai_shapes(dims: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Every key of openai-whisper's `Whisper(ModelDimensions(**dims)).state_dict()` with its shape."""
    a, t = dims["n_audio_state"], dims["n_text_state"]
    shapes: dict[str, tuple[int, ...]] = {
        "encoder.conv1.weight": (a, dims["n_mels"], 3),
        "encoder.conv1.bias": (a,),
        "encoder.conv2.weight": (a, a, 3),
        "encoder.conv2.bias": (a,),
        "encoder.positional_embedding": (dims["n_audio_ctx"], a),
        "encoder.ln_post.weight": (a,),
        "encoder.ln_post.bias": (a,),
        "decoder.token_embedding.weight": (dims["n_vocab"], t),
        "decoder.positional_embedding": (dims["n_text_ctx"], t),
        "decoder.ln.weight": (t,),
        "decoder.ln.bias": (t,),
    }

    def block(prefix: str, d: int, cross: bool) -> None:
        attns = ("attn", "cross_attn") if cross else ("attn",)
        for attn in attns:
            for proj in ("query", "key", "value", "out"):
                shapes[f"{prefix}.{attn}.{proj}.weight"] = (d, d)
                if proj != "key":  # Whisper's key projection has no bias
                    shapes[f"{prefix}.{attn}.{proj}.bias"] = (d,)
        for ln in (*(f"{x}_ln" for x in attns), "mlp_ln"):
            shapes[f"{prefix}.{ln}.weight"] = shapes[f"{prefix}.{ln}.bias"] = (d,)
        shapes[f"{prefix}.mlp.0.weight"], shapes[f"{prefix}.mlp.0.bias"] = (4 * d, d), (4 * d,)
        shapes[f"{prefix}.mlp.2.weight"], shapes[f"{prefix}.mlp.2.bias"] = (d, 4 * d), (d,)

    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", a, cross=False)
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", t, cross=True)
    return shapes


def _openai_keys(n_audio_layer: int, n_text_layer: int) -> Collection[str]:
    """openai-whisper's state-dict keys for these layer counts (the sizes do not change the names)."""
    return openai_shapes(dict.fromkeys(DIM_FIELDS, 1) | {"n_audio_layer": n_audio_layer, "n_text_layer": n_text_layer})


def check_openai_state(state: Mapping[str, torch.Tensor], dims: Mapping[str, int], source: str) -> None:
    """Raise WeightsError unless `state` has exactly openai-whisper's keys and shapes for `dims`."""
    expected = openai_shapes(dims)
    check_keys(state, expected, source=source, hint=f"not a Whisper model of dims {dict(dims)}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise WeightsError(f"{source}: key {key!r} has shape {tuple(state[key].shape)}, expected {shape}")


def _count_layers(keys: Collection[str], prefix: str) -> int:
    """1 + the highest layer index after `prefix` (a regex); a gap shows up later as a missing weight."""
    pattern = re.compile(rf"{prefix}(\d+)[/.]")
    return 1 + max((int(m.group(1)) for k in keys if (m := pattern.match(k))), default=-1)


# ---------------------------------------------------------------------------------------------------------
# CTranslate2


@dataclasses.dataclass(frozen=True)
class _BiasWithoutKey(Step):
    """Fused q/k/v (or k/v) bias rows -> the biases of `names`, which skip the key. Whisper's key projection
    has no bias, so CTranslate2 stores zeros for it; anything else is not a Whisper model."""

    names: tuple[str, ...]
    key: int  # where the key's rows sit among the stacked parts

    def __call__(self, tensor: torch.Tensor, groups: tuple[str, ...]) -> dict[str, torch.Tensor]:
        n_parts = len(self.names) + 1
        if tensor.dim() != 1 or tensor.shape[0] % n_parts:
            raise ValueError(f"not {n_parts} stacked biases")
        parts = list(tensor.chunk(n_parts))
        if torch.count_nonzero(parts.pop(self.key)):
            raise ValueError("the key rows are not zero, but Whisper's key projection has no bias")
        return {name.format(*groups): part for name, part in zip(self.names, parts)}


def _ct2_fused(src: str, dst: str, parts: tuple[str, ...]) -> dict[str, str | Step]:
    """One CTranslate2 Linear holding the stacked rows of several of `dst`'s projections."""
    key = parts.index("key")
    return {
        f"{src}/weight": split(*(f"{dst}.{p}.weight" for p in parts)),
        f"{src}/bias": _BiasWithoutKey(tuple(f"{dst}.{p}.bias" for p in parts if p != "key"), key),
    }


def _ct2_pair(src: str, dst: str, names: tuple[str, str] = ("weight", "bias")) -> dict[str, str]:
    """A CTranslate2 layer's two tensors ("/weight", "/bias" or a LayerNorm's "/gamma", "/beta")."""
    return {f"{src}/{names[0]}": f"{dst}.weight", f"{src}/{names[1]}": f"{dst}.bias"}


def _ct2_layer(cross: bool) -> dict[str, str | Step]:
    """One CTranslate2 layer, relative to "<side>/layer_{}/" -> "<side>.blocks.{}."."""
    norm = ("gamma", "beta")
    table = {
        **_ct2_fused("self_attention/linear_0", "attn", ("query", "key", "value")),
        **_ct2_pair("self_attention/linear_1", "attn.out"),
        **_ct2_pair("self_attention/layer_norm", "attn_ln", norm),
        **_ct2_pair("ffn/linear_0", "mlp.0"),
        **_ct2_pair("ffn/linear_1", "mlp.2"),
        **_ct2_pair("ffn/layer_norm", "mlp_ln", norm),
    }
    if cross:
        table |= {
            **_ct2_pair("attention/linear_0", "cross_attn.query"),
            **_ct2_fused("attention/linear_1", "cross_attn", ("key", "value")),
            **_ct2_pair("attention/linear_2", "cross_attn.out"),
            **_ct2_pair("attention/layer_norm", "cross_attn_ln", norm),
        }
    return table


CT2_TO_OPENAI: dict[str, str | Step] = {
    **_ct2_pair("encoder/conv1", "encoder.conv1"),
    **_ct2_pair("encoder/conv2", "encoder.conv2"),
    "encoder/position_encodings/encodings": "encoder.positional_embedding",
    **_ct2_pair("encoder/layer_norm", "encoder.ln_post", ("gamma", "beta")),
    **prefixed(_ct2_layer(cross=False), "encoder/layer_{}/", "encoder.blocks.{}."),
    "decoder/embeddings/weight": "decoder.token_embedding.weight",
    "decoder/projection/weight": drop(),  # tied: checked equal to the embedding first
    "decoder/position_encodings/encodings": "decoder.positional_embedding",
    **prefixed(_ct2_layer(cross=True), "decoder/layer_{}/", "decoder.blocks.{}."),
    **_ct2_pair("decoder/layer_norm", "decoder.ln", ("gamma", "beta")),
}
# Scalar options of CTranslate2's WhisperSpec, with the value openai-whisper's architecture implies
# (None: any value; it only matters to CTranslate2's own runtime).
_CT2_GELU = 3  # CTranslate2's ActivationType.GELU (erf form), which openai-whisper uses
CT2_OPTIONS = {
    "encoder/num_heads": None,
    "decoder/num_heads": None,
    "decoder/activation": _CT2_GELU,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/alibi": 0,
    "decoder/start_from_zero_embedding": 0,
    "decoder/alignment_heads": None,  # how many cross-attention heads CTranslate2 averages for alignment
    "decoder/alignment_layer": None,
}
_CT2 = "CTranslate2 variables"


def _check_ct2_options(variables: Mapping[str, torch.Tensor]) -> None:
    for name, required in CT2_OPTIONS.items():
        if name not in variables:
            raise mismatch_error(_CT2, missing=[name])
        value = variables[name]
        if value.numel() != 1:
            raise WeightsError(f"{_CT2}: option {name!r} should be a scalar, got shape {tuple(value.shape)}")
        if required is not None and int(value.item()) != required:
            raise WeightsError(
                f"{_CT2}: option {name!r} is {int(value.item())}, but openai-whisper's architecture needs {required}"
            )


def ct2_to_openai(
    variables: Mapping[str, torch.Tensor], n_text_layers: int, n_audio_layers: int
) -> dict[str, torch.Tensor]:
    """CTranslate2 WhisperSpec variables (aliases resolved, e.g. from `audio.ct2.load_ct2_variables`) to an
    openai-whisper state dict. Tensors keep their stored dtype (float16 for the shipped files).

    Also checks the scalar options match openai-whisper's architecture and the output projection is the
    token embedding.
    """
    _check_ct2_options(variables)
    require_equal(variables, "decoder/projection/weight", "decoder/embeddings/weight", source=_CT2, why=TIED)
    quantized = any(name.endswith("weight_scale") for name in variables)
    return convert_state(
        variables,
        CT2_TO_OPENAI,
        source=_CT2,
        expected=_openai_keys(n_audio_layers, n_text_layers),
        ignore=[re.escape(name) for name in CT2_OPTIONS],
        hint="int8-quantized files are not supported" if quantized else "",
    )


def load_ct2_whisper(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """Read a CTranslate2 Whisper folder (model.bin, optional config.json) or model.bin file.

    Returns:
        (dims, state_dict): ModelDimensions fields and an openai-whisper state dict, checked to agree.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    variables = load_ct2_variables(path)
    config = folder / "config.json"
    dims = dims_from_ct2(variables, config if config.is_file() else None)
    state = ct2_to_openai(variables, n_text_layers=dims["n_text_layer"], n_audio_layers=dims["n_audio_layer"])
    check_openai_state(state, dims, str(path))
    return dims, state


def dims_from_ct2(
    variables: Mapping[str, torch.Tensor], config_json: Mapping[str, Any] | str | os.PathLike | None = None
) -> dict[str, int]:
    """openai-whisper ModelDimensions fields read from CTranslate2 variable shapes and head counts.

    `config_json` (the dict or the path of the config.json next to model.bin), when given, is cross-checked:
    its token ids must fit the vocabulary and its alignment heads the decoder.
    """
    names = ("encoder/conv1/weight", "decoder/embeddings/weight", "encoder/num_heads", "decoder/num_heads",
             "encoder/position_encodings/encodings", "decoder/position_encodings/encodings")  # fmt: skip
    missing = [name for name in names if name not in variables]
    if missing:
        raise mismatch_error(_CT2, missing=missing)
    conv1 = variables["encoder/conv1/weight"]  # (n_audio_state, n_mels, 3)
    embedding = variables["decoder/embeddings/weight"]  # (n_vocab, n_text_state)
    dims = {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": variables["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": conv1.shape[0],
        "n_audio_head": int(variables["encoder/num_heads"].item()),
        "n_audio_layer": _count_layers(variables, "encoder/layer_"),
        "n_vocab": embedding.shape[0],
        "n_text_ctx": variables["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": embedding.shape[1],
        "n_text_head": int(variables["decoder/num_heads"].item()),
        "n_text_layer": _count_layers(variables, "decoder/layer_"),
    }
    _check_dims(dims, _CT2)
    if config_json is not None:
        _check_ct2_config(config_json, dims)
    return dims


def _check_ct2_config(config: Mapping[str, Any] | str | os.PathLike, dims: Mapping[str, int]) -> None:
    source = "CTranslate2 config.json"
    if not isinstance(config, Mapping):
        source, config = str(config), read_json(Path(config), "CTranslate2 Whisper")
    for key in ("suppress_ids", "suppress_ids_begin", "lang_ids"):
        ids = config.get(key, [])
        if any(not isinstance(i, int) or not 0 <= i < dims["n_vocab"] for i in ids):
            raise WeightsError(f"{source}: {key!r} holds ids outside the vocabulary of {dims['n_vocab']}")
    for pair in config.get("alignment_heads", []):
        if not (len(pair) == 2 and 0 <= pair[0] < dims["n_text_layer"] and 0 <= pair[1] < dims["n_text_head"]):
            raise WeightsError(f"{source}: alignment head {pair} is not a (layer, head) of this decoder")


# ---------------------------------------------------------------------------------------------------------
# HF transformers


def _hf_attention(src: str, dst: str) -> dict[str, str]:
    return {
        **linear(f"{src}.q_proj", f"{dst}.query"),
        f"{src}.k_proj.weight": f"{dst}.key.weight",  # no bias, as in openai-whisper
        **linear(f"{src}.v_proj", f"{dst}.value"),
        **linear(f"{src}.out_proj", f"{dst}.out"),
    }


_HF_LAYER = {
    **_hf_attention("self_attn", "attn"),
    **linear("self_attn_layer_norm", "attn_ln"),
    **linear("fc1", "mlp.0"),
    **linear("fc2", "mlp.2"),
    **linear("final_layer_norm", "mlp_ln"),
}
_HF_CROSS = {**_hf_attention("encoder_attn", "cross_attn"), **linear("encoder_attn_layer_norm", "cross_attn_ln")}
HF_TO_OPENAI: dict[str, str | Step] = {
    **linear("model.encoder.conv1", "encoder.conv1"),
    **linear("model.encoder.conv2", "encoder.conv2"),
    "model.encoder.embed_positions.weight": "encoder.positional_embedding",
    **prefixed(_HF_LAYER, "model.encoder.layers.{}.", "encoder.blocks.{}."),
    **linear("model.encoder.layer_norm", "encoder.ln_post"),
    "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    **prefixed(_HF_LAYER | _HF_CROSS, "model.decoder.layers.{}.", "decoder.blocks.{}."),
    **linear("model.decoder.layer_norm", "decoder.ln"),
    "proj_out.weight": drop(),  # tied, and often not saved: checked equal to the embedding when present
}


def hf_to_openai(state_dict: Mapping[str, torch.Tensor], source: str = "HF Whisper state dict") -> dict:
    """A HF `WhisperForConditionalGeneration` state dict to openai-whisper names (layer counts from the keys)."""
    require_equal(state_dict, "proj_out.weight", "model.decoder.embed_tokens.weight", source=source, why=TIED)
    n_audio_layers = _count_layers(state_dict, r"model\.encoder\.layers\.")
    n_text_layers = _count_layers(state_dict, r"model\.decoder\.layers\.")
    return convert_state(state_dict, HF_TO_OPENAI, source=source, expected=_openai_keys(n_audio_layers, n_text_layers))


def dims_from_hf(config: Any) -> dict[str, int]:
    """openai-whisper ModelDimensions fields from a HF `WhisperConfig` (object or config.json dict).

    Raises WeightsError for settings openai-whisper's architecture cannot express.
    """
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    source = "HF WhisperConfig"
    try:
        d_model = int(get("d_model"))
        dims = {
            "n_mels": int(get("num_mel_bins")),
            "n_audio_ctx": int(get("max_source_positions")),
            "n_audio_state": d_model,
            "n_audio_head": int(get("encoder_attention_heads")),
            "n_audio_layer": int(get("encoder_layers")),
            "n_vocab": int(get("vocab_size")),
            "n_text_ctx": int(get("max_target_positions")),
            "n_text_state": d_model,
            "n_text_head": int(get("decoder_attention_heads")),
            "n_text_layer": int(get("decoder_layers")),
        }
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{source}: missing or non-integer field ({err})") from None
    for field in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if get(field, 4 * d_model) != 4 * d_model:
            raise WeightsError(f"{source}: {field}={get(field)} but openai-whisper's MLP is 4 x d_model")
    if get("activation_function", "gelu") != "gelu":
        raise WeightsError(f"{source}: activation_function={get('activation_function')!r}, need 'gelu'")
    if get("scale_embedding", False):
        raise WeightsError(f"{source}: scale_embedding=True is not part of openai-whisper's architecture")
    _check_dims(dims, source)
    return dims


# ---------------------------------------------------------------------------------------------------------
# openai-whisper .pt


def load_openai_checkpoint(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """Read an openai-whisper `.pt` file ({"dims": {...}, "model_state_dict": {...}}) safely.

    The pickle is read by `shared.state_dict` with `weights_only=True`, so a file that would need arbitrary
    code to unpickle is refused.

    Returns:
        (dims, state_dict): ModelDimensions fields and the state dict, checked against each other.
    """
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise WeightsError(f"{path}: expected a dict with 'dims' and 'model_state_dict'")
    raw_dims, state = checkpoint["dims"], checkpoint["model_state_dict"]
    if not isinstance(raw_dims, dict) or set(raw_dims) != set(DIM_FIELDS):
        raise WeightsError(f"{path}: 'dims' must hold exactly the fields {DIM_FIELDS}")
    dims = {k: raw_dims[k] for k in DIM_FIELDS}
    _check_dims(dims, str(path))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: 'model_state_dict' must map names to tensors")
    check_openai_state(state, dims, str(path))
    return dims, state


def _check_dims(dims: Mapping[str, Any], source: str) -> None:
    for name in DIM_FIELDS:
        value = dims[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise WeightsError(f"{source}: dimension {name}={value!r} must be a positive integer")
    if dims["n_audio_state"] != dims["n_text_state"]:
        # openai-whisper's cross-attention applies (n_text_state, n_text_state) weights to audio features
        raise WeightsError(
            f"{source}: n_audio_state={dims['n_audio_state']} differs from n_text_state={dims['n_text_state']}"
        )
    for side in ("audio", "text"):
        if dims[f"n_{side}_state"] % dims[f"n_{side}_head"]:
            raise WeightsError(
                f"{source}: n_{side}_state={dims[f'n_{side}_state']} is not divisible by "
                f"n_{side}_head={dims[f'n_{side}_head']}"
            )
