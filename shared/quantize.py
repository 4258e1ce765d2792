"""int8 weights for fast CPU inference: each projection's weight is stored as int8 with one scale per output
channel (the row of W), and each call quantizes its input on the fly, one scale per sequence (fbgemm's
dynamic int8 GEMM), or one for the whole batch when its sequences are one input's candidates (`one_input`).

At batch 1 decoding reads every weight once per token, so memory traffic, not arithmetic, sets the speed:
int8 weights read a quarter of float32's bytes. Per-channel scales keep a row with small weights from losing
its precision to a row with large ones (a single per-tensor scale does). Self-attention projects q, k and v
with one GEMM over their concatenated weights, as the float model does, so the input is quantized once.

Inference only: the packed weights are not parameters, so there are no gradients and no state dict. Text
models (GPT-2, T5) and Whisper's encoder and decoder all go through this one path.
"""

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from shared.attention import Attention
from shared.errors import InputError
from shared.heads import LMHead
from shared.inference import concat

_ONE_INPUT: ContextVar[bool] = ContextVar("one_input", default=False)


@contextmanager
def one_input() -> Iterator[None]:
    """Within the block, the sequences of a batch are candidates of one input (the beams or samples of one
    window), not separate inputs: an int8 projection quantizes them together, in one product, instead of
    sequence by sequence (Whisper tiny's beam search of five on a 70 s clip: 2.20 -> 1.72 s)."""
    token = _ONE_INPUT.set(True)
    try:
        yield
    finally:
        _ONE_INPUT.reset(token)


class Int8Linear(nn.Module):
    """y = x Wᵀ + b with W in int8 (per-output-channel scales) and x quantized per call: (..., K) -> (..., N)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        weight = weight.detach().float().cpu()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        # symmetric: zero point 0, so an all-zero row (scale clamped) stays exactly zero
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        zeros = torch.zeros(weight.shape[0], dtype=torch.long)
        qweight = torch.quantize_per_channel(weight, scales, zeros, axis=0, dtype=torch.qint8)
        bias = bias.detach().float().cpu() if bias is not None else None
        self._packed = torch.ops.quantized.linear_prepack(qweight, bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        return cls(linear.weight, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, K) is quantized sequence by sequence, each with its own scale, so that a sequence's output
        never depends on the other sequences of its batch: a batch decodes exactly as its rows do alone. Under
        one_input() the batch is one input and is quantized whole."""
        x = x.float()
        if x.dim() == 3 and x.shape[0] > 1 and not _ONE_INPUT.get():
            return torch.stack([self._linear(sequence) for sequence in x])  # (B, T, N)
        return self._linear(x)

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: 7-bit activations, so AVX2's pairwise int16 accumulation cannot saturate
        return torch.ops.quantized.linear_dynamic(x, self._packed, True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per channel"


class Int8Attention(Attention):
    """Attention whose projections are Int8Linear; self-attention's q, k, v come from one fused int8 GEMM,
    its `qkv` (see Attention.project)."""


def _int8_attention(attn: Attention) -> Int8Attention:
    """The same attention (heads, scale, rotary) with int8 projections; `attn` itself is consumed."""
    layers = (attn.q_proj, attn.k_proj, attn.v_proj)  # q/k/v of self-attention as one GEMM: ((H + 2·Hkv)·Dh, D)
    qkv = Int8Linear(*concat(layers)) if attn.q_proj.in_features == attn.k_proj.in_features else None
    attn.__class__ = Int8Attention  # same fields, int8 projections: no second constructor to keep in sync
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):  # q/k/v stay for cross-attention
        setattr(attn, name, Int8Linear.from_linear(getattr(attn, name)))
    attn.qkv = qkv
    return attn


def _head_weight(head: LMHead) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = head._tied[0].weight if head._tied is not None else head.weight
    return weight, head.bias


def quantize_int8(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """`model` with every nn.Linear, attention projection and LM head in int8 (CPU, inference).

    Embeddings, norms, convolutions and the KV cache stay float32. The model itself is left unchanged unless
    `inplace` (as torch.ao's quantize_dynamic): in place, the float32 copy of each layer is released as it
    is converted, so loading a model straight into int8 never holds two copies of its projections.
    """
    if next(model.parameters()).device.type != "cpu":
        raise InputError("int8 weights are a CPU mode; use bfloat16 on a GPU")
    model = (model if inplace else copy.deepcopy(model)).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Attention):
                setattr(parent, name, _int8_attention(child))
            elif isinstance(child, LMHead):
                setattr(parent, name, Int8Linear(*_head_weight(child)))
            elif isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear.from_linear(child))
    return model
