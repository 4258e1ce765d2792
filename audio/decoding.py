"""Decoding one 30 s window with Whisper's rules: logits processors for shared.generation.generate(), and
Whisper's own beam search.

The rules follow openai-whisper's: no blank or end-of-text as the first sampled token, a suppressed set of
non-speech tokens, and timestamp rules (timestamps come in pairs, never decrease, are forced when their total
probability beats every text token, and the first one is at most `max_initial_timestamp`). Beam search keeps
openai-whisper's candidates and stopping rule (see `_beam_search`), which differ from shared.generation's.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from shared.errors import ConfigError, InputError
from shared.generation import Greedy, Sample, generate
from shared.quantize import one_input

NEG_INF = float("-inf")


@dataclass(frozen=True)
class DecodingOptions:
    """Options of one window's decoding, named as in openai-whisper."""

    task: str = "transcribe"
    language: str | None = None  # None: detected from the audio (multilingual models)
    temperature: float = 0.0
    sample_len: int | None = None  # most tokens to sample; n_text_ctx // 2 by default
    best_of: int | None = None  # independent samples when temperature > 0
    beam_size: int | None = None  # beams when temperature == 0
    patience: float | None = None  # beam search keeps round(beam_size * patience) finished candidates
    length_penalty: float | None = None  # None: rank by sum of log-probabilities / length
    prompt: str | list[int] | None = None  # previous text, after <|startofprev|>
    prefix: str | list[int] | None = None  # forced start of this window's text
    suppress_tokens: str | Iterable[int] | None = "-1"  # "-1": the non-speech set
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    fp16: bool = True  # half precision on CUDA; CPU always decodes in float32


@dataclass
class DecodingResult:
    tokens: list[int] = field(default_factory=list)  # sampled tokens, end-of-text excluded
    text: str = ""
    language: str = "en"
    avg_logprob: float = float("nan")
    no_speech_prob: float = float("nan")
    temperature: float = float("nan")
    compression_ratio: float = float("nan")


def compression_ratio(text: str) -> float:
    """UTF-8 length / zlib-compressed length: high values mean repetitive text."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


# -- logits processors: (logits (B, V), tokens (B, T)) -> logits, applied in place -------------------------


class SuppressAtBegin:
    """Forbid `ids` (a blank and end-of-text) as the first sampled token."""

    def __init__(self, ids: Iterable[int], sample_begin: int):
        self.ids, self.sample_begin = list(ids), sample_begin

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.ids] = NEG_INF
        return logits


class SuppressTokens:
    """Forbid a fixed set of ids at every step."""

    def __init__(self, ids: Iterable[int]):
        self.ids = list(ids)
        self._index: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if self._index is None or self._index.device != logits.device:
            self._index = torch.tensor(self.ids, dtype=torch.long, device=logits.device)
        return logits.index_fill_(1, self._index, NEG_INF)


class TimestampRules:
    """Whisper's timestamp grammar, for all rows at once.

    Text comes between a pair of timestamps; a lone timestamp must be followed by another (closing the
    segment and opening the next) unless end-of-text follows; timestamps never decrease and each segment
    has a non-zero length; the first token is a timestamp no later than `max_initial_index`; a timestamp is
    forced when the timestamps together are more likely than the best text token.
    """

    def __init__(
        self,
        eot: int,
        no_timestamps: int,
        timestamp_begin: int,
        sample_begin: int,
        max_initial_index: int | None,
    ):
        self.eot, self.no_timestamps, self.ts = eot, no_timestamps, timestamp_begin
        self.sample_begin, self.max_initial_index = sample_begin, max_initial_index

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        ts = self.ts
        logits[:, self.no_timestamps] = NEG_INF
        if tokens.shape[1] == self.sample_begin:
            logits[:, :ts] = NEG_INF  # start with a timestamp
            if self.max_initial_index is not None:
                logits[:, ts + self.max_initial_index + 1 :] = NEG_INF
        else:
            # Row by row on Python lists: a few list operations and at most three slice fills per row cost less
            # per token than the dozen small tensor operations the same rules take vectorised.
            for row, sampled in enumerate(tokens[:, self.sample_begin :].tolist()):
                self._grammar(logits[row], sampled)
        logprobs = F.log_softmax(logits.float(), dim=-1)
        timestamp_logprob = logprobs[:, ts:].logsumexp(dim=-1)  # (B,)
        best_text = logprobs[:, :ts].max(dim=-1).values
        logits[:, :ts].masked_fill_((timestamp_logprob > best_text)[:, None], NEG_INF)
        return logits

    def _grammar(self, logits: torch.Tensor, sampled: list[int]) -> None:
        """One row's rules: logits (V,) in place, given the tokens sampled so far (at least one)."""
        ts = self.ts
        last = sampled[-1] >= ts
        penultimate = len(sampled) < 2 or sampled[-2] >= ts
        opened = last and not penultimate  # a segment just started or ended: its pair or end-of-text follows
        if last and penultimate:
            logits[ts:] = NEG_INF
        elif opened:
            logits[: self.eot] = NEG_INF
        last_ts = next((t for t in reversed(sampled) if t >= ts), None)
        if last_ts is not None:
            # After a closing timestamp the next one may repeat it (it opens the next segment); otherwise
            # the next timestamp must be strictly later.
            logits[ts : last_ts if opened else last_ts + 1] = NEG_INF


