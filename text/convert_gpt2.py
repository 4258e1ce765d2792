"""Hugging Face GPT-2 checkpoints -> zoo GPT2, and reading HF-format weight folders.

HF GPT-2 stores its projections as Conv1D, whose weight is (in, out): the transpose of nn.Linear's. The query,
key and value projections are one fused `c_attn` of width 3·D, split here into q/k/v.
"""

import re
from pathlib import Path

import torch

from shared.errors import WeightsError
from text.checkpoint_io import build_from_hf, load_converted
from text.gpt2 import GPT2, GPT2Config

# Non-persistent causal-mask buffers that older transformers versions wrote into checkpoints.
IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")

# zoo key (under decoder.) <- HF key (without the "transformer." prefix); {} is the layer index.
KEYS = {
    "embed.token.weight": "wte.weight",
    "embed.positions.weight": "wpe.weight",
    "stack.final_norm.weight": "ln_f.weight",
    "stack.final_norm.bias": "ln_f.bias",
}
LAYER_KEYS = {
    "attn_norm.{p}": "ln_1.{p}",
    "attn.out_proj.{p}": "attn.c_proj.{p}",
    "mlp_norm.{p}": "ln_2.{p}",
    "mlp.fc1.{p}": "mlp.c_fc.{p}",
    "mlp.fc2.{p}": "mlp.c_proj.{p}",
}


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

    Unknown keys raise WeightsError naming the key; the tied lm_head.weight must equal the embedding.
    """
    state = {k.removeprefix("transformer."): v for k, v in hf_state.items()}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise WeightsError(f"{source}: missing weight {key!r}")
        used.add(key)
        return state[key]

    for ours, theirs in KEYS.items():
        out[f"decoder.{ours}"] = take(theirs)
    D = config.dim
    for i in range(config.n_layers):
        prefix, hf = f"decoder.stack.blocks.{i}.", f"h.{i}."
        for p in ("weight", "bias"):
            for ours, theirs in LAYER_KEYS.items():
                tensor = take(hf + theirs.format(p=p))
                conv1d = p == "weight" and theirs.startswith(("attn.", "mlp."))
                out[prefix + ours.format(p=p)] = tensor.t().contiguous() if conv1d else tensor
            fused = take(f"{hf}attn.c_attn.{p}")  # (D, 3D) weight or (3D,) bias
            if fused.shape[-1] != 3 * D:
                raise WeightsError(f"{source}: {hf}attn.c_attn.{p} has shape {tuple(fused.shape)}, "
                                   f"expected a last dimension of {3 * D}")
            for name, part in zip("qkv", fused.split(D, dim=-1)):
                out[f"{prefix}attn.{name}_proj.{p}"] = part.t().contiguous() if p == "weight" else part
    if "lm_head.weight" in state:
        used.add("lm_head.weight")
        if not torch.equal(state["lm_head.weight"], state["wte.weight"]):
            raise WeightsError(f"{source}: lm_head.weight differs from the token embedding; "
                               "zoo's GPT-2 ties them")
    unknown = [k for k in state if k not in used and not IGNORED.search(k)]
    if unknown:
        raise WeightsError(f"{source}: unexpected weight {unknown[0]!r} ({len(unknown)} unexpected in all)")
    return out


def load_hf_gpt2(path: str | Path, model: GPT2) -> GPT2:
    """Fill `model` in place from an HF GPT-2 folder or weights file."""
    return load_converted(path, model, convert_gpt2)


def gpt2_from_hf(path: str | Path) -> GPT2:
    """Build a GPT2 whose config follows the folder's config.json, and load its weights."""
    return build_from_hf(path, "GPT-2", config_from_hf, GPT2, convert_gpt2)
