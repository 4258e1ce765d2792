"""Hugging Face BERT checkpoints -> zoo Bert, and loading HF-format BERT folders.

HF names differ by head class: BertModel keys have no prefix, BertFor* keys sit under "bert.", the MLM head
under "cls.predictions." and the sequence classifier under "classifier.". Old Google conversions name
LayerNorm parameters gamma/beta. Every key must be known: unknown keys are errors, and keys the target task
has no module for (the pooler of a masked-LM model, the next-sentence head) are dropped by name, never by
accident.
"""

import re
from pathlib import Path

import torch

from shared.convert import convert_state, drop, linear, model_keys, require_equal
from shared.errors import WeightsError
from shared.pretrained import load_checked
from shared.state_dict import read_json, read_state_dict, weights_file
from text.bert import Bert, BertConfig

_LAYER, _BLOCK = "encoder.layer.{}", "bert.encoder.blocks.{}"
# HF key (prefix "bert." removed, LayerNorm gamma/beta renamed) -> zoo key, in groups by module.
TRUNK = {
    "embeddings.word_embeddings.weight": "bert.embed.text.token.weight",
    "embeddings.position_embeddings.weight": "bert.embed.text.positions.weight",
    "embeddings.token_type_embeddings.weight": "bert.embed.token_type.weight",
    **linear("embeddings.LayerNorm", "bert.embed.norm"),
    **linear(f"{_LAYER}.attention.self.query", f"{_BLOCK}.attn.q_proj"),
    **linear(f"{_LAYER}.attention.self.key", f"{_BLOCK}.attn.k_proj"),
    **linear(f"{_LAYER}.attention.self.value", f"{_BLOCK}.attn.v_proj"),
    **linear(f"{_LAYER}.attention.output.dense", f"{_BLOCK}.attn.out_proj"),
    **linear(f"{_LAYER}.attention.output.LayerNorm", f"{_BLOCK}.attn_norm"),
    **linear(f"{_LAYER}.intermediate.dense", f"{_BLOCK}.mlp.fc1"),
    **linear(f"{_LAYER}.output.dense", f"{_BLOCK}.mlp.fc2"),
    **linear(f"{_LAYER}.output.LayerNorm", f"{_BLOCK}.mlp_norm"),
}
POOLER = linear("pooler.dense", "bert.pooler.dense")
MLM = {
    **linear("cls.predictions.transform.dense", "head.dense"),
    **linear("cls.predictions.transform.LayerNorm", "head.norm"),
    "cls.predictions.bias": "head.decoder.bias",
}
CLASSIFIER = linear("classifier", "head.fc")
# Which groups each task has modules for; the others are known keys the task drops.
TASK_GROUPS = {
    "features": (TRUNK, POOLER),
    "masked-lm": (TRUNK, MLM),
    "classification": (TRUNK, POOLER, CLASSIFIER),
    "embedding": (TRUNK,),
}
# Known keys that carry nothing of their own: the position-id buffer, the MLM decoder tied to the token
# embedding (its bias duplicates cls.predictions.bias) and the next-sentence head, which zoo does not model.
REDUNDANT = (r"embeddings\.position_ids", r"cls\.predictions\.decoder\.(weight|bias)",
             r"cls\.seq_relationship\.(weight|bias)")
HINT = "expected a BertModel, BertForMaskedLM, BertForPreTraining or BertForSequenceClassification checkpoint"


def _normalise(key: str) -> str:
    key = key.removeprefix("bert.")
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))


def convert_bert(state: dict[str, torch.Tensor], config: BertConfig,
                 source: str = "BERT checkpoint") -> dict[str, torch.Tensor]:
    """HF BERT state dict (any head class) -> zoo Bert state dict for config.task.

    Raises WeightsError for an unknown or missing key, or an MLM decoder that is not tied to the token
    embedding. Groups the task has no module for are dropped; a classifier may be absent (a fine-tune's start).
    """
    state = {_normalise(k): v for k, v in state.items()}
    if "cls.predictions.bias" not in state and "cls.predictions.decoder.bias" in state:
        state["cls.predictions.bias"] = state.pop("cls.predictions.decoder.bias")
    if config.task == "masked-lm":
        require_equal(state, "cls.predictions.decoder.weight", "embeddings.word_embeddings.weight",
                      source=source, why="zoo's BERT ties the MLM decoder to the token embedding")
    wanted = TASK_GROUPS[config.task]
    table = {}
    for group in (TRUNK, POOLER, MLM, CLASSIFIER):
        table.update(group if any(group is w for w in wanted) else dict.fromkeys(group, drop()))
    return convert_state(state, table, source=source, expected=model_keys(Bert, config), ignore=REDUNDANT,
                         optional=_fresh_head(config), hint=HINT)


def _fresh_head(config: BertConfig) -> tuple[str, ...]:
    """A classifier that a checkpoint may lack: the model then keeps its own zero-initialised one."""
    return ("head.fc.weight", "head.fc.bias") if config.task == "classification" else ()


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
    hf = read_json(path, "Hugging Face BERT")
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
    state = convert_bert(read_state_dict(weights), model.config, source=str(weights))
    for key in _fresh_head(model.config):
        state.setdefault(key, model.state_dict()[key])
    return load_checked(model, state, str(weights))
