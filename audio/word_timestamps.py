"""Word timestamps for transcribe(): each window's segments get `words` ([{word, start, end, probability}])
from audio/alignment.py, punctuation joined to its word, implausibly long words at pauses and sentence ends
trimmed, and the segments' start and end moved to their first and last word, as openai-whisper does.
"""

from __future__ import annotations

import numpy as np
import torch

from audio.alignment import WordTiming, alignment_heads, find_alignment
from audio.features import FRAMES_PER_SECOND, HOP_LENGTH, SAMPLE_RATE

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Join opening marks to the word after them and closing marks to the word before, in place; a joined
    mark leaves an empty word behind (dropped later) so the token count of the window is unchanged."""
    following = len(alignment) - 1
    for i in range(len(alignment) - 2, -1, -1):
        mark, word = alignment[i], alignment[following]
        if mark.word.startswith(" ") and mark.word.strip() in prepended:
            word.word, word.tokens = mark.word + word.word, mark.tokens + word.tokens
            mark.word, mark.tokens = "", []
        else:
            following = i
    previous = 0
    for j in range(1, len(alignment)):
        word, mark = alignment[previous], alignment[j]
        if not word.word.endswith(" ") and mark.word in appended:
            word.word, word.tokens = word.word + mark.word, word.tokens + mark.tokens
            mark.word, mark.tokens = "", []
        else:
            previous = j


def _trim_sentence_ends(alignment: list[WordTiming], max_duration: float) -> None:
    # A sentence's final mark (or the word after it) tends to absorb the pause that follows the sentence.
    for i in range(1, len(alignment)):
        if alignment[i].end - alignment[i].start > max_duration:
            if alignment[i].word in SENTENCE_END_MARKS:
                alignment[i].end = alignment[i].start + max_duration
            elif alignment[i - 1].word in SENTENCE_END_MARKS:
                alignment[i].start = alignment[i].end - max_duration


def last_word_end(segments: list[dict]) -> float | None:
    """End of the last word of these segments, else the last segment's end (None without segments)."""
    ends = [w["end"] for s in segments for w in s.get("words", [])]
    return ends[-1] if ends else segments[-1]["end"] if segments else None


class WordTimestamps:
    """Called once per decoded window of one transcription; remembers where speech last ended.

    `heads`: alignment heads as (layer, head) pairs, or None to find them (see alignment.alignment_heads).
    """

    def __init__(self, model, tokenizer, *, language: str | None, task: str | None = None,
                 prepend_punctuations: str = PREPEND_PUNCTUATIONS,
                 append_punctuations: str = APPEND_PUNCTUATIONS, heads=None):
        self.model, self.tokenizer = model, tokenizer
        self.heads = alignment_heads(model, tokenizer, heads)
        self.sot_sequence = tokenizer.sot_sequence(language, task)
        self.prepend, self.append = prepend_punctuations, append_punctuations
        self.last_speech_timestamp = 0.0

    def __call__(self, segments: list[dict], window_tokens: list[int], memory: torch.Tensor,
                 num_frames: int, seek: int) -> int:
        """Add `words` to this window's segments (in place) -> the seek (mel frames) to continue from: the
        last word's end unless the window was decoded to its end. memory: the window's encoder output (1, S, D)."""
        if not segments:
            return seek
        self._add_words(segments, memory, num_frames)
        time_offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
        end = last_word_end(segments)
        single_timestamp_ending = [t >= self.tokenizer.timestamp_begin for t in window_tokens[-2:]] == [False, True]
        if not single_timestamp_ending and end is not None and end > time_offset:
            seek = round(end * FRAMES_PER_SECOND)
        if end is not None:
            self.last_speech_timestamp = end
        return seek

    def _add_words(self, segments: list[dict], memory: torch.Tensor, num_frames: int) -> None:
        eot = self.tokenizer.eot
        per_segment = [[t for t in s["tokens"] if t < eot] for s in segments]
        alignment = find_alignment(
            self.model, self.tokenizer, [t for tokens in per_segment for t in tokens], memory, num_frames,
            heads=self.heads, sot_sequence=self.sot_sequence,
        )  # fmt: skip
        durations = np.array([w.end - w.start for w in alignment])
        durations = durations[durations.nonzero()]
        median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
        if len(durations):
            _trim_sentence_ends(alignment, 2 * median)
        merge_punctuations(alignment, self.prepend, self.append)

        time_offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
        index = 0
        for segment, tokens in zip(segments, per_segment):
            words, used = [], 0
            while index < len(alignment) and used < len(tokens):
                timing = alignment[index]
                if timing.word:
                    words.append({
                        "word": timing.word,
                        "start": round(time_offset + timing.start, 2),
                        "end": round(time_offset + timing.end, 2),
                        "probability": timing.probability,
                    })  # fmt: skip
                used += len(timing.tokens)
                index += 1
            if words:
                self._fit_segment(segment, words, median)
            segment["words"] = words

    def _fit_segment(self, segment: dict, words: list[dict], median: float) -> None:
        max_duration = 2 * median
        first, last = words[0], words[-1]
        # After a pause the first words tend to start too early: keep them at most twice the median long.
        if first["end"] - self.last_speech_timestamp > 4 * median and (
            first["end"] - first["start"] > max_duration
            or (len(words) > 1 and words[1]["end"] - first["start"] > 2 * max_duration)
        ):
            if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
                boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
                first["end"] = words[1]["start"] = boundary
            first["start"] = max(0, first["end"] - max_duration)
        # The segment's own timestamps win over a first or last word that runs half a second past them.
        if segment["start"] < first["end"] and segment["start"] - 0.5 > first["start"]:
            first["start"] = max(0, min(first["end"] - median, segment["start"]))
        else:
            segment["start"] = first["start"]
        if segment["end"] > last["start"] and segment["end"] + 0.5 < last["end"]:
            last["end"] = max(last["start"] + median, segment["end"])
        else:
            segment["end"] = last["end"]
        self.last_speech_timestamp = segment["end"]
