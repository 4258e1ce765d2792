"""Many files at once: the windows of up to `batch_size` files are decoded as one batch, each file still
getting the transcript it gets alone.

Each file keeps its own Transcript (audio/transcribe.py): its seek point, prompt, segments and word timings.
A step takes the next window of every active file, encodes them, decodes them together at the first
temperature (audio.decoding.decode_batch), re-decodes alone only the windows that fail the fallback
thresholds, and hands each result back to its file. A file that is done leaves the batch and the next one
takes its place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

from audio.decoding import decode_batch
from audio.transcribe import Transcript, format_timestamp
from audio.vad import SpeechTimeline, speech_only
from shared.errors import InputError
from shared.threads import recheck_threads


def transcribe_many(
    model,
    audios: Sequence,
    *,
    tokenizer,
    batch_size: int = 8,
    vad_filter: bool = False,
    vad_parameters: dict | None = None,
    **options,
) -> list[dict]:
    """Transcribe several files or sample arrays, `batch_size` of them at a time; one result dict per input,
    in order, each as transcribe() returns it for that input alone.

    Options are audio.transcribe.transcribe's (temperature, beam_size, word_timestamps, vad_filter, ...).
    verbose=True prints each file's segments when the file is done, False shows a progress bar of files.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    verbose = options.pop("verbose", None)
    results: list[dict | None] = [None] * len(audios)
    timelines: dict[int, SpeechTimeline] = {}
    waiting = deque(range(len(audios)))
    active: list[tuple[int, Transcript]] = []
    from tqdm import tqdm

    bar = tqdm(total=len(audios), unit="files", disable=verbose is not False)
    while waiting or active:
        while waiting and len(active) < batch_size:  # files join as others finish
            i = waiting.popleft()
            audio = audios[i]
            if vad_filter:
                audio, timeline = speech_only(audio, vad_parameters)  # as transcribe(vad_filter=True)
                if audio is None:
                    results[i] = {"text": "", "language": options.get("language") or "en", "segments": []}
                    bar.update()
                    continue
                if timeline is not None:
                    timelines[i] = timeline
            transcript = Transcript(model, audio, tokenizer=tokenizer, **options)  # silent: files interleave
            if transcript.done:
                results[i] = transcript.result()
                bar.update()
            else:
                active.append((i, transcript))
        if not active:
            continue
        recheck_threads()  # other work may have come or gone since the last batch
        _step([t for _, t in active])
        for i, transcript in [(i, t) for i, t in active if t.done]:
            results[i] = transcript.result()
            for segment in results[i]["segments"]:
                if i in timelines:
                    timelines[i].restore(segment)
                if verbose:  # a file's segments together, once it is done
                    print(f"[{format_timestamp(segment['start'])} --> {format_timestamp(segment['end'])}] "
                          f"{segment['text']}", flush=True)
            bar.update()
        active = [(i, t) for i, t in active if not t.done]
    bar.close()
    return results


def _step(transcripts: list[Transcript]) -> None:
    """Encode and decode the next window of every transcript together, then let each take its result."""
    first = transcripts[0]
    # One window per encoder forward: a batch of windows costs more CPU time than the same windows one by
    # one (measured 1.31 vs 1.10 s for four windows in int8, 1.87 vs 1.72 s in float32, one thread: the
    # activations of several 1,500-position windows outgrow the caches), and alone each window's int8
    # activation scales are the ones it gets when its file is transcribed alone.
    memories = [t.next_memory() for t in transcripts]  # (1, S, D) each
    options = [t.fallback.options_at(t.fallback.temperatures[0], t.prompt) for t in transcripts]
    with first.autocast:
        decoded = decode_batch(first.model, torch.cat(memories), first.tokenizer, options)
        for transcript, memory, result in zip(transcripts, memories, decoded):
            result = transcript.fallback(memory, transcript.prompt, first=result)  # alone, only if it failed
            transcript.accept(result, memory)
