"""Aligning a window's text tokens to its audio: the cross-attention of the alignment heads, normalised and
median-filtered, then dynamic time warping from tokens to encoder frames (the method of openai-whisper's
word timestamps). audio/word_timestamps.py turns the aligned words into segment words.

Some cross-attention heads of a trained Whisper decoder follow the speech closely; the checkpoints list
them (CTranslate2's config.json, HF's generation_config.json) and the released sizes have a published
table, kept below as (layer, head) pairs. Without either, every head of the last half of the layers is used.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from audio.features import TOKENS_PER_SECOND
from shared.errors import ConfigError

MEDIAN_FILTER_WIDTH = 7  # encoder frames (140 ms)

# (decoder layer, head) pairs that follow the speech, for each released size.
ALIGNMENT_HEADS = {
    "whisper_tiny_en": ((1, 0), (2, 0), (2, 5), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)),
    "whisper_tiny": ((2, 2), (3, 0), (3, 2), (3, 3), (3, 4), (3, 5)),
    "whisper_base_en": ((3, 3), (4, 7), (5, 1), (5, 5), (5, 7)),
    "whisper_base": ((3, 1), (4, 2), (4, 3), (4, 7), (5, 1), (5, 2), (5, 4), (5, 6)),
    "whisper_small_en": (
        (6, 6), (7, 0), (7, 3), (7, 8), (8, 2), (8, 5), (8, 7), (9, 0), (9, 4), (9, 8), (9, 10), (10, 0),
        (10, 1), (10, 2), (10, 3), (10, 6), (10, 11), (11, 2), (11, 4),
    ),
    "whisper_small": ((5, 3), (5, 9), (8, 0), (8, 4), (8, 7), (8, 8), (9, 0), (9, 7), (9, 9), (10, 5)),
    "whisper_medium_en": (
        (11, 4), (14, 1), (14, 12), (14, 14), (15, 4), (16, 0), (16, 4), (16, 9), (17, 12), (17, 14),
        (18, 7), (18, 10), (18, 15), (20, 0), (20, 3), (20, 9), (20, 14), (21, 12),
    ),
    "whisper_medium": ((13, 15), (15, 4), (15, 15), (16, 1), (20, 0), (23, 4)),
    "whisper_large_v2": (
        (10, 12), (13, 17), (16, 11), (16, 12), (16, 13), (17, 15), (17, 16), (18, 4), (18, 11), (18, 19),
        (19, 11), (21, 2), (21, 3), (22, 3), (22, 9), (22, 12), (23, 5), (23, 7), (23, 13), (25, 5),
        (26, 1), (26, 12), (27, 15),
    ),
    "whisper_large_v3": (
        (7, 0), (10, 17), (12, 18), (13, 12), (16, 1), (17, 14), (19, 11), (21, 4), (24, 1), (25, 6),
    ),
    "whisper_large_v3_turbo": ((2, 4), (2, 11), (3, 3), (3, 6), (3, 11), (3, 14)),
}  # fmt: skip


def _heads_beside(tokenizer) -> list | None:
    """The heads a checkpoint lists next to its tokenizer.json (CTranslate2 or HF folders), if any."""
    folder = Path(getattr(tokenizer, "path", "")).parent
    for name in ("config.json", "generation_config.json"):
        try:
            heads = json.loads((folder / name).read_text()).get("alignment_heads")
        except (OSError, ValueError, AttributeError):
            continue
        if heads:
            return heads
    return None


def alignment_heads(model, tokenizer=None, heads=None) -> tuple[tuple[int, int], ...]:
    """The (layer, head) pairs whose cross-attention aligns text to audio.

    In order: `heads` as given; those listed beside the weights' tokenizer.json; the published table for
    a released size with this model's config; every head of the last half of the decoder layers.
    """
    layers, n_heads = model.config.n_text_layer, model.config.n_text_head
    if heads is None and tokenizer is not None:
        heads = _heads_beside(tokenizer)
    if heads is None:
        from audio.recipes import WHISPER

        names = [name for name, config in WHISPER.items() if config == model.config and name in ALIGNMENT_HEADS]
        heads = ALIGNMENT_HEADS[names[0]] if len(names) == 1 else None
    if heads is None:
        return tuple((layer, head) for layer in range(layers // 2, layers) for head in range(n_heads))
    pairs = tuple((int(layer), int(head)) for layer, head in heads)
    bad = [p for p in pairs if not (0 <= p[0] < layers and 0 <= p[1] < n_heads)]
    if bad or not pairs:
        raise ConfigError(
            f"alignment head(s) {bad or 'none'} do not fit this model's {layers} layers of {n_heads} heads"
        )
    return pairs


# -- tokens to words -------------------------------------------------------------------------------------


def split_subwords(tokenizer, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
    """Group tokens into the shortest runs that decode to whole characters (a multi-byte character can
    span tokens)."""
    full = tokenizer.decode_with_timestamps(tokens)
    words, groups, run, offset = [], [], [], 0
    for token in tokens:
        run.append(token)
        text = tokenizer.decode_with_timestamps(run)
        broken = text.find("\ufffd")
        if broken < 0 or full[offset + broken : offset + broken + 1] == "\ufffd":
            words.append(text)
            groups.append(run)
            run, offset = [], offset + len(text)
    return words, groups


def split_words(tokenizer, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
    """Words with their leading space, and their tokens: a new word starts at a space, a punctuation mark
    or a special token (end-of-text)."""
    words, groups = [], []
    for text, run in zip(*split_subwords(tokenizer, tokens)):
        starts_word = run[0] >= tokenizer.eot or text.startswith(" ") or text.strip() in string.punctuation
        if starts_word or not words:
            words.append(text)
            groups.append(list(run))
        else:
            words[-1] += text
            groups[-1].extend(run)
    return words, groups


# -- attention to time -----------------------------------------------------------------------------------


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window of odd `width` along the last axis, edges reflected: (..., T) -> (..., T)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = F.pad(x[None] if x.dim() == 2 else x, (pad, pad), mode="reflect")  # (..., T + 2·pad)
    padded = padded[0] if x.dim() == 2 else padded
    return padded.unfold(-1, width, 1).median(dim=-1).values


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through cost (N, M) from (0, 0) to (N-1, M-1) -> (rows, cols) along it.

    Cells on one anti-diagonal depend only on the two before it, so each diagonal is one vector step. Ties
    prefer the diagonal move, then the vertical one, as openai-whisper's loop does, so paths are identical.
    """
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    total[0, 0] = 0.0
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 from above (next token), 2 from the left
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        diagonal, above, left = total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
        step = np.where(
            (diagonal < above) & (diagonal < left), 0, np.where((above < diagonal) & (above < left), 1, 2)
        )
        total[i, j] = cost[i - 1, j - 1] + np.choose(step, [diagonal, above, left])
        move[i, j] = step
    move[0, :], move[:, 0] = 2, 1  # along the edges only one move is possible
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = move[i, j]
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    rows, cols = np.array(path[::-1]).T
    return rows, cols


