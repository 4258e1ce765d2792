"""Long-form transcription: 30 s windows over one log-mel, each decoded with temperature fallback, the next
window starting at the last complete timestamp so no word is cut in half.

Follows openai-whisper's transcribe() (without word-level timestamps): the same padding, seeking, prompts
and no-speech skipping, so the same weights give the same transcript.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import torch

from audio.decoding import DecodingOptions, DecodingResult, decode_features, detect_language
from audio.features import HOP_LENGTH, SAMPLE_RATE, log_mel_spectrogram, pad_or_trim
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

    def __call__(self, memory: torch.Tensor, prompt: list[int]) -> DecodingResult:
        result = None
        for t in self.temperatures:
            kwargs = dict(self.options, prompt=prompt, temperature=t)
            if t > 0:  # sampling: beams make no sense, best_of does
                kwargs.pop("beam_size", None)
                kwargs.pop("patience", None)
            else:
                kwargs.pop("best_of", None)
            result = decode_features(self.model, memory, self.tokenizer, DecodingOptions(**kwargs))
            failed = False
            if (
                self.compression_ratio_threshold is not None
                and result.compression_ratio > self.compression_ratio_threshold
            ):
                failed = True  # too repetitive
            if self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold:
                failed = True  # too unlikely
            if (
                self.no_speech_threshold is not None
                and result.no_speech_prob > self.no_speech_threshold
                and self.logprob_threshold is not None
                and result.avg_logprob < self.logprob_threshold
            ):
                failed = False  # silence: the window will be skipped, no point sampling
            if not failed:
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


def transcribe(
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
    **decode_options,
) -> dict:
    """Transcribe a file or 16 kHz samples (T,) with a Whisper model and its tokenizer.

    Options and their defaults are openai-whisper's; `decode_options` are DecodingOptions fields (language,
    task, beam_size, best_of, patience, length_penalty, suppress_tokens, without_timestamps, ...).
    verbose=True prints each segment, False shows a progress bar, None is silent.

    Returns {"text", "language", "segments": [{id, seek, start, end, text, tokens, temperature,
    avg_logprob, compression_ratio, no_speech_prob}]}.
    """
    unknown = sorted(set(decode_options) - _DECODING_FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown transcribe option(s) {', '.join(unknown)}; see audio.decoding.DecodingOptions"
        )
    decode_options.pop("temperature", None)
    samples = _as_audio(audio)
    prepare_for_inference(model)  # self-attention's q/k/v in one GEMM; a second call changes nothing
    device = next(model.parameters()).device
    n_frames = model.n_frames  # mel frames per window: 3000 (30 s) for every released model
    input_stride = n_frames // model.config.n_audio_ctx  # mel frames per output position: 2
    precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per timestamp step: 0.02
    # As openai-whisper: the log-mel of the audio followed by one window of silence, computed once; each
    # window then holds mel frames of the audio and, past its end, frames of exactly 0.0 (pad_or_trim).
    mel = log_mel_spectrogram(samples, model.config.n_mels, padding=n_frames * HOP_LENGTH, device=device)
    content_frames = mel.shape[-1] - n_frames
    autocast = torch.autocast(
        "cuda", dtype=torch.float16, enabled=device.type == "cuda" and decode_options.get("fp16", True)
    )

    def encode(start: int, size: int) -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return model.embed_audio(pad_or_trim(mel[:, start : start + size], n_frames)[None])

    language = decode_options.get("language")
    if not tokenizer.multilingual:
        if language not in (None, "en"):
            raise ConfigError(f"this is an English-only model; it cannot transcribe language {language!r}")
        language = "en"
    first_memory = None
    if language is None:
        first_memory = encode(0, min(n_frames, content_frames))
        with autocast:
            language, _ = detect_language(model, first_memory, tokenizer)
        if verbose:
            print(f"Detected language: {language}")
    decode_options["language"] = language
    temperatures = [temperature] if isinstance(temperature, (int, float)) else list(temperature)
    fallback = _Fallback(
        model,
        tokenizer,
        temperatures,
        decode_options,
        compression_ratio_threshold,
        logprob_threshold,
        no_speech_threshold,
    )

    all_tokens: list[int] = []
    prompt_reset_since = 0
    initial_prompt_tokens = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
    all_tokens.extend(initial_prompt_tokens)
    all_segments: list[dict] = []
    seek = 0
    from tqdm import tqdm

    with tqdm(total=content_frames, unit="frames", disable=verbose is not False) as bar:
        while seek < content_frames:
            recheck_threads()  # other work may have come or gone since the last window
            previous_seek = seek
            time_offset = seek * HOP_LENGTH / SAMPLE_RATE
            segment_size = min(n_frames, content_frames - seek)
            memory = first_memory if first_memory is not None and seek == 0 else encode(seek, segment_size)
            with autocast:
                result = fallback(memory, all_tokens[prompt_reset_since:])

            if (
                no_speech_threshold is not None
                and result.no_speech_prob > no_speech_threshold
                and not (logprob_threshold is not None and result.avg_logprob > logprob_threshold)
            ):
                seek += segment_size  # silence: skip the whole window
                bar.update(min(content_frames, seek) - previous_seek)
                continue

            pieces, last_timestamp = _segments(
                result.tokens, tokenizer, time_offset, segment_size * HOP_LENGTH / SAMPLE_RATE, precision
            )
            # Seek back to the last complete timestamp (never standing still) so no word is cut in half.
            seek += segment_size if not last_timestamp else last_timestamp * input_stride
            current = []
            for start, end, tokens in pieces:
                text = tokenizer.decode([t for t in tokens if t < tokenizer.eot])
                if start == end or not text.strip():
                    text, tokens = "", []
                current.append(
                    {
                        "id": len(all_segments) + len(current),
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
            if verbose:
                for s in current:
                    print(
                        f"[{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}] {s['text']}",
                        flush=True,
                    )
            all_segments.extend(current)
            all_tokens.extend(t for s in current for t in s["tokens"])
            if not condition_on_previous_text or result.temperature > 0.5:
                prompt_reset_since = len(all_tokens)  # a shaky window should not steer the next one
            bar.update(min(content_frames, seek) - previous_seek)

    return {
        "text": tokenizer.decode(all_tokens[len(initial_prompt_tokens) :]),
        "language": language,
        "segments": all_segments,
    }
