"""Key/value caches for incremental decoding. Plain objects, never modules, never in a state dict."""

from dataclasses import dataclass

import torch


class KVCache:
    """Self-attention keys and values of one layer, preallocated to `max_len` on first use.

    Storage is (B, H, max_len, Dh); `update` writes the new steps and returns views of everything so far.
    """

    def __init__(self, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, H, T, Dh = k.shape
        end = self.length + T
        if end > self.max_len:
            raise ValueError(f"decoding past the cache size of {self.max_len} tokens; ask for fewer new tokens")
        if self.k is None:
            self.k = k.new_zeros(B, H, self.max_len, Dh)
            self.v = v.new_zeros(B, H, self.max_len, Dh)
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reorder(self, index: torch.Tensor) -> None:
        """Select (and possibly repeat) batch rows, e.g. to follow beams or expand a batch into beams."""
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


class CrossKV:
    """Cross-attention keys and values: projected once from the encoder memory, then reused every step.

    Projected from a memory of batch 1, they serve every row (the beams or samples of one input) as they are:
    reordering rows leaves them unchanged, and attention reads them once for all rows.
    """

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def reorder(self, index: torch.Tensor) -> None:
        if self.k is not None and self.k.shape[0] > 1:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


@dataclass
class LayerCache:
    self_attn: KVCache
    cross_attn: CrossKV | None = None


class Cache:
    """Everything a decoder stack needs between steps: per-layer caches and, for encoder-decoder models,
    the encoder memory and its padding mask (so beam search can reorder them together). A memory of batch 1
    is every row's."""

    def __init__(self, n_layers: int, max_len: int, cross_attention: bool = False,
                 memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None):
        self.layers = [LayerCache(KVCache(max_len), CrossKV() if cross_attention else None)
                       for _ in range(n_layers)]
        self.memory = memory  # (B, S, D)
        self.memory_mask = memory_mask  # (B, S) bool, True for real positions

    @property
    def length(self) -> int:
        """Number of positions already decoded."""
        return self.layers[0].self_attn.length

    def reorder(self, index: torch.Tensor) -> None:
        for layer in self.layers:
            layer.self_attn.reorder(index)
            if layer.cross_attn is not None:
                layer.cross_attn.reorder(index)
        if self.memory is not None and self.memory.shape[0] > 1:  # batch 1: one memory shared by every row
            self.memory = self.memory.index_select(0, index)
        if self.memory_mask is not None and self.memory_mask.shape[0] > 1:
            self.memory_mask = self.memory_mask.index_select(0, index)