@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float  # seconds from the window's start
    end: float
    probability: float


def find_alignment(
    model,
    tokenizer,
    text_tokens: list[int],
    memory: torch.Tensor,
    num_frames: int,
    *,
    heads: tuple[tuple[int, int], ...],
    sot_sequence: tuple[int, ...],
    medfilt_width: int = MEDIAN_FILTER_WIDTH,
) -> list[WordTiming]:
    """Words of `text_tokens` with their start and end in the window whose encoder output is memory (1, S, D)
    and whose audio spans num_frames mel frames; one extra decoder pass with attention weights."""
    if not text_tokens:
        return []
    prompt = [*sot_sequence, tokenizer.no_timestamps]
    memory = memory.to(model.decoder.embed.token.weight.dtype)  # autocast may have encoded in half precision
    tokens = torch.tensor([[*prompt, *text_tokens, tokenizer.eot]], device=memory.device)  # (1, T)
    with torch.inference_mode():
        logits, weights = model.decoder.forward_with_weights(tokens, memory)  # (1, T, V), per layer
        probs = logits[0, len(prompt) - 1 : -2, : tokenizer.eot].float().softmax(dim=-1)  # (n, eot)
        token_probs = probs[torch.arange(len(text_tokens)), torch.tensor(text_tokens)].tolist()
        cross = torch.stack([weights[layer]["cross"][0, head] for layer, head in heads]).float()  # (A, T, S)
    # openai-whisper takes the softmax over the frames of audio only: renormalise the full one over them.
    cross = cross[:, :, : num_frames // 2]
    cross = cross / cross.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(cross.dtype).tiny)
    std, mean = torch.std_mean(cross, dim=-2, keepdim=True, unbiased=False)  # over tokens
    cross = median_filter((cross - mean) / std, medfilt_width)
    matrix = cross.mean(dim=0)[len(sot_sequence) : -1]  # (n + 1, frames): rows that predict each text token
    text_indices, time_indices = dtw(-matrix.double().cpu().numpy())

    words, word_tokens = split_words(tokenizer, text_tokens + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    boundaries = np.concatenate([[0], np.cumsum([len(t) for t in word_tokens[:-1]])])
    jumps = np.concatenate([[True], np.diff(text_indices).astype(bool)])  # first frame of each token
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    return [
        WordTiming(word, group, float(jump_times[a]), float(jump_times[b]), float(np.mean(token_probs[a:b])))
        for word, group, a, b in zip(words, word_tokens, boundaries[:-1], boundaries[1:])
    ]
