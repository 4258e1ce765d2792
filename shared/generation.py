"""Autoregressive decoding for every zoo decoder: prefill once, then one token a step through the KV cache.

generate() drives any Decodable model: `init_cache(batch_size, max_len)` and `logits(tokens (B, T), cache)`.
Encoder-decoder models put their encoder output into the cache (see Cache.memory) before calling generate(),
which is what their `start_generation` does (the Generative contract). Logits processors are callables
`(logits (B, V), tokens (B, T)) -> logits`; selectors pick the next token.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from shared.cache import Cache
from shared.diffusion import guidance

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Decodable(Protocol):
    """What generate() needs of a model: a cache, and the logits of new tokens given everything cached."""

    def init_cache(self, batch_size: int, max_len: int) -> Cache:
        """An empty cache for batch_size rows of up to max_len positions, the prompt included."""
        ...

    def logits(self, tokens: torch.Tensor, cache: Cache) -> torch.Tensor:
        """One decoder step (or the prefill): (B, T) new tokens -> (B, T, V) logits; the cache advances by T."""
        ...


class Generative(Decodable, Protocol):
    """A Decodable model that also says how generation starts from its input (text.generate, `zoo generate`)."""

    def start_generation(self, inputs: Any, max_new_tokens: int) -> tuple[torch.Tensor, Cache]:
        """The decoder prompt (B, T) and a cache sized for it plus max_new_tokens: a decoder-only model
        continues its input; an encoder-decoder model encodes it into the cache and starts from its start token."""
        ...


class Greedy:
    """Always the most likely token."""

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:  # (B, V) -> (B,)
        return logits.argmax(dim=-1)


class Sample:
    """Sampling with temperature, top-k and nucleus (top-p) filtering; a seed makes it reproducible."""

    def __init__(self, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None):
        if temperature <= 0:
            raise ValueError("sampling needs a temperature > 0; use Greedy() for temperature 0")
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self._generator: torch.Generator | None = None

    def filter(self, logits: torch.Tensor) -> torch.Tensor:
        """Scaled logits with everything outside top-k / top-p set to -inf."""
        logits = logits.float()
        if self.temperature != 1.0:  # dividing by 1 would only copy
            logits = logits / self.temperature
        if self.top_k:
            kth = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p is not None and self.top_p < 1.0:
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative - sorted_logits.softmax(dim=-1) >= self.top_p  # keep the token that crosses top_p
            logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        return logits

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:  # (B, V) -> (B,)
        if self._generator is None and self.seed is not None:
            self._generator = torch.Generator(device=logits.device).manual_seed(self.seed)
        probs = self.filter(logits).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)


class Guided:
    """Classifier-free guidance around a Decodable: each step feeds the rows (B, T) twice, once with their
    condition and once with the null condition, in one batch, and returns uncond + scale·(cond − uncond)
    (B, T, V), so any selector and processor sees ordinary logits. The cache, built by the caller, holds the
    conditioned rows first and their null twins after them (e.g. zero encoder memory)."""

    def __init__(self, model: Decodable, scale: float):
        self.model, self.scale = model, scale

    def init_cache(self, batch_size: int, max_len: int) -> Cache:
        raise RuntimeError("a guided model needs a cache holding both conditions; pass it to generate()")

    def logits(self, tokens: torch.Tensor, cache: Cache) -> torch.Tensor:
        cond, uncond = self.model.logits(torch.cat([tokens, tokens]), cache).chunk(2)
        return guidance(uncond, cond, self.scale)


@dataclass
class BeamSearch:
    """Beam search. Hypotheses are ranked by sum of log-probabilities / generated_length ** length_penalty.

    early_stopping=True stops a batch row as soon as num_beams hypotheses have finished; otherwise it goes on
    while a live beam could still beat the worst finished one.
    """

    num_beams: int = 4
    length_penalty: float = 1.0
    early_stopping: bool = False


@dataclass
class GenerationOutput:
    tokens: torch.Tensor  # (B, T_prompt + T_new): prompt then generated tokens, padded after a stop token
    sum_logprobs: torch.Tensor  # (B,) log-probability of the generated tokens
    lengths: torch.Tensor  # (B,) generated tokens per row, the stop token included


@torch.no_grad()
def generate(model: Decodable, prompt: torch.Tensor, max_new_tokens: int, *, cache: Cache | None = None,
             selector: Greedy | Sample | BeamSearch | None = None, processors: Sequence[Processor] = (),
             stop_tokens: Iterable[int] = (), pad_token_id: int = 0) -> GenerationOutput:
    """Continue `prompt` (B, T) by up to max_new_tokens tokens.

    `cache` defaults to model.init_cache(B, T + max_new_tokens). Rows end at any of `stop_tokens`.
    """
    selector = selector or Greedy()
    stops = torch.tensor(sorted(set(stop_tokens)), dtype=torch.long, device=prompt.device)
    if cache is None:
        cache = model.init_cache(prompt.shape[0], prompt.shape[1] + max_new_tokens)
    if isinstance(selector, BeamSearch):
        return _beam_search(model, prompt, max_new_tokens, cache, selector, processors, stops, pad_token_id)

    B = prompt.shape[0]
    tokens = prompt
    sum_logprobs = torch.zeros(B, device=prompt.device)
    lengths = torch.zeros(B, dtype=torch.long, device=prompt.device)
    finished = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    stoppable = stops.numel() > 0  # without stop tokens every row runs to max_new_tokens
    logits = model.logits(prompt, cache)[:, -1]  # prefill: (B, V)
    for step in range(max_new_tokens):
        for process in processors:
            logits = process(logits, tokens)
        next_tokens = selector(logits)  # (B,)
        logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, next_tokens[:, None]).squeeze(-1)
        if stoppable:
            next_tokens = next_tokens.masked_fill(finished, pad_token_id)
            logprobs = logprobs.masked_fill(finished, 0.0)
            lengths += (~finished).long()
            finished |= torch.isin(next_tokens, stops)
        else:  # no row can finish: nothing to mask
            lengths += 1
        sum_logprobs += logprobs
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        if step == max_new_tokens - 1 or (stoppable and finished.all()):
            break
        logits = model.logits(next_tokens[:, None], cache)[:, -1]
    return GenerationOutput(tokens, sum_logprobs, lengths)


def _beam_search(model, prompt, max_new_tokens, cache, beam: BeamSearch, processors, stops, pad_token_id):
    B, T0 = prompt.shape
    K = beam.num_beams
    device = prompt.device
    stop_set = set(stops.tolist())
    logits = model.logits(prompt, cache)[:, -1]  # prefill once per row, then expand rows into beams
    expand = torch.arange(B, device=device).repeat_interleave(K)
    cache.reorder(expand)
    tokens, logits = prompt[expand], logits[expand]  # (B*K, T0), (B*K, V)
    beam_scores = torch.full((B, K), float("-inf"), device=device)
    beam_scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished: list[list[tuple[float, float, torch.Tensor]]] = [[] for _ in range(B)]  # (score, logprob, tokens)
    done = [False] * B

    def rank(sum_logprob: float, length: int) -> float:
        return sum_logprob / (length ** beam.length_penalty)

    for step in range(max_new_tokens):
        for process in processors:
            logits = process(logits, tokens)
        V = logits.shape[-1]
        scores = beam_scores.view(-1, 1) + F.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        top_scores, top_index = scores.view(B, K * V).topk(2 * K, dim=1)  # (B, 2K)
        rows, next_tokens, next_scores = [], [], []
        for b in range(B):
            kept = []
            if not done[b]:
                for j in range(2 * K):
                    score, source = top_scores[b, j].item(), b * K + top_index[b, j].item() // V
                    token = top_index[b, j].item() % V
                    if token in stop_set:
                        if j < K:  # only hypotheses ranked within the beam may finish
                            hyp = torch.cat([tokens[source], tokens.new_tensor([token])])
                            finished[b].append((rank(score, step + 1), score, hyp))
                    else:
                        kept.append((source, token, score))
                    if len(kept) == K:
                        break
                finished[b] = sorted(finished[b], key=lambda h: -h[0])[:K]
                # At the last step every live beam is finalised too (below), as transformers does at
                # max_length, so a row that fills up with finished hypotheses only now keeps its live beams.
                if len(finished[b]) == K and step < max_new_tokens - 1:
                    best_live = rank(kept[0][2], step + 1) if kept else float("-inf")
                    done[b] = beam.early_stopping or finished[b][-1][0] >= best_live
            while len(kept) < K:  # finished rows keep placeholder beams so shapes stay fixed
                kept.append((b * K, pad_token_id, float("-inf")))
            for source, token, score in kept:
                rows.append(source)
                next_tokens.append(token)
                next_scores.append(score)
        if all(done):
            break
        rows_t = torch.tensor(rows, device=device)
        next_t = torch.tensor(next_tokens, device=device)
        beam_scores = torch.tensor(next_scores, device=device).view(B, K)
        tokens = torch.cat([tokens[rows_t], next_t[:, None]], dim=1)
        if step == max_new_tokens - 1:
            break
        cache.reorder(rows_t)
        logits = model.logits(next_t[:, None], cache)[:, -1]

    n_new = tokens.shape[1] - T0
    for b in range(B):  # rows that hit max_new_tokens: their live beams compete with the finished ones
        if not done[b]:
            for k in range(K):
                score = beam_scores[b, k].item()
                if score > float("-inf"):
                    finished[b].append((rank(score, n_new), score, tokens[b * K + k]))
    best = [max(hyps, key=lambda h: h[0]) for hyps in finished]
    width = max(h[2].shape[0] for h in best)
    out = torch.full((B, width), pad_token_id, dtype=torch.long, device=device)
    for b, (_, _, hyp) in enumerate(best):
        out[b, : hyp.shape[0]] = hyp
    return GenerationOutput(
        out,
        torch.tensor([h[1] for h in best], device=device),
        torch.tensor([h[2].shape[0] - T0 for h in best], device=device),
    )
