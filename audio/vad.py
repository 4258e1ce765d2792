"""Voice activity filter for transcribe(): find the speech with Silero VAD, transcribe only the speech put
end to end, then move every timestamp back onto the original audio's time line (faster-whisper's
`vad_filter`, with its `vad_parameters` names and defaults).

The Silero model ships inside the `silero-vad` package (TorchScript, a few MB); nothing is downloaded.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import os

import numpy as np
import torch

from audio.features import SAMPLE_RATE
from shared.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class VadOptions:
    """faster-whisper's VAD parameters and defaults.

    threshold: speech probability above which a 32 ms frame is speech. min_speech_duration_ms: shorter
    speech is dropped. max_speech_duration_s: longer speech is split at its longest silence.
    min_silence_duration_ms: a pause must last this long to end a chunk. speech_pad_ms: kept on each side.
    """

    threshold: float = 0.5
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400


def vad_options(parameters: dict | VadOptions | None) -> VadOptions:
    """VadOptions from a dict of its field names (or None for the defaults); unknown names are an error."""
    if parameters is None or isinstance(parameters, VadOptions):
        return parameters or VadOptions()
    known = {f.name for f in dataclasses.fields(VadOptions)}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ConfigError(f"unknown vad_parameters {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return VadOptions(**parameters)


WINDOW = 512  # samples Silero judges at a time at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window it sees with each


@functools.lru_cache(maxsize=1)
def _silero() -> tuple[torch.nn.Module, torch.nn.LSTM]:
    """Silero's 16 kHz network, and its LSTM cell's weights as a whole-sequence LSTM."""
    from silero_vad import load_silero_vad

    network = load_silero_vad(onnx=False)._model
    cell = network.decoder.rnn
    lstm = torch.nn.LSTM(cell.weight_ih.shape[1], cell.weight_hh.shape[1], batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").copy_(getattr(cell, name))
    return network, lstm.eval()


def speech_probabilities(samples: np.ndarray) -> list[float]:
    """Silero's speech probability for each 32 ms window of 16 kHz audio (T,).

    The streaming model carries only its LSTM state and the previous window's last 64 samples from one
    window to the next, so the convolutions run over all windows at once and only the LSTM runs in order:
    the probabilities of silero-vad's window-by-window loop (within 1e-4), about 15 times faster.
    """
    network, lstm = _silero()
    audio = torch.as_tensor(samples, dtype=torch.float32)
    n = -(-audio.shape[0] // WINDOW)
    audio = torch.nn.functional.pad(audio, (CONTEXT, n * WINDOW - audio.shape[0]))  # zeros before the first
    frames = audio.unfold(0, CONTEXT + WINDOW, WINDOW)  # (N, 576): each window and the 64 samples before it
    with torch.inference_mode():
        features = network.encoder(network.run_extractors(frames))  # (N, 128, 1)
        hidden, _ = lstm(features[:, :, 0][None])  # (1, N, 128)
        probs = network.decoder.decoder(hidden[0, :, :, None])  # (N, 1, 1)
    return probs[:, 0, 0].tolist()


def speech_chunks(samples: np.ndarray, options: VadOptions) -> list[dict]:
    """[{"start", "end"}] in samples of 16 kHz audio (T,): where Silero VAD hears speech, padded."""
    from silero_vad import get_speech_timestamps_from_probs

    chunks = get_speech_timestamps_from_probs(
        speech_probabilities(samples), sampling_rate=SAMPLE_RATE, audio_length_samples=len(samples),
        **dataclasses.asdict(options),
    )  # fmt: skip
    return [{"start": int(c["start"]), "end": int(c["end"])} for c in chunks]


class SpeechTimeline:
    """Maps times in the speech-only audio (chunks put end to end) back onto the original audio.

    As faster-whisper does, a time moves by the silence cut before its chunk, and a word keeps the chunk
    of its middle. One refinement: where a chunk borders a cut, its outer `pad` seconds are padding the VAD
    heard as silence, so a time falling there is moved to the speech's edge (a segment starting in the
    pause after one chunk starts where the next chunk's speech starts). Timestamps then stay off the
    silence that was cut, and the VAD's edges, finer than the decoder's 20 ms steps and its habit of
    starting a segment where the last one ended, place them.
    """

    def __init__(self, chunks: list[dict], n_samples: int | None = None, pad: float = 0.0,
                 sample_rate: int = SAMPLE_RATE):
        """chunks: Silero's, in samples; n_samples: the original audio's length; pad: the VAD's speech_pad
        in seconds (0: times are only moved, as faster-whisper does)."""
        self.sample_rate = sample_rate
        self.chunk_ends: list[int] = []  # where each chunk ends in the speech-only audio (samples)
        self.silence_before: list[float] = []  # seconds of audio cut before each chunk
        self.speech: list[tuple[float, float]] = []  # each chunk's speech, seconds in the speech-only audio
        cut, previous_end = 0, 0
        for i, chunk in enumerate(chunks):
            cut += chunk["start"] - previous_end
            previous_end = chunk["end"]
            self.chunk_ends.append(chunk["end"] - cut)
            self.silence_before.append(cut / sample_rate)
            start, end = (chunk["start"] - cut) / sample_rate, (chunk["end"] - cut) / sample_rate
            next_start = chunks[i + 1]["start"] if i + 1 < len(chunks) else n_samples or chunk["end"]
            # Silero pads each side of a cut by the full pad; chunks it split closer than that touch.
            inner = min(pad, (end - start) / 2)
            cut_before = chunk["start"] - (chunks[i - 1]["end"] if i else 0) > 1
            cut_after = next_start - chunk["end"] > 1
            self.speech.append((start + inner * cut_before, end - inner * cut_after))

    def chunk_index(self, time: float, is_end: bool = False) -> int:
        sample = int(time * self.sample_rate)
        if is_end and sample in self.chunk_ends:  # an end exactly at a chunk's end belongs to that chunk
            return self.chunk_ends.index(sample)
        return min(bisect.bisect(self.chunk_ends, sample), len(self.chunk_ends) - 1)

    def original_time(self, time: float, chunk: int) -> float:
        """A time in the speech-only audio, inside `chunk` (kept within its speech) -> original seconds."""
        low, high = self.speech[chunk]
        return round(self.silence_before[chunk] + min(max(time, low), high), 2)

    def restore(self, segment: dict) -> None:
        """Move a segment (and its words, each kept within one chunk) onto the original time line, in place."""
        words = segment.get("words") or []
        for word in words:
            chunk = self.chunk_index((word["start"] + word["end"]) / 2)
            word["start"] = self.original_time(word["start"], chunk)
            word["end"] = self.original_time(word["end"], chunk)
        if words:
            segment["start"], segment["end"] = words[0]["start"], words[-1]["end"]
            return
        start, end = segment["start"], segment["end"]
        first, last = self.chunk_index(start), self.chunk_index(end, is_end=True)
        if start > self.speech[first][1] and first < last:
            first += 1  # starts in the pause after a chunk: with the next chunk's speech
        if end < self.speech[last][0] and last > first:
            last -= 1  # ends in the pause before a chunk: with the previous chunk's speech
        segment["start"], segment["end"] = self.original_time(start, first), self.original_time(end, last)


def speech_only(audio, parameters: dict | VadOptions | None = None):
    """(the speech of a file or 16 kHz samples put end to end, its SpeechTimeline); (None, None) without
    speech. Anything that is not 1-D samples comes back unchanged, for transcribe() to reject."""
    options = vad_options(parameters)
    samples = audio
    if isinstance(audio, (str, os.PathLike)):
        from audio.io import load_audio

        samples = load_audio(audio)
    samples = samples.cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if samples.ndim != 1 or samples.shape[0] == 0:
        return audio, None
    chunks = speech_chunks(samples, options)
    if not chunks:
        return None, None
    speech = np.concatenate([samples[c["start"] : c["end"]] for c in chunks])
    return speech, SpeechTimeline(chunks, len(samples), options.speech_pad_ms / 1000)


def with_vad_filter(transcribe):
    """Give a transcribe(model, audio, **options) function the `vad_filter` and `vad_parameters` options."""

    @functools.wraps(transcribe)
    def run(model, audio, *, vad_filter: bool = False, vad_parameters: dict | VadOptions | None = None,
            **options) -> dict:
        if not vad_filter:
            return transcribe(model, audio, **options)
        speech, timeline = speech_only(audio, vad_parameters)
        if speech is None:
            return {"text": "", "language": options.get("language") or "en", "segments": []}
        result = transcribe(model, speech, **options)
        for segment in result["segments"] if timeline is not None else []:
            timeline.restore(segment)
        return result

    run.__doc__ = (transcribe.__doc__ or "") + (
        "\n    vad_filter=True transcribes only the speech Silero VAD finds (vad_parameters: see "
        "audio.vad.VadOptions)\n    and puts every timestamp back on the original audio's time line.\n"
    )
    return run
