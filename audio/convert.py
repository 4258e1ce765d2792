"""Converters from foreign Whisper checkpoints to openai-whisper's key naming.

openai-whisper's `Whisper.state_dict()` names are the canonical form in this repo: the zoo Whisper model maps
from them, so each foreign format needs one pure function to get there:

    CTranslate2 model.bin variables  --ct2_to_openai-->  openai names
    HF WhisperForConditionalGeneration  --hf_to_openai-->  openai names
    openai-whisper .pt                  --load_openai_checkpoint-->  (dims, openai names)

Each converter is a key table with layer placeholders plus explicit transforms (CTranslate2 fuses q/k/v and
cross-attention k/v; Whisper's key projection has no bias; the output projection is tied to the token
embedding). Unknown or missing keys are `WeightsFormatError`s naming the key, never silently skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from audio.ct2 import WeightsFormatError

DIM_FIELDS = (
    "n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
    "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer",
)  # fmt: skip

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


def check_openai_state(state: Mapping[str, torch.Tensor], dims: Mapping[str, int], source: str) -> None:
    """Raise WeightsFormatError unless `state` has exactly openai-whisper's keys and shapes for `dims`."""
    expected = openai_shapes(dims)
    for key in state:
        if key not in expected:
            raise WeightsFormatError(
                f"{source}: unexpected key {key!r} for a Whisper model of dims {dict(dims)}"
            )
    for key, shape in expected.items():
        if key not in state:
            raise WeightsFormatError(f"{source}: missing key {key!r}")
        if tuple(state[key].shape) != shape:
            raise WeightsFormatError(
                f"{source}: key {key!r} has shape {tuple(state[key].shape)}, expected {shape}"
            )


# ---------------------------------------------------------------------------------------------------------
# CTranslate2