# -- one window -----------------------------------------------------------------------------------------


class _WindowDecoder:
    """What generate() drives for one window (Decodable): the decoder, projecting to the vocabulary only the
    positions that are read: the last one, and at the first call the start-of-transcript (for the no-speech
    probability)."""

    def __init__(self, model, sot_index: int):
        self.model, self.sot_index = model, sot_index
        self.sot_logits: torch.Tensor | None = None

    def init_cache(self, batch_size: int, max_len: int):
        raise RuntimeError("the window decoder is always given a cache")

    def logits(self, tokens: torch.Tensor, cache) -> torch.Tensor:  # (B, T) -> (B, 1, V)
        decoder = self.model.decoder
        hidden = decoder.hidden_states(tokens, cache=cache)  # (B, T, D)
        if self.sot_logits is None:
            # (B, 1, D): a sequence per row, as an int8 head quantizes each on its own (shared.quantize)
            self.sot_logits = decoder.head(hidden[:, self.sot_index : self.sot_index + 1])[:, 0]  # (B, V)
            _contiguous_cross_kv(cache)
        return decoder.head(hidden[:, -1:])


def _contiguous_cross_kv(cache) -> None:
    """Re-lay the cross-attention keys and values, projected at the prefill, as contiguous (B, H, S, Dh).

    They are head-split views of (B, S, H·Dh) projections; every later step attends one query over all S
    positions, and scaled_dot_product_attention reads contiguous heads about twice as fast on the CPU
    (same values, same result).
    """
    for layer in cache.layers:
        cross = layer.cross_attn
        if cross is not None and cross.k is not None:
            cross.k, cross.v = cross.k.contiguous(), cross.v.contiguous()


