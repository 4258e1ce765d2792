"""Memory layout of weights: the same values stored column-major, for fast matrix-vector products.

Decoding one token multiplies one row vector by every weight, a memory-bound matrix-vector product. With MKL
on x86 CPUs, a weight with more outputs than inputs streams about 1.5-2x faster stored column-major
(transposed strides) — measured out of cache with one thread: Whisper tiny's 51,864 x 384 tied output head
21 -> 10 ms a token, a 1536 x 384 MLP input layer 0.44 -> 0.29 ms; GPT-2 greedy generation 16.1 -> 18.4
tokens/s. A weight with fewer outputs than inputs is faster row-major, so only the wide ones are re-laid.
Values, shapes, gradients and state dicts are unchanged; `.to()` keeps the layout; checkpoint writers save
contiguous copies.

A product of one row by a weight runs on one thread in MKL, at the speed one core streams memory. `linear`
spreads it over the threads: a batched product of one panel of outputs per thread streams the panels side by
side (two threads, out of cache: Whisper tiny's head 2.7 -> 1.8 ms; a 384 x 384 projection 72 -> 43 us). A
product of a few rows (beams, a batch of files) MKL packs the whole weight for, which costs more than the
product; oneDNN's streams it (the head for five rows: 7.3 -> 4.1 ms; Whisper tiny's beam search of five on
a 70 s clip 3.25 -> 2.66 s). Attention and the MLPs are built of `Linear`, which runs `linear`.
"""

import torch
from torch import nn
from torch.nn import functional as F

FEW_ROWS = 32  # up to this many rows a product is memory-bound, and faster done as below (measured)
MIN_PANEL = 64  # outputs per thread below which splitting costs more than it saves


def _onednn_linear():
    """oneDNN's linear on plain (unpacked) weights, when this build of torch has it."""
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _onednn_linear()


def column_major(module: nn.Embedding | nn.Linear) -> nn.Module:
    """Store the module's 2-D weight column-major, in place; returns the module."""
    weight = module.weight
    module.weight = nn.Parameter(weight.detach().t().contiguous().t(), requires_grad=weight.requires_grad)
    return module


def column_major_table(embedding: nn.Embedding) -> nn.Embedding:
    """column_major() for a freshly built embedding (a tied output head), without ever holding two tables:
    the row-major one is released first and the new one gets nn.Embedding's own N(0, 1) initialisation."""
    vocab, dim = embedding.weight.shape
    del embedding.weight  # 80 MB for Whisper tiny, 154 MB for GPT-2: building must not need twice that
    embedding.weight = nn.Parameter(torch.empty(dim, vocab).normal_().t())  # (V, D), strides (1, V)
    return embedding


def column_major_wide_mlps(blocks) -> None:
    """column_major() for the widening first layer of every block's MLP (D -> hidden)."""
    for block in blocks:
        column_major(block.mlp.fc1)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias), x (..., in) -> (..., out), with products of a few rows run on all of torch's
    threads: one row as one panel of outputs per thread (a batched product, either layout), a few rows by
    oneDNN (without gradients). Anything else (many rows, one thread, not the CPU, autocast, compiling) is
    F.linear itself. Values equal F.linear's up to float rounding.
    """
    parts = torch.get_num_threads()
    out_features, in_features = weight.shape
    rows = x.numel() // in_features
    width = out_features // parts
    if (parts < 2 or rows > FEW_ROWS or width < MIN_PANEL or x.device.type != "cpu" or x.dtype != weight.dtype
            or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()):
        return F.linear(x, weight, bias)
    flat = x.reshape(rows, in_features)
    if rows > 1 and _ONEDNN_LINEAR is not None and not (
            torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return _ONEDNN_LINEAR(flat, weight, bias, "none", [], "").view(*x.shape[:-1], out_features)
    split = parts * width
    panels = weight[:split].unflatten(0, (parts, width)).transpose(1, 2)  # (P, in, width) views
    out = torch.bmm(flat.expand(parts, rows, in_features), panels).transpose(0, 1).reshape(rows, split)
    if split < out_features:  # fewer outputs left over than threads
        out = torch.cat([out, F.linear(flat, weight[split:])], dim=1)
    out = out.view(*x.shape[:-1], out_features)
    return out if bias is None else out + bias


class Linear(nn.Linear):
    """nn.Linear whose products of a few rows run on every thread (`linear`): the layer Attention and the
    MLPs are built of. Parameters, state dict and everything else are nn.Linear's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
