"""Text in, text out: tokenize a prompt, decode through shared.generation.generate(), stream the text back.

    model, tok = zoo.create_model("gpt2", pretrained=path).eval(), Tokenizer.from_dir(path)
    result = generate_text(model, tok, "Once upon a time", max_new_tokens=40, on_text=print)

Works with any shared.generation.Generative model: `start_generation(input_ids, max_new_tokens) -> (prompt,
cache)` plus the `init_cache`/`logits` pair (GPT-2 continues its input; T5 encodes it and decodes from its
start token). Each entry point first runs shared.inference.prepare_for_inference on the model (in place).
"""

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from shared.cache import Cache
from shared.errors import InputError
from shared.generation import BeamSearch, Decodable, GenerationOutput, Generative, Greedy, Sample, generate
from shared.inference import prepare_for_inference
from text.quantize import quantize_int8

PRECISIONS = ("float32", "bfloat16", "int8")


@dataclass
class TextGeneration:
    text: str  # the generated text, without the prompt, cut before a stop string
    token_ids: list[int]  # the generated ids, stop token excluded
    finish_reason: str  # "stop" (a stop string), "eos" (the end-of-sequence token) or "length"


class _Streamer:
    """A logits processor that watches the tokens of row 0 grow: it passes new text to `on_text` as soon as it
    is complete (no half UTF-8 character, no possible start of a stop string) and, once a stop string appears,
    forces the end-of-sequence token so that generation ends there."""

    def __init__(self, tokenizer, start: int, eos_id: int, stop: Sequence[str], on_text: Callable | None):
        self.tokenizer, self.start, self.eos_id = tokenizer, start, eos_id
        self.stop, self.on_text = [s for s in stop if s], on_text
        self.emitted = 0
        self.stopped = False

    def text_of(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i != self.eos_id])

    def _held_back(self, text: str) -> int:
        """Characters at the end of `text` that might still become a stop string or a full UTF-8 character."""
        if text.endswith("\ufffd"):
            return len(text) - len(text.rstrip("\ufffd"))
        for n in range(min(len(text), max((len(s) for s in self.stop), default=0)), 0, -1):
            if any(s.startswith(text[-n:]) for s in self.stop):
                return n
        return 0

    def emit(self, text: str, final: bool = False) -> None:
        if self.on_text is None:
            return
        end = len(text) if final else len(text) - self._held_back(text)
        if end > self.emitted:
            self.on_text(text[self.emitted:end])
            self.emitted = end

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        text = self.text_of(tokens[0, self.start:].tolist())
        if self.stop and not self.stopped and any(s in text for s in self.stop):
            self.stopped = True
            forced = torch.full_like(logits, float("-inf"))
            forced[:, self.eos_id] = 0.0
            return forced
        if not self.stopped:
            self.emit(text)
        return logits


