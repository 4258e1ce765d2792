"""Hugging Face BERT checkpoints -> zoo Bert, and loading HF-format BERT folders.

HF names differ by head class: BertModel keys have no prefix, BertFor* keys sit under "bert.", the MLM head
under "cls.predictions." and the sequence classifier under "classifier.". Old Google conversions name
LayerNorm parameters gamma/beta. Every key must be known: unknown keys are errors, and keys the target task
has no module for (the pooler of a masked-LM model, the next-sentence head) are dropped by name, never by
accident.
"""

import json
import re
from pathlib import Path

import torch

from shared.errors import WeightsError
from shared.pretrained import check_state_dict
from text.bert import Bert, BertConfig
from text.checkpoint_io import read_state_dict, weights_file

# HF key (prefix "bert." removed) -> zoo key; {} is the layer index.
TRUNK = {
    "embeddings.word_embeddings.weight": "bert.embed.text.token.weight",
    "embeddings.position_embeddings.weight": "bert.embed.text.positions.weight",
    "embeddings.token_type_embeddings.weight": "bert.embed.token_type.weight",
    "embeddings.LayerNorm.{w}": "bert.embed.norm.{w}",
    "encoder.layer.{}.attention.self.query.{w}": "bert.encoder.blocks.{}.attn.q_proj.{w}",
    "encoder.layer.{}.attention.self.key.{w}": "bert.encoder.blocks.{}.attn.k_proj.{w}",
    "encoder.layer.{}.attention.self.value.{w}": "bert.encoder.blocks.{}.attn.v_proj.{w}",
    "encoder.layer.{}.attention.output.dense.{w}": "bert.encoder.blocks.{}.attn.out_proj.{w}",
    "encoder.layer.{}.attention.output.LayerNorm.{w}": "bert.encoder.blocks.{}.attn_norm.{w}",
    "encoder.layer.{}.intermediate.dense.{w}": "bert.encoder.blocks.{}.mlp.fc1.{w}",
    "encoder.layer.{}.output.dense.{w}": "bert.encoder.blocks.{}.mlp.fc2.{w}",
    "encoder.layer.{}.output.LayerNorm.{w}": "bert.encoder.blocks.{}.mlp_norm.{w}",
}
POOLER = {"pooler.dense.{w}": "bert.pooler.dense.{w}"}
MLM = {
    "cls.predictions.transform.dense.{w}": "head.dense.{w}",
    "cls.predictions.transform.LayerNorm.{w}": "head.norm.{w}",
    "cls.predictions.bias": "head.decoder.bias",
}
CLASSIFIER = {"classifier.{w}": "head.fc.{w}"}
# Which groups each task has modules for.
TASK_GROUPS = {
    "features": (TRUNK, POOLER),
    "masked-lm": (TRUNK, MLM),
    "classification": (TRUNK, POOLER, CLASSIFIER),
    "embedding": (TRUNK,),
}
# Known keys that carry nothing of their own: the position-id buffer, the MLM decoder tied to the token
# embedding (its bias duplicates cls.predictions.bias) and the next-sentence head, which zoo does not model.
REDUNDANT = re.compile(r"embeddings\.position_ids|cls\.predictions\.decoder\.(weight|bias)"
                       r"|cls\.seq_relationship\.(weight|bias)")


def _pattern(table: dict[str, str]) -> list[tuple[re.Pattern, str]]:
    """Compile HF-key templates: {} matches a layer index, {w} a parameter name (weight or bias)."""
    out = []
    for src, dst in table.items():
        regex = re.escape(src).replace(r"\{\}", r"(?P<layer>\d+)").replace(r"\{w\}", r"(?P<w>weight|bias)")
        out.append((re.compile(regex + "$"), dst))
    return out


_GROUPS = {id(table): _pattern(table) for table in (TRUNK, POOLER, MLM, CLASSIFIER)}


def _normalise(key: str) -> str:
    key = key.removeprefix("bert.")
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)


def _match(key: str) -> tuple[int, str] | None:
    """(id of the group, zoo key) for a normalised HF key, or None if no table knows it."""
    for table_id, patterns in _GROUPS.items():
        for regex, dst in patterns:
            found = regex.match(key)
            if found:
                parts = found.groupdict()
                dst = dst.replace("{}", parts.get("layer") or "")
                return table_id, dst.replace("{w}", parts.get("w") or "")
    return None


