"""Long-form transcription: 30 s windows over one log-mel, each decoded with temperature fallback, the next
window starting at the last complete timestamp so no word is cut in half.

Follows openai-whisper's transcribe(): the same padding, seeking, prompts, no-speech skipping and word
timestamps, so the same weights give the same transcript.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import torch

from audio.decoding import DecodingOptions, DecodingResult, decode_features, detect_language
from audio.features import HOP_LENGTH, SAMPLE_RATE, log_mel_spectrogram, pad_or_trim
from audio.vad import with_vad_filter
from audio.word_timestamps import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, WordTimestamps
from shared.errors import ConfigError, InputError
from shared.inference import prepare_for_inference
from shared.threads import recheck_threads

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_DECODING_FIELDS = {f.name for f in dataclasses.fields(DecodingOptions)}


def format_timestamp(seconds: float, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """12.5 -> '00:12.500' (or '00:00:12.500' with hours)."""
    milliseconds = round(max(seconds, 0.0) * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1000)
    prefix = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{prefix}{minutes:02d}:{secs:02d}{decimal_marker}{milliseconds:03d}"


def _as_audio(audio) -> np.ndarray | torch.Tensor:
    if isinstance(audio, (str, os.PathLike)):
        from audio.io import load_audio

        return load_audio(audio)  # its AudioError is an InputError
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        if audio.ndim != 1 or audio.shape[0] == 0:
            raise InputError(
                f"audio must be a non-empty 1-D array of 16 kHz samples, got shape {tuple(audio.shape)}"
            )
        return audio
    raise InputError(
        f"cannot transcribe a {type(audio).__name__}: pass a file path or a 1-D array of samples"
    )


class _Fallback:
    """Decode one window at rising temperatures until the result is neither repetitive nor unlikely."""

    def __init__(
        self,
        model,
        tokenizer,
        temperatures,
        options: dict,
        compression_ratio_threshold,
        logprob_threshold,
        no_speech_threshold,
    ):
        self.model, self.tokenizer, self.temperatures, self.options = model, tokenizer, temperatures, options
        self.compression_ratio_threshold = compression_ratio_threshold
        self.logprob_threshold = logprob_threshold
        self.no_speech_threshold = no_speech_threshold

    def options_at(self, temperature: float, prompt: list[int]) -> DecodingOptions:
        kwargs = dict(self.options, prompt=prompt, temperature=temperature)
        if temperature > 0:  # sampling: beams make no sense, best_of does
            kwargs.pop("beam_size", None)
            kwargs.pop("patience", None)
        else:
            kwargs.pop("best_of", None)
        return DecodingOptions(**kwargs)

    def failed(self, result: DecodingResult) -> bool:
        """Whether a window's result is too repetitive or too unlikely to keep (silence never is)."""
        if (
            self.no_speech_threshold is not None
            and result.no_speech_prob > self.no_speech_threshold
            and self.logprob_threshold is not None
            and result.avg_logprob < self.logprob_threshold
        ):
            return False  # silence: the window will be skipped, no point sampling
        too_repetitive = (
            self.compression_ratio_threshold is not None
            and result.compression_ratio > self.compression_ratio_threshold
        )
        too_unlikely = self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold
        return too_repetitive or too_unlikely

    def __call__(
        self, memory: torch.Tensor, prompt: list[int], first: DecodingResult | None = None
    ) -> DecodingResult:
        """The first acceptable result; `first`: the window already decoded at the first temperature (a
        batch decodes that for many windows at once)."""
        result = None
        for i, t in enumerate(self.temperatures):
            if i == 0 and first is not None:
                result = first
            else:
                result = decode_features(self.model, memory, self.tokenizer, self.options_at(t, prompt))
            if not self.failed(result):
                break
        return result


def _segments(tokens: list[int], tokenizer, time_offset: float, duration: float, precision: float):
    """Split one window's tokens at timestamp pairs -> ([(start, end, tokens)], last timestamp or None).

    None means the window was used up to its end (no complete trailing timestamp pair to seek back to).
    """
    ts = tokenizer.timestamp_begin
    is_ts = [t >= ts for t in tokens]
    single_ending = is_ts[-2:] == [False, True]
    boundaries = [i + 1 for i in range(len(tokens) - 1) if is_ts[i] and is_ts[i + 1]]
    if boundaries:
        if single_ending:
            boundaries.append(len(tokens))
        out, last = [], 0
        for end in boundaries:
            piece = tokens[last:end]
            out.append(
                (time_offset + (piece[0] - ts) * precision, time_offset + (piece[-1] - ts) * precision, piece)
            )
            last = end
        return out, None if single_ending else tokens[last - 1] - ts
    stamps = [t for t in tokens if t >= ts]
    if stamps and stamps[-1] != ts:
        duration = (stamps[-1] - ts) * precision
    return [(time_offset, time_offset + duration, tokens)], None