def _only_known_ids(vocab_size: int):
    """A processor that rules out ids the tokenizer cannot decode: model vocabularies are often padded (T5's
    32128 rows for 32100 tokens), and a padding row must never be generated."""

    def process(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return logits.index_fill(-1, torch.arange(vocab_size, logits.shape[-1], device=logits.device),
                                 float("-inf"))

    return process


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


@torch.inference_mode()
def generate_text(model: Generative, tokenizer, prompt: str, max_new_tokens: int = 50, *,
                  selector: Greedy | Sample | BeamSearch | None = None, stop: Sequence[str] = (),
                  on_text: Callable[[str], None] | None = None, processors: Sequence = (),
                  eos_id: int | None = None) -> TextGeneration:
    """Generate text from a prompt string.

    selector: Greedy() (default), Sample(...) or BeamSearch(...). stop: strings that end the text (not
    included in it). on_text: called with each new piece of text as it is generated (with beam search, once
    with the whole text, since the best beam is only known at the end). eos_id defaults to the tokenizer's
    end-of-sequence token, then to the model config's.
    """
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be a string, got {type(prompt).__name__}")
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    config = model.config
    eos_id = eos_id if eos_id is not None else tokenizer.eos_id
    eos_id = eos_id if eos_id is not None else config.eos_id
    ids = tokenizer.encode(prompt)
    if not ids:  # a decoder-only model needs something to continue: start from its begin-of-text token
        ids = [tokenizer.bos_id if tokenizer.bos_id is not None else getattr(config, "bos_id", eos_id)]
    device = next(model.parameters()).device
    prepare_for_inference(model)
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    start_prompt, cache = model.start_generation(input_ids, max_new_tokens)
    beam = isinstance(selector, BeamSearch)
    # beams are reordered every step, so with beam search stop strings only cut the final text
    streamer = _Streamer(tokenizer, start_prompt.shape[1], eos_id, () if beam else stop,
                         None if beam else on_text)
    processors = list(processors)
    if tokenizer.vocab_size < config.vocab_size:
        processors.insert(0, _only_known_ids(tokenizer.vocab_size))
    if streamer.on_text is not None or streamer.stop:  # decoding text every step is only needed for these
        processors.append(streamer)
    out = generate(model, start_prompt, max_new_tokens, cache=cache, selector=selector, processors=processors,
                   stop_tokens=[eos_id], pad_token_id=config.pad_id)
    new_ids = out.tokens[0, start_prompt.shape[1]:start_prompt.shape[1] + int(out.lengths[0])].tolist()
    hit_eos = bool(new_ids) and new_ids[-1] == eos_id
    new_ids = new_ids[:-1] if hit_eos else new_ids
    text, stopped = _cut_at_stop(streamer.text_of(new_ids), stop)
    if beam:
        streamer.on_text = on_text
    streamer.emit(text, final=True)
    return TextGeneration(text, new_ids, "stop" if stopped else "eos" if hit_eos else "length")


def reduce_precision(model: nn.Module, precision: str) -> nn.Module:
    """A copy of `model` for faster inference (the model itself is left as it is).

    "float32": unchanged. "bfloat16": all weights in bfloat16 (for GPUs). "int8": every projection, the LM
    head included, with per-channel int8 weights and dynamically quantized activations (CPU; see
    text.quantize). Use the result for inference only. Reduced precision can change greedy choices whose
    logits are nearly tied; draft_and_verify() gives the float32 output with a reduced-precision draft.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        return model
    if precision == "bfloat16":
        return copy.deepcopy(model).eval().to(torch.bfloat16)
    return quantize_int8(model)


class LeftPaddedCache(Cache):
    """A decoder's cache plus which of its positions hold real tokens: in a left-padded batch each row's
    prompt ends at the same column, shorter ones preceded by padding. `valid` (B, max_len) bool follows the
    rows through reorder() (beam search); positions after the prompt are real."""

    def __init__(self, cache: Cache, valid_prompt: torch.Tensor, max_len: int):
        self.layers, self.memory, self.memory_mask = cache.layers, cache.memory, cache.memory_mask
        B, T = valid_prompt.shape
        self.valid = torch.ones(B, max_len, dtype=torch.bool, device=valid_prompt.device)
        self.valid[:, :T] = valid_prompt

    def reorder(self, index: torch.Tensor) -> None:
        super().reorder(index)
        self.valid = self.valid.index_select(0, index)


class _LeftPadded:
    """Makes a model whose logits() takes a padding mask and per-row positions Decodable by generate()."""

    def __init__(self, model: Generative):
        self.model = model

    def init_cache(self, batch_size: int, max_len: int) -> Cache:
        raise RuntimeError("a left-padded batch is always given its LeftPaddedCache")

    def logits(self, tokens: torch.Tensor, cache: LeftPaddedCache) -> torch.Tensor:
        start, end = cache.length, cache.length + tokens.shape[1]
        valid = cache.valid[:, :end]  # (B, Tk): real tokens among everything cached, these included
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)[:, start:end]  # (B, T): from each row's start
        return self.model.logits(tokens, cache, mask=valid, position_ids=positions)


@torch.inference_mode()
def generate_batch(model: Generative, prompts: Sequence[Sequence[int]], max_new_tokens: int, *,
                   selector: Greedy | Sample | BeamSearch | None = None, processors: Sequence = (),
                   stop_tokens: Sequence[int] = (), pad_token_id: int | None = None) -> GenerationOutput:
    """Continue several prompts of different lengths at once (decoder-only models such as GPT-2).

    Prompts are left-padded to a common length, so every row's next token sits in the same column; the
    padding is masked out of attention and each row's positions start at its first real token, so a row
    generates what its prompt alone would. Returns shared.generation's GenerationOutput: tokens
    (B, T_max + new), row i holding T_max - len(prompts[i]) pads, its prompt, then its new tokens.
    """
    prompts = [list(p) for p in prompts]
    if not prompts or not all(prompts):
        raise InputError("generate_batch needs at least one prompt, and no empty prompt")
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    pad = pad_token_id if pad_token_id is not None else model.config.pad_id
    device = next(model.parameters()).device
    prepare_for_inference(model)
    width = max(len(p) for p in prompts)
    tokens = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=device)
    kwargs = dict(selector=selector, processors=processors, stop_tokens=stop_tokens, pad_token_id=pad)
    if all(len(p) == width for p in prompts):  # nothing to mask: the plain path keeps attention's fast kernel
        return generate(model, tokens, max_new_tokens, **kwargs)
    valid = torch.tensor([[False] * (width - len(p)) + [True] * len(p) for p in prompts], device=device)
    _, cache = model.start_generation(tokens, max_new_tokens)
    cache = LeftPaddedCache(cache, valid, width + max_new_tokens)
    return generate(_LeftPadded(model), tokens, max_new_tokens, cache=cache, **kwargs)


@dataclass
class DraftedGeneration:
    tokens: torch.Tensor  # (1, T_prompt + T_new): the prompt, then what greedy decoding of `model` gives
    drafted: int  # tokens proposed by the draft model
    accepted: int  # of those, tokens the full-precision model agreed with


def _rewind(cache: Cache, length: int) -> None:
    """Forget cached positions from `length` on (later writes overwrite them)."""
    for layer in cache.layers:
        layer.self_attn.length = length


@torch.inference_mode()
def draft_and_verify(model: Decodable, draft: Decodable, prompt: torch.Tensor, max_new_tokens: int,
                     draft_tokens: int = 8, stop_tokens: Sequence[int] = ()) -> DraftedGeneration:
    """Greedy decoding of `model` sped up by a cheaper `draft` of it (e.g. reduce_precision(model, "int8")).

    The draft proposes up to `draft_tokens` tokens one by one; the model checks them all in one pass, which
    reads its weights once for several tokens, keeps the agreeing prefix and adds its own next token. The
    output is the model's own greedy decoding, so reduced precision costs no accuracy. The run length adapts:
    it doubles after a fully accepted run (up to draft_tokens) and shrinks to what was accepted after a
    rejection, so a draft that disagrees often wastes little. prompt: (1, T), decoder-only.
    """
    if prompt.shape[0] != 1:
        raise InputError(f"draft_and_verify decodes one sequence at a time, got a batch of {prompt.shape[0]}")
    if draft_tokens < 1:
        raise InputError(f"draft_tokens must be at least 1, got {draft_tokens}")
    stops = set(stop_tokens)
    prepare_for_inference(model)
    prepare_for_inference(draft)
    limit = prompt.shape[1] + max_new_tokens + draft_tokens + 1
    cache, draft_cache = model.init_cache(1, limit), draft.init_cache(1, limit)
    tokens = prompt[0].tolist()
    new = [int(model.logits(prompt, cache)[0, -1].argmax())]  # not yet fed to either model
    fed_draft, drafted, accepted, run = 0, 0, 0, draft_tokens
    while len(new) < max_new_tokens and new[-1] not in stops:
        base = len(tokens) + len(new) - 1  # positions both models must have cached before the last token
        guesses: list[int] = []
        pending = (tokens + new)[fed_draft:]  # tokens the draft has not seen yet (1 or 2)
        for _ in range(min(run, max_new_tokens - len(new))):
            logits = draft.logits(torch.tensor([pending], device=prompt.device), draft_cache)
            guesses.append(int(logits[0, -1].argmax()))
            pending = guesses[-1:]
            if guesses[-1] in stops:
                break
        checked = model.logits(torch.tensor([[new[-1], *guesses]], device=prompt.device), cache)
        best = checked[0].argmax(-1).tolist()  # the model's choice after each fed token: (len(guesses) + 1,)
        n_ok = 0
        while n_ok < len(guesses) and guesses[n_ok] == best[n_ok] and guesses[n_ok] not in stops:
            n_ok += 1
        drafted, accepted = drafted + len(guesses), accepted + n_ok
        if n_ok < len(guesses) and guesses[n_ok] == best[n_ok]:  # an agreed stop token ends the text
            new += guesses[:n_ok + 1]
            break
        new += guesses[:n_ok] + [best[n_ok]]
        run = min(2 * run, draft_tokens) if n_ok == len(guesses) else max(1, n_ok)
        _rewind(cache, base + 1 + n_ok)
        fed_draft = base + 1 + min(n_ok, len(guesses) - 1)
        _rewind(draft_cache, fed_draft)
    new = new[:max_new_tokens]
    for i, token in enumerate(new):
        if token in stops:
            new = new[:i + 1]
            break
    out = torch.tensor([tokens + new], dtype=torch.long, device=prompt.device)
    return DraftedGeneration(out, drafted, accepted)
