"""The one mask convention of the core.

A mask is either a boolean tensor where True means "may attend", or a float tensor that is added to the
attention scores. Masks broadcast against scores of shape (B, H, Tq, Tk). A 2-D boolean (B, Tk) mask marks the
real (non-padding) keys of each sequence.
"""

import torch


def key_padding(valid: torch.Tensor) -> torch.Tensor:
    """(B, Tk) bool, True for real tokens -> (B, 1, 1, Tk) bool."""
    return valid.bool()[:, None, None, :]


def causal(q_len: int, k_len: int, offset: int = 0, device=None) -> torch.Tensor:
    """(1, 1, Tq, Tk) bool: query i sits at absolute position offset+i and may see keys 0 .. offset+i."""
    q_pos = torch.arange(offset, offset + q_len, device=device)[:, None]
    k_pos = torch.arange(k_len, device=device)[None, :]
    return (k_pos <= q_pos)[None, None]


def normalize(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Accept a (B, Tk) key-padding mask or any mask broadcastable to (B, H, Tq, Tk)."""
    if mask is not None and mask.dim() == 2 and mask.dtype == torch.bool:
        return key_padding(mask)
    return mask


def to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as an additive bias: 0 where allowed, the most negative finite value elsewhere.

    A finite value (not -inf) keeps fully masked rows (e.g. padding queries) from producing NaN.
    """
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def merge(*masks: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """Combine masks: booleans by logical AND; if any is a float bias, everything becomes one float bias."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    if all(m.dtype == torch.bool for m in present):
        out = present[0]
        for m in present[1:]:
            out = out & m
        return out
    out = to_bias(present[0], dtype)
    for m in present[1:]:
        out = out + to_bias(m, dtype)
    return out.clamp(min=torch.finfo(dtype).min)