def initial_tokens(tokenizer, options: DecodingOptions, n_text_ctx: int, language: str | None) -> list[int]:
    """[<|startofprev|> prompt] <|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>] [prefix]."""
    try:
        tokens = list(tokenizer.sot_sequence(language, options.task))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if options.without_timestamps:
        tokens.append(tokenizer.no_timestamps)
    if options.prefix:
        prefix = options.prefix
        prefix = tokenizer.encode(" " + prefix.strip()) if isinstance(prefix, str) else list(prefix)
        max_prefix = n_text_ctx // 2 - (options.sample_len or n_text_ctx // 2)
        tokens += prefix[-max_prefix:]  # as openai-whisper: a limit of 0 keeps the whole prefix
    if options.prompt:
        prompt = options.prompt
        prompt = tokenizer.encode(" " + prompt.strip()) if isinstance(prompt, str) else list(prompt)
        tokens = [tokenizer.sot_prev] + prompt[-(n_text_ctx // 2 - 1) :] + tokens
    return tokens


def suppress_set(tokenizer, suppress_tokens) -> list[int]:
    """openai-whisper's `suppress_tokens` option: "-1" (or -1 in a list) adds the non-speech set; the
    prompt/task specials and no-speech are always suppressed."""
    if isinstance(suppress_tokens, str):
        try:
            ids = [int(t) for t in suppress_tokens.split(",") if t.strip()]
        except ValueError:
            raise ConfigError(f"suppress_tokens {suppress_tokens!r}: use comma-separated token ids") from None
    else:
        ids = list(suppress_tokens or [])
    if -1 in ids:
        ids = [t for t in ids if t >= 0] + list(tokenizer.non_speech_tokens())
    specials = [
        tokenizer.transcribe,
        tokenizer.translate,
        tokenizer.sot,
        tokenizer.sot_prev,
        tokenizer.sot_lm,
    ]
    if tokenizer.no_speech is not None:
        specials.append(tokenizer.no_speech)
    return sorted(set(ids) | set(specials))


def processors_for(tokenizer, options: DecodingOptions, sample_begin: int, precision: float = 0.02) -> list:
    """The logits processors of openai-whisper's decoding, in its order."""
    out = []
    if options.suppress_blank:
        out.append(SuppressAtBegin(tokenizer.begin_suppress_tokens(), sample_begin))
    if options.suppress_tokens:
        out.append(SuppressTokens(suppress_set(tokenizer, options.suppress_tokens)))
    if not options.without_timestamps:
        max_initial = None
        if options.max_initial_timestamp:
            max_initial = round(options.max_initial_timestamp / precision)
        out.append(
            TimestampRules(
                tokenizer.eot, tokenizer.no_timestamps, tokenizer.timestamp_begin, sample_begin, max_initial
            )
        )
    return out


def check_options(options: DecodingOptions) -> None:
    """Reject option combinations openai-whisper rejects, with the same reasons."""
    if options.beam_size is not None and options.best_of is not None:
        raise ConfigError("beam_size and best_of can't be given together")
    if options.temperature == 0 and options.best_of is not None:
        raise ConfigError("best_of with greedy sampling (temperature 0) is not compatible")
    if options.temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {options.temperature}")
    if options.patience is not None and options.beam_size is None:
        raise ConfigError("patience requires beam_size to be given")
    if options.beam_size is not None and round(options.beam_size * (options.patience or 1.0)) < 1:
        raise ConfigError(f"beam_size {options.beam_size} with patience {options.patience} keeps no candidate; "
                          "use beam_size >= 1 and patience > 0")
    if options.length_penalty is not None and not 0 <= options.length_penalty <= 1:
        raise ConfigError("length_penalty (alpha) should be a value between 0 and 1")


@torch.inference_mode()
def detect_language(model, memory: torch.Tensor, tokenizer) -> tuple[str, dict[str, float]]:
    """The most likely language of one window (memory (1, S, D)) and every language's probability."""
    if not tokenizer.language_tokens:
        return "en", {"en": 1.0}
    codes = list(tokenizer.language_tokens)
    ids = torch.tensor(list(tokenizer.language_tokens.values()), device=memory.device)
    cache = model.init_cache(memory.shape[0], 1, memory=memory)
    sot = torch.full((memory.shape[0], 1), tokenizer.sot, dtype=torch.long, device=memory.device)
    probs = model.logits(sot, cache)[0, 0].float()[ids].softmax(dim=-1)
    table = dict(zip(codes, probs.tolist()))
    return max(table, key=table.get), table


def _rank(tokens: list[list[int]], sum_logprobs: list[float], length_penalty: float | None) -> int:
    """openai-whisper's maximum-likelihood ranking of finished candidates."""

    def score(length: int, logprob: float) -> float:
        penalty = length if length_penalty is None else ((5 + length) / 6) ** length_penalty
        return logprob / max(penalty, 1e-9)

    scores = [score(len(t), lp) for t, lp in zip(tokens, sum_logprobs)]
    return max(range(len(scores)), key=scores.__getitem__)


def _beam_search(
    stepper: _WindowDecoder,
    cache,
    prompt: torch.Tensor,
    max_new: int,
    processors: list,
    eot: int,
    beam_size: int,
    patience: float | None,
) -> tuple[list[list[int]], list[float]]:
    """openai-whisper's beam search of one window from prompt (1, T0): every candidate's sampled tokens
    (end-of-text excluded) and sum of log-probabilities, in the order its ranker reads them.

    Each step, each beam proposes its beam_size + 1 likeliest tokens; going down all proposals by score,
    end-of-text ones met before beam_size live beams are kept finish, and are recorded (best first) until
    round(beam_size * patience) have finished, which ends the search. Live beams then fill the candidates up
    to beam_size.
    """
    K, T0 = beam_size, prompt.shape[1]
    max_candidates = round(K * (patience or 1.0))
    finished: list[tuple[list[int], float]] = []
    tokens = prompt  # (N, T): one row until the first step splits it into K beams
    scores = torch.zeros(1, device=prompt.device)  # (N,) float32 sums, added as openai-whisper adds them
    logits = stepper.logits(prompt, cache)[:, -1]  # (1, V)
    for step in range(max_new):
        for process in processors:
            logits = process(logits, tokens)
        top, index = F.log_softmax(logits.float(), dim=-1).topk(K + 1, dim=-1)  # (N, K+1)
        proposals = (scores[:, None] + top).flatten()  # (N*(K+1),)
        order = proposals.sort(descending=True, stable=True).indices.tolist()
        proposed, proposal_tokens = proposals.tolist(), index.flatten().tolist()
        live: list[int] = []  # proposals kept as beams, best first
        for i in order:
            if proposal_tokens[i] != eot:
                live.append(i)
                if len(live) == K:
                    break
            elif len(finished) < max_candidates:
                finished.append((tokens[i // (K + 1), T0:].tolist(), proposed[i]))
        live_t = torch.tensor(live, device=prompt.device)  # (K,)
        rows_t = live_t // (K + 1)  # the beam each comes from
        next_t = index.flatten()[live_t]  # (K,)
        scores = proposals[live_t]  # (K,)
        tokens = torch.cat([tokens[rows_t], next_t[:, None]], dim=1)  # (K, T+1)
        if len(finished) >= max_candidates or step == max_new - 1:
            break
        cache.reorder(rows_t)
        logits = stepper.logits(next_t[:, None], cache)[:, -1]  # (K, V)
    for row, score in zip(tokens[:, T0:].tolist(), scores.tolist()):  # live beams, best first
        if len(finished) >= K:
            break
        finished.append((row, score))
    return [t for t, _ in finished], [lp for _, lp in finished]


@torch.inference_mode()
def decode_features(
    model,
    memory: torch.Tensor,
    tokenizer,
    options: DecodingOptions = DecodingOptions(),
    language: str | None = None,
) -> DecodingResult:
    """Decode one window given its encoder output memory (1, n_audio_ctx, D).

    Greedy at temperature 0 (openai-whisper's beam search with beam_size), sampling above it (best of
    `best_of`); the candidates are ranked as openai-whisper ranks them.
    """
    check_options(options)
    if memory.dim() != 3 or memory.shape[0] != 1:
        raise InputError(f"decode one window at a time: memory must be (1, S, D), got {tuple(memory.shape)}")
    n_ctx = model.config.n_text_ctx
    language = language or options.language or ("en" if not tokenizer.multilingual else None)
    if language is None:
        language, _ = detect_language(model, memory, tokenizer)
    initial = initial_tokens(tokenizer, options, n_ctx, language)
    sample_begin = len(initial)
    sot_index = initial.index(tokenizer.sot)
    max_new = min(options.sample_len or n_ctx // 2, n_ctx - sample_begin)
    if max_new <= 0:
        raise InputError(f"the prompt of {sample_begin} tokens leaves no room in the {n_ctx}-token context")

    # memory stays (1, S, D): every row (beam, sample) reads it, and its keys and values, once (shared.cache)
    processors = processors_for(tokenizer, options, sample_begin)
    stepper = _WindowDecoder(model, sot_index)
    # every row is a candidate of this one window: int8 projections quantize the rows together (shared.quantize)
    with one_input():
        if options.temperature == 0 and not _greedy(options):  # every candidate is ranked below
            prompt = torch.tensor([initial], dtype=torch.long, device=memory.device)  # (1, T0)
            cache = model.init_cache(1, sample_begin + max_new, memory=memory)
            candidates, sum_logprobs = _beam_search(
                stepper, cache, prompt, max_new, processors, tokenizer.eot, options.beam_size, options.patience
            )
        else:
            sampled = options.temperature > 0
            n_group, selector = (options.best_of or 1, Sample(options.temperature)) if sampled else (1, Greedy())
            prompt = torch.tensor([initial] * n_group, dtype=torch.long, device=memory.device)  # (N, T0)
            cache = model.init_cache(n_group, sample_begin + max_new, memory=memory)
            out = generate(stepper, prompt, max_new, cache=cache, selector=selector, processors=processors,
                           stop_tokens=[tokenizer.eot], pad_token_id=tokenizer.eot)
            candidates = []
            for row in out.tokens[:, sample_begin:].tolist():
                candidates.append(row[: row.index(tokenizer.eot)] if tokenizer.eot in row else row)
            sum_logprobs = out.sum_logprobs.tolist()

    no_speech_prob = float("nan")
    if tokenizer.no_speech is not None and stepper.sot_logits is not None:
        no_speech_prob = stepper.sot_logits[0].float().softmax(dim=-1)[tokenizer.no_speech].item()
    best = _rank(candidates, sum_logprobs, options.length_penalty) if len(candidates) > 1 else 0
    tokens = candidates[best]
    text = tokenizer.decode(tokens).strip()
    return DecodingResult(
        tokens=tokens,
        text=text,
        language=language,
        avg_logprob=sum_logprobs[best] / (len(tokens) + 1),
        no_speech_prob=no_speech_prob,
        temperature=options.temperature,
        compression_ratio=compression_ratio(text),
    )


@torch.inference_mode()
def decode(
    model, mel: torch.Tensor, tokenizer, options: DecodingOptions = DecodingOptions()
) -> DecodingResult:
    """Encode one window's log-mel (n_mels, n_frames) and decode it."""
    return decode_features(model, model.embed_audio(mel), tokenizer, options)


def _greedy(options: DecodingOptions) -> bool:
    """Greedy decoding: temperature 0 without beams; one beam keeping one candidate picks the same tokens."""
    beams = options.beam_size or 1
    return options.temperature == 0 and beams == 1 and round(options.patience or 1.0) == 1


@torch.inference_mode()
def decode_batch(model, memory: torch.Tensor, tokenizer, options: list[DecodingOptions]) -> list[DecodingResult]:
    """Decode B windows at once: memory (B, n_audio_ctx, D), one DecodingOptions per window (their prompts
    differ; the language must be set). Each window gets the result decode_features() gives it alone.

    Greedy windows whose initial tokens are equally long decode as one batch (no padding, so no row sees
    another's positions; a row that reaches end-of-text is carried along, its tokens ignored); beam search
    and sampling decode window by window.
    """
    if memory.dim() != 3 or memory.shape[0] != len(options):
        raise InputError(f"decode_batch needs one DecodingOptions per window, got {len(options)} for "
                         f"memory of shape {tuple(memory.shape)}")
    n_ctx = model.config.n_text_ctx
    results: list[DecodingResult | None] = [None] * len(options)
    groups: dict[tuple[int, str], list[tuple[int, list[int]]]] = {}
    for i, opts in enumerate(options):
        check_options(opts)
        if opts.language is None and tokenizer.multilingual:
            raise InputError("decode_batch needs each window's language; detect it first")
        if not _greedy(opts):
            results[i] = decode_features(model, memory[i : i + 1], tokenizer, opts)
            continue
        initial = initial_tokens(tokenizer, opts, n_ctx, opts.language or "en")
        rules = dataclasses.replace(opts, prompt=None, prefix=None, language=None)  # what the processors read
        groups.setdefault((len(initial), repr(rules)), []).append((i, initial))
    for (sample_begin, _), rows in groups.items():
        index = [i for i, _ in rows]
        first = options[index[0]]
        sot_index = rows[0][1].index(tokenizer.sot)
        max_new = min(first.sample_len or n_ctx // 2, n_ctx - sample_begin)
        if max_new <= 0:
            raise InputError(f"the prompt of {sample_begin} tokens leaves no room in the {n_ctx}-token context")
        prompt = torch.tensor([initial for _, initial in rows], dtype=torch.long, device=memory.device)  # (N, T0)
        stepper = _WindowDecoder(model, sot_index)
        cache = model.init_cache(len(rows), sample_begin + max_new, memory=memory[index])
        out = generate(stepper, prompt, max_new, cache=cache, selector=Greedy(),
                       processors=processors_for(tokenizer, first, sample_begin), stop_tokens=[tokenizer.eot],
                       pad_token_id=tokenizer.eot)
        sum_logprobs = out.sum_logprobs.tolist()
        for row, (i, _) in enumerate(rows):
            tokens = out.tokens[row, sample_begin:].tolist()
            tokens = tokens[: tokens.index(tokenizer.eot)] if tokenizer.eot in tokens else tokens
            no_speech_prob = float("nan")
            if tokenizer.no_speech is not None:
                no_speech_prob = stepper.sot_logits[row].float().softmax(dim=-1)[tokenizer.no_speech].item()
            text = tokenizer.decode(tokens).strip()
            results[i] = DecodingResult(
                tokens=tokens,
                text=text,
                language=options[i].language or "en",
                avg_logprob=sum_logprobs[row] / (len(tokens) + 1),
                no_speech_prob=no_speech_prob,
                temperature=0.0,
                compression_ratio=compression_ratio(text),
            )
    return results
