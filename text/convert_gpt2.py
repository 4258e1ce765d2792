"""Hugging Face GPT-2 checkpoints -> zoo GPT2, and loading HF-format GPT-2 folders.

HF GPT-2 stores its projections as Conv1D, whose weight is (in, out): the transpose of nn.Linear's. The query,
key and value projections are one fused `c_attn` of width 3·D, split here into q/k/v.
"""

from pathlib import Path

import torch

from shared.convert import convert_state, drop, linear, model_keys, prefixed, require_equal, split, transpose
from shared.errors import WeightsError
from text.checkpoint_io import build_from_hf, load_converted
from text.gpt2 import GPT2, GPT2Config

# Non-persistent causal-mask buffers that older transformers versions wrote into checkpoints.
IGNORED = (r"h\.\d+\.(attn|crossattention)\.(bias|masked_bias)",)
_BLOCK = "stack.blocks.{}"


def conv1d(dst: str):
    """Table targets for a Conv1D layer: it stores its weight (in, out), nn.Linear (out, in)."""
    return lambda p: transpose(f"{dst}.{p}")


def fused(layer: str, names: str, dim: int):
    """Table targets for a fused Conv1D: one (D, len(names)·dim) weight -> one nn.Linear per name."""
    return lambda p: split(*(f"{_BLOCK}.{layer}.{n}_proj.{p}" for n in names), dim=-1,
                           sizes=(dim,) * len(names), transpose=True)


def decoder_table(dim: int, cross_attention: bool = False) -> dict:
    """HF GPT-2 key (without "transformer.") -> zoo key under the TextDecoder; dim sizes the fused q/k/v.

    cross_attention adds the layers of a GPT-2 built with add_cross_attention=True: its key and value
    projections are one fused Conv1D of width 2·D.
    """
    table = {
        "wte.weight": "embed.token.weight",
        "wpe.weight": "embed.positions.weight",
        **linear("ln_f", "stack.final_norm"),
        **linear("h.{}.ln_1", f"{_BLOCK}.attn_norm"),
        **linear("h.{}.attn.c_attn", fused("attn", "qkv", dim)),
        **linear("h.{}.attn.c_proj", conv1d(f"{_BLOCK}.attn.out_proj")),
        **linear("h.{}.ln_2", f"{_BLOCK}.mlp_norm"),
        **linear("h.{}.mlp.c_fc", conv1d(f"{_BLOCK}.mlp.fc1")),
        **linear("h.{}.mlp.c_proj", conv1d(f"{_BLOCK}.mlp.fc2")),
    }
    if cross_attention:
        table.update({
            **linear("h.{}.ln_cross_attn", f"{_BLOCK}.cross_norm"),
            **linear("h.{}.crossattention.q_attn", conv1d(f"{_BLOCK}.cross_attn.q_proj")),
            **linear("h.{}.crossattention.c_attn", fused("cross_attn", "kv", dim)),
            **linear("h.{}.crossattention.c_proj", conv1d(f"{_BLOCK}.cross_attn.out_proj")),
        })
    return table


def config_from_hf(hf: dict) -> GPT2Config:
    """A GPT2Config from the fields of an HF GPT-2 config.json."""
    dim = hf.get("n_embd", 768)
    act = hf.get("activation_function", "gelu_new")
    acts = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
    if act not in acts:
        raise WeightsError(f"GPT-2 config: activation {act!r} is not supported; use one of {sorted(acts)}")
    eos = hf.get("eos_token_id", 50256)
    return GPT2Config(vocab_size=hf.get("vocab_size", 50257), max_len=hf.get("n_positions", 1024), dim=dim,
                      n_layers=hf.get("n_layer", 12), n_heads=hf.get("n_head", 12),
                      mlp_hidden=hf.get("n_inner") or 4 * dim, activation=acts[act],
                      norm_eps=hf.get("layer_norm_epsilon", 1e-5), dropout=hf.get("resid_pdrop", 0.1),
                      bos_id=hf.get("bos_token_id", 50256), eos_id=eos, pad_id=hf.get("pad_token_id") or eos)


def convert_gpt2(hf_state: dict[str, torch.Tensor], config: GPT2Config,
                 source: str = "GPT-2 checkpoint") -> dict[str, torch.Tensor]:
    """An HF GPT-2 state dict (GPT2Model or GPT2LMHeadModel) -> a zoo GPT2 state dict.

    Unknown or missing keys raise WeightsError naming the key; the tied lm_head.weight must equal the embedding.
    """
    state = {k.removeprefix("transformer."): v for k, v in hf_state.items()}
    require_equal(state, "lm_head.weight", "wte.weight", source=source, why="zoo's GPT-2 ties them")
    table = {"lm_head.weight": drop(), **prefixed(decoder_table(config.dim), "", "decoder.")}
    return convert_state(state, table, source=source, expected=model_keys(GPT2, config), ignore=IGNORED)


def load_hf_gpt2(path: str | Path, model: GPT2) -> GPT2:
    """Fill `model` in place from an HF GPT-2 folder or weights file."""
    return load_converted(path, model, convert_gpt2)


def gpt2_from_hf(path: str | Path) -> GPT2:
    """Build a GPT2 whose config follows the folder's config.json, and load its weights."""
    return build_from_hf(path, "GPT-2", config_from_hf, GPT2, convert_gpt2)
