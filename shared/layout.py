"""Memory layout of weights: the same values stored column-major, for fast matrix-vector products.

Decoding one token multiplies one row vector by every weight, a memory-bound matrix-vector product. With MKL
on x86 CPUs, a weight with more outputs than inputs streams about 1.5-2x faster stored column-major
(transposed strides) — measured out of cache with one thread: Whisper tiny's 51,864 x 384 tied output head
21 -> 10 ms a token, a 1536 x 384 MLP input layer 0.44 -> 0.29 ms; GPT-2 greedy generation 16.1 -> 18.4
tokens/s. A weight with fewer outputs than inputs is faster row-major, so only the wide ones are re-laid.
Values, shapes, gradients and state dicts are unchanged; `.to()` keeps the layout; checkpoint writers save
contiguous copies.

A product of a few rows by a weight runs on one thread in MKL, at the speed one core streams memory.
`linear` spreads it over the threads: a batched product of one panel of outputs per thread streams the panels
side by side (two threads, out of cache: Whisper tiny's head for one row 2.7 -> 1.8 ms, for four rows 9.5 ->
5.1 ms; a 384 x 384 projection 72 -> 43 us). Attention and the MLPs are built of `Linear`, which runs it.
"""

import torch
from torch import nn
from torch.nn import functional as F

FEW_ROWS = 32  # up to this many rows a product is memory-bound, and faster as per-thread panels (measured)
MIN_PANEL = 64  # outputs per thread below which splitting costs more than it saves


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
    """F.linear(x, weight, bias), x (..., in) -> (..., out), with the product of a few rows spread over torch's
    threads: one panel of outputs per thread, as one batched product, in either layout. Anything else (many
    rows, one thread, not the CPU, autocast, compiling) is F.linear itself. Values equal F.linear's up to
    float rounding.
    """
    parts = torch.get_num_threads()
    out_features, in_features = weight.shape
    rows = x.numel() // in_features
    width = out_features // parts
    if (parts < 2 or rows > FEW_ROWS or width < MIN_PANEL or x.device.type != "cpu" or x.dtype != weight.dtype
            or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()):
        return F.linear(x, weight, bias)
    split = parts * width
    panels = weight[:split].unflatten(0, (parts, width)).transpose(1, 2)  # (P, in, width) views
    flat = x.reshape(rows, in_features)
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
