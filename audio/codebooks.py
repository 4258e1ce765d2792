"""How K parallel codebooks become one token sequence a decoder can emit step by step (MusicGen, section 2.2).

A codec gives a grid of codes (B, K, T): K codebooks per frame. The decoder emits one token of every codebook
per step; the pattern decides which frame each codebook's token belongs to at a step.

    delay (MusicGen): codebook k runs k steps behind codebook 0, so a frame's finer codebooks are predicted
        after its coarser ones were seen. T frames take T + K - 1 steps.
            k=0:  a0 a1 a2 a3 .  .
            k=1:  .  b0 b1 b2 b3 .
            k=2:  .  .  c0 c1 c2 c3
    parallel: every codebook of a frame at the same step. T frames take T steps.

Cells outside the grid hold the pad id (MusicGen's is codebook_size, one past the last code).
"""

from dataclasses import dataclass

import torch

from shared.errors import InputError


@dataclass(frozen=True)
class CodebookPattern:
    """The step of codebook k's frame t is t + delays[k]; `pad` fills the cells outside the code grid."""

    delays: tuple[int, ...]
    pad: int

    @classmethod
    def delay(cls, num_codebooks: int, pad: int) -> "CodebookPattern":
        return cls(tuple(range(num_codebooks)), pad)

    @classmethod
    def parallel(cls, num_codebooks: int, pad: int) -> "CodebookPattern":
        return cls((0,) * num_codebooks, pad)

    @property
    def num_codebooks(self) -> int:
        return len(self.delays)

    def steps(self, frames: int) -> int:
        """Decoder steps that T frames take."""
        return frames + max(self.delays)

    def apply(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, K, T) -> the step sequence (B, K, T + max delay), pad outside the grid."""
        B, K, T = self._check(codes).shape
        out = codes.new_full((B, K, self.steps(T)), self.pad)
        for k, d in enumerate(self.delays):
            out[:, k, d:d + T] = codes[:, k]
        return out

    def revert(self, steps: torch.Tensor) -> torch.Tensor:
        """The step sequence (B, K, S) -> codes (B, K, S - max delay): apply()'s inverse."""
        B, K, S = self._check(steps).shape
        T = S - max(self.delays)
        return torch.stack([steps[:, k, d:d + T] for k, d in enumerate(self.delays)], dim=1)

    def valid(self, frames: int, device=None) -> torch.Tensor:
        """(K, steps(frames)) bool: the cells that hold a code (the rest are pad)."""
        step = torch.arange(self.steps(frames), device=device)
        delays = torch.tensor(self.delays, device=device)[:, None]
        return (step >= delays) & (step < delays + frames)

    def _check(self, grid: torch.Tensor) -> torch.Tensor:
        if grid.dim() != 3 or grid.shape[1] != self.num_codebooks:
            raise InputError(f"expected codes of shape (batch, {self.num_codebooks} codebooks, frames), "
                             f"got {tuple(grid.shape)}")
        return grid


PATTERNS = {"delay": CodebookPattern.delay, "parallel": CodebookPattern.parallel}


class ForcePad:
    """A logits processor for shared.generation.generate over rows (B·K) of codebook tokens: wherever the
    pattern has no code (before a codebook's delay, after its last frame) it forces the pad id, so the decoder
    emits exactly the pattern's grid. The logits must have a column for the pad id; `start` is the prompt
    length (the start token)."""

    def __init__(self, pattern: CodebookPattern, frames: int, start: int = 1):
        self.pattern, self.start = pattern, start
        self.valid = pattern.valid(frames)  # (K, S)
        self.any_pad = (~self.valid).any(dim=0).tolist()  # per step: whether some codebook is padded there

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:  # (B·K, V), (B·K, T)
        step = tokens.shape[1] - self.start  # the step whose tokens are being chosen
        if not self.any_pad[step]:  # most steps: a plain list lookup, no tensor op
            return logits
        pad_here = ~self.valid[:, step]  # (K,), on the CPU: no device sync
        forced = torch.full_like(logits, float("-inf"))
        forced[:, self.pattern.pad] = 0.0
        rows = pad_here.repeat(logits.shape[0] // self.pattern.num_codebooks).to(logits.device)  # (B·K,)
        return torch.where(rows[:, None], forced, logits)