def autocast_for(model, decode_options: dict):
    """fp16 autocast on CUDA unless fp16=False (a float32 model asked to compute in half); off on the CPU."""
    device = next(model.parameters()).device
    enabled = device.type == "cuda" and decode_options.get("fp16", True)
    return torch.autocast("cuda", dtype=torch.float16, enabled=enabled)


class Transcript:
    """One file's way through its windows: which window comes next, with which prompt, and what each decoded
    window adds (segments, the next seek). transcribe() feeds it one window at a time; transcribe_many()
    (audio/batched.py) feeds the windows of several files in one batch.

    Options are transcribe()'s; `bar` shows progress over this file's frames.
    """

    def __init__(
        self,
        model,
        audio,
        *,
        tokenizer,
        verbose: bool | None = None,
        temperature: float | Sequence[float] = DEFAULT_TEMPERATURES,
        compression_ratio_threshold: float | None = 2.4,
        logprob_threshold: float | None = -1.0,
        no_speech_threshold: float | None = 0.6,
        condition_on_previous_text: bool = True,
        initial_prompt: str | None = None,
        word_timestamps: bool = False,
        prepend_punctuations: str = PREPEND_PUNCTUATIONS,
        append_punctuations: str = APPEND_PUNCTUATIONS,
        bar: bool = False,
        **decode_options,
    ):
        unknown = sorted(set(decode_options) - _DECODING_FIELDS)
        if unknown:
            raise ConfigError(
                f"unknown transcribe option(s) {', '.join(unknown)}; see audio.decoding.DecodingOptions"
            )
        decode_options.pop("temperature", None)
        samples = _as_audio(audio)
        prepare_for_inference(model)  # self-attention's q/k/v in one GEMM; a second call changes nothing
        self.model, self.tokenizer, self.verbose = model, tokenizer, verbose
        self.no_speech_threshold, self.logprob_threshold = no_speech_threshold, logprob_threshold
        self.condition_on_previous_text = condition_on_previous_text
        device = next(model.parameters()).device
        self.n_frames = model.n_frames  # mel frames per window: 3000 (30 s) for every released model
        self.input_stride = self.n_frames // model.config.n_audio_ctx  # mel frames per output position: 2
        self.precision = self.input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per timestamp step: 0.02
        # As openai-whisper: the log-mel of the audio followed by one window of silence, computed once; each
        # window then holds mel frames of the audio and, past its end, frames of exactly 0.0 (pad_or_trim).
        self.mel = log_mel_spectrogram(
            samples, model.config.n_mels, padding=self.n_frames * HOP_LENGTH, device=device
        )
        self.content_frames = self.mel.shape[-1] - self.n_frames
        self.autocast = autocast_for(model, decode_options)

        language = decode_options.get("language")
        if not tokenizer.multilingual:
            if language not in (None, "en"):
                raise ConfigError(f"this is an English-only model; it cannot transcribe language {language!r}")
            language = "en"
        self.seek, self.segment_size = 0, 0
        self.first_memory = None
        if language is None:
            self.first_memory = self.encode(self.window()[None])
            with self.autocast:
                language, _ = detect_language(model, self.first_memory, tokenizer)
            if verbose:
                print(f"Detected language: {language}")
        decode_options["language"] = self.language = language
        self.words = None
        if word_timestamps:  # openai-whisper's: cross-attention of the alignment heads, then DTW (audio/alignment.py)
            self.words = WordTimestamps(model, tokenizer, language=language, task=decode_options.get("task"),
                                        prepend_punctuations=prepend_punctuations,
                                        append_punctuations=append_punctuations)
        temperatures = [temperature] if isinstance(temperature, (int, float)) else list(temperature)
        self.fallback = _Fallback(
            model,
            tokenizer,
            temperatures,
            decode_options,
            compression_ratio_threshold,
            logprob_threshold,
            no_speech_threshold,
        )
        self.initial_prompt_tokens = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
        self.all_tokens: list[int] = list(self.initial_prompt_tokens)
        self.prompt_reset_since = 0
        self.all_segments: list[dict] = []
        from tqdm import tqdm

        self.bar = tqdm(total=self.content_frames, unit="frames", disable=not bar)

    @property
    def done(self) -> bool:
        return self.seek >= self.content_frames

    def window(self) -> torch.Tensor:
        """The next window's log-mel (n_mels, n_frames): audio from the seek point, then frames of 0.0."""
        self.segment_size = min(self.n_frames, self.content_frames - self.seek)
        return pad_or_trim(self.mel[:, self.seek : self.seek + self.segment_size], self.n_frames)

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, n_frames) -> encoder output (B, n_audio_ctx, D)."""
        with torch.inference_mode(), self.autocast:
            return self.model.embed_audio(mel)

    def next_memory(self) -> torch.Tensor:
        """The next window's encoder output (1, n_audio_ctx, D); the first one may be encoded already."""
        mel = self.window()
        if self.first_memory is not None and self.seek == 0:
            return self.first_memory
        return self.encode(mel[None])

    @property
    def prompt(self) -> list[int]:
        return self.all_tokens[self.prompt_reset_since :]

    def accept(self, result: DecodingResult, memory: torch.Tensor) -> None:
        """Take the decoded window at the seek point (its encoder output `memory` (1, S, D)) and move on."""
        previous_seek, segment_size, tokenizer = self.seek, self.segment_size, self.tokenizer
        time_offset = previous_seek * HOP_LENGTH / SAMPLE_RATE
        if (
            self.no_speech_threshold is not None
            and result.no_speech_prob > self.no_speech_threshold
            and not (self.logprob_threshold is not None and result.avg_logprob > self.logprob_threshold)
        ):
            self.seek += segment_size  # silence: skip the whole window
            self.bar.update(min(self.content_frames, self.seek) - previous_seek)
            return

        pieces, last_timestamp = _segments(
            result.tokens, tokenizer, time_offset, segment_size * HOP_LENGTH / SAMPLE_RATE, self.precision
        )
        # Seek back to the last complete timestamp (never standing still) so no word is cut in half.
        seek = previous_seek + (segment_size if not last_timestamp else last_timestamp * self.input_stride)
        current = []
        for start, end, tokens in pieces:
            text = tokenizer.decode([t for t in tokens if t < tokenizer.eot])
            if start == end or not text.strip():
                text, tokens = "", []
            current.append(
                {
                    "id": len(self.all_segments) + len(current),
                    "seek": previous_seek,
                    "start": start,
                    "end": end,
                    "text": text,
                    "tokens": tokens,
                    "temperature": result.temperature,
                    "avg_logprob": result.avg_logprob,
                    "compression_ratio": result.compression_ratio,
                    "no_speech_prob": result.no_speech_prob,
                }
            )
        if self.words is not None:  # adds segment["words"]; seeks to the last word's end
            seek = self.words(current, result.tokens, memory, segment_size, seek)
        self.seek = seek
        if self.verbose:
            for s in current:
                print(
                    f"[{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}] {s['text']}",
                    flush=True,
                )
        self.all_segments.extend(current)
        self.all_tokens.extend(t for s in current for t in s["tokens"])
        if not self.condition_on_previous_text or result.temperature > 0.5:
            self.prompt_reset_since = len(self.all_tokens)  # a shaky window should not steer the next one
        self.bar.update(min(self.content_frames, self.seek) - previous_seek)

    def result(self) -> dict:
        self.bar.close()
        return {
            "text": self.tokenizer.decode(self.all_tokens[len(self.initial_prompt_tokens) :]),
            "language": self.language,
            "segments": self.all_segments,
        }


@with_vad_filter
def transcribe(model, audio, *, tokenizer, verbose: bool | None = None, **options) -> dict:
    """Transcribe a file or 16 kHz samples (T,) with a Whisper model and its tokenizer.

    Options and their defaults are openai-whisper's (see Transcript): temperature, compression_ratio_threshold,
    logprob_threshold, no_speech_threshold, condition_on_previous_text, initial_prompt, word_timestamps,
    prepend_punctuations, append_punctuations, and DecodingOptions fields (language, task, beam_size, best_of,
    patience, length_penalty, suppress_tokens, without_timestamps, ...). verbose=True prints each segment,
    False shows a progress bar, None is silent.

    Returns {"text", "language", "segments": [{id, seek, start, end, text, tokens, temperature,
    avg_logprob, compression_ratio, no_speech_prob, and with word_timestamps: words}]}.
    """
    transcript = Transcript(model, audio, tokenizer=tokenizer, verbose=verbose, bar=verbose is False, **options)
    while not transcript.done:
        recheck_threads()  # other work may have come or gone since the last window
        memory = transcript.next_memory()
        with transcript.autocast:
            result = transcript.fallback(memory, transcript.prompt)
        transcript.accept(result, memory)
    return transcript.result()
