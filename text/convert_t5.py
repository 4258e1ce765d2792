"""Hugging Face T5 checkpoints (v1.0 and v1.1) -> zoo T5.

HF T5 keeps one embedding `shared` (its encoder/decoder `embed_tokens` are aliases of it), numbers the
sublayers of a block (`layer.0` self-attention, `layer.1` cross-attention in the decoder, then the FFN) and
stores the relative position bias in block 0 of each stack only.
"""

from pathlib import Path

import torch

from shared.errors import WeightsError
from text.checkpoint_io import build_from_hf, load_converted
from text.t5 import T5, T5Config

# Aliases of `shared.weight` that HF may or may not write; when present they must equal it.
EMBED_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Older checkpoints carry a never-used bias table in the decoder's first cross-attention.
IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


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


def _layer_keys(config: T5Config, decoder: bool) -> dict[str, str]:
    """zoo block key -> HF block key, for one block."""
    keys = {}
    attention = [("attn", "attn_norm", "layer.0.SelfAttention", "layer.0.layer_norm")]
    if decoder:
        attention.append(("cross_attn", "cross_norm", "layer.1.EncDecAttention", "layer.1.layer_norm"))
    for ours, our_norm, theirs, their_norm in attention:
        for a, b in (("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("out_proj", "o")):
            keys[f"{ours}.{a}.weight"] = f"{theirs}.{b}.weight"
        keys[f"{our_norm}.weight"] = f"{their_norm}.weight"
    ffn = f"layer.{2 if decoder else 1}"
    mlp = ({"gate": "wi_0", "up": "wi_1", "fc2": "wo"} if config.gated_mlp else {"fc1": "wi", "fc2": "wo"})
    for a, b in mlp.items():
        keys[f"mlp.{a}.weight"] = f"{ffn}.DenseReluDense.{b}.weight"
    keys["mlp_norm.weight"] = f"{ffn}.layer_norm.weight"
    return keys


def convert_t5(hf_state: dict[str, torch.Tensor], config: T5Config,
               source: str = "T5 checkpoint") -> dict[str, torch.Tensor]:
    """An HF T5ForConditionalGeneration state dict -> a zoo T5 state dict (WeightsError naming a bad key)."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set(IGNORED)

    def take(key: str) -> torch.Tensor:
        if key not in hf_state:
            raise WeightsError(f"{source}: missing weight {key!r}")
        used.add(key)
        return hf_state[key]

    shared = take("shared.weight")
    out["decoder.embed.token.weight"] = shared
    for alias in EMBED_ALIASES:
        if alias in hf_state:
            used.add(alias)
            if not torch.equal(hf_state[alias], shared):
                raise WeightsError(f"{source}: {alias} differs from shared.weight; zoo's T5 shares one")
    for ours, theirs, n_layers, decoder in (("encoder", "encoder", config.n_encoder_layers, False),
                                            ("decoder.stack", "decoder", config.n_decoder_layers, True)):
        keys = _layer_keys(config, decoder)
        for i in range(n_layers):
            for a, b in keys.items():
                out[f"{ours}.blocks.{i}.{a}"] = take(f"{theirs}.block.{i}.{b}")
        out[f"{ours}.position_bias.embedding.weight"] = take(
            f"{theirs}.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
        out[f"{ours}.final_norm.weight"] = take(f"{theirs}.final_layer_norm.weight")
    if config.tie_embeddings:
        if "lm_head.weight" in hf_state:
            used.add("lm_head.weight")
            if not torch.equal(hf_state["lm_head.weight"], shared):
                raise WeightsError(f"{source}: lm_head.weight differs from shared.weight but the config "
                                   "ties them; set tie_embeddings=False")
    else:
        # transformers >= 5 ties T5's head to the embedding even for v1.1 and then leaves it out of the files
        head = take("lm_head.weight") if "lm_head.weight" in hf_state else shared
        out["decoder.head.lm_head.weight"] = head
    unknown = [k for k in hf_state if k not in used]
    if unknown:
        raise WeightsError(f"{source}: unexpected weight {unknown[0]!r} ({len(unknown)} unexpected in all)")
    return out


def load_hf_t5(path: str | Path, model: T5) -> T5:
    """Fill `model` in place from an HF T5 folder or weights file."""
    return load_converted(path, model, convert_t5)


def t5_from_hf(path: str | Path) -> T5:
    """Build a T5 whose config follows the folder's config.json, and load its weights."""
    return build_from_hf(path, "T5", config_from_hf, T5, convert_t5)