# Per-layer tables, CTranslate2 suffix -> openai suffix; "{p}" stands for weight and bias.
_CT2_BLOCK = {
    "self_attention/linear_1/{p}": "attn.out.{p}",
    "self_attention/layer_norm/gamma": "attn_ln.weight",
    "self_attention/layer_norm/beta": "attn_ln.bias",
    "ffn/linear_0/{p}": "mlp.0.{p}",
    "ffn/linear_1/{p}": "mlp.2.{p}",
    "ffn/layer_norm/gamma": "mlp_ln.weight",
    "ffn/layer_norm/beta": "mlp_ln.bias",
}
_CT2_CROSS = {
    "attention/linear_0/{p}": "cross_attn.query.{p}",
    "attention/linear_2/{p}": "cross_attn.out.{p}",
    "attention/layer_norm/gamma": "cross_attn_ln.weight",
    "attention/layer_norm/beta": "cross_attn_ln.bias",
}
# Fused projections: CTranslate2 stacks the rows of several Linear layers into one.
_CT2_FUSED_SELF = ("self_attention/linear_0", "attn", ("query", "key", "value"))
_CT2_FUSED_CROSS = ("attention/linear_1", "cross_attn", ("key", "value"))
_CT2_GLOBAL = {
    "encoder/conv1/{p}": "encoder.conv1.{p}",
    "encoder/conv2/{p}": "encoder.conv2.{p}",
    "encoder/position_encodings/encodings": "encoder.positional_embedding",
    "encoder/layer_norm/gamma": "encoder.ln_post.weight",
    "encoder/layer_norm/beta": "encoder.ln_post.bias",
    "decoder/embeddings/weight": "decoder.token_embedding.weight",
    "decoder/position_encodings/encodings": "decoder.positional_embedding",
    "decoder/layer_norm/gamma": "decoder.ln.weight",
    "decoder/layer_norm/beta": "decoder.ln.bias",
}
# Scalar options of CTranslate2's WhisperSpec, with the value openai-whisper's architecture implies
# (None: any value; it only matters to CTranslate2's own runtime).
_CT2_GELU = 3  # CTranslate2's ActivationType.GELU (erf form), which openai-whisper uses
_CT2_OPTIONS = {
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
_CT2_PROJECTION = "decoder/projection/weight"


def _expand(table: Mapping[str, str], src_prefix: str, dst_prefix: str) -> dict[str, str]:
    out = {}
    for src, dst in table.items():
        for p in ("weight", "bias") if "{p}" in src else ("",):
            out[src_prefix + src.format(p=p)] = dst_prefix + dst.format(p=p)
    return out


def ct2_to_openai(
    variables: Mapping[str, torch.Tensor], n_text_layers: int, n_audio_layers: int
) -> dict[str, torch.Tensor]:
    """CTranslate2 WhisperSpec variables (aliases resolved, e.g. from `audio.ct2.load_ct2_variables`) to an
    openai-whisper state dict. Tensors keep their stored dtype (float16 for the shipped files).

    Splits fused [q; k; v] and cross-attention [k; v] rows, checks the key-bias rows are zero before dropping
    them, checks the output projection is tied to the token embedding, and checks the scalar options match
    openai-whisper's architecture.
    """
    source = "CTranslate2 variables"
    left = dict(variables)

    def take(name: str) -> torch.Tensor:
        if name not in left:
            raise WeightsFormatError(f"{source}: missing variable {name!r}")
        return left.pop(name)

    table = _expand(_CT2_GLOBAL, "", "")
    for i in range(n_audio_layers):
        table |= _expand(_CT2_BLOCK, f"encoder/layer_{i}/", f"encoder.blocks.{i}.")
    for i in range(n_text_layers):
        table |= _expand(_CT2_BLOCK | _CT2_CROSS, f"decoder/layer_{i}/", f"decoder.blocks.{i}.")
    out = {dst: take(src) for src, dst in table.items()}

    fused = [(f"encoder/layer_{i}/", f"encoder.blocks.{i}.", _CT2_FUSED_SELF) for i in range(n_audio_layers)]
    for i in range(n_text_layers):
        fused += [
            (f"decoder/layer_{i}/", f"decoder.blocks.{i}.", f) for f in (_CT2_FUSED_SELF, _CT2_FUSED_CROSS)
        ]
    for src_prefix, dst_prefix, (src, attn, parts) in fused:
        for p in ("weight", "bias"):
            name = f"{src_prefix}{src}/{p}"
            tensor = take(name)
            if tensor.ndim == 0 or tensor.shape[0] % len(parts):
                raise WeightsFormatError(
                    f"{source}: {name!r} has shape {tuple(tensor.shape)}, "
                    f"not {len(parts)} stacked projections"
                )
            for part, piece in zip(parts, tensor.chunk(len(parts), dim=0)):
                if part == "key" and p == "bias":
                    if torch.count_nonzero(piece):
                        raise WeightsFormatError(
                            f"{source}: the key rows of {name!r} are not zero; Whisper's key projection "
                            "has no bias, so these weights are not a Whisper model"
                        )
                    continue
                out[f"{dst_prefix}{attn}.{part}.{p}"] = (
                    piece.clone()
                )  # own memory, not a view of the fused one

    embedding = out["decoder.token_embedding.weight"]
    projection = take(_CT2_PROJECTION)
    if projection is not embedding and not torch.equal(projection, embedding):
        raise WeightsFormatError(
            f"{source}: {_CT2_PROJECTION!r} differs from 'decoder/embeddings/weight'; openai-whisper ties "
            "the output projection to the token embedding"
        )
    for name, required in _CT2_OPTIONS.items():
        value = take(name)
        if value.numel() != 1:
            raise WeightsFormatError(
                f"{source}: option {name!r} should be a scalar, got shape {tuple(value.shape)}"
            )
        if required is not None and int(value.item()) != required:
            raise WeightsFormatError(
                f"{source}: option {name!r} is {int(value.item())}, but openai-whisper's architecture needs "
                f"{required}"
            )
    if left:
        name = sorted(left)[0]
        hint = " (int8-quantized files are not supported)" if name.endswith("weight_scale") else ""
        raise WeightsFormatError(f"{source}: unexpected variable {name!r}{hint}")
    return out


def load_ct2_whisper(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """Read a CTranslate2 Whisper folder (model.bin, optional config.json) or model.bin file.

    Returns:
        (dims, state_dict): ModelDimensions fields and an openai-whisper state dict, checked to agree.
    """
    from audio.ct2 import load_ct2_variables

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

    def get(name: str) -> torch.Tensor:
        if name not in variables:
            raise WeightsFormatError(f"CTranslate2 variables: missing variable {name!r}")
        return variables[name]

    def count_layers(side: str) -> int:
        pattern = re.compile(rf"{side}/layer_(\d+)/")
        found = {int(m.group(1)) for k in variables if (m := pattern.match(k))}
        if found != set(range(len(found))):
            raise WeightsFormatError(
                f"CTranslate2 variables: {side} layer indices {sorted(found)} are not 0..n-1"
            )
        return len(found)

    conv1 = get("encoder/conv1/weight")  # (n_audio_state, n_mels, 3)
    embedding = get("decoder/embeddings/weight")  # (n_vocab, n_text_state)
    dims = {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": get("encoder/position_encodings/encodings").shape[0],
        "n_audio_state": conv1.shape[0],
        "n_audio_head": int(get("encoder/num_heads").item()),
        "n_audio_layer": count_layers("encoder"),
        "n_vocab": embedding.shape[0],
        "n_text_ctx": get("decoder/position_encodings/encodings").shape[0],
        "n_text_state": embedding.shape[1],
        "n_text_head": int(get("decoder/num_heads").item()),
        "n_text_layer": count_layers("decoder"),
    }
    _check_dims(dims, "CTranslate2 variables")
    if config_json is not None:
        _check_ct2_config(config_json, dims)
    return dims


def _check_ct2_config(config: Mapping[str, Any] | str | os.PathLike, dims: Mapping[str, int]) -> None:
    source = "CTranslate2 config.json"
    if not isinstance(config, Mapping):
        source = str(config)
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, ValueError) as err:
            raise WeightsFormatError(f"{source}: cannot read it as JSON ({err})") from None
    for key in ("suppress_ids", "suppress_ids_begin", "lang_ids"):
        ids = config.get(key, [])
        if any(not isinstance(i, int) or not 0 <= i < dims["n_vocab"] for i in ids):
            raise WeightsFormatError(
                f"{source}: {key!r} holds ids outside the vocabulary of {dims['n_vocab']}"
            )
    for pair in config.get("alignment_heads", []):
        if not (
            len(pair) == 2 and 0 <= pair[0] < dims["n_text_layer"] and 0 <= pair[1] < dims["n_text_head"]
        ):
            raise WeightsFormatError(
                f"{source}: alignment head {pair} is not a (layer, head) of this decoder"
            )


# ---------------------------------------------------------------------------------------------------------
# HF transformers

_HF_BLOCK = {
    "self_attn.q_proj.{p}": "attn.query.{p}",
    "self_attn.k_proj.weight": "attn.key.weight",
    "self_attn.v_proj.{p}": "attn.value.{p}",
    "self_attn.out_proj.{p}": "attn.out.{p}",
    "self_attn_layer_norm.{p}": "attn_ln.{p}",
    "fc1.{p}": "mlp.0.{p}",
    "fc2.{p}": "mlp.2.{p}",
    "final_layer_norm.{p}": "mlp_ln.{p}",
}
_HF_CROSS = {
    "encoder_attn.q_proj.{p}": "cross_attn.query.{p}",
    "encoder_attn.k_proj.weight": "cross_attn.key.weight",
    "encoder_attn.v_proj.{p}": "cross_attn.value.{p}",
    "encoder_attn.out_proj.{p}": "cross_attn.out.{p}",
    "encoder_attn_layer_norm.{p}": "cross_attn_ln.{p}",
}
_HF_GLOBAL = {
    "model.encoder.conv1.{p}": "encoder.conv1.{p}",
    "model.encoder.conv2.{p}": "encoder.conv2.{p}",
    "model.encoder.embed_positions.weight": "encoder.positional_embedding",
    "model.encoder.layer_norm.{p}": "encoder.ln_post.{p}",
    "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    "model.decoder.layer_norm.{p}": "decoder.ln.{p}",
}
_HF_PROJECTION = "proj_out.weight"


def hf_to_openai(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A HF `WhisperForConditionalGeneration` state dict to openai-whisper names.

    `proj_out.weight` may be absent (tied weights are often not saved); if present it must equal the token
    embedding, because openai-whisper always ties them. Layer counts are read from the keys.
    """
    source = "HF Whisper state dict"
    n_layers = {}
    for side in ("encoder", "decoder"):
        pattern = re.compile(rf"model\.{side}\.layers\.(\d+)\.")
        found = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
        n_layers[side] = max(found, default=-1) + 1  # a gap shows up below as a missing key

    table = _expand(_HF_GLOBAL, "", "")
    for i in range(n_layers["encoder"]):
        table |= _expand(_HF_BLOCK, f"model.encoder.layers.{i}.", f"encoder.blocks.{i}.")
    for i in range(n_layers["decoder"]):
        table |= _expand(_HF_BLOCK | _HF_CROSS, f"model.decoder.layers.{i}.", f"decoder.blocks.{i}.")

    for key in state_dict:
        if key not in table and key != _HF_PROJECTION:
            raise WeightsFormatError(f"{source}: unexpected key {key!r}")
    for key in table:
        if key not in state_dict:
            raise WeightsFormatError(f"{source}: missing key {key!r}")
    out = {dst: state_dict[src] for src, dst in table.items()}
    if _HF_PROJECTION in state_dict and not torch.equal(
        state_dict[_HF_PROJECTION], out["decoder.token_embedding.weight"]
    ):
        raise WeightsFormatError(
            f"{source}: {_HF_PROJECTION!r} differs from 'model.decoder.embed_tokens.weight'; openai-whisper "
            "ties the output projection to the token embedding"
        )
    return out


def dims_from_hf(config: Any) -> dict[str, int]:
    """openai-whisper ModelDimensions fields from a HF `WhisperConfig` (object or config.json dict).

    Raises WeightsFormatError for settings openai-whisper's architecture cannot express.
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
        raise WeightsFormatError(f"{source}: missing or non-integer field ({err})") from None
    for field in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if get(field, 4 * d_model) != 4 * d_model:
            raise WeightsFormatError(
                f"{source}: {field}={get(field)} but openai-whisper's MLP is 4 x d_model"
            )
    if get("activation_function", "gelu") != "gelu":
        raise WeightsFormatError(f"{source}: activation_function={get('activation_function')!r}, need 'gelu'")
    if get("scale_embedding", False):
        raise WeightsFormatError(
            f"{source}: scale_embedding=True is not part of openai-whisper's architecture"
        )
    _check_dims(dims, source)
    return dims


# ---------------------------------------------------------------------------------------------------------
# openai-whisper .pt


def load_openai_checkpoint(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """Read an openai-whisper `.pt` file ({"dims": {...}, "model_state_dict": {...}}) safely.

    Uses `torch.load(weights_only=True)`, so a file that would need arbitrary code to unpickle is refused.

    Returns:
        (dims, state_dict): ModelDimensions fields and the state dict, checked against each other.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such openai-whisper checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # on garbage torch's unpickler raises almost anything (IndexError, ...)
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsFormatError(
            f"{path}: not a loadable openai-whisper checkpoint ({first_line[:200]})"
        ) from err
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise WeightsFormatError(f"{path}: expected a dict with 'dims' and 'model_state_dict'")
    raw_dims, state = checkpoint["dims"], checkpoint["model_state_dict"]
    if not isinstance(raw_dims, dict) or set(raw_dims) != set(DIM_FIELDS):
        raise WeightsFormatError(f"{path}: 'dims' must hold exactly the fields {DIM_FIELDS}")
    dims = {k: raw_dims[k] for k in DIM_FIELDS}
    _check_dims(dims, str(path))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFormatError(f"{path}: 'model_state_dict' must map names to tensors")
    check_openai_state(state, dims, str(path))
    return dims, state


def _check_dims(dims: Mapping[str, Any], source: str) -> None:
    for name in DIM_FIELDS:
        value = dims[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise WeightsFormatError(f"{source}: dimension {name}={value!r} must be a positive integer")
    if dims["n_audio_state"] != dims["n_text_state"]:
        # openai-whisper's cross-attention applies (n_text_state, n_text_state) weights to audio features
        raise WeightsFormatError(
            f"{source}: n_audio_state={dims['n_audio_state']} differs from "
            f"n_text_state={dims['n_text_state']}"
        )
    for side in ("audio", "text"):
        if dims[f"n_{side}_state"] % dims[f"n_{side}_head"]:
            raise WeightsFormatError(
                f"{source}: n_{side}_state={dims[f'n_{side}_state']} is not divisible by "
                f"n_{side}_head={dims[f'n_{side}_head']}"
            )