def convert_bert(state: dict[str, torch.Tensor], config: BertConfig) -> dict[str, torch.Tensor]:
    """HF BERT state dict (any head class) -> zoo Bert state dict for config.task.

    Raises WeightsError for an unknown key or an MLM decoder that is not tied to the token embedding.
    Groups the task has no module for are dropped; completeness is checked when the result is loaded.
    """
    wanted = {id(table) for table in TASK_GROUPS[config.task]}
    normalised = {_normalise(k): v for k, v in state.items()}
    out = {}
    for key, tensor in normalised.items():
        if REDUNDANT.fullmatch(key):
            continue
        found = _match(key)
        if found is None:
            raise WeightsError(f"unknown BERT weight {key!r}: not a BertModel/BertForMaskedLM/"
                               "BertForSequenceClassification checkpoint?")
        table_id, zoo_key = found
        if table_id in wanted:
            out[zoo_key] = tensor
    decoder = normalised.get("cls.predictions.decoder.weight")
    token = normalised.get("embeddings.word_embeddings.weight")
    tied = decoder is None or token is None or torch.equal(decoder, token)
    if config.task == "masked-lm" and not tied:
        raise WeightsError("the checkpoint's MLM decoder is not tied to the token embedding; "
                           "zoo's BERT ties them")
    if "head.decoder.bias" not in out and "cls.predictions.decoder.bias" in normalised and id(MLM) in wanted:
        out["head.decoder.bias"] = normalised["cls.predictions.decoder.bias"]
    return out


# ---------------------------------------------------------------------------------------- HF folders

# BertConfig field <- HF config.json field; checked so a folder cannot load into the wrong size of model.
HF_FIELDS = {
    "vocab_size": "vocab_size", "dim": "hidden_size", "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads", "mlp_hidden": "intermediate_size", "max_len": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size", "activation": "hidden_act", "norm_eps": "layer_norm_eps",
}
_HF_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def config_from_hf(hf: dict, **overrides) -> BertConfig:
    """A BertConfig from the fields of an HF BERT config.json (task etc. from overrides)."""
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise WeightsError(f"BERT with position_embedding_type={hf['position_embedding_type']!r} is not "
                           "supported; zoo's BERT uses absolute positions")
    act = hf.get("hidden_act", "gelu")
    if act not in _HF_ACTIVATIONS:
        raise WeightsError(f"BERT config: activation {act!r} is not supported; "
                           f"use one of {sorted(_HF_ACTIVATIONS)}")
    fields = {ours: hf[theirs] for ours, theirs in HF_FIELDS.items() if theirs in hf}
    fields["activation"] = _HF_ACTIVATIONS[act]
    fields["dropout"] = hf.get("hidden_dropout_prob", 0.1)
    fields["attn_dropout"] = hf.get("attention_probs_dropout_prob", 0.1)
    fields["pad_id"] = hf.get("pad_token_id") or 0
    return BertConfig(**{**fields, **overrides})


def check_hf_config(path: Path, config: BertConfig) -> None:
    """Compare an HF config.json with the model's config; one line naming the first mismatch."""
    try:
        hf = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{path}: not valid JSON ({err})") from None
    if hf.get("model_type", "bert") != "bert":
        raise WeightsError(f"{path}: holds a {hf['model_type']!r} model, not a BERT")
    theirs = config_from_hf(hf, task=config.task, num_classes=config.num_classes)
    for ours in HF_FIELDS:
        a, b = getattr(theirs, ours), getattr(config, ours)
        if a != b and not (isinstance(a, float) and abs(a - b) <= 1e-6 * max(abs(a), abs(b))):
            raise WeightsError(f"{path}: the checkpoint has {HF_FIELDS[ours]}={a}, this model {ours}={b}; "
                               f"pick the matching model name or pass {ours}={a}")


def load_hf_bert(path: str | Path, model: Bert) -> Bert:
    """Fill `model` in place from an HF BERT folder or weights file (the WeightSpec loader).

    A config.json beside the weights is checked against the model's sizes first. A classification model
    loading a checkpoint without a classifier keeps its fresh zero-initialised head (a fine-tune's start).
    """
    path = Path(path)
    weights = weights_file(path)
    config_path = weights.parent / "config.json"
    if config_path.is_file():
        check_hf_config(config_path, model.config)
    state = convert_bert(read_state_dict(weights), model.config)
    if model.config.task == "classification" and not any(k.startswith("head.") for k in state):
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})
    check_state_dict(model, state, str(weights))
    model.load_state_dict(state, strict=True)
    return model
