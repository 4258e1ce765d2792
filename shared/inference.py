"""An explicit step that makes a built model faster to run for inference, leaving what it computes unchanged.

    model = prepare_for_inference(zoo.create_model("whisper_tiny_en", pretrained=True).eval())

Self-attention projects q, k and v from the same input: one GEMM over the three layers' concatenated weights
reads the input once and launches one kernel instead of three (about 10% of Whisper tiny's decoding step on
one CPU thread). The concatenated weight is stored column-major, the fast layout for the matrix-vector
products of decoding (see shared.layout). The parameters stay the three separate layers, so state dicts,
checkpoints and converters never see the fused copy.
"""

import torch
from torch import nn
from torch.nn import functional as F

from shared.block import TransformerBlock
from shared.layout import Linear, linear


class FusedQKV:
    """An attention's q, k and v projections as one GEMM: (B, T, D) -> (B, T, (H + 2·Hkv)·Dh).

    Holds a copy of the three layers' weights that can never go stale: before each use it checks that every
    source tensor is still the same memory (not moved, cast or swapped, e.g. by `.to()` or
    `load_state_dict(assign=True)`) at the same version (not changed in place, e.g. by an optimizer step or
    `load_state_dict`), and fuses afresh otherwise. With gradients on, or once a layer is no longer a plain
    nn.Linear (quantized, hooked), the three layers run themselves and nothing is held. A missing bias is a
    zero bias (Whisper's key). A plain object, not a module: never in a state dict, never moved by `.to()`.
    """

    def __init__(self, attn: nn.Module):
        self.attn = attn
        self.sources: list[tuple[torch.Tensor, int]] = []  # (detached alias, version) per source tensor
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        layers = (self.attn.q_proj, self.attn.k_proj, self.attn.v_proj)
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or not all(map(plain_linear, layers)):
            self.sources, self.weight, self.bias = [], None, None  # do not hold a copy while training
            return torch.cat([layer(x) for layer in layers], dim=-1)
        tensors = [t for layer in layers for t in (layer.weight, layer.bias) if t is not None]
        if any(t.is_inference() for t in tensors):  # made under inference_mode: no version to watch
            return F.linear(x, *concat(layers))
        if len(tensors) != len(self.sources) or not all(
                alias.is_set_to(t) and version == t._version for (alias, version), t in zip(self.sources, tensors)):
            weight, self.bias = concat(layers)
            self.weight = weight.t().contiguous().t()  # column-major: faster when decoding (shared.layout)
            # Holding the aliases keeps the old memory alive, so a new tensor can never reuse its address.
            self.sources = [(t.detach(), t._version) for t in tensors]
        return linear(x, self.weight, self.bias)

    def __getstate__(self) -> dict:  # deepcopy and pickle: a copy fuses afresh rather than carry this one
        return {"attn": self.attn, "sources": [], "weight": None, "bias": None}


def concat(layers: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stacked weights (sum of outputs, in) and biases (sum of outputs,), or None when no layer has a bias."""
    weight = torch.cat([layer.weight for layer in layers])
    if all(layer.bias is None for layer in layers):
        return weight, None
    bias = torch.cat([layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)
                      for layer in layers])
    return weight, bias


def plain_linear(layer: nn.Module) -> bool:
    """Whether the layer computes F.linear(x, weight, bias) (nn.Linear, or shared.layout.Linear, which only
    schedules it differently), so that fusing it changes nothing.

    Quantized, parametrized or wrapped layers (subclasses) and layers with hooks run as themselves.
    """
    return type(layer) in (nn.Linear, Linear) and not (layer._forward_hooks or layer._forward_pre_hooks)


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """Give every block's self-attention a fused q/k/v projection (FusedQKV), in place; returns the model.

    Outputs are unchanged (up to float rounding) and training still works, since a fused copy follows its
    weights; it only costs the memory of one more copy of the q/k/v weights. Attention that already has a
    fused projection (e.g. text.quantize's int8 one) or whose projections are not plain nn.Linear layers is
    left as it is. Calling it again changes nothing.
    """
    for block in model.modules():
        if not isinstance(block, TransformerBlock):
            continue
        attn = block.attn
        if attn.qkv is None and all(map(plain_linear, (attn.q_proj, attn.k_proj, attn.v_proj))):
            attn.qkv = FusedQKV(attn)
    return model
