"""Hugging Face T5 checkpoints (v1.0 and v1.1) -> zoo T5.

HF T5 keeps one embedding `shared` (its encoder/decoder `embed_tokens` are aliases of it), numbers the
sublayers of a block (`layer.0` self-attention, `layer.1` cross-attention in the decoder, then the FFN) and
stores the relative position bias in block 0 of each stack only.
"""

import re
from pathlib import Path

import torch

from shared.convert import convert_state, drop, model_keys, require_equal
from shared.errors import WeightsError
from text.checkpoint_io import build_from_hf, load_converted
from text.t5 import T5, T5Config

# Aliases of `shared.weight` that HF may or may not write; when present they must equal it.
EMBED_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Older checkpoints carry a never-used bias table in the decoder's first cross-attention.
IGNORED = (re.escape("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"),)


def _tied(hf: dict) -> bool:
    # transformers >= 5 always writes tie_word_embeddings=True and marks v1.1 by scale_decoder_outputs=False
    return hf.get("tie_word_embeddings", True) is not False and hf.get("scale_decoder_outputs") is not False


def config_from_hf(hf: dict) -> T5Config:
    """A T5Config from the fields of an HF T5 config.json."""
    proj = hf.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act = proj.removeprefix("gated-")
    acts = {"relu": "relu", "gelu": "gelu_tanh" if gated else "gelu", "gelu_new": "gelu_tanh", "silu": "silu"}
    if act not in acts:
        raise WeightsError(f"T5 config: feed_forward_proj {proj!r} is not supported")
    layers = hf.get("num_layers", 6)
    return T5Config(
        vocab_size=hf.get("vocab_size", 32128), dim=hf.get("d_model", 512), n_encoder_layers=layers,
        n_decoder_layers=hf.get("num_decoder_layers") or layers, n_heads=hf.get("num_heads", 8),
        head_dim=hf.get("d_kv", 64), mlp_hidden=hf.get("d_ff", 2048), gated_mlp=gated, activation=acts[act],
        tie_embeddings=_tied(hf),
        num_buckets=hf.get("relative_attention_num_buckets", 32),
        max_distance=hf.get("relative_attention_max_distance", 128),
        norm_eps=hf.get("layer_norm_epsilon", 1e-6), dropout=hf.get("dropout_rate", 0.1),
        pad_id=hf.get("pad_token_id", 0), eos_id=hf.get("eos_token_id", 1),
        decoder_start_id=hf.get("decoder_start_token_id", 0))


def stack_table(theirs: str, ours: str, decoder: bool, gated: bool) -> dict:
    """HF key -> zoo key for one stack ("encoder" or "decoder") of blocks (MusicGen reuses the encoder's)."""
    layer, block = f"{theirs}.block.{{}}.layer", f"{ours}.blocks.{{}}"
    attention = [("attn", "attn_norm", "0.SelfAttention", "0.layer_norm")]
    if decoder:
        attention.append(("cross_attn", "cross_norm", "1.EncDecAttention", "1.layer_norm"))
    table = {}
    for attn, norm, their_attn, their_norm in attention:
        for a, b in (("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("out_proj", "o")):
            table[f"{layer}.{their_attn}.{b}.weight"] = f"{block}.{attn}.{a}.weight"
        table[f"{layer}.{their_norm}.weight"] = f"{block}.{norm}.weight"
    ffn = f"{layer}.{2 if decoder else 1}"
    mlp = {"gate": "wi_0", "up": "wi_1", "fc2": "wo"} if gated else {"fc1": "wi", "fc2": "wo"}
    for a, b in mlp.items():
        table[f"{ffn}.DenseReluDense.{b}.weight"] = f"{block}.mlp.{a}.weight"
    table[f"{ffn}.layer_norm.weight"] = f"{block}.mlp_norm.weight"
    # the relative position bias lives in block 0 of each stack and serves all its blocks
    table[f"{theirs}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = \
        f"{ours}.position_bias.embedding.weight"
    table[f"{theirs}.final_layer_norm.weight"] = f"{ours}.final_norm.weight"
    return table


def convert_t5(hf_state: dict[str, torch.Tensor], config: T5Config,
               source: str = "T5 checkpoint") -> dict[str, torch.Tensor]:
    """An HF T5ForConditionalGeneration state dict -> a zoo T5 state dict (WeightsError naming a bad key)."""
    state = dict(hf_state)
    for alias in EMBED_ALIASES:
        require_equal(state, alias, "shared.weight", source=source, why="zoo's T5 shares one")
    if config.tie_embeddings:
        require_equal(state, "lm_head.weight", "shared.weight", source=source,
                      why="the config ties them; set tie_embeddings=False")
    elif "lm_head.weight" not in state and "shared.weight" in state:
        # transformers >= 5 ties T5's head to the embedding even for v1.1 and then leaves it out of the files
        state["lm_head.weight"] = state["shared.weight"]
    table = {
        "shared.weight": "decoder.embed.token.weight",
        **dict.fromkeys(EMBED_ALIASES, drop()),
        "lm_head.weight": drop() if config.tie_embeddings else "decoder.head.lm_head.weight",
        **stack_table("encoder", "encoder", False, config.gated_mlp),
        **stack_table("decoder", "decoder.stack", True, config.gated_mlp),
    }
    return convert_state(state, table, source=source, expected=model_keys(T5, config), ignore=IGNORED)


def load_hf_t5(path: str | Path, model: T5) -> T5:
    """Fill `model` in place from an HF T5 folder or weights file."""
    return load_converted(path, model, convert_t5)


def t5_from_hf(path: str | Path) -> T5:
    """Build a T5 whose config follows the folder's config.json, and load its weights."""
    return build_from_hf(path, "T5", config_from_hf, T5, convert_t5)
